"""The Kubernetes manifests: every overlay and component renders with kustomize, every object
validates against the Kubernetes JSON schemas, and the platform's deployment rules hold
(restricted pods, native gRPC probes, drain timing, a PDB, HPA and NetworkPolicy per Deployment,
co-partitioned topics).

No cluster is needed. kustomize is installed by deploy/k8s/install-kustomize.sh (pinned, from the
Go module proxy) when it is missing; if it cannot be installed these tests fail, never skip.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

# A cold install of kustomize (empty Go caches) takes about 70 s on 2 cores; leave room.
pytestmark = pytest.mark.timeout(900)

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
INSTALL_SCRIPT = K8S_DIR / "install-kustomize.sh"
KUBERNETES_DOC = REPO_ROOT / "docs" / "kubernetes.md"

# The oldest Kubernetes the manifests support (the preStop `sleep` action is on by default from
# 1.30) and a current release; kubernetes-validate ships the schemas of both.
KUBERNETES_VERSIONS = ("1.30", "1.34")

# Secrets the manifests reference but do not create (credentials are not kept in git). Each must
# be described in docs/kubernetes.md; a dev overlay may generate them.
EXTERNAL_SECRETS = {"contacts-mongodb"}

# Env the runtime reads; each Deployment must set all of them (from the ConfigMap or `env`).
REQUIRED_ENV = (
    "GRPC_LISTEN_ADDRESS",
    "MONGODB_URI",
    "MONGODB_DATABASE",
    "KAFKA_BOOTSTRAP_SERVERS",
    "OTEL_SERVICE_NAME",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "LOG_LEVEL",
)
DEFAULT_SHUTDOWN_GRACE_SECONDS = 20
MIN_DRAIN_HEADROOM_SECONDS = 20
TOPIC_PARTITIONS = 12

Manifest = dict[str, Any]


@dataclass(frozen=True)
class RenderTarget:
    """Something `kustomize build` renders: an overlay, or the base plus one component."""

    kind: str  # "overlay" or "component"
    path: Path

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.path.name}"


def _kustomization_dirs(parent: Path) -> list[Path]:
    return sorted(p.parent for p in parent.glob("*/kustomization.yaml"))


OVERLAYS = [RenderTarget("overlay", p) for p in _kustomization_dirs(K8S_DIR / "overlays")]
COMPONENTS = [RenderTarget("component", p) for p in _kustomization_dirs(K8S_DIR / "components")]
TARGETS = OVERLAYS + COMPONENTS
TARGET_IDS = [t.id for t in TARGETS]


# --- rendering ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kustomize() -> Path:
    """The pinned kustomize binary, installed on first use; fails the run if it cannot be."""
    env = dict(os.environ)
    env.setdefault("CRM_HOME", str(REPO_ROOT / ".crm"))
    result = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"kustomize could not be installed ({INSTALL_SCRIPT.relative_to(REPO_ROOT)} exited "
            f"{result.returncode}):\n{result.stderr}",
            pytrace=False,
        )
    binary = Path(result.stdout.strip().splitlines()[-1])
    assert binary.is_file(), f"install-kustomize printed {binary}, which is not a file"
    return binary


@pytest.fixture(scope="session")
def render(
    kustomize: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[RenderTarget], list[Manifest]]:
    """Renders a target once per session and returns its objects."""

    @cache
    def _render(target: RenderTarget) -> list[Manifest]:
        if target.kind == "overlay":
            build_dir = target.path
        else:
            # A component cannot be built alone: wrap it around the base in a scratch folder.
            # kustomize refuses absolute paths here, hence relative ones.
            build_dir = tmp_path_factory.mktemp(f"component-{target.path.name}")
            (build_dir / "kustomization.yaml").write_text(
                yaml.safe_dump(
                    {
                        "apiVersion": "kustomize.config.k8s.io/v1beta1",
                        "kind": "Kustomization",
                        "resources": [os.path.relpath(K8S_DIR / "base", build_dir)],
                        "components": [os.path.relpath(target.path, build_dir)],
                    }
                )
            )
        result = subprocess.run(
            [str(kustomize), "build", str(build_dir)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"kustomize build {target.id} failed:\n{result.stderr}", pytrace=False)
        objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        assert objects, f"{target.id} renders no objects"
        return objects

    return _render


def _of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] == kind]


def _named(objects: list[Manifest], kind: str, name: str) -> Manifest | None:
    return next((o for o in _of_kind(objects, kind) if o["metadata"]["name"] == name), None)


def _containers(deployment: Manifest) -> list[Manifest]:
    containers: list[Manifest] = deployment["spec"]["template"]["spec"]["containers"]
    return containers


def _pod_labels(deployment: Manifest) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects(match_labels: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(match_labels) and all(labels.get(k) == v for k, v in match_labels.items())


def _grpc_container_port(container: Manifest) -> int:
    ports = [p for p in container.get("ports", []) if p.get("name") == "grpc"]
    assert len(ports) == 1, f"container {container['name']} needs exactly one port named grpc"
    port: int = ports[0]["containerPort"]
    return port


def _config_value(objects: list[Manifest], deployment: Manifest, name: str) -> str | None:
    """The value a Deployment's first container gets for `name` (env wins over envFrom)."""
    container = _containers(deployment)[0]
    for entry in container.get("env", []):
        if entry["name"] == name:
            return str(entry.get("value", "<from valueFrom>"))
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        config_map = _named(objects, "ConfigMap", ref["name"]) if ref else None
        if config_map and name in config_map.get("data", {}):
            return str(config_map["data"][name])
    return None


