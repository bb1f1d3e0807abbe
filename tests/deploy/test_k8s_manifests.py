"""The Kustomize overlays: each renders, validates against the Kubernetes schemas, and says
the same thing in every place two files must agree (the gateway's configuration and the
engines it should find, the probes and the model load time, the mounts and the image)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from deploy_tools import (
    K8S_SECRETS_EXAMPLE,
    OVERLAYS,
    PROVIDER_KEYS_MOUNT,
    ROOT,
    config_map_text,
    container,
    dockerfile_cmd,
    load_shipped,
    one,
    render,
)

from spillgate.server.config import Config

ALL_OVERLAYS = sorted(p.name for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").exists())
GPU_OVERLAYS = ["single-node", "cluster", "cluster-prometheus-adapter"]
# The oldest Kubernetes the manifests promise to work on, and the newest schema shipped.
K8S_VERSIONS = ["1.29.0", kubernetes_validate.utils.latest_version()]
SCALED_OBJECT_SCHEMA = json.loads(
    (Path(__file__).parent / "schemas" / "keda-scaledobject.schema.json").read_text()
)


def validate(obj: dict[str, Any], version: str) -> None:
    if obj["apiVersion"].startswith("keda.sh/"):
        jsonschema.validate(obj, SCALED_OBJECT_SCHEMA)
    else:
        kubernetes_validate.validate(obj, version, strict=True)


def gateway_config(objects: list[dict[str, Any]]) -> Config:
    """The overlay's spillgate.yaml as the gateway will load it (secrets stood in for)."""
    return load_shipped(config_map_text(objects), K8S_SECRETS_EXAMPLE)


def vllm_flags(args: list[str]) -> dict[str, str | bool]:
    """`--name=value` arguments by name; a bare `--flag` is True."""
    pairs = (arg.removeprefix("--").partition("=") for arg in args)
    return {name: value if sep else True for name, sep, value in pairs}


def seconds_allowed(probe: dict[str, Any]) -> int:
    return int(probe.get("periodSeconds", 10)) * int(probe.get("failureThreshold", 3))


def test_the_overlays_are_the_ones_documented() -> None:
    assert ALL_OVERLAYS == ["cluster", "cluster-prometheus-adapter", "cpu-demo", "single-node"]


@pytest.mark.parametrize("overlay", ALL_OVERLAYS)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_validates(overlay: str, version: str) -> None:
    objects = render(overlay)
    assert objects, f"{overlay} rendered nothing"
    for obj in objects:
        validate(obj, version)
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "spillgate", obj["metadata"]["name"]


def test_the_validation_catches_a_misspelt_field() -> None:
    objects = render("cluster")
    engine = copy.deepcopy(one(objects, "Deployment", "vllm-engine"))
    container(engine, "vllm")["resource"] = container(engine, "vllm").pop("resources")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(engine, K8S_VERSIONS[0], strict=True)
    scaled = copy.deepcopy(one(objects, "ScaledObject", "vllm-engine"))
    scaled["spec"]["maxReplicas"] = scaled["spec"].pop("maxReplicaCount")  # the HPA's name
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, SCALED_OBJECT_SCHEMA)
    del scaled["spec"]["triggers"][0]["metadata"]["threshold"]
    scaled["spec"]["maxReplicaCount"] = scaled["spec"].pop("maxReplicas")
    with pytest.raises(jsonschema.ValidationError, match="threshold"):
        jsonschema.validate(scaled, SCALED_OBJECT_SCHEMA)


@pytest.mark.parametrize("overlay", ALL_OVERLAYS)
def test_the_gateway_loads_its_config_where_the_image_expects_it(overlay: str) -> None:
    objects = render(overlay)
    gateway = one(objects, "Deployment", "spillgate")
    spec = gateway["spec"]["template"]["spec"]
    main = container(gateway, "gateway")
    config_path = main["args"][main["args"].index("--config") + 1]
    mount = next(m for m in main["volumeMounts"] if m["name"] == "config")
    volume = next(v for v in spec["volumes"] if v["name"] == "config")
    assert config_path == f"{mount['mountPath']}/spillgate.yaml"
    assert volume["configMap"]["name"].startswith("spillgate-config-")  # the generated one
    assert main["args"] == dockerfile_cmd(ROOT / "Dockerfile.gpu")
    config = gateway_config(objects)
    assert config.server.host == "0.0.0.0"
    assert config.server.port == main["ports"][0]["containerPort"]
    assert main["envFrom"] == [{"secretRef": {"name": "spillgate-secrets"}}]
    # Provider keys are files of their own Secret, where the configuration reads them.
    keys = next(m for m in main["volumeMounts"] if m["mountPath"] == PROVIDER_KEYS_MOUNT)
    volume = next(v for v in spec["volumes"] if v["name"] == keys["name"])
    assert volume["secret"]["secretName"] == "spillgate-provider-keys" and keys["readOnly"]
    # (gateway_config fails for a key file anywhere but under the mount.)
    for provider in config.providers:
        assert provider.api_key is None and provider.api_key_file is not None, provider.name


