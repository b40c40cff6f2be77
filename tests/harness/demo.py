"""``make demo``: the whole product on this machine, end to end, on embedded defaults.

1. start the local control plane, MinIO and the test kubelet (two fake GPU nodes);
2. install the Helm chart with the real helm CLI (replicas 0: there is no container
   runtime for the operator image, so the operator runs as a local process instead);
3. run ``musepose-operator run`` with the chart's ServiceAccount token and the chart's
   rendered settings, so the chart's RBAC and settings are what is exercised;
4. upload the example inputs (made on the spot) to MinIO, ``kubectl apply`` the example
   Animation, let the test kubelet run ``musepose-runner`` with random demo weights;
5. ``kubectl wait --for=condition=Finished``, ``kubectl get anim``, download the video.

The e2e test calls :func:`run_demo` on the test session's cluster; ``main`` starts its own.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.e2e.demo_inputs import DemoInputs, write_demo_inputs
from tests.harness.binaries import binary
from tests.harness.environment import Environment
from tests.harness.minio import MinioServer
from tests.harness.processes import eventually
from tests.operator_env import OperatorProcess, operator_process

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "musepose-operator"
EXAMPLE = ROOT / "manifests" / "examples" / "animation.yaml"
RELEASE = "musepose"
RELEASE_NAMESPACE = "musepose-system"
OPERATOR_SA = "musepose-operator"
SETTINGS_CONFIGMAP = "musepose-operator-settings"
S3_SECRET = "musepose-s3"
INPUT_BUCKET = "musepose-demo"
OUTPUT_BUCKET = "musepose"
WEIGHTS_CLAIM = "musepose-weights"
# Small enough for two CPU cores in a couple of minutes with the tiny demo weights; the
# output is scaled back to the source's size, so the video has the dance video's geometry.
DEMO_INFERENCE = {"width": 128, "height": 128, "steps": 4, "contextFrames": 12,
                  "contextOverlap": 4}


@dataclass(frozen=True)
class NodeImages:
    """The images a real node runs the chart from (tests.harness.realnode), all loaded into
    its containerd: the chart's operator and gateway pods and the runner pods use them."""
    operator: str  # localhost/musepose-operator:<content key>
    runner: str
    weights: str | None = None  # mount this weights image instead of the PVC


def _image_values(name: str) -> dict[str, str]:
    repository, _, tag = name.rpartition(":")
    return {"repository": repository, "tag": tag, "pullPolicy": "Never"}


@dataclass(frozen=True)
class DemoResult:
    animation: dict[str, Any]
    video: Path
    poster: Path | None
    table: str  # what `kubectl get anim` printed


def _kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary("kubectl"), "--kubeconfig", str(kubeconfig), *args],
                          capture_output=True, text=True, check=check)


def helm_values(minio: MinioServer, *, runner_namespace: str, watch_namespaces: list[str],
                images: NodeImages | None = None) -> dict[str, Any]:
    """The chart values for this machine: MinIO on loopback, the weights claim, no replicas.
    With ``images`` (a real node): one operator replica from those images, MinIO through the
    node's relay, runner requests a two-core machine can hold."""
    values = _test_kubelet_values(minio, runner_namespace, watch_namespaces)
    if images is None:
        return values
    from tests.harness.realnode import MINIO_PORT, NODE_IP

    values["replicaCount"] = 1
    values["image"] = _image_values(images.operator)
    values["runner"]["image"] = _image_values(images.runner)
    values["runner"]["resources"] = {"cpuRequest": "100m", "memoryRequest": "1Gi",
                                     "memoryLimit": "6Gi"}
    if images.weights:
        values["runner"]["weights"]["image"] = {"reference": images.weights,
                                                "pullPolicy": "Never"}
    values["s3"]["endpoint"] = f"{NODE_IP}:{MINIO_PORT}"
    return values


