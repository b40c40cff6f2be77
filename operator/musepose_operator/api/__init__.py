"""The Animation API (musepose.io/v1alpha1): pydantic models, the single source of truth.

The CRD in ``crds/`` is generated from these models (see ``crd.py``); nothing here does I/O.
"""

from musepose_operator.api.constants import (
    API_VERSION,
    CATEGORY,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAME,
    SINGULAR,
    VERSION,
    ConditionType,
    Phase,
)
from musepose_operator.api.v1alpha1 import (
    Animation,
    AnimationSpec,
    AnimationStatus,
    Condition,
    MemoryFallback,
    OutputInfo,
    OutputReclaimPolicy,
    ProgressInfo,
    WatermarkSpec,
)

__all__ = [
    "API_VERSION",
    "CATEGORY",
    "GROUP",
    "KIND",
    "PLURAL",
    "SHORT_NAME",
    "SINGULAR",
    "VERSION",
    "Animation",
    "AnimationSpec",
    "AnimationStatus",
    "Condition",
    "ConditionType",
    "OutputInfo",
    "MemoryFallback",
    "OutputReclaimPolicy",
    "Phase",
    "ProgressInfo",
    "WatermarkSpec",
]
