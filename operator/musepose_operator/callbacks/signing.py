"""Signing a callback the Standard Webhooks way (standardwebhooks.com), so a receiver can
check it came from this operator and was not replayed: three headers,

    webhook-id: <the event's id: the same on every retry, so receivers de-duplicate by it>
    webhook-timestamp: <seconds since the epoch, of this attempt>
    webhook-signature: v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>

The key is the namespace's ``WEBHOOK_SECRET``: ``whsec_`` and the key's bytes in base64
(24 to 64 bytes, e.g. ``whsec_$(openssl rand -base64 32)``). Pure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"
MIN_KEY_BYTES, MAX_KEY_BYTES = 24, 64


class BadSigningSecret(ValueError):
    pass


def signing_key(secret: str) -> bytes:
    """The HMAC key in ``secret`` (``whsec_<base64>``), or BadSigningSecret saying why not."""
    text = secret.strip()
    if not text.startswith(SECRET_PREFIX):
        raise BadSigningSecret(f"WEBHOOK_SECRET must start with {SECRET_PREFIX!r} "
                               "(whsec_ and the key in base64)")
    try:
        key = base64.b64decode(text[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise BadSigningSecret("WEBHOOK_SECRET: the part after whsec_ is not base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise BadSigningSecret(f"WEBHOOK_SECRET: the key must be {MIN_KEY_BYTES} to "
                               f"{MAX_KEY_BYTES} bytes, not {len(key)}")
    return key


def signed_headers(key: bytes, message_id: str, timestamp: int, body: bytes
                   ) -> dict[str, str]:
    signed = f"{message_id}.{timestamp}.".encode() + body
    mac = hmac.new(key, signed, hashlib.sha256).digest()
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": "v1," + base64.b64encode(mac).decode("ascii")}
