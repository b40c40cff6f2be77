"""Each namespace's storage scope: which s3:// prefixes and data-volume dirs it may use. Pure.

The CRD cannot see the operator's settings or the namespace, so the operator checks the
scope before it plans a Job, and hands the same scope to the runner, which checks again.
"""

from __future__ import annotations

from musepose_operator.settings import Settings
from musepose_runner.contract.job_spec import StorageScope
from musepose_runner.contract.location_rules import within as within  # the scope check's one home


def namespace_scope(settings: Settings, namespace: str) -> StorageScope | None:
    """The scope of ``namespace``, or None when the operator enforces none."""
    storage = settings.storage
    if not storage.enforce:
        return None
    extra = storage.namespaces.get(namespace)
    read = [
        *write_prefixes(settings, namespace),
        f"{storage.data_input_root.rstrip('/')}/{namespace}/",
        *storage.shared_input_prefixes,
        *(extra.input_prefixes if extra else ()),
    ]
    # The operator's own default watermark is readable by everyone who gets it stamped.
    if settings.default_watermark and not settings.default_watermark.startswith("https://"):
        read.append(settings.default_watermark)
    return StorageScope(read=tuple(dict.fromkeys(read)),
                        write=write_prefixes(settings, namespace))


def write_prefixes(settings: Settings, namespace: str) -> tuple[str, ...]:
    """Where ``namespace`` may write, and so the only places its outputs are ever deleted
    from (whether or not the scope is enforced on what it names)."""
    storage = settings.storage
    extra = storage.namespaces.get(namespace)
    return tuple(dict.fromkeys((
        f"s3://{settings.s3.default_bucket}/{namespace}/",
        f"{storage.data_output_root.rstrip('/')}/{namespace}/",
        *(extra.output_prefixes if extra else ()),
        *((extra.object_base,) if extra and extra.object_base else ()),
    )))


def credentials_secret(settings: Settings, namespace: str) -> str | None:
    """The Secret (in ``namespace``) whose keys the runner pods there use for S3."""
    extra = settings.storage.namespaces.get(namespace)
    if extra and extra.credentials_secret:
        return extra.credentials_secret
    return settings.s3.credentials_secret