def _test_kubelet_values(minio: MinioServer, runner_namespace: str,
                         watch_namespaces: list[str]) -> dict[str, Any]:
    return {
        "replicaCount": 0,
        "operator": {"watchNamespaces": watch_namespaces},
        "runner": {
            "namespaces": [runner_namespace],
            "weights": {"pvc": WEIGHTS_CLAIM},
        },
        "s3": {
            "endpoint": minio.endpoint,
            "secure": False,
            "defaultBucket": OUTPUT_BUCKET,
            "credentials": {"create": True, "secretName": S3_SECRET,
                            "accessKey": minio.access_key, "secretKey": minio.secret_key},
        },
        "settings": {"inference": DEMO_INFERENCE},
        # The example's inputs sit in a bucket every namespace may read; the page's uploads
        # and outputs go under the namespace's object base.
        "storage": {"sharedInputPrefixes": [f"s3://{INPUT_BUCKET}/"],
                    "namespaces": {runner_namespace: {
                        "objectBase": f"s3://{OUTPUT_BUCKET}/{runner_namespace}/objects/"}}},
        # The web page (tests/harness/demo_page.py runs the gateway as a local process):
        # uploads signed for MinIO, and a link to play the video.
        "gateway": {"enabled": True, "replicas": 0, "namespaces": [runner_namespace],
                    "uploads": {"enabled": True}},
        "outputs": {"presignExpirySeconds": 3600},
    }


def install_chart(kubeconfig: Path, values: dict[str, Any], workdir: Path,
                  release_namespace: str = RELEASE_NAMESPACE) -> None:
    values_file = workdir / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    command = [binary("helm"), "--kubeconfig", str(kubeconfig), "upgrade", "--install",
               RELEASE, str(CHART), "--namespace", release_namespace, "--create-namespace",
               "--values", str(values_file), "--wait", "--timeout", "2m"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"helm install failed:\n{done.stderr}")


def service_account_kubeconfig(api: client.ApiClient, admin_kubeconfig: Path, namespace: str,
                               service_account: str, target: Path,
                               expiration_seconds: int = 3600) -> Path:
    """A kubeconfig that acts as the ServiceAccount (a TokenRequest token, as a pod gets)."""
    token = client.CoreV1Api(api).create_namespaced_service_account_token(
        service_account, namespace,
        {"spec": {"expirationSeconds": expiration_seconds}}).status.token
    config = yaml.safe_load(admin_kubeconfig.read_text())
    cluster = config["clusters"][0]
    target.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [{"name": service_account, "context": {
            "cluster": cluster["name"], "user": service_account}}],
        "current-context": service_account,
    }))
    target.chmod(0o600)
    return target


def chart_settings(api: client.ApiClient, namespace: str, target: Path) -> Path:
    """The operator settings file exactly as the chart rendered it into its ConfigMap."""
    config_map = client.CoreV1Api(api).read_namespaced_config_map(SETTINGS_CONFIGMAP, namespace)
    target.write_text(config_map.data["settings.yaml"])
    return target


def bind_weights_claim(api: client.ApiClient, namespace: str,
                       host_path: Path | None = None) -> None:
    """The weights PVC the chart's settings name, bound to a PV (the test kubelet maps it;
    a real kubelet mounts ``host_path``)."""
    core = client.CoreV1Api(api)
    volume = f"{namespace}-{WEIGHTS_CLAIM}"
    path = str(host_path) if host_path else f"/nonexistent/{volume}"
    core.create_persistent_volume({
        "metadata": {"name": volume},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany"],
                 "hostPath": {"path": path}, "storageClassName": "",
                 "persistentVolumeReclaimPolicy": "Retain",
                 "claimRef": {"namespace": namespace, "name": WEIGHTS_CLAIM}}})
    core.create_namespaced_persistent_volume_claim(namespace, {
        "metadata": {"name": WEIGHTS_CLAIM},
        "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": volume,
                 "resources": {"requests": {"storage": "1Gi"}}}})


