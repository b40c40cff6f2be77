"""``musepose-operator gateway``: the process wiring (Kubernetes client, keys, HTTP server)."""

from __future__ import annotations

import logging
from pathlib import Path

from kubernetes import client, config

from musepose_operator.gateway.app import GatewayConfig, build_app
from musepose_operator.gateway.auth import Authenticator, KeysFile
from musepose_operator.gateway.serving import run
from musepose_operator.gateway.store import AnimationStore


def serve(gateway: GatewayConfig, *, host: str, port: int, api_keys: Path | None = None,
          allow_anonymous: bool = False, audiences: list[str] | None = None) -> None:
    """Serve until SIGINT/SIGTERM. Raises InvalidKeys for a broken keys file."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    api = client.ApiClient()
    keys = KeysFile(api_keys) if api_keys else None
    auth = Authenticator(api, keys=keys, allow_anonymous=allow_anonymous, audiences=audiences)
    app = build_app(gateway, AnimationStore(api), auth)
    run(app, host, port)
