"""The project's images for a real node: built with ``images/build.sh`` (cached by content in
buildah's store), the weights image from ``Dockerfile.weights``, all loaded into the node's
containerd once per content key."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.harness.demo import NodeImages
from tests.harness.realnode import RealNode, buildah, buildah_env

ROOT = Path(__file__).resolve().parents[2]


def build_project_image(name: str) -> str:
    """``images/build.sh operator|runner`` with buildah; the image's name (content-keyed)."""
    env = {**buildah_env(), "IMAGE_BUILDER": "buildah"}
    done = subprocess.run(["bash", str(ROOT / "images" / "build.sh"), name], env=env,
                          stdout=subprocess.PIPE, text=True, check=True, timeout=5400)
    return done.stdout.strip().splitlines()[-1]


def build_weights_image(weights: Path) -> str:
    """``Dockerfile.weights`` over ``weights`` (with a lock of its files written for it),
    tagged by the weights' content."""
    from musepose_runner.weights import lock as weights_lock
    from musepose_runner.weights.digest import weights_digest

    name = f"localhost/musepose-weights:{weights_digest(weights)[:12]}"
    if subprocess.run([*buildah(), "inspect", "--type", "image", name],
                      capture_output=True, env=buildah_env()).returncode == 0:
        return name
    with tempfile.TemporaryDirectory(prefix="musepose-weights-image-") as context:
        copy = Path(context) / "weights"
        shutil.copytree(weights, copy)
        files = sorted(p for p in copy.rglob("*") if p.is_file())
        lock = {str(p.relative_to(copy)): weights_lock.Entry(
            "demo-weights:random", None, p.stat().st_size, weights_lock.sha256_of(p))
            for p in files if p.name != "weights.lock.json"}
        (copy / "weights.lock.json").write_text(weights_lock.dumps(lock))
        subprocess.run([*buildah(), "bud", "--quiet", "--isolation", "chroot", "-f",
                        str(ROOT / "Dockerfile.weights"), "-t", name, context],
                       capture_output=True, check=True, timeout=600, env=buildah_env())
    return name


def load_project_images(node: RealNode, weights: Path | None = None, *,
                        weights_image: bool = False) -> NodeImages:
    """Build (or reuse) the operator and runner images, and the weights image when asked,
    and load them into ``node``."""
    operator, runner = build_project_image("operator"), build_project_image("runner")
    names = [operator, runner]
    weights_name = None
    if weights_image:
        assert weights is not None, "the weights image needs the weights directory"
        weights_name = build_weights_image(weights)
        names.append(weights_name)
    for name in names:
        node.load_image(name)
    return NodeImages(operator, runner, weights_name)