def upload_inputs(minio: MinioServer, inputs: DemoInputs) -> None:
    store = minio.client()
    for bucket in (INPUT_BUCKET, OUTPUT_BUCKET):
        if not store.bucket_exists(bucket):
            store.make_bucket(bucket)
    for path in (inputs.reference_image, inputs.dance_video, inputs.song, inputs.logo):
        data = path.read_bytes()
        store.put_object(INPUT_BUCKET, f"inputs/{path.name}", io.BytesIO(data), len(data))


def start_operator(operator_kubeconfig: Path, settings_file: Path, minio: MinioServer,
                   watch_namespaces: list[str], log: Path) -> OperatorProcess:
    """``musepose-operator run`` as the chart's Deployment would run it, as a local process."""
    settings = {"MUSEPOSE_SETTINGS_FILE": str(settings_file),
                "MUSEPOSE_S3_ACCESS_KEY": minio.access_key,
                "MUSEPOSE_S3_SECRET_KEY": minio.secret_key}
    return operator_process(operator_kubeconfig, watch_namespaces, settings, log).start()


class _ChartOperator:
    """The operator as the chart's Deployment runs it (a real node): its log, for errors."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        self.kubeconfig, self.namespace = kubeconfig, namespace

    def output(self) -> str:
        return _kubectl(self.kubeconfig, "-n", self.namespace, "logs", "--tail=200",
                        "deployment/musepose-operator", check=False).stdout

    def stop(self) -> None:
        return None


def run_demo(env: Environment, minio: MinioServer, weights: Path, workdir: Path,
             out_dir: Path, *, namespace: str = "default",
             release_namespace: str = RELEASE_NAMESPACE, watch_namespaces: list[str] | None = None,
             images: NodeImages | None = None, say: Any = print) -> DemoResult:
    """Everything after the cluster is up. ``env`` must have its test kubelet running, or
    its real node with ``images`` loaded (then the chart's Deployment runs the operator)."""
    api = env.api_client()
    watch = list(watch_namespaces or [])
    workdir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    env.claim_dirs[WEIGHTS_CLAIM] = weights

    say(f"installing the chart ({CHART.relative_to(ROOT)}) with helm")
    install_chart(env.kubeconfig, helm_values(minio, runner_namespace=namespace,
                                              watch_namespaces=watch, images=images),
                  workdir, release_namespace)
    bind_weights_claim(api, namespace, weights if images else None)
    say("uploading the example inputs to MinIO")
    upload_inputs(minio, write_demo_inputs(workdir / "inputs"))

    operator: OperatorProcess | _ChartOperator
    if images is None:
        say("starting musepose-operator with the chart's ServiceAccount and settings")
        operator = start_operator(
            service_account_kubeconfig(api, env.kubeconfig, release_namespace, OPERATOR_SA,
                                       workdir / "operator.kubeconfig"),
            chart_settings(api, release_namespace, workdir / "settings.yaml"),
            minio, watch, workdir / "operator.log")
    else:
        say("the chart's Deployment runs musepose-operator on the real node")
        operator = _ChartOperator(env.kubeconfig, release_namespace)
    try:
        say(f"kubectl apply -f {EXAMPLE.relative_to(ROOT)}")
        _kubectl(env.kubeconfig, "-n", namespace, "apply", "-f", str(EXAMPLE))
        say("kubectl wait --for=condition=Finished anim/first-dance (the runner is working)")
        waited = _kubectl(env.kubeconfig, "-n", namespace, "wait", "--for=condition=Finished",
                          "anim/first-dance", "--timeout=900s", check=False)
        if waited.returncode != 0:
            raise RuntimeError(f"the Animation did not finish: {waited.stderr}\n"
                               f"operator log:\n{operator.output()}")
        table = _kubectl(env.kubeconfig, "-n", namespace, "get", "anim").stdout
    finally:
        operator.stop()
    animation = json.loads(_kubectl(env.kubeconfig, "-n", namespace, "get", "anim/first-dance",
                                    "-o", "json").stdout)
    status = animation.get("status") or {}
    if status.get("phase") != "Succeeded":
        raise RuntimeError(f"the Animation failed: {status.get('reason')}: "
                           f"{status.get('message')}")
    video = out_dir / "first-dance.mp4"
    poster = out_dir / "first-dance.png"
    store = minio.client()
    bucket, _, key = status["output"]["uri"][len("s3://"):].partition("/")
    store.fget_object(bucket, key, str(video))
    poster_uri = status["output"].get("posterUri")
    if poster_uri:
        p_bucket, _, p_key = poster_uri[len("s3://"):].partition("/")
        store.fget_object(p_bucket, p_key, str(poster))
    return DemoResult(animation, video, poster if poster_uri else None, table)


def _serve_page(env: Environment, workdir: Path, out_dir: Path, real: bool) -> Any:
    """``--keep``: the web page on loopback, with the way to sign in (None on a real node,
    where the chart's gateway has no replica)."""
    if real:
        return None
    from tests.harness.demo_page import serve_page

    assert env.minio is not None
    page = serve_page(env, env.minio, workdir, out_dir, namespace="default",
                      release_namespace=RELEASE_NAMESPACE, watch_namespaces=[])
    print(f"the web page: {page.url} (sign in with the token in {page.token_file} and "
          f"namespace {page.namespace})")
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "demo-output",
                        help="where the video goes (default %(default)s)")
    parser.add_argument("--keep", action="store_true",
                        help="leave the cluster, the operator and the web page running afterwards "
                        "(make demo KEEP=1; stop it with Enter)")
    args = parser.parse_args(argv)

    from musepose_runner.cli import main as runner_main
    from tests.harness import realnode
    from tests.harness.environment import start_environment

    workdir = Path(tempfile.mkdtemp(prefix="musepose-demo-"))
    workdir.chmod(0o755)  # a real node's runner (uid 1000) mounts the weights from here
    weights = workdir / "weights"
    print("writing tiny random-initialised demo weights (not the real MusePose weights)")
    if runner_main(["demo-weights", str(weights)]) != 0:
        return 1
    real = realnode.enabled()
    print("starting the local control plane, MinIO and "
          + ("a real node (containerd, kubelet)" if real else "two fake GPU nodes"))
    env = start_environment(workdir)
    page = None
    try:
        images = None
        if real:
            from tests.harness.node_images import load_project_images

            node = env.start_real_node()
            print("building (or reusing) the operator and runner images, loading them")
            images = load_project_images(node)
        else:
            env.start_kubelet()
        assert env.minio is not None
        eventually("the nodes", lambda: len(_kubectl(
            env.kubeconfig, "get", "nodes", "-o", "name").stdout.split()) >= (1 if real else 2),
                   60)
        print(_kubectl(env.kubeconfig, "get", "nodes").stdout)
        result = run_demo(env, env.minio, weights, workdir, args.out, images=images)
        print(result.table)
        output = result.animation["status"]["output"]
        print(f"video: {result.video} ({output['resolution']}, {output['frames']} frames, "
              f"{output['durationSeconds']} s, audio: {output['hasAudio']}; made with random "
              "demo weights, so expect coloured noise shaped by the dance, not a person)")
        if result.poster:
            print(f"poster: {result.poster}")
        if real:
            print(_kubectl(env.kubeconfig, "get", "pods", "-A", "-o", "custom-columns="
                           "NAMESPACE:.metadata.namespace,POD:.metadata.name,"
                           "PHASE:.status.phase,CONTAINER:.status.containerStatuses[0]."
                           "containerID").stdout)
        if args.keep:
            page = _serve_page(env, workdir, args.out, real)
            print(f"export KUBECONFIG={env.kubeconfig}")
            input("the cluster is up; press Enter to stop it ")
    finally:
        if page:
            page.stop()
        env.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
