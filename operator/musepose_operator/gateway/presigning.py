"""Signing upload policies for ``POST /uploads`` with the gateway's S3 keys (minio's S3 POST
policy, signed locally: no call to the store). A POST policy, not a presigned PUT: the
policy bounds the object's key, content type and length, and the store itself refuses an
upload that breaks any of them; a PUT URL cannot bound the length."""

from __future__ import annotations

import datetime as dt
import io

from minio import Minio
from minio.datatypes import PostPolicy

from musepose_operator.gateway.uploads import Destination, UploadGrant


class Presigner:
    def __init__(self, endpoint: str, access_key: str, secret_key: str, *, secure: bool,
                 region: str, expiry_seconds: int) -> None:
        self._client = Minio(endpoint, access_key=access_key, secret_key=secret_key,
                             secure=secure, region=region)
        self.origin = f"{'https' if secure else 'http'}://{endpoint}"
        self.expiry_seconds = expiry_seconds

    def grant(self, where: Destination, content_type: str, size: int) -> UploadGrant:
        expires = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(
            seconds=self.expiry_seconds)
        policy = PostPolicy(where.bucket, expires)
        policy.add_equals_condition("key", where.key)
        policy.add_equals_condition("Content-Type", content_type)
        policy.add_content_length_range_condition(size, size)
        fields = self._client.presigned_post_policy(policy)
        return UploadGrant(uri=where.uri, url=f"{self.origin}/{where.bucket}",
                           fields={"key": where.key, "Content-Type": content_type, **fields},
                           expires_at=expires.strftime("%Y-%m-%dT%H:%M:%SZ"), max_bytes=size)

    def put(self, where: Destination, data: bytes, content_type: str) -> None:
        """Store a small file the gateway checked itself (an inline image of a payload)."""
        self._client.put_object(where.bucket, where.key, io.BytesIO(data), len(data),
                                content_type=content_type)
