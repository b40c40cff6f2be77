"""A pose preview's pod (spec.posesOnly): CPU only, placed and sized by settings.posePreview.
Pure: no I/O.

No GPU resource is requested and the GPU nodes' selector and tolerations are not used:
the runner extracts and aligns poses and encodes them, it loads no diffusion model.
"""

from __future__ import annotations

from typing import Any

from musepose_operator.settings import Settings


def preview_resources(settings: Settings) -> dict[str, Any]:
    """The runner container's requests and limits: CPU and memory, never a GPU."""
    preview = settings.pose_preview
    return {"requests": {"cpu": preview.cpu_request, "memory": preview.memory_request},
            "limits": {"memory": preview.memory_limit}}


def preview_placement(settings: Settings) -> dict[str, Any]:
    """The pod's nodeSelector and tolerations."""
    preview = settings.pose_preview
    return {"nodeSelector": dict(preview.node_selector),
            "tolerations": [dict(t) for t in preview.tolerations]}
