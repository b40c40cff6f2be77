"""Label, annotation and finalizer names the operator puts on what it creates."""

from __future__ import annotations

from musepose_operator.api.constants import GROUP

MANAGED_BY = "musepose-operator"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_ANIMATION = f"{GROUP}/animation"
LABEL_ANIMATION_UID = f"{GROUP}/animation-uid"
LABEL_GENERATION = f"{GROUP}/generation"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
OUTPUT_FINALIZER = f"{GROUP}/output-cleanup"

# Selects every Job and Pod this operator made (what its watches filter on).
MANAGED_SELECTOR = {LABEL_MANAGED_BY: MANAGED_BY}
