"""The chart's isolation pieces, rendered by the real helm and validated offline: the
NetworkPolicies, the runner's admission policy, and the storage scope reaching the settings."""

from __future__ import annotations

from musepose_operator.base.tenancy import credentials_secret, namespace_scope
from musepose_operator.base.types import Obj
from musepose_operator.settings import Settings
from tests.chart_render import find, of_kind, render, settings_of, validate_schema

TEAMS = {"operator": {"watchNamespaces": ["team-a", "team-b"]}}
PRIVATE = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
           "100.64.0.0/10"}


def _ports(rule: Obj) -> set[tuple[str, int]]:
    return {(p["protocol"], p["port"]) for p in rule.get("ports") or []}


def test_runner_pods_get_no_ingress_and_egress_only_to_dns_s3_and_the_api() -> None:
    docs = render({**TEAMS, "networkPolicy": {"s3CIDRs": ["10.0.5.0/24"],
                                              "apiServerCIDRs": ["10.96.0.1/32"]}})
    for ns in ("team-a", "team-b"):
        policy = find(docs, "NetworkPolicy", "musepose-operator-runner", ns)
        validate_schema(policy)
        spec = policy["spec"]
        assert spec["podSelector"] == {"matchLabels": {
            "app.kubernetes.io/name": "musepose-runner",
            "app.kubernetes.io/managed-by": "musepose-operator"}}
        assert spec["policyTypes"] == ["Ingress", "Egress"] and spec["ingress"] == []
        dns, s3, api = spec["egress"]  # no https rule: no https host is allowed
        assert _ports(dns) == {("UDP", 53), ("TCP", 53)}
        assert s3 == {"to": [{"ipBlock": {"cidr": "10.0.5.0/24"}}],
                      "ports": [{"protocol": "TCP", "port": 443},
                                {"protocol": "TCP", "port": 9000}]}
        assert api["to"] == [{"ipBlock": {"cidr": "10.96.0.1/32"}}]


def test_allowed_https_hosts_open_port_443_to_public_addresses_only() -> None:
    docs = render({**TEAMS, "inputs": {"allowedHttpsHosts": ["cdn.example.com"]}})
    egress = find(docs, "NetworkPolicy", "musepose-operator-runner", "team-a")["spec"]["egress"]
    https = egress[-1]
    assert _ports(https) == {("TCP", 443)}
    v4, v6 = (peer["ipBlock"] for peer in https["to"])
    assert v4["cidr"] == "0.0.0.0/0" and set(v4["except"]) == PRIVATE
    assert v6["cidr"] == "::/0" and {"64:ff9b::/96", "2002::/16", "fe80::/10"} <= set(
        v6["except"])
    # The operator sends callbacks to the same hosts, through the same rule (issue 29).
    operator = find(docs, "NetworkPolicy", "musepose-operator", "musepose-system")
    assert operator["spec"]["egress"][-1] == https
    pinned = render({**TEAMS, "networkPolicy": {"httpsCIDRs": ["203.0.113.0/24"]}})
    rule = find(pinned, "NetworkPolicy", "musepose-operator-runner", "team-a")["spec"]["egress"]
    assert rule[-1]["to"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]


def test_the_operator_takes_ingress_only_on_its_metrics_port() -> None:
    docs = render({})
    policy = find(docs, "NetworkPolicy", "musepose-operator", "musepose-system")
    validate_schema(policy)
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8000}]}]
    egress = policy["spec"]["egress"]
    assert [_ports(rule) for rule in egress] == [
        {("UDP", 53), ("TCP", 53)}, {("TCP", 443), ("TCP", 6443)}, {("TCP", 443), ("TCP", 9000)}]
    deployment = find(docs, "Deployment", "musepose-operator", "musepose-system")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()


def test_network_policies_can_be_left_out() -> None:
    assert of_kind(render({**TEAMS, "networkPolicy": {"enabled": False}}), "NetworkPolicy") == []


