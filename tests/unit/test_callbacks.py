"""Callbacks, the pure parts: which events an Animation owes and in what order, the original
worker's bodies byte for byte, the Standard Webhooks signature, the retry records, and
which URLs and addresses a callback may go to."""

from __future__ import annotations

import copy
import ipaddress
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from musepose_operator.admission.callback_targets import address_allowed, form_problem, target
from musepose_operator.base.sealing import SealKeys
from musepose_operator.callbacks import plan
from musepose_operator.callbacks.signing import BadSigningSecret, signed_headers, signing_key
from musepose_operator.gateway.records import gateway_animation
from musepose_runner.contract.location_rules import parse_allow_list

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
POLICY = plan.RetryPolicy(max_attempts=3, first_retry_seconds=5, max_retry_seconds=600)
PAYLOAD = {"id": "Take 1", "audio_file": "song.wav", "output_path": "renders/take-1.mp4",
           "reference_image": "dancer.png"}
SECRET = {"INFERENCE_URL": "https://hooks.example.com/inference", "INFERENCE_API_KEY": "ik",
          "UPLOAD_URL": "https://hooks.example.com/upload", "UPLOAD_API_KEY": "uk",
          "exception_url": "https://hooks.example.com/exception", "exception_api_key": "ek"}


def _obj(phase: str, *, webhook: str | None = None, **status: Any) -> dict[str, Any]:
    obj = copy.deepcopy(gateway_animation(PAYLOAD, "studio", "alice", SealKeys.generate(),
                                          object_base="s3://media/studio/"))
    obj["metadata"] |= {"uid": "u-1", "generation": 2, "creationTimestamp": "2030-01-01T11:00:00Z"}
    if webhook:
        obj["metadata"]["annotations"][plan.WEBHOOK_ANNOTATION] = webhook
    obj["status"] = {"observedGeneration": 2, "phase": phase, **status}
    return obj


def _owed(obj: dict[str, Any], callbacks: bool = True) -> list[str]:
    return plan.owed(obj, namespace_callbacks=callbacks, policy=POLICY, now=NOW)


STARTED = "2030-01-01T11:59:00Z"
ENDED = "2030-01-01T11:59:30Z"


def test_events_are_owed_in_the_originals_order_once_each() -> None:
    assert _owed(_obj("Pending")) == []
    assert _owed(_obj("Running", startTime=STARTED)) == ["start"]
    done = _obj("Succeeded", webhook="https://hooks.example.com/rp", startTime=STARTED,
                completionTime=ENDED)
    assert _owed(done) == ["start", "uploaded", "webhook"]
    failed = _obj("Failed", startTime=STARTED, completionTime=ENDED, message="no audio")
    assert _owed(failed) == ["start", "failed"]
    # Rejected before it ever started: only the failure, as the original (start came after
    # the downloads).
    assert _owed(_obj("Failed", completionTime=ENDED)) == ["failed"]
    # A namespace without the original's callbacks: only the request's own webhook.
    assert _owed(done, callbacks=False) == ["webhook"]
    # Delivered or given up: no longer owed; Pending still is.
    done["status"]["callbacks"] = [
        {"event": "start", "id": "u-1.2.start", "state": "Delivered"},
        {"event": "uploaded", "id": "u-1.2.uploaded", "state": "Failed"},
        {"event": "webhook", "id": "u-1.2.webhook", "state": "Pending"}]
    assert _owed(done) == ["webhook"]
    # A record of another generation does not count for this one.
    done["status"]["callbacks"][0]["id"] = "u-1.1.start"
    assert _owed(done) == ["start", "webhook"]


def test_nothing_is_owed_for_a_status_of_an_older_spec_or_an_old_event() -> None:
    stale = _obj("Succeeded", startTime=STARTED, completionTime=ENDED)
    stale["metadata"]["generation"] = 3
    assert _owed(stale) == []
    old = _obj("Succeeded", startTime="2029-12-30T00:00:00Z",
               completionTime="2029-12-30T00:01:00Z")
    assert _owed(old) == []  # older than max_event_age_seconds (a day)


