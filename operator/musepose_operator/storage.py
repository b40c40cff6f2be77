"""Object-store calls the operator makes: presigned download links and output deletion.

The operator's own credentials come from its environment (MUSEPOSE_S3_ACCESS_KEY /
MUSEPOSE_S3_SECRET_KEY, or the AWS_* names); the runner's come from a Secret.
"""

from __future__ import annotations

import datetime as dt
import os
from urllib.parse import urlsplit

from musepose_operator.settings import S3Settings


def split_s3(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    return parts.netloc, parts.path.lstrip("/")


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
        until = dt.datetime.now(dt.UTC) + expires
        return url, until.strftime("%Y-%m-%dT%H:%M:%SZ")

    def delete(self, uri: str) -> None:
        bucket, key = split_s3(uri)
        self.client.remove_object(bucket, key)
