"""The operator's object-store client: presigned download links and output deletion.

The operator's own credentials come from its environment (MUSEPOSE_S3_ACCESS_KEY /
MUSEPOSE_S3_SECRET_KEY, or the AWS_* names); the runner's come from a Secret.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os

from musepose_operator.base.timestamps import format_time, now
from musepose_operator.outputs.reclaim import Verdict
from musepose_operator.settings import S3Settings


def split_s3(uri: str) -> tuple[str, str]:
    """(bucket, key) exactly as written: no URL parsing that would cut at '#' or '?'."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


class ObjectStore:
    def __init__(self, settings: S3Settings) -> None:
        from minio import Minio

        access = os.environ.get("MUSEPOSE_S3_ACCESS_KEY") or os.environ.get("AWS_ACCESS_KEY_ID")
        secret = os.environ.get("MUSEPOSE_S3_SECRET_KEY") or os.environ.get(
            "AWS_SECRET_ACCESS_KEY")
        # A region avoids a bucket-location round trip when presigning (it is local maths).
        self.client = Minio(settings.endpoint or "s3.amazonaws.com", access_key=access,
                            secret_key=secret, secure=settings.secure,
                            region=settings.region or "us-east-1")

    def presign(self, uri: str, expiry_seconds: int) -> tuple[str, str]:
        bucket, key = split_s3(uri)
        expires = dt.timedelta(seconds=expiry_seconds)
        url = self.client.presigned_get_object(bucket, key, expires=expires)
        return url, format_time(now() + expires)

    def delete(self, uri: str) -> None:
        bucket, key = split_s3(uri)
        self.client.remove_object(bucket, key)

    def delete_if_unchanged(self, uri: str, sha256: str) -> Verdict:
        """Delete the object only while its content still has this sha256."""
        from minio.error import S3Error

        bucket, key = split_s3(uri)
        try:
            stat = self.client.stat_object(bucket, key)
        except S3Error as err:
            if err.code in ("NoSuchKey", "NoSuchObject"):
                return Verdict.GONE
            raise
        digest = hashlib.sha256()
        reply = self.client.get_object(bucket, key, version_id=stat.version_id)
        try:
            for chunk in reply.stream(1 << 20):
                digest.update(chunk)
        finally:
            reply.close()
            reply.release_conn()
        if digest.hexdigest() != sha256:
            return Verdict.REPLACED
        self.client.remove_object(bucket, key)
        return Verdict.DELETED