def test_bodies_are_the_original_workers_byte_for_byte() -> None:
    obj = _obj("Failed", startTime=STARTED, completionTime=ENDED,
               message="referenceImage s3://media/studio/dancer.png: not found")
    start = plan.delivery(obj, "start", SECRET)
    assert isinstance(start, plan.Delivery)
    assert (start.url, start.content_type) == ("https://hooks.example.com/inference",
                                               "application/json")
    # json.dumps' default separators, as requests.post(json=...) sends them.
    assert start.body == b'{"apiKey": "ik", "path": "renders/take-1.mp4", "step": "handler"}'
    uploaded = plan.delivery(obj, "uploaded", SECRET)
    assert isinstance(uploaded, plan.Delivery)
    assert uploaded.body == b'{"apiKey": "uk", "path": "renders/take-1.mp4"}'
    failed = plan.delivery(obj, "failed", SECRET)
    assert isinstance(failed, plan.Delivery)
    assert failed.content_type == "application/x-www-form-urlencoded"
    assert failed.body == (b"apiKey=ek&path=renders%2Ftake-1.mp4&id=Take+1&reason=referenceImage"
                           b"+s3%3A%2F%2Fmedia%2Fstudio%2Fdancer.png%3A+not+found")
    assert failed.id == "u-1.2.failed" != start.id
    assert plan.delivery(obj, "start", {}) == "the Secret musepose-callbacks has no INFERENCE_URL"


def test_the_webhook_carries_runpods_final_status_without_the_download_link() -> None:
    obj = _obj("Succeeded", webhook="https://hooks.example.com/rp", startTime=STARTED,
               completionTime=ENDED, output={"uri": "s3://media/studio/renders/take-1.mp4",
                                             "sha256": "ab" * 32,
                                             "presignedUrl": "https://minio/x?sig"})
    sent = plan.delivery(obj, "webhook", {})
    assert isinstance(sent, plan.Delivery) and sent.url == "https://hooks.example.com/rp"
    body = json.loads(sent.body)
    assert body["id"] == obj["metadata"]["name"] and body["status"] == "COMPLETED"
    assert body["output"]["path"] == "renders/take-1.mp4"
    assert body["output"]["sha256"] == "ab" * 32
    assert "presigned_url" not in body["output"]  # expires; /status gives a fresh one


def test_the_signature_is_standard_webhooks() -> None:
    # The Standard Webhooks specification's own example.
    key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    headers = signed_headers(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                             b'{"test": 2432232314}')
    assert headers == {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
                       "webhook-timestamp": "1614265330",
                       "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}


@pytest.mark.parametrize("secret", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not*base64",
                                    "whsec_c2hvcnQ=", ""])
def test_a_signing_secret_must_be_whsec_and_a_long_enough_key(secret: str) -> None:
    with pytest.raises(BadSigningSecret, match="WEBHOOK_SECRET"):
        signing_key(secret)


def test_a_retry_backs_off_and_gives_up_a_4xx_is_final() -> None:
    obj = _obj("Succeeded", startTime=STARTED, completionTime=ENDED)
    five = plan.Outcome(False, True, "HTTP 500", 500)
    records = plan.recorded(obj, "uploaded", five, POLICY, NOW)
    assert records == [{"event": "uploaded", "id": "u-1.2.uploaded", "attempts": 1,
                        "lastAttemptTime": "2030-01-01T12:00:00Z", "message": "HTTP 500",
                        "responseStatus": 500, "state": "Pending",
                        "nextAttemptTime": "2030-01-01T12:00:05.000Z"}]
    assert plan.next_attempt({**obj, "status": {**obj["status"], "callbacks": records}},
                             "uploaded", NOW) == 5
    obj["status"]["callbacks"] = records
    later = NOW + timedelta(seconds=5)
    records = plan.recorded(obj, "uploaded", five, POLICY, later)
    assert records[0]["attempts"] == 2
    assert records[0]["nextAttemptTime"] == "2030-01-01T12:00:15.000Z"  # 10 s: doubled
    obj["status"]["callbacks"] = records
    records = plan.recorded(obj, "uploaded", five, POLICY, later)
    assert records[0]["state"] == "Failed" and records[0]["attempts"] == 3
    assert records[0]["message"] == "gave up after 3 attempts: HTTP 500"
    obj["status"]["callbacks"] = records
    refused = plan.recorded(obj, "start", plan.Outcome(False, False, "HTTP 404", 404),
                            POLICY, NOW)
    assert [(r["event"], r["state"]) for r in refused] == [("start", "Failed"),
                                                           ("uploaded", "Failed")]
    delivered = plan.recorded(obj, "start", plan.Outcome(True, False, "delivered", 204),
                              POLICY, NOW)
    assert delivered[0]["state"] == "Delivered" and "nextAttemptTime" not in delivered[0]