def test_single_node_runs_the_engine_on_the_gateways_gpu() -> None:
    objects = render("single-node")
    gateway = one(objects, "Deployment", "spillgate")
    spec = gateway["spec"]["template"]["spec"]
    main = container(gateway, "gateway")
    assert main["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gateway["spec"]["strategy"]["type"] == "Recreate"
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    config = gateway_config(objects)
    # The SQLite ledger and engine logs live under `home`: on the persistent volume.
    claim = volumes[mounts[str(config.home)]]["persistentVolumeClaim"]["claimName"]
    one(objects, "PersistentVolumeClaim", claim)
    models = volumes[mounts["/models"]]["persistentVolumeClaim"]["claimName"]
    one(objects, "PersistentVolumeClaim", models)
    # The startup probe must outlast the gateway's own wait for its engine to load.
    (engine,) = config.engines
    assert seconds_allowed(main["startupProbe"]) >= engine.startup_timeout_s
    assert main["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_the_cluster_gateway_finds_the_engines_through_the_headless_service() -> None:
    for overlay in ("cluster", "cluster-prometheus-adapter"):
        objects = render(overlay)
        (group,) = gateway_config(objects).engines
        assert group.discover is not None
        service = one(objects, "Service", "vllm-engines")
        assert service["spec"]["clusterIP"] == "None"
        assert not service["spec"].get("publishNotReadyAddresses", False)
        namespace = service["metadata"]["namespace"]
        assert group.discover.dns == f"vllm-engines.{namespace}.svc.cluster.local"

        engines = one(objects, "Deployment", "vllm-engine")
        pod_labels = engines["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        vllm = container(engines, "vllm")
        flags = vllm_flags(vllm["args"])
        assert int(str(flags["port"])) == group.discover.port == vllm["ports"][0]["containerPort"]
        assert flags["host"] == "0.0.0.0"
        assert group.served_model_names == str(flags["served-model-name"]).split(",")
        assert vllm["command"] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
        assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert seconds_allowed(vllm["startupProbe"]) >= 20 * 60  # a download and a load
        # Leaving DNS takes the gateways up to one discover interval (plus the record's TTL).
        pause = int(vllm["lifecycle"]["preStop"]["exec"]["command"][1])
        assert pause >= 2 * group.discover.interval_s
        grace = engines["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > pause


def test_the_cluster_gateway_is_stateless_and_replicated() -> None:
    objects = render("cluster")
    gateway = one(objects, "Deployment", "spillgate")
    main = container(gateway, "gateway")
    assert gateway["spec"]["replicas"] >= 2
    assert "nvidia.com/gpu" not in main["resources"].get("limits", {})
    assert {"cpu", "memory"} <= main["resources"]["requests"].keys()
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    hpa = one(objects, "HorizontalPodAutoscaler", "spillgate")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "spillgate"
    assert hpa["spec"]["minReplicas"] >= 2
    budget = one(objects, "PodDisruptionBudget", "spillgate")
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert not any(o["kind"] in {"StatefulSet", "PersistentVolumeClaim"} for o in objects), (
        "PostgreSQL and Redis are the user's existing services, not pods of this overlay"
    )


def test_only_the_gateway_and_the_scraper_reach_the_engines() -> None:
    objects = render("cluster")
    policy = one(objects, "NetworkPolicy", "vllm-engine-ingress")
    engines = one(objects, "Deployment", "vllm-engine")
    gateway = one(objects, "Deployment", "spillgate")
    engine_labels = engines["spec"]["template"]["metadata"]["labels"]
    gateway_labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= engine_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    sources = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    assert all(rule.get("from") for rule in policy["spec"]["ingress"]), "a rule admits everyone"
    pods = [p["podSelector"]["matchLabels"] for p in sources if "podSelector" in p]
    assert len(pods) == 1 and pods[0].items() <= gateway_labels.items()
    # The other peer is the monitoring namespace, whose Prometheus reads the queue depth.
    namespaces = [
        p["namespaceSelector"]["matchLabels"] for p in sources if "namespaceSelector" in p
    ]
    assert namespaces == [{"kubernetes.io/metadata.name": "monitoring"}]


def queue_sides(query: str) -> tuple[str, str]:
    """The selectors of the two queues an engine autoscaling query adds up."""
    match = re.fullmatch(
        r"\(sum\(vllm:num_requests_waiting\{(.*)\}\) or vector\(0\)\)\s*"
        r"\+ \(sum\(spillgate_local_queue_depth\{(.*)\}\) or vector\(0\)\)",
        query.strip(),
    )
    assert match, query
    return match.group(1), match.group(2)


def test_keda_scales_the_engines_on_their_queue_depth() -> None:
    objects = render("cluster")
    scaled = one(objects, "ScaledObject", "vllm-engine")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "vllm-engine"
    one(objects, "Deployment", spec["scaleTargetRef"]["name"])
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus"
    # Requests waiting in vLLM's queue and in the gateways' queues in front of the pods.
    engines, gateways = queue_sides(trigger["metadata"]["query"])
    (group,) = gateway_config(objects).engines
    namespace = f'namespace="{scaled["metadata"]["namespace"]}"'
    assert namespace in engines and namespace in gateways
    assert f'model_name="{group.served_model_names[0]}"' in engines
    assert f'engine=~"{group.name}@.+"' in gateways  # discovered engines are group@address
    assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
    assert not any(
        o["kind"] == "HorizontalPodAutoscaler" and o["metadata"]["name"] == "vllm-engine"
        for o in objects
    )


def test_the_prometheus_adapter_variant_scales_with_a_plain_hpa() -> None:
    objects = render("cluster-prometheus-adapter")
    assert not [o for o in objects if o["kind"] == "ScaledObject"]
    hpa = one(objects, "HorizontalPodAutoscaler", "vllm-engine")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "External"
    values = yaml.safe_load(
        (OVERLAYS / "cluster-prometheus-adapter" / "prometheus-adapter-values.yaml").read_text()
    )
    assert values["rules"]["default"] is False and not values["rules"].get("custom")
    (rule,) = values["rules"]["external"]
    # The adapter exposes the sum under the name the HPA asks for, in the HPA's namespace.
    assert rule["name"]["as"] == metric["external"]["metric"]["name"]
    assert re.search(rule["name"]["matches"], "vllm:num_requests_waiting")
    assert rule["seriesQuery"].startswith("vllm:num_requests_waiting{")
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}}
    # The same two queues as the KEDA trigger, the namespace coming from the HPA.
    engines, gateways = queue_sides(rule["metricsQuery"])
    keda = one(render("cluster"), "ScaledObject", "vllm-engine")["spec"]
    keda_engines, keda_gateways = queue_sides(keda["triggers"][0]["metadata"]["query"])
    namespace = f'namespace="{hpa["metadata"]["namespace"]}"'
    assert engines == keda_engines.replace(namespace, "<<.LabelMatchers>>")
    assert gateways == keda_gateways.replace(namespace, "<<.LabelMatchers>>")
    assert hpa["spec"]["maxReplicas"] == keda["maxReplicaCount"]
    target = metric["external"]["target"]
    assert target["type"] == "AverageValue"  # per engine pod, as KEDA's threshold
    assert target["averageValue"] == keda["triggers"][0]["metadata"]["threshold"]


def test_cpu_demo_needs_no_gpu() -> None:
    objects = render("cpu-demo")
    assert "nvidia.com/gpu" not in yaml.safe_dump_all(objects)
    gateway = one(objects, "Deployment", "spillgate")
    assert container(gateway, "gateway")["image"].split(":")[0].endswith("spillgate-cpu")
    (engine,) = gateway_config(objects).engines
    assert engine.model and engine.model.startswith("/var/lib/spillgate/")  # in the image
    assert dockerfile_cmd(ROOT / "Dockerfile.cpu") == container(gateway, "gateway")["args"]


def test_every_gpu_pod_has_a_memory_backed_shm_and_the_nvidia_toleration() -> None:
    for overlay in GPU_OVERLAYS:
        for obj in render(overlay):
            if obj["kind"] != "Deployment":
                continue
            spec = obj["spec"]["template"]["spec"]
            for c in spec["containers"]:
                if "nvidia.com/gpu" not in c["resources"].get("limits", {}):
                    continue
                where = f"{overlay} {obj['metadata']['name']}"
                shm = next(m["name"] for m in c["volumeMounts"] if m["mountPath"] == "/dev/shm")
                volume = next(v for v in spec["volumes"] if v["name"] == shm)
                assert volume["emptyDir"]["medium"] == "Memory", where
                assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in (
                    spec.get("tolerations", [])
                ), where


def test_the_dockerfile_is_pinned_non_root_and_health_checked() -> None:
    text = (ROOT / "Dockerfile.gpu").read_text()
    (base,) = re.findall(r"^FROM (\S+)", text, re.M)
    assert re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+", base), base
    (user,) = re.findall(r"^USER (\S+)", text, re.M)
    assert user not in {"root", "0"}
    (check,) = re.findall(r"^HEALTHCHECK (.*(?:\n\s+.*)*)", text, re.M)
    assert "http://127.0.0.1:8000/readyz" in check
    assert "--start-period=" in check
    volumes = json.loads(re.findall(r"^VOLUME (.*)", text, re.M)[0])
    assert set(volumes) == {"/models", "/var/lib/spillgate"}
    assert "SPILLGATE_HOME=/var/lib/spillgate" in text
    assert json.loads(re.findall(r"^ENTRYPOINT (.*)", text, re.M)[0]) == ["spillgate"]