def test_the_runner_may_patch_only_its_own_pods_progress_annotation() -> None:
    docs = render(TEAMS)
    policy = find(docs, "ValidatingAdmissionPolicy", "musepose-operator-runner-own-pod")
    binding = find(docs, "ValidatingAdmissionPolicyBinding", "musepose-operator-runner-own-pod")
    validate_schema(policy)
    validate_schema(binding)
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"]["resourceRules"] == [{
        "apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"],
        "resources": ["pods"]}]
    assert spec["matchConditions"][0]["expression"] == (
        'request.userInfo.username in ["system:serviceaccount:team-a:musepose-runner",'
        '"system:serviceaccount:team-b:musepose-runner"]')
    rules = " ".join(v["expression"] for v in spec["validations"])
    assert "authentication.kubernetes.io/pod-name" in rules
    assert "authentication.kubernetes.io/pod-uid" in rules
    assert "'musepose.io/progress'" in rules
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}]


def _policies(docs: list[Obj]) -> set[str]:
    return {d["metadata"]["name"].removeprefix("musepose-operator-")
            for d in of_kind(docs, "ValidatingAdmissionPolicyBinding")}


def test_the_admission_policies_are_optional() -> None:
    assert _policies(render(TEAMS)) == {"runner-own-pod", "gang-pods"}
    off = render({**TEAMS, "runner": {"serviceAccount": {"restrictToOwnPod": False}}})
    assert _policies(off) == {"gang-pods"}
    no_account = render({**TEAMS, "runner": {"serviceAccount": {"name": ""}}})
    assert _policies(no_account) == {"gang-pods"}
    none = render({**TEAMS, "runner": {"serviceAccount": {"restrictToOwnPod": False},
                                       "gangPods": {"restrict": False}}})
    assert of_kind(none, "ValidatingAdmissionPolicy") == []


def test_the_gang_policy_binds_the_runner_namespaces_and_names_the_operator() -> None:
    docs = render(TEAMS)
    binding = next(d for d in of_kind(docs, "ValidatingAdmissionPolicyBinding")
                   if d["metadata"]["name"].endswith("gang-pods"))
    [selector] = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert sorted(selector["values"]) == ["team-a", "team-b"]
    policy = next(d for d in of_kind(docs, "ValidatingAdmissionPolicy")
                  if d["metadata"]["name"].endswith("gang-pods"))
    rules = " ".join(v["expression"] for v in policy["spec"]["validations"])
    assert "system:serviceaccount:musepose-system:musepose-operator" in rules
    assert "system:kube-controller-manager" in rules


def test_storage_values_reach_the_operators_scope() -> None:
    docs = render({**TEAMS, "s3": {"defaultBucket": "renders"},
                   "outputs": {"cleanupGiveUpSeconds": 60},
                   "storage": {"sharedInputPrefixes": ["s3://library/"],
                               "dataOutputRoot": "/exports",
                               "namespaces": {"team-a": {
                                   "outputPrefixes": ["s3://team-a-bucket/"],
                                   "credentialsSecret": "team-a-s3"}}}})
    settings = Settings.model_validate(settings_of(docs))
    assert settings.output_cleanup_give_up_seconds == 60
    scope = namespace_scope(settings, "team-a")
    assert scope is not None
    assert scope.write == ("s3://renders/team-a/", "/exports/team-a/", "s3://team-a-bucket/")
    assert "s3://library/" in scope.read
    assert credentials_secret(settings, "team-a") == "team-a-s3"
    assert credentials_secret(settings, "team-b") == "musepose-s3"


def test_https_egress_opens_the_ports_the_allow_list_names() -> None:
    docs = render({**TEAMS, "inputs": {"allowedHttpsHosts": [
        "cdn.example.com", "media.example.com:8443", "other.example.com"]}})
    egress = find(docs, "NetworkPolicy", "musepose-operator-runner", "team-a")["spec"]["egress"]
    assert _ports(egress[-1]) == {("TCP", 443), ("TCP", 8443)}
    only_odd = render({**TEAMS, "inputs": {"allowedHttpsHosts": ["media.example.com:8443"]}})
    egress = find(only_odd, "NetworkPolicy", "musepose-operator-runner", "team-a")["spec"][
        "egress"]
    assert _ports(egress[-1]) == {("TCP", 8443)}