ALLOWED = parse_allow_list(["hooks.example.com", "api.example.org:8443"])


@pytest.mark.parametrize("url", ["https://hooks.example.com/x", "https://api.example.org:8443/cb"])
def test_an_allow_listed_https_url_is_a_target(url: str) -> None:
    assert not isinstance(target(url, ALLOWED), str)


@pytest.mark.parametrize(("url", "why"), [
    ("http://hooks.example.com/x", "https://"),
    ("https://other.example.com/x", "allow-list"),
    ("https://api.example.org/cb", "allow-list"),  # port 443 is not the listed 8443
    ("https://user@hooks.example.com/x", "user info"),
    ("https://169.254.169.254/latest", "public DNS host"),
    ("https://0xa9fea9fe/", "public DNS host"),
    ("https://localhost:8443/x", "public DNS host"),
    ("https://kubernetes.default.svc/api", "public DNS host"),
    ("https://metadata/computeMetadata", "public DNS host"),
    ("https://[::1]/x", "host"),
    ("https://hooks.example.com/a b", "spaces"),
])
def test_a_url_outside_the_rules_is_refused_naming_why(url: str, why: str) -> None:
    allowed = ALLOWED | parse_allow_list(["localhost:8443", "169.254.169.254", "metadata"])
    problem = target(url, allowed)
    assert isinstance(problem, str) and why in problem, problem


def test_loopback_for_tests_admits_loopback_only() -> None:
    allowed = parse_allow_list(["127.0.0.1:8443", "localhost:8443", "10.0.0.1:8443"])
    assert not isinstance(target("https://127.0.0.1:8443/cb", allowed,
                                 loopback_for_tests=True), str)
    assert not isinstance(target("https://localhost:8443/cb", allowed,
                                 loopback_for_tests=True), str)
    assert isinstance(target("https://10.0.0.1:8443/cb", allowed, loopback_for_tests=True), str)
    assert form_problem("https://127.0.0.1:8443/cb") is not None
    assert form_problem("https://127.0.0.1:8443/cb", loopback_for_tests=True) is None


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1",
                                     "::ffff:10.0.0.1", "fd00::1", "100.64.0.1", "0.0.0.0"])
def test_a_non_public_address_is_never_connected_to(address: str) -> None:
    assert address_allowed(ipaddress.ip_address(address)) is not None


def test_loopback_for_tests_opens_127_0_0_0_8_and_nothing_else() -> None:
    assert address_allowed(ipaddress.ip_address("127.0.0.1"), loopback_for_tests=True) is None
    assert address_allowed(ipaddress.ip_address("93.184.216.34")) is None
    for other in ("10.1.2.3", "169.254.169.254", "::1"):
        assert address_allowed(ipaddress.ip_address(other), loopback_for_tests=True)


def test_the_docs_signature_check_accepts_a_callback_and_refuses_a_changed_body() -> None:
    import re
    import time
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "gateway.md").read_text()
    section = docs[docs.index("### Callbacks"):]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None
    example: dict[str, Any] = {}
    exec(found.group(1), example)  # the receiver's check as the docs print it
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    headers = signed_headers(signing_key(secret), "u-1.2.uploaded", int(time.time()),
                             b'{"apiKey": "uk", "path": "a.mp4"}')
    assert example["verified"](headers, b'{"apiKey": "uk", "path": "a.mp4"}', secret)
    assert not example["verified"](headers, b'{"apiKey": "uk", "path": "b.mp4"}', secret)
    stale = {**headers, "webhook-timestamp": str(int(time.time()) - 3600)}
    assert not example["verified"](stale, b'{"apiKey": "uk", "path": "a.mp4"}', secret)
