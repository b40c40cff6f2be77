"""Process wiring for ``musepose-operator run``: logging, metrics, then kopf's loop."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
from typing import TYPE_CHECKING

import kopf

from musepose_runner.contract.job_spec import ExitCode

if TYPE_CHECKING:
    from musepose_operator.settings import Settings

PEERING_NAME = "musepose-operator"
M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """glibc gives each thread that allocates its own heap arena (up to 8 per core): the
    API call pool's threads decode replies in theirs, and freed memory stays spread over
    them. Two arenas keep the process's RSS close to what it holds (MALLOC_ARENA_MAX=2, set
    before any thread starts). False where malloc is not glibc's."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_ARENA_MAX, arenas))


def prepare_key_secrets(settings: Settings) -> str | None:
    """Make the seal-key Secrets the chart names when absent (cluster/key_secrets.py); the
    reason to restart, or None. Keys this start made for the operator itself go into its
    environment, where the reclaim seals read them."""
    from kubernetes import client, config
    from urllib3.exceptions import HTTPError

    from musepose_operator.cluster import key_secrets
    from musepose_operator.outputs.reclaim import KEYS_ENV

    own, gateway = settings.reclaim_keys_secret, settings.gateway_record_keys_secret
    if own is None and gateway is None:
        return None
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    try:
        made = key_secrets.prepare(client.CoreV1Api(), own,
                                   bool(os.environ.get(KEYS_ENV, "").strip()),
                                   [gateway] if gateway else [])
    except key_secrets.KeysMadeElsewhere as err:
        return str(err)
    except (OSError, HTTPError) as err:
        return f"the Kubernetes API is unreachable ({err}); restarting"
    if made:
        os.environ[KEYS_ENV] = made
    return None


def run_operator(*, namespaces: list[str], all_namespaces: bool, standalone: bool,
                 liveness: str, verbose: bool) -> int:
    from pydantic import ValidationError

    from musepose_operator import metrics  # noqa: F401 - registers the handlers
    from musepose_operator.callbacks import handlers as _callbacks  # noqa: F401 - registers
    from musepose_operator.reconcile import handlers
    from musepose_operator.settings import load_settings, settings_problems

    # Bad settings are a configuration error: say which, exit, and let the pod crash-loop
    # with that message, instead of kopf retrying its startup handler every minute.
    try:
        settings = load_settings()
    except (ValidationError, ValueError, OSError) as err:
        problems = settings_problems(err) if isinstance(err, ValidationError) else [str(err)]
        for line in problems:
            print(f"musepose-operator: {line}", file=sys.stderr)
        return ExitCode.BAD_CONFIG  # as the runner exits on bad configuration
    refused = prepare_key_secrets(settings)
    if refused:
        print(f"musepose-operator: {refused}", file=sys.stderr)
        return ExitCode.TRANSIENT

    limit_malloc_arenas()
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if os.environ.get("MUSEPOSE_LOG_JSON", "1") == "1"
        else kopf.LogFormat.PLAIN,
        log_prefix=True,
    )
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    if not verbose:
        # kopf logs "Handler ... succeeded" for every watch event (about ten lines per
        # Animation): per-object INFO goes; its warnings and errors stay.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    metrics_port = int(os.environ.get("MUSEPOSE_METRICS_PORT", "8000"))
    if metrics_port:
        metrics.serve(metrics_port)
    clusterwide = all_namespaces or not namespaces
    # kopf pauses every replica of equal priority: each replica draws its own, so exactly
    # one (the highest) runs and the others stand by until its peering entry expires.
    priority = int(os.environ.get("MUSEPOSE_PEERING_PRIORITY") or random.randint(1, 2**30))
    handlers.WATCHING = handlers.Watching(
        namespaces=None if clusterwide else list(namespaces),
        peering=None if standalone else PEERING_NAME, priority=priority)
    asyncio.run(kopf.operator(
        clusterwide=clusterwide,
        namespaces=() if clusterwide else namespaces,
        standalone=standalone,
        # kopf makes a named peering mandatory, and pauses every watch when --standalone
        # leaves it without peering objects: name it only when peering is used.
        peering_name=None if standalone else PEERING_NAME,
        priority=priority,
        liveness_endpoint=liveness or None,
    ))
    return 0
