"""Types every layer shares."""

from __future__ import annotations

from typing import Any

# A Kubernetes object as the API returns it: a JSON document (the client's dicts, decoded once).
Obj = dict[str, Any]
