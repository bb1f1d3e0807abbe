"""The Helm chart deploy/helm/spillgate: it renders with Helm itself (the official v3 binary,
tests/deploy/install_tools.sh), every object validates against the Kubernetes schemas and
KEDA's, its configuration passes `spillgate config check`, its values switch what they say
(KEDA, HPA or fixed engines, Secrets made or not, NetworkPolicy, PDBs, several engine
groups), and with its defaults it says what the Kustomize overlay `cluster` says: the same
objects with the same specs, but for the differences listed in `normalise`."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from deploy_tools import (
    DEPLOY,
    K8S_SECRETS_EXAMPLE,
    PROVIDER_KEYS_MOUNT,
    ROOT,
    checkable_copy,
    container,
    dockerfile_cmd,
    dummy_env,
    load_shipped,
    one,
    referenced_variables,
    render,
    run,
    tool,
)
from test_k8s_manifests import (
    K8S_VERSIONS,
    SCALED_OBJECT_SCHEMA,
    queue_sides,
    seconds_allowed,
    validate,
    vllm_flags,
)
from test_shipped_configs import config_check

from spillgate.server.config import Config

CHART = DEPLOY / "helm" / "spillgate"
Objects = list[dict[str, Any]]

SECRETS_MADE = {
    "secrets": {
        "create": True,
        "adminToken": "admin-token-0123456789abcdef",
        "ledgerUrl": "postgresql://spillgate:pw@postgres.db.svc.cluster.local:5432/spillgate",
        "redisUrl": "redis://redis.db.svc.cluster.local:6379/0",
        "hfToken": "hf_dummy",
    },
    "providerKeys": {
        "create": True,
        "files": {"openai-api-key": "sk-openai", "anthropic-api-key": "sk-ant"},
    },
}
TWO_ENGINES = {
    "engines": [
        {
            "name": "qwen",
            "model": "Qwen/Qwen2.5-7B-Instruct",
            "servedModelName": "qwen2.5-7b-instruct",
            "maxNumSeqs": 64,
            "toolCallParser": "hermes",
        },
        {
            "name": "llama-big",
            "model": "meta-llama/Llama-3.3-70B-Instruct",
            "servedModelName": "llama-3.3-70b",
            "maxNumSeqs": 32,
            "args": ["--tensor-parallel-size=4"],
            "maxReplicas": 2,
            "resources": {"limits": {"nvidia.com/gpu": 4, "memory": "200Gi"}},
        },
    ],
    "config": {"routes": {"chat": ["qwen2.5-7b-instruct", "openai/gpt-4o-mini"]}},
}
SWITCHED_OFF = {
    "engineAutoscaling": {"mode": "none"},
    "gateway": {"autoscaling": {"enabled": False}, "replicas": 3},
    "networkPolicy": {"enabled": False},
    "podDisruptionBudget": {"enabled": False},
    "serviceAccount": {"create": False},
}
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "hpa": {"engineAutoscaling": {"mode": "hpa"}},
    "fixed-engines": {"engineAutoscaling": {"mode": "none"}},
    "secrets-made": SECRETS_MADE,
    "two-engines": TWO_ENGINES,
    "two-engines-hpa": {
        **TWO_ENGINES,
        "engines": [
            TWO_ENGINES["engines"][0],
            {**TWO_ENGINES["engines"][1], "hpaMetricName": "spillgate_llama_requests_waiting"},
        ],
        "engineAutoscaling": {"mode": "hpa"},
    },
    "switched-off": SWITCHED_OFF,
}


def _helm_template(
    values: dict[str, Any],
    tmp_path: Path,
    *,
    release: str = "spillgate",
    namespace: str = "spillgate",
    kube_version: str | None = None,
    chart: Path = CHART,
) -> Any:
    values_file = tmp_path / f"values-{len(list(tmp_path.glob('values-*')))}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    argv = [tool("helm"), "template", release, str(chart), "-n", namespace, "-f", str(values_file)]
    if kube_version:
        argv += ["--kube-version", kube_version]
    return run(*argv)


def helm(values: dict[str, Any], tmp_path: Path, **kwargs: Any) -> Objects:
    """`helm template` of the chart with these values, as a list of objects."""
    result = _helm_template(values, tmp_path, **kwargs)
    assert result.returncode == 0, f"the chart does not render:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def helm_refuses(values: dict[str, Any], tmp_path: Path) -> str:
    """What Helm says when it refuses to render with these values."""
    result = _helm_template(values, tmp_path)
    assert result.returncode != 0, "the chart rendered values it should refuse"
    return str(result.stderr)


def config_text(objects: Objects) -> str:
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap"]
    return str(config_map["data"]["spillgate.yaml"])


def gateway_config(objects: Objects) -> Config:
    return load_shipped(config_text(objects), K8S_SECRETS_EXAMPLE)


def of_kind(objects: Objects, kind: str) -> Objects:
    return [o for o in objects if o["kind"] == kind]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


# -- Helm itself --------------------------------------------------------------------------------


def test_the_renderer_is_helm_3() -> None:
    result = run(tool("helm"), "version", "--short")
    assert result.returncode == 0 and re.match(r"v3\.\d+\.\d+\+g[0-9a-f]+", result.stdout)


def test_the_chart_passes_helm_lint_strict() -> None:
    result = run(tool("helm"), "lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


# -- every object is valid ----------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_validates(variant: str, version: str, tmp_path: Path) -> None:
    objects = helm(VARIANTS[variant], tmp_path, namespace="llm", kube_version=version)
    assert objects
    for obj in objects:
        validate(obj, version)
        assert obj["metadata"]["namespace"] == "llm", obj["metadata"]["name"]
    # Each object once: two templates making the same one would fail `helm install`.
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), keys


def test_the_validation_catches_a_misspelt_field(tmp_path: Path) -> None:
    objects = helm({}, tmp_path)
    engine = copy.deepcopy(one(objects, "Deployment", "spillgate-vllm-engine"))
    container(engine, "vllm")["resource"] = container(engine, "vllm").pop("resources")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(engine, K8S_VERSIONS[0])
    scaled = copy.deepcopy(one(objects, "ScaledObject", "spillgate-vllm-engine"))
    scaled["spec"]["maxReplicas"] = scaled["spec"].pop("maxReplicaCount")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, SCALED_OBJECT_SCHEMA)


@pytest.mark.parametrize("variant", ["defaults", "two-engines", "secrets-made"])
def test_the_configuration_passes_config_check(variant: str, tmp_path: Path) -> None:
    text = config_text(helm(VARIANTS[variant], tmp_path))
    path = checkable_copy(text, tmp_path / "check")
    result = config_check(path, dummy_env(text, K8S_SECRETS_EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: valid;"), result.stdout
    config = load_shipped(text, K8S_SECRETS_EXAMPLE)
    assert config.auth.enabled and config.admin.token  # every /v1 request needs a key
    assert config.server.host == "0.0.0.0"
    assert config.ledger.url and config.ledger.url.startswith("postgresql://")
    assert config.limits.redis_url and config.limits.redis_url.startswith("redis://")
    for provider in config.providers:
        assert provider.api_key is None and provider.api_key_file is not None, provider.name


# -- the chart says what the cluster overlay says ----------------------------------------------

#: Labels only one side has: Helm's release labels, Kustomize's `part-of` on metadata.
_BOOKKEEPING_LABELS = {
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "app.kubernetes.io/part-of",
    "helm.sh/chart",
}


def _strip_labels(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: _strip_labels(v)
            for k, v in node.items()
            if k not in _BOOKKEEPING_LABELS and not k.startswith("checksum/")
        }
    if isinstance(node, list):
        return [_strip_labels(v) for v in node]
    return node


def normalise(objects: Objects, *, chart: bool) -> dict[tuple[str, str], Any]:
    """Objects by kind and name, with the differences that are by design taken out:
    - names: the chart's are the release's (`spillgate-vllm-engine` for release spillgate);
      the overlay's generated ConfigMap has a hash suffix, the chart's a checksum annotation;
    - labels: Helm's release labels (the chart's selectors add `instance`, so two releases
      in one namespace stay apart), Kustomize's `part-of`;
    - the Namespace: Helm installs into one (`-n spillgate --create-namespace`);
    - `replicas` of an autoscaled Deployment: the chart leaves it to the autoscaler, so an
      upgrade does not reset it (checked below);
    - `imagePullPolicy` and a Service's `type: ClusterIP`: the chart sets the defaults;
    - vLLM's arguments: compared as a set (their order means nothing);
    - the ConfigMap's data: compared as the configuration the gateway loads (below).
    """
    text = json.dumps([o for o in objects if o["kind"] != "Namespace"])
    if chart:
        text = text.replace('"spillgate-vllm-', '"vllm-')
    else:
        text = re.sub(r'"spillgate-config-[a-z0-9]{10}"', '"spillgate-config"', text)
    result = {}
    for obj in _strip_labels(json.loads(text)):
        obj["metadata"] = {"name": obj["metadata"]["name"]}
        if obj["kind"] == "ConfigMap":
            obj.pop("data")
        if obj["kind"] == "Service" and obj["spec"].get("type") == "ClusterIP":
            obj["spec"].pop("type")
        if obj["kind"] == "Deployment":
            obj["spec"].pop("replicas", None)
            for c in obj["spec"]["template"]["spec"]["containers"]:
                c.pop("imagePullPolicy", None)
                if c["name"] == "vllm":
                    c["args"] = sorted(c["args"])
        result[(obj["kind"], obj["metadata"]["name"])] = obj
    return result


def assert_same_objects(chart: Objects, overlay: Objects) -> None:
    ours, theirs = normalise(chart, chart=True), normalise(overlay, chart=False)
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        assert ours[key] == theirs[key], key


def assert_same_configuration(chart: Objects, overlay: Objects) -> None:
    ours, theirs = gateway_config(chart).model_dump(), gateway_config(overlay).model_dump()
    for engine in ours["engines"]:  # the release's Service name
        engine["discover"]["dns"] = engine["discover"]["dns"].removeprefix("spillgate-")
    for provider in ours["providers"] + theirs["providers"]:  # each loaded from its own copy
        provider["api_key_file"] = Path(provider["api_key_file"]).name
    assert ours == theirs


def test_with_its_defaults_the_chart_is_the_cluster_overlay(tmp_path: Path) -> None:
    chart, overlay = helm({}, tmp_path), render("cluster")
    assert_same_objects(chart, overlay)
    assert_same_configuration(chart, overlay)
    # The image the overlay names is the chart's appVersion (compared above as rendered).
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    gateway = container(one(overlay, "Deployment", "spillgate"), "gateway")
    assert gateway["image"] == f"spillgate-gpu:{app_version}"
    # The overlay's replica counts are where the chart's autoscalers start.
    hpa = one(chart, "HorizontalPodAutoscaler", "spillgate")["spec"]
    scaled = one(chart, "ScaledObject", "spillgate-vllm-engine")["spec"]
    assert one(overlay, "Deployment", "spillgate")["spec"]["replicas"] == hpa["minReplicas"]
    engines = one(overlay, "Deployment", "vllm-engine")["spec"]
    assert engines["replicas"] == scaled["minReplicaCount"]
    for name in ("spillgate", "spillgate-vllm-engine"):
        assert "replicas" not in one(chart, "Deployment", name)["spec"]


def test_with_hpa_the_chart_is_the_prometheus_adapter_overlay(tmp_path: Path) -> None:
    chart = helm(VARIANTS["hpa"], tmp_path)
    overlay = render("cluster-prometheus-adapter")
    assert_same_objects(chart, overlay)
    assert_same_configuration(chart, overlay)


def test_the_comparison_sees_drift(tmp_path: Path) -> None:
    """A changed probe, NetworkPolicy peer, trigger or setting makes the chart differ."""
    overlay = render("cluster")
    drifted = {
        "engineDefaults": {"startupMinutes": 20},
        "networkPolicy": {"metricsScrapers": [{"namespaceSelector": {"matchLabels": {}}}]},
        "engineAutoscaling": {"threshold": 8},
        "gateway": {"resources": {"requests": {"cpu": "2"}}},
    }
    for key, value in drifted.items():
        with pytest.raises(AssertionError):
            assert_same_objects(helm({key: value}, tmp_path), overlay)
    changed = {"config": {"scheduler": {"latency_budget_ms": 2000}}}
    with pytest.raises(AssertionError):
        assert_same_configuration(helm(changed, tmp_path), overlay)


# -- the engines, found, fed and scaled ---------------------------------------------------------


@pytest.mark.parametrize("variant", ["defaults", "two-engines"])
def test_the_gateway_finds_each_engine_group_through_its_headless_service(
    variant: str, tmp_path: Path
) -> None:
    objects = helm(VARIANTS[variant], tmp_path, release="prod", namespace="llm")
    config = gateway_config(objects)
    deployments = [
        d for d in of_kind(objects, "Deployment") if d["metadata"]["name"] != "prod-spillgate"
    ]
    assert len(config.engines) == len(deployments) == len(VARIANTS[variant].get("engines", [1]))
    for group in config.engines:
        assert group.discover is not None
        engines = one(objects, "Deployment", f"prod-spillgate-{group.name}-engine")
        service = one(objects, "Service", f"prod-spillgate-{group.name}-engines")
        assert group.discover.dns == f"prod-spillgate-{group.name}-engines.llm.svc.cluster.local"
        assert service["spec"]["clusterIP"] == "None"
        assert selects(service["spec"]["selector"], pod_labels(engines))
        others = [d for d in deployments if d is not engines]
        assert not any(selects(service["spec"]["selector"], pod_labels(d)) for d in others)
        vllm = container(engines, "vllm")
        flags = vllm_flags(vllm["args"])
        assert int(str(flags["port"])) == group.discover.port == vllm["ports"][0]["containerPort"]
        assert group.served_model_names == [flags["served-model-name"]]
        assert group.scheduling.max_concurrency == int(str(flags["max-num-seqs"]))
        assert group.scheduling.capabilities.tools == ("enable-auto-tool-choice" in flags)
        assert seconds_allowed(vllm["startupProbe"]) >= 20 * 60
        pause = int(vllm["lifecycle"]["preStop"]["exec"]["command"][1])
        assert pause >= 2 * group.discover.interval_s
        assert engines["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > pause
        shm = next(m["name"] for m in vllm["volumeMounts"] if m["mountPath"] == "/dev/shm")
        volumes = engines["spec"]["template"]["spec"]["volumes"]
        assert next(v for v in volumes if v["name"] == shm)["emptyDir"]["medium"] == "Memory"


def test_an_engine_group_takes_what_it_leaves_out_from_the_defaults(tmp_path: Path) -> None:
    objects = helm(TWO_ENGINES, tmp_path)
    qwen = container(one(objects, "Deployment", "spillgate-qwen-engine"), "vllm")
    llama = container(one(objects, "Deployment", "spillgate-llama-big-engine"), "vllm")
    assert qwen["resources"]["requests"]["nvidia.com/gpu"] == 1  # engineDefaults
    assert llama["resources"] == {"limits": {"nvidia.com/gpu": 4, "memory": "200Gi"}}
    assert vllm_flags(llama["args"])["tensor-parallel-size"] == "4"
    assert "enable-auto-tool-choice" not in vllm_flags(llama["args"])
    assert (
        one(objects, "ScaledObject", "spillgate-llama-big-engine")["spec"]["maxReplicaCount"] == 2
    )
    assert one(objects, "ScaledObject", "spillgate-qwen-engine")["spec"]["maxReplicaCount"] == 4


def test_keda_scales_each_group_on_its_own_queues(tmp_path: Path) -> None:
    objects = helm(TWO_ENGINES, tmp_path, namespace="llm")
    assert not of_kind(objects, "HorizontalPodAutoscaler")[1:]  # the gateway's alone
    for group in gateway_config(objects).engines:
        spec = one(objects, "ScaledObject", f"spillgate-{group.name}-engine")["spec"]
        one(objects, "Deployment", spec["scaleTargetRef"]["name"])
        assert spec["scaleTargetRef"]["name"] == f"spillgate-{group.name}-engine"
        (trigger,) = spec["triggers"]
        engines, gateways = queue_sides(trigger["metadata"]["query"])
        assert engines == f'namespace="llm", model_name="{group.served_model_names[0]}"'
        assert gateways == f'namespace="llm", engine=~"{group.name}@.+"'
        assert trigger["metadata"]["threshold"] == "4"


def test_without_keda_engines_scale_on_an_hpa_or_not_at_all(tmp_path: Path) -> None:
    objects = helm(VARIANTS["two-engines-hpa"], tmp_path)
    assert not of_kind(objects, "ScaledObject")
    hpas = {h["metadata"]["name"]: h["spec"] for h in of_kind(objects, "HorizontalPodAutoscaler")}
    assert set(hpas) == {"spillgate", "spillgate-qwen-engine", "spillgate-llama-big-engine"}
    metrics = {
        name: spec["metrics"][0]["external"]["metric"]["name"]
        for name, spec in hpas.items()
        if name != "spillgate"
    }
    assert len(set(metrics.values())) == 2
    for name in metrics:
        assert hpas[name]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert "replicas" not in one(objects, "Deployment", name)["spec"]

    fixed = {"engineAutoscaling": {"mode": "none"}, "engineDefaults": {"replicas": 3}}
    objects = helm(fixed, tmp_path)
    assert not of_kind(objects, "ScaledObject")
    assert [h["metadata"]["name"] for h in of_kind(objects, "HorizontalPodAutoscaler")] == [
        "spillgate"
    ]
    assert one(objects, "Deployment", "spillgate-vllm-engine")["spec"]["replicas"] == 3


def test_only_the_releases_gateways_and_the_scrapers_reach_the_engines(tmp_path: Path) -> None:
    objects = helm(TWO_ENGINES, tmp_path)
    gateway = one(objects, "Deployment", "spillgate")
    policies = of_kind(objects, "NetworkPolicy")
    assert len(policies) == 2
    for group in ("qwen", "llama-big"):
        policy = one(objects, "NetworkPolicy", f"spillgate-{group}-engine-ingress")
        engines = one(objects, "Deployment", f"spillgate-{group}-engine")
        assert selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels(engines))
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        assert all(rule.get("from") for rule in policy["spec"]["ingress"]), "admits everyone"
        sources = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
        pods = [p["podSelector"]["matchLabels"] for p in sources if "podSelector" in p]
        assert len(pods) == 1 and selects(pods[0], pod_labels(gateway))
        assert pods[0]["app.kubernetes.io/instance"] == "spillgate"  # not another release's
        namespaces = [p["namespaceSelector"] for p in sources if "namespaceSelector" in p]
        assert namespaces == [{"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}]


# -- Secrets ------------------------------------------------------------------------------------


def test_the_secrets_are_yours_by_default_and_named_for_the_release(tmp_path: Path) -> None:
    objects = helm({}, tmp_path, release="prod")
    assert not of_kind(objects, "Secret")
    gateway = one(objects, "Deployment", "prod-spillgate")
    main = container(gateway, "gateway")
    assert main["envFrom"] == [{"secretRef": {"name": "prod-spillgate-secrets"}}]
    keys = next(m for m in main["volumeMounts"] if m["mountPath"] == PROVIDER_KEYS_MOUNT)
    volumes = gateway["spec"]["template"]["spec"]["volumes"]
    volume = next(v for v in volumes if v["name"] == keys["name"])
    assert volume["secret"]["secretName"] == "prod-spillgate-provider-keys" and keys["readOnly"]
    engine = container(one(objects, "Deployment", "prod-spillgate-vllm-engine"), "vllm")
    (hf_token,) = engine["env"]
    assert hf_token["valueFrom"]["secretKeyRef"]["name"] == "prod-spillgate-secrets"
    # The Secret you create holds what the configuration reads, as the overlays' example says.
    needed = referenced_variables(config_text(objects))
    assert needed == {"SPILLGATE_ADMIN_TOKEN", "SPILLGATE_LEDGER_URL", "SPILLGATE_REDIS_URL"}
    named = {"secrets": {"name": "mine"}, "providerKeys": {"name": "my-keys"}}
    main = container(one(helm(named, tmp_path), "Deployment", "spillgate"), "gateway")
    assert main["envFrom"] == [{"secretRef": {"name": "mine"}}]


def test_the_chart_can_make_the_secrets_from_values(tmp_path: Path) -> None:
    objects = helm(SECRETS_MADE, tmp_path)
    secrets = one(objects, "Secret", "spillgate-secrets")["stringData"]
    needed = referenced_variables(config_text(objects))
    assert needed | {"HF_TOKEN"} == set(secrets)
    assert secrets["SPILLGATE_LEDGER_URL"] == SECRETS_MADE["secrets"]["ledgerUrl"]
    keys = one(objects, "Secret", "spillgate-provider-keys")["stringData"]
    for provider in gateway_config(objects).providers:
        assert provider.api_key_file is not None
        assert keys[provider.api_key_file.name], provider.name
    # A changed Secret rolls the gateways, as a changed configuration does.
    annotations = one(objects, "Deployment", "spillgate")["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert {"checksum/config", "checksum/secrets"} <= set(annotations)
    other = copy.deepcopy(SECRETS_MADE)
    other["secrets"]["redisUrl"] = "redis://elsewhere:6379/0"
    again = one(helm(other, tmp_path), "Deployment", "spillgate")["spec"]["template"]
    assert again["metadata"]["annotations"]["checksum/secrets"] != annotations["checksum/secrets"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"secrets": {"adminToken": "short"}}, "secrets.adminToken: 16 characters"),
        ({"secrets": {"ledgerUrl": "mysql://db/x"}}, "secrets.ledgerUrl"),
        ({"secrets": {"redisUrl": ""}}, "secrets.redisUrl"),
        ({"providerKeys": {"files": {"openai-api-key": "sk"}}}, "add `anthropic-api-key`"),
    ],
)
def test_made_secrets_are_checked(change: dict[str, Any], message: str, tmp_path: Path) -> None:
    values = copy.deepcopy(SECRETS_MADE)
    for section, fields in change.items():
        if section == "providerKeys":
            values[section]["files"] = fields["files"]
        else:
            values[section].update(fields)
    assert message in helm_refuses(values, tmp_path)


# -- values that are wrong are refused ----------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"engines": [{"name": "vllm", "model": "m", "servedModelName": "m"}]}, "maxNumSeqs"),
        ({"engineAutoscaling": {"mode": "keda-please"}}, "engineAutoscaling.mode"),
        ({"engineDefaults": {"maxReplica": 4}}, "maxReplica is not allowed"),
        ({"engines": [{**TWO_ENGINES["engines"][0], "name": "Qwen_2"}]}, "engines.0.name"),
        ({"engines": [TWO_ENGINES["engines"][0]] * 2}, 'the name "qwen" is used twice'),
        ({"engineDefaults": {"replicas": 5}}, "replicas (5) is above maxReplicas (4)"),
        ({"engineDefaults": {"preStopSleepSeconds": 6}}, "at least twice discoverIntervalS"),
        ({"config": {"engines": []}}, "config.engines"),
        ({**TWO_ENGINES, "engineAutoscaling": {"mode": "hpa"}}, "one external metric each"),
    ],
)
def test_wrong_values_are_refused(values: dict[str, Any], message: str, tmp_path: Path) -> None:
    assert message in helm_refuses(values, tmp_path)


# -- switches and releases ----------------------------------------------------------------------


def test_what_switches_off_is_gone(tmp_path: Path) -> None:
    objects = helm(SWITCHED_OFF, tmp_path)
    kinds = {o["kind"] for o in objects}
    assert kinds == {"ConfigMap", "Service", "Deployment"}
    gateway = one(objects, "Deployment", "spillgate")
    assert gateway["spec"]["replicas"] == 3
    assert gateway["spec"]["template"]["spec"]["serviceAccountName"] == "default"
    assert one(objects, "Deployment", "spillgate-vllm-engine")["spec"]["replicas"] == 1


def test_two_releases_in_one_namespace_stay_apart(tmp_path: Path) -> None:
    first = helm({}, tmp_path, release="team-a", namespace="llm")
    second = helm({}, tmp_path, release="team-b", namespace="llm")
    names = {(o["kind"], o["metadata"]["name"]) for o in first}
    assert not names & {(o["kind"], o["metadata"]["name"]) for o in second}
    pods = [pod_labels(d) for d in of_kind(second, "Deployment")]
    for obj in first:
        spec = obj.get("spec", {})
        selector = spec.get("selector", {})
        selector = selector.get("matchLabels", selector)
        for labels in pods:
            assert not selector or not selects(selector, labels), obj["metadata"]["name"]
        if obj["kind"] == "NetworkPolicy":
            peers = [p for rule in spec["ingress"] for p in rule["from"] if "podSelector" in p]
            for labels in pods:
                assert not any(selects(p["podSelector"]["matchLabels"], labels) for p in peers)


def test_the_gateway_runs_the_images_command_with_its_config(tmp_path: Path) -> None:
    objects = helm(
        {"image": {"repository": "registry.example/spillgate-gpu", "tag": "9.9"}}, tmp_path
    )
    gateway = one(objects, "Deployment", "spillgate")
    main = container(gateway, "gateway")
    assert main["args"] == dockerfile_cmd(ROOT / "Dockerfile.gpu")
    config_path = main["args"][main["args"].index("--config") + 1]
    mount = next(m for m in main["volumeMounts"] if m["name"] == "config")
    assert config_path == f"{mount['mountPath']}/spillgate.yaml"
    volume = next(
        v for v in gateway["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"
    )
    one(objects, "ConfigMap", volume["configMap"]["name"])
    for deployment in of_kind(objects, "Deployment"):
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            assert c["image"] == "registry.example/spillgate-gpu:9.9"


def test_notes_tell_what_to_create_and_how_to_reach_it(tmp_path: Path) -> None:
    """NOTES.txt, rendered by Helm through a copy of the chart that includes it in a
    manifest (`helm template` leaves NOTES out; `helm install --dry-run` needs a cluster)."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "_notes.tpl").write_text(
        f'{{{{- define "notes" -}}}}{notes}{{{{- end }}}}'
    )
    (chart / "templates" / "notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        'data:\n  notes: |\n    {{- include "notes" . | nindent 4 }}\n'
    )

    def rendered(values: dict[str, Any]) -> str:
        objects = helm(values, tmp_path, release="prod", namespace="llm", chart=chart)
        return str(one(objects, "ConfigMap", "notes")["data"]["notes"])

    text = rendered({})
    assert "kubectl -n llm create secret generic prod-spillgate-secrets" in text
    assert "kubectl -n llm create secret generic prod-spillgate-provider-keys" in text
    assert "port-forward svc/prod-spillgate 8000:8000" in text
    assert "vllm: Qwen/Qwen2.5-7B-Instruct as qwen2.5-7b-instruct" in text
    assert "create secret" not in rendered(SECRETS_MADE)
