"""The claim/start step is all or nothing (issue 30, items 2 and 3): whatever step after the
GPU claim fails (the run's key Secret, the headless Service, the Job), the GPUs are free
again at once and the status says why; an object found by the run's name but owned by
someone else is never adopted. The Kubernetes calls are a stand-in at the ``Kube``
boundary that fails where told (the real API server's answers are in
tests/integration/test_start_failures.py)."""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

import pytest
from kubernetes import client

from musepose_operator.api import AnimationSpec, Phase
from musepose_operator.base.types import Obj
from musepose_operator.planning.run_key import KEY_FILE, SECRET_KEY
from musepose_operator.reconcile.controller import Controller
from musepose_operator.reconcile.decide import decide
from musepose_operator.settings import ParallelSettings
from tests.unit.test_planning import animation, make_settings

STEPS = ("create_secret", "create_service", "create_job")


class StepKube:
    """Creates by name like the API server; ``fail`` raises at that step, ``foreign``
    makes that step find an object of another owner."""

    def __init__(self, fail: str | None = None, error: Exception | None = None,
                 foreign: str | None = None) -> None:
        self.fail, self.error, self.foreign = fail, error, foreign
        self.made: list[Obj] = []

    def _step(self, step: str, obj: Obj) -> Obj:
        if step == self.fail:
            raise self.error or client.ApiException(status=500, reason="Internal Error")
        if step == self.foreign:
            return {**obj, "metadata": {**obj["metadata"], "ownerReferences": []}}
        self.made.append(obj)
        return obj

    async def create_secret(self, secret: Obj) -> Obj:
        # The API server names a generateName object: the prefix and five characters.
        meta = secret["metadata"]
        assert "name" not in meta
        return self._step("create_secret", {**secret, "metadata": {
            **meta, "name": meta["generateName"] + "x7k2q"}})

    async def create_service(self, service: Obj) -> Obj:
        return self._step("create_service", service)

    async def create_job(self, job: Obj) -> Obj | None:
        made = self._step("create_job", job)
        if self.foreign == "create_job":  # 409: the operator reads the one there
            self.taken = made
            return None
        return made

    async def read_job(self, namespace: str, name: str) -> Obj | None:
        return getattr(self, "taken", None)


def _start(kube: StepKube, name: str = "dance") -> tuple[Controller, Any]:
    settings = make_settings(max_concurrent=2, parallel=ParallelSettings(gpus_per_pod=1))
    body = animation(name=name, parallelism=2)
    spec = AnimationSpec.model_validate(body["spec"])

    async def run() -> tuple[Controller, Any]:
        controller = Controller(kube, settings)  # type: ignore[arg-type]
        written: list[Any] = []

        async def write(body: Obj, status: Obj, generation: int, seen: Any, *_: Any,
                        **__: Any) -> None:
            written.append(seen)  # the status the pass writes
        controller.status.write = write  # type: ignore[method-assign]
        inputs = await controller._gather_run(body, spec)
        await controller._apply(inputs, decide(inputs))
        controller.stop()
        return controller, written[-1]
    return asyncio.run(run())


@pytest.mark.parametrize("step", STEPS)
def test_a_failure_at_any_step_after_the_claim_frees_the_gpus(step: str) -> None:
    controller, seen = _start(StepKube(fail=step))
    assert controller.slots.gpus_in_use == 0 and not controller.slots.waiting.ordered()
    assert seen.phase == Phase.PENDING and seen.reason == "StartFailed"
    assert "GPUs are freed" in seen.message


@pytest.mark.parametrize("step", STEPS)
def test_a_refused_object_fails_the_run_with_the_api_servers_words(step: str) -> None:
    refusal = client.ApiException(status=422, reason="Unprocessable Entity")
    refusal.body = '{"message": "Service \\"x.y\\" is invalid: metadata.name"}'
    controller, seen = _start(StepKube(fail=step, error=refusal))
    assert controller.slots.gpus_in_use == 0
    assert (seen.phase, seen.reason) == (Phase.FAILED, "StartRefused")
    assert 'Service "x.y" is invalid' in seen.message


# The key Secret has a generated name, so nobody can have made it first.
@pytest.mark.parametrize(("step", "kind"), [("create_service", "Service"),
                                            ("create_job", "Job")])
def test_an_object_of_another_owner_is_not_adopted(step: str, kind: str) -> None:
    kube = StepKube(foreign=step)
    controller, seen = _start(kube)
    assert controller.slots.gpus_in_use == 0
    assert (seen.phase, seen.reason) == (Phase.FAILED, "NameTaken")
    assert seen.message.startswith(f"{kind} team-a/") and "not owned by this" in seen.message
    made_after = {o["kind"] for o in kube.made} & {"Service": {"Job"}}.get(kind, set())
    assert not made_after  # nothing made after the refusal


def test_a_dotted_name_gets_valid_names_and_every_pod_the_run_key() -> None:
    kube = StepKube()
    controller, seen = _start(kube, name="x.y")
    assert seen.reason == "JobCreated" and controller.slots.gpus_in_use == 2
    secret, service, job = kube.made
    dns1035 = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
    assert re.match(dns1035, service["metadata"]["name"]) and "." not in job["metadata"]["name"]
    pod = job["spec"]["template"]["spec"]
    assert pod["subdomain"] == service["metadata"]["name"]
    assert secret["metadata"]["generateName"] == job["metadata"]["name"] + "-run-key-"
    assert secret["metadata"]["name"] == job["metadata"]["name"] + "-run-key-x7k2q"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == job["metadata"][
        "ownerReferences"][0]["uid"]
    assert len(base64.b64decode(secret["data"][SECRET_KEY])) == 32
    volume = next(v for v in pod["volumes"] if v.get("secret"))
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert volume["secret"]["items"] == [{"key": "key", "path": "key"}]
    container = pod["containers"][0]
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    assert mount["readOnly"] and f"{mount['mountPath']}/key" == "/var/run/musepose/run/key"
    assert {"name": "MUSEPOSE_RUN_KEY_FILE", "value": KEY_FILE} in container["env"]
