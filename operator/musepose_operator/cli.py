"""``musepose-operator``: run the operator, print the CRD, convert old payloads."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any, TypeAlias

import yaml

from musepose_runner.contract.job_spec import ExitCode


def _cmd_crd(_: argparse.Namespace) -> int:
    from musepose_operator.api.crd import crd_yaml

    sys.stdout.write(crd_yaml())
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from musepose_operator.admission.payload import (
        InvalidPayload,
        parse_payload_text,
        payload_to_animation,
    )

    try:
        text = sys.stdin.read() if args.payload == "-" else Path(args.payload).read_text()
    except OSError as err:
        print(f"payload: cannot read {args.payload}: {err.strerror}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        animation = payload_to_animation(parse_payload_text(text), namespace=args.namespace,
                                         object_base=args.object_base)
    except InvalidPayload as err:
        for problem in err.problems:
            print(f"invalid payload: {problem}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump(animation, sort_keys=False))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from musepose_operator.main import run_operator

    return run_operator(
        namespaces=args.namespace,
        all_namespaces=args.all_namespaces,
        standalone=args.standalone,
        liveness=args.liveness,
        verbose=args.verbose,
    )


def _object_bases(values: list[str]) -> dict[str, str]:
    """``NAMESPACE=s3://bucket/prefix/`` arguments, checked as the operator's settings check
    storage.namespaces.<ns>.objectBase (the chart renders both from that value)."""
    from musepose_operator.settings import NamespaceStorage

    bases = {}
    for value in values:
        namespace, _, base = value.partition("=")
        if not namespace or not base:
            raise ValueError(f"{value!r} is not NAMESPACE=s3://bucket/prefix/")
        try:
            checked = NamespaceStorage(object_base=base).object_base
        except ValueError as err:
            raise ValueError(f"{value!r}: {err}") from None
        assert checked is not None
        bases[namespace] = checked
    return bases


def _cmd_gateway(args: argparse.Namespace) -> int:
    from musepose_operator.base.sealing import InvalidSealKeys, parse_seal_keys
    from musepose_operator.gateway import GatewayConfig
    from musepose_operator.gateway.keys import InvalidKeys
    from musepose_operator.gateway.server import serve

    gateway = GatewayConfig(
        namespaces=frozenset(args.namespace),
        default_namespace=args.default_namespace or (args.namespace[0] if args.namespace
                                                     else None),
        max_body_bytes=args.max_body_bytes,
        runsync_wait_seconds=args.runsync_wait_seconds,
        max_event_streams=args.max_event_streams,
        presigner=_upload_presigner(args),
        max_upload_bytes=args.max_upload_bytes,
        max_data_uri_bytes=args.max_data_uri_bytes,
        # The operator's test-only callbacks setting, from the same environment variable.
        webhook_loopback_for_tests=os.environ.get(
            "MUSEPOSE_CALLBACKS__LOOPBACK_FOR_TESTS", "").lower() == "true",
    )
    try:
        gateway = dataclasses.replace(gateway, object_bases=_object_bases(args.object_base))
    except ValueError as err:
        print(f"gateway: --object-base: {err}", file=sys.stderr)
        return ExitCode.BAD_CONFIG
    if args.record_keys:
        try:
            gateway = dataclasses.replace(
                gateway, record_keys=parse_seal_keys(args.record_keys.read_text()))
        except OSError as err:
            print(f"gateway: record keys {args.record_keys}: {err.strerror}", file=sys.stderr)
            return ExitCode.BAD_CONFIG
        except InvalidSealKeys as err:
            print(f"gateway: {args.record_keys}: {err}", file=sys.stderr)
            return ExitCode.BAD_CONFIG
    else:
        print("gateway: no --record-keys: sealing records with a random key; requests made "
              "before a restart will not be recognised", file=sys.stderr)
    try:
        serve(gateway, host=args.host, port=args.port, api_keys=args.api_keys,
              allow_anonymous=args.allow_anonymous, audiences=args.token_audience)
    except InvalidKeys as err:
        print(f"gateway: {err}", file=sys.stderr)
        return ExitCode.BAD_CONFIG
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="musepose-operator",
        description="Kubernetes operator that turns Animation resources into MusePose videos.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    crd = sub.add_parser("crd", help="print the CRD generated from the API models")
    crd.set_defaults(func=_cmd_crd)
    _add_convert(sub)
    _add_gateway(sub)
    return parser


Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _add_run(sub: Subcommands) -> None:
    run = sub.add_parser("run", help="run the operator (wraps kopf run)")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", default=[],
        help="watch this namespace (repeatable; globs like 'team-*' work)",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch every namespace (default)"
    )
    run.add_argument(
        "--standalone", action="store_true",
        help="no peering: only for a single replica (peering keeps HA replicas from racing)",
    )
    run.add_argument(
        "--liveness", default="http://0.0.0.0:8080/healthz",
        help="liveness endpoint URL (default %(default)s)",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    run.set_defaults(func=_cmd_run)


def _add_convert(sub: Subcommands) -> None:
    convert = sub.add_parser(
        "convert", help="convert an original endpoint JSON payload into Animation YAML"
    )
    convert.add_argument("payload", help="payload JSON file, or - for standard input")
    convert.add_argument("--namespace", help="set metadata.namespace")
    convert.add_argument("--object-base", metavar="S3_PREFIX",
                         help="s3://bucket/prefix/ that relative object names resolve against")
    convert.set_defaults(func=_cmd_convert)


def _upload_presigner(args: argparse.Namespace) -> Any:
    """POST /uploads signs with the S3 keys in the environment (a Secret's, in the pod)."""
    from musepose_operator.gateway.presigning import Presigner

    access = os.environ.get("MUSEPOSE_GATEWAY_S3_ACCESS_KEY")
    secret = os.environ.get("MUSEPOSE_GATEWAY_S3_SECRET_KEY")
    if not args.s3_endpoint or not access or not secret:
        return None
    return Presigner(args.s3_endpoint, access, secret, secure=not args.s3_insecure,
                     region=args.s3_region, expiry_seconds=args.upload_expiry_seconds)


def _add_gateway(sub: Subcommands) -> None:
    gateway = sub.add_parser(
        "gateway", help="serve the original REST endpoint, creating Animations from payloads"
    )
    gateway.add_argument("--host", default="127.0.0.1",
                         help="address to listen on (default %(default)s; 0.0.0.0 in a pod)")
    gateway.add_argument("--port", type=int, default=8081)
    gateway.add_argument(
        "-n", "--namespace", action="append", default=[],
        help="serve this namespace (repeatable; the first is the default); none: any")
    gateway.add_argument("--default-namespace",
                         help="namespace of requests that name none (default: the first -n)")
    gateway.add_argument("--api-keys", type=Path,
                         help="YAML file of API keys mapped to namespaces (a mounted Secret)")
    gateway.add_argument("--record-keys", type=Path,
                         help="file of keys sealing the gateway's records, one per line, the "
                              "sealing key first (a Secret mounted into the gateway only); "
                              "default: a random key per process")
    gateway.add_argument("--allow-anonymous", action="store_true",
                         help="serve callers without credentials as system:anonymous "
                              "(RBAC still decides what they may do)")
    gateway.add_argument("--token-audience", action="append", default=[],
                         help="accept only tokens issued for this audience (repeatable)")
    gateway.add_argument("--max-body-bytes", type=int, default=64 * 1024,
                         help="largest payload accepted (default %(default)s)")
    gateway.add_argument("--runsync-wait-seconds", type=float, default=90.0,
                         help="longest a RunPod /runsync waits for the result before it "
                              "answers IN_QUEUE/IN_PROGRESS with the id (default %(default)s)")
    gateway.add_argument("--max-event-streams", type=int, default=4,
                         help="event streams (GET /animate/{id}/events) one caller may hold "
                              "open at once; more are 429 (default %(default)s)")
    gateway.add_argument("--s3-endpoint", help="host:port of the object store that POST "
                         "/uploads signs policies for (keys: MUSEPOSE_GATEWAY_S3_ACCESS_KEY, "
                         "MUSEPOSE_GATEWAY_S3_SECRET_KEY); without it, no uploads")
    gateway.add_argument("--s3-insecure", action="store_true",
                         help="the object store speaks plain http (local tests)")
    gateway.add_argument("--s3-region", default="us-east-1")
    gateway.add_argument("--upload-expiry-seconds", type=int, default=900)
    gateway.add_argument("--max-upload-bytes", type=int, default=512 * 1024 * 1024,
                         help="largest file POST /uploads grants (default %(default)s)")
    gateway.add_argument("--max-data-uri-bytes", type=int, default=2 * 1024 * 1024,
                         help="largest inline (data:) image in a POST /animate payload, "
                         "decoded, with uploads on (default %(default)s)")
    gateway.add_argument("--object-base", action="append", default=[],
                         metavar="NAMESPACE=S3_PREFIX",
                         help="relative object names in NAMESPACE's payloads resolve against "
                              "S3_PREFIX (repeatable; the chart passes storage.namespaces.<ns>."
                              "objectBase)")
    gateway.set_defaults(func=_cmd_gateway)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