# --- schema validation -------------------------------------------------------------------------


def _check_strimzi_kafka_topic(topic: Manifest) -> list[str]:
    """Structural check of a Strimzi KafkaTopic (the fields the manifests use)."""
    problems = []
    labels = topic["metadata"].get("labels", {})
    if not labels.get("strimzi.io/cluster"):
        problems.append("metadata.labels needs strimzi.io/cluster (the Kafka cluster's name)")
    if not topic["metadata"].get("namespace"):
        problems.append("needs an explicit namespace (the Topic Operator's, not the services')")
    spec = topic.get("spec", {})
    unknown = set(spec) - {"topicName", "partitions", "replicas", "config"}
    if unknown:
        problems.append(f"unknown spec fields {sorted(unknown)}")
    if not isinstance(spec.get("topicName"), str):
        problems.append("spec.topicName must be a string")
    for field, maximum in (("partitions", 2**31 - 1), ("replicas", 32767)):
        value = spec.get(field)
        if not (isinstance(value, int) and 1 <= value <= maximum):
            problems.append(f"spec.{field} must be an integer in 1..{maximum}, got {value!r}")
    if not isinstance(spec.get("config", {}), dict):
        problems.append("spec.config must be a mapping")
    return problems


# Custom resources have no schema in kubernetes-validate, which ships the core Kubernetes API only
# (and the CRD schemas are not installable from a package registry here). Each custom kind the
# manifests use is listed with a structural check of its own; any other unknown kind fails, so
# nothing goes unvalidated silently.
CUSTOM_RESOURCE_CHECKS: dict[tuple[str, str], Callable[[Manifest], list[str]]] = {
    ("kafka.strimzi.io/v1", "KafkaTopic"): _check_strimzi_kafka_topic,
}


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_every_object_validates_against_the_kubernetes_schemas(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    problems = []
    for obj in render(target):
        what = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        custom_check = CUSTOM_RESOURCE_CHECKS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
        if custom_check is not None:
            problems += [f"{what}: {p}" for p in custom_check(obj)]
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                # strict: unknown fields (typos) are errors, as with `kubectl apply --validate`.
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(p) for p in error.path)
                problems.append(f"{what} (Kubernetes {version}) at {path}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError as error:
                problems.append(f"{what}: {error.message}; add a check to CUSTOM_RESOURCE_CHECKS")
    assert not problems, "\n".join(problems)


def test_dev_and_production_overlays_and_topics_component_exist() -> None:
    assert {t.path.name for t in OVERLAYS} >= {"dev", "production"}
    assert {t.path.name for t in COMPONENTS} >= {"strimzi-topics"}


# --- pods ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_deployments_run_restricted_non_root_pods(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    objects = render(target)
    deployments = _of_kind(objects, "Deployment")
    assert deployments
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        pod_security = pod.get("securityContext", {})
        assert pod_security.get("runAsNonRoot") is True, name
        assert pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert pod.get("automountServiceAccountToken") is False, name
        account = _named(objects, "ServiceAccount", pod.get("serviceAccountName", ""))
        assert account is not None, f"{name}: its ServiceAccount is not rendered"
        assert account.get("automountServiceAccountToken") is False, name
        tmp_volumes = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in pod["containers"]:
            security = container.get("securityContext", {})
            where = f"{name}/{container['name']}"
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("capabilities", {}).get("drop") == ["ALL"], where
            user = security.get("runAsUser", pod_security.get("runAsUser"))
            assert isinstance(user, int), f"{where}: needs a numeric uid (runAsNonRoot checks it)"
            assert user > 0, f"{where}: runs as root"
            assert any(
                m["mountPath"] == "/tmp" and m["name"] in tmp_volumes
                for m in container.get("volumeMounts", [])
            ), f"{where}: /tmp must be a writable emptyDir (the root filesystem is read-only)"


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_containers_set_resource_requests_and_limits(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    for deployment in _of_kind(render(target), "Deployment"):
        for container in _containers(deployment):
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resource in resources.get(bound, {}), (
                        f"{deployment['metadata']['name']}/{container['name']}: "
                        f"resources.{bound}.{resource} is missing"
                    )


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_probes_use_native_grpc_health_on_the_grpc_port(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    expected_service = {"startupProbe": "", "livenessProbe": "", "readinessProbe": "readiness"}
    for deployment in _of_kind(render(target), "Deployment"):
        for container in _containers(deployment):
            where = f"{deployment['metadata']['name']}/{container['name']}"
            grpc_port = _grpc_container_port(container)
            for probe_name, service in expected_service.items():
                probe = container.get(probe_name)
                assert probe is not None, f"{where}: no {probe_name}"
                assert set(probe) & {"grpc", "httpGet", "exec", "tcpSocket"} == {"grpc"}, (
                    f"{where}: {probe_name} must be a native grpc probe"
                )
                assert probe["grpc"]["port"] == grpc_port, f"{where}: {probe_name} port"
                assert probe["grpc"].get("service", "") == service, f"{where}: {probe_name}"


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_termination_grace_covers_prestop_drain_and_shutdown(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    objects = render(target)
    for deployment in _of_kind(objects, "Deployment"):
        name = deployment["metadata"]["name"]
        grace = deployment["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        drain = int(
            _config_value(objects, deployment, "SHUTDOWN_GRACE_SECONDS")
            or DEFAULT_SHUTDOWN_GRACE_SECONDS
        )
        for container in _containers(deployment):
            pre_stop = container.get("lifecycle", {}).get("preStop", {})
            assert "sleep" in pre_stop, f"{name}: preStop must sleep (no shell in the image)"
            sleep = pre_stop["sleep"]["seconds"]
            assert sleep > 0, name
            assert grace >= sleep + drain + MIN_DRAIN_HEADROOM_SECONDS, (
                f"{name}: terminationGracePeriodSeconds {grace} < preStop {sleep} s + drain "
                f"{drain} s + {MIN_DRAIN_HEADROOM_SECONDS} s"
            )
        assert grace >= 30, name


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_deployments_get_the_runtime_configuration(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    objects = render(target)
    for deployment in _of_kind(objects, "Deployment"):
        name = deployment["metadata"]["name"]
        missing = [v for v in REQUIRED_ENV if _config_value(objects, deployment, v) is None]
        assert not missing, f"{name}: env not set: {missing}"
        listen = _config_value(objects, deployment, "GRPC_LISTEN_ADDRESS")
        port = _grpc_container_port(_containers(deployment)[0])
        assert listen == f"0.0.0.0:{port}", f"{name}: listens on {listen}, grpc port is {port}"
        uri = next(e for e in _containers(deployment)[0]["env"] if e["name"] == "MONGODB_URI")
        assert "secretKeyRef" in uri.get("valueFrom", {}), f"{name}: MONGODB_URI must be a Secret"


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_config_maps_and_secrets_referenced_exist_or_are_documented(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    objects = render(target)
    rendered = {(o["kind"], o["metadata"]["name"]) for o in objects}
    documentation = KUBERNETES_DOC.read_text(encoding="utf-8")
    for deployment in _of_kind(objects, "Deployment"):
        for container in _containers(deployment):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in rendered
            for entry in container.get("env", []):
                secret = entry.get("valueFrom", {}).get("secretKeyRef")
                if secret and ("Secret", secret["name"]) not in rendered:
                    assert secret["name"] in EXTERNAL_SECRETS, f"unknown Secret {secret['name']}"
                    assert f"`{secret['name']}`" in documentation, (
                        f"Secret {secret['name']} must be described in docs/kubernetes.md"
                    )


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_images_are_pinned_to_a_tag(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    for deployment in _of_kind(render(target), "Deployment"):
        for container in _containers(deployment):
            image = container["image"]
            name, _, tag = image.rpartition(":")
            pinned = bool(name) and "/" not in tag and tag not in {"", "latest"}
            assert pinned, f"{deployment['metadata']['name']}: image {image} needs a pinned tag"


# --- services and per-Deployment companions ------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_every_service_has_a_grpc_port_that_reaches_its_pods(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    objects = render(target)
    deployments = _of_kind(objects, "Deployment")
    for service in _of_kind(objects, "Service"):
        name = service["metadata"]["name"]
        grpc_ports = [p for p in service["spec"]["ports"] if p.get("name") == "grpc"]
        assert len(grpc_ports) == 1, f"Service {name} needs one port named grpc"
        assert grpc_ports[0]["targetPort"] == "grpc", f"Service {name}: target the named port"
        backing = [d for d in deployments if _selects(service["spec"]["selector"], _pod_labels(d))]
        assert backing, f"Service {name} selects no Deployment's pods"


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_every_deployment_has_services_pdb_hpa_and_network_policy(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    objects = render(target)
    for deployment in _of_kind(objects, "Deployment"):
        name = deployment["metadata"]["name"]
        labels = _pod_labels(deployment)
        assert "replicas" not in deployment["spec"], (
            f"{name}: the HPA owns the replica count; spec.replicas would be reset on apply"
        )

        services = [
            s for s in _of_kind(objects, "Service") if _selects(s["spec"]["selector"], labels)
        ]
        assert any(s["spec"].get("clusterIP") != "None" for s in services), name
        headless = _named(objects, "Service", f"{name}-headless")
        assert headless is not None, f"{name}: needs the headless Service {name}-headless"
        assert headless["spec"].get("clusterIP") == "None", f"{name}-headless is not headless"

        pdbs = [
            p
            for p in _of_kind(objects, "PodDisruptionBudget")
            if _selects(p["spec"]["selector"]["matchLabels"], labels)
        ]
        assert len(pdbs) == 1, f"{name}: needs exactly one PodDisruptionBudget"

        hpas = [
            h
            for h in _of_kind(objects, "HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"]
            == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        ]
        assert len(hpas) == 1, f"{name}: needs exactly one HorizontalPodAutoscaler"
        assert hpas[0]["spec"]["minReplicas"] <= hpas[0]["spec"]["maxReplicas"], name

        policies = [
            p
            for p in _of_kind(objects, "NetworkPolicy")
            if _selects(p["spec"]["podSelector"].get("matchLabels", {}), labels)
        ]
        assert len(policies) == 1, f"{name}: needs exactly one NetworkPolicy"
        policy = policies[0]["spec"]
        assert set(policy["policyTypes"]) == {"Ingress", "Egress"}, name
        for rule in policy["ingress"]:
            assert rule.get("from"), f"{name}: ingress must name its sources"
            assert [p["port"] for p in rule["ports"]] == ["grpc"], f"{name}: ingress on grpc only"
        egress_ports = {p["port"] for rule in policy["egress"] for p in rule.get("ports", [])}
        assert not any("ports" not in rule for rule in policy["egress"]), f"{name}: open egress"
        # DNS, Kafka, MongoDB, OTLP.
        assert {53, 9092, 27017, 4317} <= egress_ports, f"{name}: egress ports {egress_ports}"


# --- overlay specifics ---------------------------------------------------------------------------


def _overlay(name: str) -> RenderTarget:
    return next(t for t in OVERLAYS if t.path.name == name)


def _component(name: str) -> RenderTarget:
    return next(t for t in COMPONENTS if t.path.name == name)


def test_dev_runs_one_small_replica_that_can_be_evicted(
    render: Callable[[RenderTarget], list[Manifest]],
) -> None:
    objects = render(_overlay("dev"))
    for hpa in _of_kind(objects, "HorizontalPodAutoscaler"):
        assert hpa["spec"]["minReplicas"] == 1
    for pdb in _of_kind(objects, "PodDisruptionBudget"):
        # minAvailable with one replica would block every node drain.
        assert pdb["spec"].get("maxUnavailable") == 1
        assert "minAvailable" not in pdb["spec"]


def test_production_runs_three_to_ten_replicas_spread_over_nodes(
    render: Callable[[RenderTarget], list[Manifest]],
) -> None:
    objects = render(_overlay("production"))
    deployments = _of_kind(objects, "Deployment")
    assert deployments
    for hpa in _of_kind(objects, "HorizontalPodAutoscaler"):
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    for pdb in _of_kind(objects, "PodDisruptionBudget"):
        assert pdb["spec"].get("minAvailable") == 2
        assert "maxUnavailable" not in pdb["spec"]
    for deployment in deployments:
        constraints = deployment["spec"]["template"]["spec"].get("topologySpreadConstraints", [])
        keys = {c["topologyKey"] for c in constraints}
        assert {"kubernetes.io/hostname", "topology.kubernetes.io/zone"} <= keys
        for constraint in constraints:
            selector = constraint["labelSelector"].get("matchLabels", {})
            label_keys = constraint.get("matchLabelKeys", [])
            # The spread must count this service's pods only.
            assert _selects(selector, _pod_labels(deployment))
            assert "app.kubernetes.io/name" in {*selector, *label_keys}


def _topics(objects: list[Manifest]) -> dict[str, Manifest]:
    return {t["spec"]["topicName"]: t for t in _of_kind(objects, "KafkaTopic")}


@pytest.mark.parametrize(
    "target",
    [_overlay("production"), _component("strimzi-topics")],
    ids=lambda t: t.id,
)
def test_domain_topics_are_copartitioned_and_have_a_dead_letter_topic(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    topics = _topics(render(target))
    assert "crm.contacts.v1" in topics
    domain = {name: t for name, t in topics.items() if not name.endswith(".dlq")}
    # Same count everywhere: keyed by customer id, one customer's events share a partition number.
    assert {t["spec"]["partitions"] for t in domain.values()} == {TOPIC_PARTITIONS}
    for name in domain:
        assert f"{name}.dlq" in topics, f"{name} has no dead-letter topic"
        assert topics[f"{name}.dlq"]["spec"]["partitions"] == TOPIC_PARTITIONS


def test_production_keeps_kafka_topics_in_the_kafka_clusters_namespace(
    render: Callable[[RenderTarget], list[Manifest]],
) -> None:
    objects = render(_overlay("production"))
    assert {t["metadata"]["namespace"] for t in _of_kind(objects, "KafkaTopic")} == {"kafka"}
    services_namespaces = {
        o["metadata"].get("namespace")
        for o in objects
        if o["kind"] not in {"Namespace", "KafkaTopic"}
    }
    assert services_namespaces == {"crm"}


def test_kustomize_install_is_idempotent(kustomize: Path) -> None:
    result = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)],
        env={**os.environ, "CRM_HOME": str(kustomize.parents[2])},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == str(kustomize)
    assert "go install" not in result.stderr, "a second run must only check, not rebuild"
