"""Seal keys that survive every render: made once, at the operator's start, in Secrets it
creates and never reads.

Why not the chart: a chart can only make a random key, and keep it across upgrades with
helm's ``lookup``, which sees no cluster under ``helm template`` (Argo CD, Flux
post-rendering, ``helm template | kubectl apply``): every render made a new key, applied
over the old one, and after the next restart outputs sealed for ``outputReclaimPolicy:
Delete`` were silently kept and every gateway record vanished (issue 30). So the chart
renders no key Secret (renders are the same each time, and applying one touches no key);
the operator creates each missing one, with a fresh random key, when it starts.

``create`` only: the operator's Role may create Secrets but never get, list or watch them
(a 409 means the Secret exists, and it is left as it is). The reclaim keys reach the
operator by an optional ``secretKeyRef``: a container that found none and made the Secret
itself uses the key it made; one that found none but whose create met an existing Secret
(another replica made it meanwhile) exits 75 to be restarted with it. The gateway mounts
its Secret (not optional): its pod waits until the operator made it. The Secrets carry no
owner and the operator may not delete them, so they outlive an uninstall, as the chart's
``helm.sh/resource-policy: keep`` Secrets did (a reinstall still verifies old seals).
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes import client

from musepose_operator.base.sealing import SealKeys
from musepose_operator.settings import KeySecret

log = logging.getLogger(__name__)
MADE_BY_LABEL = "app.kubernetes.io/managed-by"
MADE_BY = "musepose-operator"


class KeysMadeElsewhere(RuntimeError):
    """The Secret exists but this container started without its keys: restart to get them."""


def fresh_keys_text() -> str:
    """One new random sealing key, in the keys Secret's format (one key per line)."""
    return SealKeys.generate().keys[0].decode() + "\n"


def create_if_absent(core: Any, secret: KeySecret, text: str) -> bool:
    """Create ``secret`` holding ``text``; True when this call made it, False when it
    existed (left untouched, unread)."""
    body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": secret.name, "namespace": secret.namespace,
                         "labels": {MADE_BY_LABEL: MADE_BY}},
            "stringData": {secret.key: text}}
    try:
        core.create_namespaced_secret(secret.namespace, body)
    except client.ApiException as err:
        if err.status == 409:
            return False
        raise
    log.info("made the keys Secret %s/%s (a fresh random key)", secret.namespace, secret.name)
    return True


def prepare(core: Any, own: KeySecret | None, own_keys_given: bool,
            others: list[KeySecret]) -> str | None:
    """Make the missing key Secrets. ``own``: the operator's reclaim keys Secret, whose keys
    this container got (``own_keys_given``) or not. Returns the keys text to use when this
    call made ``own`` now; None when the container's own keys stand (or there is no
    ``own``). Raises KeysMadeElsewhere; an API refusal (no RBAC for it) is logged and
    skipped: the keys are then as before (none, or made up per process)."""
    made_now: str | None = None
    if own is not None and not own_keys_given:
        text = fresh_keys_text()
        try:
            if create_if_absent(core, own, text):
                made_now = text
            else:
                raise KeysMadeElsewhere(
                    f"the keys Secret {own.namespace}/{own.name} exists but this container "
                    f"started without its key {own.key!r}: restarting to read it (if the "
                    f"Secret lacks that key, add one or delete the Secret)")
        except client.ApiException as err:
            log.warning("could not make the keys Secret %s/%s: %s %s", own.namespace,
                        own.name, err.status, err.reason)
    for secret in others:
        try:
            create_if_absent(core, secret, fresh_keys_text())
        except client.ApiException as err:
            log.warning("could not make the keys Secret %s/%s: %s %s", secret.namespace,
                        secret.name, err.status, err.reason)
    return made_now
