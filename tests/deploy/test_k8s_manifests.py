"""The Kubernetes manifests: every overlay and component renders with kustomize, every object
validates against the Kubernetes JSON schemas, and the platform's deployment rules hold
(restricted pods, native gRPC probes, drain timing, a PDB, HPA and NetworkPolicy per Deployment,
bounded Jobs, co-partitioned topics). Every service in SERVICES is checked the same way: its
objects and configuration in every render (loaded by its own settings class), the peers it calls,
its topics, its credential files and its image (the one Dockerfile, built with
`--build-arg SERVICE=<name>`). The components an operator adds to an
overlay (the metrics replay Job for one apply, the gateway's Ingress) are rendered on top of
every overlay too.

No cluster is needed. kustomize is installed by deploy/k8s/install-kustomize.sh (pinned, from the
Go module proxy) when it is missing; if it cannot be installed these tests fail, never skip.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from crm_devstack.services import SERVICES as LOCAL_STACK_SERVICES

# A cold install of kustomize (empty Go caches) takes about 70 s on 2 cores; leave room.
pytestmark = pytest.mark.timeout(900)

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
INSTALL_SCRIPT = K8S_DIR / "install-kustomize.sh"
KUBERNETES_DOC = REPO_ROOT / "docs" / "kubernetes.md"

# The oldest Kubernetes the manifests support (the preStop `sleep` action is on by default from
# 1.30) and a current release; kubernetes-validate ships the schemas of both.
KUBERNETES_VERSIONS = ("1.30", "1.34")


@dataclass(frozen=True)
class ServiceSpec:
    """What the manifests and the image of one service must look like. Object names follow the
    service's name: Deployment, ServiceAccount, Service, PDB, HPA and NetworkPolicy `<name>`,
    Service `<name>-headless`, ConfigMap `<name>-config`, Secret `<name>-mongodb` (a service
    with a database)."""

    name: str
    """Its objects' names and SERVICE_NAME (the same as in crm_devstack.services)."""
    source_dir: str
    """services/<source_dir>, with the pyproject.toml."""
    module: str
    """The image runs `python -m <module>`."""
    settings: str
    """`<module>:<class>` of its settings: every render's configuration must load into it."""
    topics: tuple[str, ...]
    """The Kafka topics it needs (produces, or consumes and dead-letters into), all declared in
    the strimzi-topics component; each domain topic with a `.dlq` topic there."""
    shutdown_headroom_seconds: int
    """terminationGracePeriodSeconds must cover preStop + SHUTDOWN_GRACE_SECONDS + this: the
    bounded stops of its background work after the drain, plus 5 s to close the rest."""
    peers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Env var -> the service it calls: the address names that service's ClusterIP Service
    (`host:port`), or with `balanced_peers` its headless Service (`dns:///host:port`)."""
    balanced_peers: bool = False
    """It balances its calls over the peers' pods itself (gRPC round_robin over the addresses DNS
    returns for their headless Services), rather than one connection through a virtual IP."""
    ports: tuple[str, ...] = ("grpc",)
    """Its named container ports, each set by `<NAME>_LISTEN_ADDRESS`, exposed by its image and
    its ClusterIP Service, and the only ports its NetworkPolicy admits."""
    mongodb: bool = True
    """It has a database: MONGODB_URI from the Secret `<name>-mongodb`, MONGODB_DATABASE, egress
    to MongoDB. Without one it gets none of them."""
    kafka: bool = True
    """It produces or consumes events: KAFKA_BOOTSTRAP_SERVERS and egress to the brokers. Without
    Kafka it gets neither."""
    public: bool = False
    """Its NetworkPolicy admits any pod of the namespace (the public API) and an Ingress may route
    to it; the other services admit only the CRM's own pods and are never exposed."""
    credential_files: Mapping[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    """Env var -> (Secret, key): the variable names a file that a volume of that Secret mounts.
    The Secrets are created by the operator in every overlay (keys are never in git)."""
    extra_env: tuple[str, ...] = ()
    """Further variables every render must set explicitly (no reliance on the code's defaults)."""
    max_replicas: int | None = None
    """A cap on its HPA's maxReplicas in every render, for a consumer group whose replicas share
    the topics' partitions (a replica beyond the partition count gets none)."""
    memory: tuple[str, str] | None = None
    """Its memory (request, limit) in every render, when the service's in-memory state, not the
    environment, sizes it; the overlays resize the others."""

    @property
    def database(self) -> str | None:
        return f"crm_{self.name}" if self.mongodb else None

    @property
    def config_map(self) -> str:
        return f"{self.name}-config"

    @property
    def secret(self) -> str | None:
        return f"{self.name}-mongodb" if self.mongodb else None

    @property
    def required_env(self) -> tuple[str, ...]:
        """What every render must set for it (ConfigMap or `env`)."""
        return (
            *COMMON_ENV,
            *(_listen_address_env(port) for port in self.ports),
            *(MONGODB_ENV if self.mongodb else ()),
            *(KAFKA_ENV if self.kafka else ()),
            *self.peers,
            *self.credential_files,
            *self.extra_env,
        )

    @property
    def image(self) -> str:
        return f"crm/{self.name}"

    @property
    def source(self) -> Path:
        return REPO_ROOT / "services" / self.source_dir


# Env every service reads; each Deployment must set all of them (from the ConfigMap or `env`),
# plus those of its ports, its database and Kafka, its peers' addresses and its credential files
# (ServiceSpec.required_env).
COMMON_ENV = (
    "SERVICE_NAME",
    "OTEL_SERVICE_NAME",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "LOG_LEVEL",
)
MONGODB_ENV = ("MONGODB_URI", "MONGODB_DATABASE")
KAFKA_ENV = ("KAFKA_BOOTSTRAP_SERVERS",)


def _listen_address_env(port_name: str) -> str:
    """The setting that binds the named port: `grpc` -> GRPC_LISTEN_ADDRESS."""
    return f"{port_name.upper()}_LISTEN_ADDRESS"


SERVICES = (
    # Outbox relay: 10 s to publish what is pending + 5 s to close its producer; + 5 s.
    ServiceSpec(
        "contacts",
        "contacts",
        "crm_contacts",
        "crm_contacts.settings:ContactsSettings",
        ("crm.contacts.v1",),
        20,
    ),
    # The relay's 15 s, then the SLA timer worker's batch in hand (10 s); + 5 s.
    ServiceSpec(
        "servicedesk",
        "service-desk",
        "crm_servicedesk",
        "crm_servicedesk.settings:ServiceDeskSettings",
        ("crm.servicedesk.v1",),
        30,
        peers={"CONTACTS_ADDRESS": "contacts"},
    ),
    # The relay's 15 s, then the quote-expiry timer worker's batch in hand (10 s); + 5 s. It
    # calls contacts to convert leads.
    ServiceSpec(
        "sales",
        "sales",
        "crm_sales",
        "crm_sales.settings:SalesSettings",
        ("crm.sales.v1",),
        30,
        peers={"CONTACTS_ADDRESS": "contacts"},
    ),
    # The consumer's checkpoint of its partitions (10 s), then the view refresher's stop (10 s);
    # + 5 s. It consumes both domain topics and dead-letters into their `.dlq` topics.
    ServiceSpec(
        "metrics",
        "metrics",
        "crm_metrics",
        "crm_metrics.settings:MetricsSettings",
        ("crm.contacts.v1", "crm.servicedesk.v1", "crm.contacts.v1.dlq", "crm.servicedesk.v1.dlq"),
        25,
        max_replicas=6,
        memory=("512Mi", "2Gi"),
    ),
    # The public API: gRPC and JSON/HTTP in front of the three others, balanced over their pods.
    # No database, no Kafka; its keys are files from an operator-made Secret. After the drain it
    # only closes its backend channels and flushes telemetry (5 s).
    ServiceSpec(
        "gateway",
        "gateway",
        "crm_gateway",
        "crm_gateway.settings:GatewaySettings",
        (),
        5,
        peers={
            "CONTACTS_ADDRESSES": "contacts",
            "SERVICEDESK_ADDRESSES": "servicedesk",
            "METRICS_ADDRESSES": "metrics",
            "SALES_ADDRESSES": "sales",
        },
        balanced_peers=True,
        ports=("grpc", "http"),
        mongodb=False,
        kafka=False,
        public=True,
        credential_files={
            "JWKS_FILE": ("crm-gateway-credentials", "jwks.json"),
            "API_KEYS_FILE": ("crm-gateway-credentials", "api-keys.json"),
        },
        extra_env=("JWT_ISSUER", "JWT_AUDIENCE", "RATE_LIMIT", "SHUTDOWN_GRACE_SECONDS"),
    ),
)
SERVICE_IDS = [s.name for s in SERVICES]
SERVICES_BY_NAME = {s.name: s for s in SERVICES}

# Secrets the overlays must not need to generate; the dev overlay generates the database ones.
CREDENTIAL_SECRETS = {secret for s in SERVICES for secret, _ in s.credential_files.values()}
# Secrets the manifests reference but do not create (credentials are not kept in git). Each must
# be described in docs/kubernetes.md; a dev overlay may generate the database ones, never the
# credential files (keys), which the operator creates in every namespace.
EXTERNAL_SECRETS = {s.secret for s in SERVICES if s.secret} | CREDENTIAL_SECRETS
DEFAULT_SHUTDOWN_GRACE_SECONDS = 20
MIN_DRAIN_HEADROOM_SECONDS = 20
TOPIC_PARTITIONS = 12
RUN_AS = 10001

Manifest = dict[str, Any]


@dataclass(frozen=True)
class RenderTarget:
    """Something `kustomize build` renders: an overlay, or the base plus one component, or an
    overlay with one more component added to its `components:` (`added`)."""

    kind: str  # "overlay" or "component"
    path: Path
    added: Path | None = None

    @property
    def id(self) -> str:
        added = f"+{self.added.name}" if self.added else ""
        return f"{self.kind}:{self.path.name}{added}"


def _kustomization_dirs(parent: Path) -> list[Path]:
    return sorted(p.parent for p in parent.glob("*/kustomization.yaml"))


BASE = RenderTarget("base", K8S_DIR / "base")
OVERLAYS = [RenderTarget("overlay", p) for p in _kustomization_dirs(K8S_DIR / "overlays")]
COMPONENTS = [RenderTarget("component", p) for p in _kustomization_dirs(K8S_DIR / "components")]
# Components no overlay lists, which docs/kubernetes.md has the operator add to an overlay (the
# metrics replay for one apply, the gateway's Ingress for good): each is also rendered inside
# every overlay, where the overlay's namespace, images and generated names apply to it.
ADDED_TO_AN_OVERLAY = ("metrics-replay", "gateway-ingress")
OVERLAYS_WITH_ADDED = [
    RenderTarget("overlay", overlay.path, added=K8S_DIR / "components" / name)
    for overlay in OVERLAYS
    for name in ADDED_TO_AN_OVERLAY
]
TARGETS = OVERLAYS + COMPONENTS + OVERLAYS_WITH_ADDED
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
        if target.added is not None:
            build_dir = _overlay_with_component(target, tmp_path_factory)
        elif target.kind in {"base", "overlay"}:
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


def _overlay_with_component(target: RenderTarget, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of the overlay with `target.added` appended to its `components:`, as the
    operator does for one apply (the repository's overlay stays untouched). Its files come along;
    the folders it refers to (base, components) are re-pointed from the copy, by relative paths."""
    assert target.added is not None
    build_dir = tmp_path_factory.mktemp(f"overlay-{target.path.name}-{target.added.name}")
    shutil.copytree(target.path, build_dir, dirs_exist_ok=True)
    kustomization_file = build_dir / "kustomization.yaml"
    kustomization = yaml.safe_load(kustomization_file.read_text(encoding="utf-8"))

    def repoint(entry: str) -> str:
        source = (target.path / entry).resolve()
        return os.path.relpath(source, build_dir) if source.is_dir() else entry

    for key in ("resources", "components"):
        kustomization[key] = [repoint(e) for e in kustomization.get(key, [])]
    kustomization["components"].append(os.path.relpath(target.added, build_dir))
    kustomization_file.write_text(yaml.safe_dump(kustomization, sort_keys=False), encoding="utf-8")
    return build_dir


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


def _spec_of(deployment: Manifest) -> ServiceSpec:
    name = deployment["metadata"]["name"]
    spec = next((s for s in SERVICES if s.name == name), None)
    assert spec is not None, f"Deployment {name} is not a service in SERVICES: add it there"
    return spec


def _deployment_of(objects: list[Manifest], service: ServiceSpec) -> Manifest:
    deployment = _named(objects, "Deployment", service.name)
    assert deployment is not None, f"no Deployment {service.name}"
    return deployment


def _is_generated_from(name: str, base_name: str) -> bool:
    """`name` is `base_name`, or kustomize's generated `<base_name>-<hash>`."""
    return re.fullmatch(rf"{re.escape(base_name)}(-[a-z0-9]{{10}})?", name) is not None


def _container_port(container: Manifest, name: str) -> int:
    ports = [p for p in container.get("ports", []) if p.get("name") == name]
    assert len(ports) == 1, f"container {container['name']} needs exactly one port named {name}"
    port: int = ports[0]["containerPort"]
    return port


def _grpc_container_port(container: Manifest) -> int:
    return _container_port(container, "grpc")


def _env_of(objects: list[Manifest], deployment: Manifest) -> dict[str, str]:
    """The environment of a Deployment's first container as the process sees it: the ConfigMaps
    of `envFrom`, overridden by `env`; a value from a Secret or the downward API is a
    placeholder (`<from valueFrom>`)."""
    names = {
        *(e["name"] for e in _containers(deployment)[0].get("env", [])),
        *(
            key
            for source in _containers(deployment)[0].get("envFrom", [])
            if "configMapRef" in source
            for key in (
                _named(objects, "ConfigMap", source["configMapRef"]["name"]) or {"data": {}}
            ).get("data", {})
        ),
    }
    env = {name: _config_value(objects, deployment, name) for name in names}
    return {name: value for name, value in env.items() if value is not None}


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
    assert {t.path.name for t in COMPONENTS} >= {"strimzi-topics", *ADDED_TO_AN_OVERLAY}


# --- pods ----------------------------------------------------------------------------------------


def _workloads(objects: list[Manifest]) -> list[Manifest]:
    """The objects that run pods: Deployments and Jobs."""
    return [o for o in objects if o["kind"] in {"Deployment", "Job"}]


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_deployments_and_jobs_run_restricted_non_root_pods(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    objects = render(target)
    assert _of_kind(objects, "Deployment")
    for workload in _workloads(objects):
        name = f"{workload['kind']} {workload['metadata']['name']}"
        pod = workload["spec"]["template"]["spec"]
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
    for workload in _workloads(render(target)):
        for container in _containers(workload):
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resource in resources.get(bound, {}), (
                        f"{workload['kind']} {workload['metadata']['name']}/{container['name']}: "
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
        headroom = max(MIN_DRAIN_HEADROOM_SECONDS, _spec_of(deployment).shutdown_headroom_seconds)
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
            assert grace >= sleep + drain + headroom, (
                f"{name}: terminationGracePeriodSeconds {grace} < preStop {sleep} s + drain "
                f"{drain} s + {headroom} s"
            )
        assert grace >= 30, name


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_deployments_get_the_runtime_configuration(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    objects = render(target)
    for deployment in _of_kind(objects, "Deployment"):
        name = deployment["metadata"]["name"]
        service = _spec_of(deployment)
        missing = [v for v in service.required_env if _config_value(objects, deployment, v) is None]
        assert not missing, f"{name}: env not set: {missing}"
        container = _containers(deployment)[0]
        assert [p["name"] for p in container["ports"]] == list(service.ports), name
        for port_name in service.ports:
            variable = _listen_address_env(port_name)
            listen = _config_value(objects, deployment, variable)
            port = _container_port(container, port_name)
            assert listen == f"0.0.0.0:{port}", (
                f"{name}: {variable}={listen}, the {port_name} container port is {port}"
            )
        if service.mongodb:
            uri = next(e for e in container["env"] if e["name"] == "MONGODB_URI")
            assert "secretKeyRef" in uri.get("valueFrom", {}), (
                f"{name}: MONGODB_URI must be a Secret"
            )
        # What a service does not use it does not get (least privilege, no misleading settings).
        unused = (*(() if service.mongodb else MONGODB_ENV), *(() if service.kafka else KAFKA_ENV))
        given = [v for v in unused if _config_value(objects, deployment, v) is not None]
        assert not given, f"{name}: has no database or Kafka, but gets {given}"


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_every_services_configuration_loads_into_its_settings(
    render: Callable[[RenderTarget], list[Manifest]],
    target: RenderTarget,
    service: ServiceSpec,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The settings class validates what the pods get (ranges, patterns, rate-limit syntax...),
    as at start-up; and each variable of its ConfigMap is one the service reads (or a standard
    OTEL_* one), so that a misspelt name cannot be silently ignored."""
    module_name, _, class_name = service.settings.partition(":")
    # Imported here: only this test needs the services' packages.
    settings_class = getattr(importlib.import_module(module_name), class_name)
    fields = {name.upper() for name in settings_class.model_fields}

    objects = render(target)
    deployment = _deployment_of(objects, service)
    env = _env_of(objects, deployment)
    placeholders = {"MONGODB_URI": "mongodb://placeholder.invalid:27017/?replicaSet=rs0"}
    for name in fields:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, placeholders.get(name, value))
    settings_class()

    config_map = next(
        s["configMapRef"]["name"]
        for s in _containers(deployment)[0]["envFrom"]
        if "configMapRef" in s
    )
    keys = set((_named(objects, "ConfigMap", config_map) or {}).get("data", {}))
    unknown = sorted(k for k in keys if k not in fields and not k.startswith("OTEL_"))
    assert not unknown, f"{service.name}: {config_map} sets what the service never reads: {unknown}"


@pytest.mark.parametrize(
    "service", [s for s in SERVICES if s.credential_files], ids=lambda s: s.name
)
@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_credential_files_are_mounted_read_only_from_their_secret(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget, service: ServiceSpec
) -> None:
    """Each credential variable names a file that a read-only volume of its Secret provides,
    under that key; the volume is not optional, so a missing Secret or key stops the pod from
    starting rather than letting it serve without its keys."""
    objects = render(target)
    deployment = _deployment_of(objects, service)
    container = _containers(deployment)[0]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"].get("volumes", [])}
    for variable, (secret_name, key) in service.credential_files.items():
        path = PurePosixPath(_config_value(objects, deployment, variable) or "")
        assert path.is_absolute(), f"{service.name}: {variable}={path} is not an absolute path"
        mounts = [
            m for m in container.get("volumeMounts", []) if m["mountPath"] == str(path.parent)
        ]
        assert len(mounts) == 1, f"{service.name}: nothing is mounted at {path.parent}"
        mount = mounts[0]
        assert mount.get("readOnly") is True, f"{service.name}: {path.parent} must be read-only"
        assert "subPath" not in mount, f"{service.name}: subPath mounts never see a changed Secret"
        source = volumes[mount["name"]].get("secret")
        assert source is not None, f"{service.name}: {path.parent} is not a Secret volume"
        assert source["secretName"] == secret_name, source
        assert source.get("optional", False) is False, f"{service.name}: {secret_name} optional"
        items = {i["key"]: i["path"] for i in source.get("items", [])} or {key: key}
        assert items.get(key) == path.name, f"{service.name}: {variable}: key {key} -> {items}"
        mode = source.get("defaultMode", 0o644)
        assert mode & 0o007 == 0, f"{service.name}: {secret_name} files readable by others"


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_config_maps_and_secrets_referenced_exist_or_are_documented(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    objects = render(target)
    rendered = {(o["kind"], o["metadata"]["name"]) for o in objects}
    documentation = KUBERNETES_DOC.read_text(encoding="utf-8")
    for workload in _workloads(objects):
        for container in _containers(workload):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in rendered
        for secret in _secrets_used(workload):
            if ("Secret", secret) not in rendered:
                assert secret in EXTERNAL_SECRETS, f"unknown Secret {secret}"
                assert f"`{secret}`" in documentation, (
                    f"Secret {secret} must be described in docs/kubernetes.md"
                )


def _secrets_used(workload: Manifest) -> set[str]:
    """The Secrets a workload's pods read: env `secretKeyRef`s and Secret volumes."""
    pod = workload["spec"]["template"]["spec"]
    names = {
        entry["valueFrom"]["secretKeyRef"]["name"]
        for container in pod["containers"]
        for entry in container.get("env", [])
        if "secretKeyRef" in entry.get("valueFrom", {})
    }
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            names.add(volume["secret"]["secretName"])
        for projected in volume.get("projected", {}).get("sources", []):
            if "secret" in projected:
                names.add(projected["secret"]["name"])
    return names


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_images_are_pinned_to_a_tag(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    for workload in _workloads(render(target)):
        for container in _containers(workload):
            image = container["image"]
            name, _, tag = image.rpartition(":")
            pinned = bool(name) and "/" not in tag and tag not in {"", "latest"}
            assert pinned, f"{workload['metadata']['name']}: image {image} needs a pinned tag"


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
        backing = [d for d in deployments if _selects(service["spec"]["selector"], _pod_labels(d))]
        assert backing, f"Service {name} selects no Deployment's pods"
        # Every port targets the container port of the same name (a number would go stale).
        for port in service["spec"]["ports"]:
            assert port["targetPort"] == port["name"], f"Service {name}: target the named port"
            for deployment in backing:
                _container_port(_containers(deployment)[0], port["name"])


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_every_service_port_is_on_its_cluster_ip_service(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget, service: ServiceSpec
) -> None:
    objects = render(target)
    cluster_ip = _named(objects, "Service", service.name)
    assert cluster_ip is not None, service.name
    assert [p["name"] for p in cluster_ip["spec"]["ports"]] == list(service.ports)


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
        spec = _spec_of(deployment)
        for rule in policy["ingress"]:
            assert rule.get("from"), f"{name}: ingress must name its sources"
            ports = [p["port"] for p in rule["ports"]]
            assert ports, f"{name}: ingress on every port"
            assert set(ports) <= set(spec.ports), f"{name}: ingress on its named ports only"
        egress_ports = {p["port"] for rule in policy["egress"] for p in rule.get("ports", [])}
        assert not any("ports" not in rule for rule in policy["egress"]), f"{name}: open egress"
        # DNS and OTLP; Kafka and MongoDB for the services that use them, and only for those.
        kafka, mongodb = {9092, 9093}, {27017}
        needed = (
            {53, 4317} | ({9092} if spec.kafka else set()) | (mongodb if spec.mongodb else set())
        )
        assert needed <= egress_ports, f"{name}: egress ports {egress_ports}"
        unneeded = (set() if spec.kafka else kafka) | (set() if spec.mongodb else mongodb)
        assert not unneeded & egress_ports, f"{name}: egress to {unneeded & egress_ports}"


def _is_crm_pods_only(peer: Manifest) -> bool:
    """An ingress source that is the CRM's own pods in the policy's namespace (all of them, by
    app.kubernetes.io/part-of, or one service's, by app.kubernetes.io/name)."""
    labels = peer.get("podSelector", {}).get("matchLabels", {})
    return (
        set(peer) == {"podSelector"}
        and not peer["podSelector"].get("matchExpressions")
        and (
            labels.get("app.kubernetes.io/part-of") == "crm"
            or labels.get("app.kubernetes.io/name") in SERVICE_IDS
        )
    )


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_only_the_public_service_is_open_to_the_namespace(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget, service: ServiceSpec
) -> None:
    """The gateway admits any pod of its namespace on all its ports; the services behind it admit
    only the CRM's own pods (the gateway and their peers), so the namespace's other pods reach
    them only through the gateway's authentication."""
    policy = _named(render(target), "NetworkPolicy", service.name)
    assert policy is not None, service.name
    rules = policy["spec"]["ingress"]
    if service.public:
        assert any(
            {"podSelector": {}} in rule["from"]
            and {p["port"] for p in rule["ports"]} == set(service.ports)
            for rule in rules
        ), f"{service.name}: no ingress from every pod of the namespace on {service.ports}"
    else:
        for rule in rules:
            for peer in rule["from"]:
                assert _is_crm_pods_only(peer), f"{service.name}: ingress from {peer}"


# --- each service --------------------------------------------------------------------------------


def test_the_local_stack_and_the_manifests_know_the_same_services() -> None:
    """crm_devstack.services lists what runs locally; every service there is deployed here, with
    the same module, topics and peers."""

    def shape(module: str, topics: tuple[str, ...], peers: Mapping[str, str]) -> Any:
        return module, sorted(topics), dict(peers)

    local = {s.name: shape(s.module, s.topics, dict(s.peers)) for s in LOCAL_STACK_SERVICES}
    deployed = {s.name: shape(s.module, s.topics, s.peers) for s in SERVICES}
    assert deployed == local


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_every_render_deploys_exactly_the_services(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    deployed = sorted(d["metadata"]["name"] for d in _of_kind(render(target), "Deployment"))
    assert deployed == sorted(SERVICE_IDS)


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_every_service_has_its_objects_under_its_own_name(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget, service: ServiceSpec
) -> None:
    objects = render(target)
    name = service.name
    deployment = _deployment_of(objects, service)
    assert deployment["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": name}
    labels = _pod_labels(deployment)
    assert labels.get("app.kubernetes.io/name") == name
    # Peer services' NetworkPolicies admit the CRM's pods by this label.
    assert labels.get("app.kubernetes.io/part-of") == "crm", name
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == name
    assert [c["name"] for c in pod["containers"]] == [name]
    for kind, object_name in (
        ("ServiceAccount", name),
        ("Service", name),
        ("Service", f"{name}-headless"),
        ("PodDisruptionBudget", name),
        ("HorizontalPodAutoscaler", name),
        ("NetworkPolicy", name),
    ):
        assert _named(objects, kind, object_name) is not None, f"{name}: no {kind} {object_name}"


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_every_service_gets_its_own_name_database_secret_and_image(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget, service: ServiceSpec
) -> None:
    objects = render(target)
    deployment = _deployment_of(objects, service)
    container = _containers(deployment)[0]
    expected = {
        "SERVICE_NAME": service.name,
        "MONGODB_DATABASE": service.database,
        "OTEL_SERVICE_NAME": f"crm-{service.name}",
    }
    assert {k: _config_value(objects, deployment, k) for k in expected} == expected
    attributes = _config_value(objects, deployment, "OTEL_RESOURCE_ATTRIBUTES") or ""
    assert f"k8s.container.name={service.name}" in attributes.split(","), attributes

    config_maps = [s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s]
    assert len(config_maps) == 1, f"{service.name}: one ConfigMap, {service.config_map}"
    assert _is_generated_from(config_maps[0], service.config_map), config_maps[0]
    if service.secret is not None:
        uri = next(e for e in container["env"] if e["name"] == "MONGODB_URI")
        secret = uri["valueFrom"]["secretKeyRef"]
        assert _is_generated_from(secret["name"], service.secret), secret
        assert secret["key"] == "uri", secret
    # Its database's Secret and its credential files' Secrets, none of another service's.
    used = _secrets_used(deployment)
    own = {n for n in used if service.secret and _is_generated_from(n, service.secret)}
    credential_secrets = {secret for secret, _ in service.credential_files.values()}
    assert used - own == credential_secrets, f"{service.name}: reads the Secrets {sorted(used)}"

    repository, _, _ = container["image"].rpartition(":")
    assert repository == service.image, container["image"]


def _rule_admits(rule: Manifest, direction: str, pod_labels: dict[str, str], port: int) -> bool:
    """A NetworkPolicy rule lets TCP on `port` (by number or as the named port `grpc`) through
    to (`direction="to"`) or from (`"from"`) the pods labelled `pod_labels` in the namespace of
    the policy."""
    peers = rule.get(direction)
    peer_ok = not peers or any(
        set(peer) == {"podSelector"}
        and _selects(peer["podSelector"].get("matchLabels", {}), pod_labels)
        for peer in peers
    )
    ports = rule.get("ports")
    port_ok = not ports or any(
        p.get("port") in {port, "grpc"} and p.get("protocol", "TCP") == "TCP" for p in ports
    )
    return peer_ok and port_ok


PEER_CALLS = [(caller, env, callee) for caller in SERVICES for env, callee in caller.peers.items()]
PEER_CALL_IDS = [f"{caller.name}-{env}" for caller, env, _ in PEER_CALLS]


@pytest.mark.parametrize("call", PEER_CALLS, ids=PEER_CALL_IDS)
@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_peer_addresses_name_the_peers_service_and_the_network_policies_let_the_calls_through(
    render: Callable[[RenderTarget], list[Manifest]],
    target: RenderTarget,
    call: tuple[ServiceSpec, str, str],
) -> None:
    caller, env, callee_name = call
    objects = render(target)
    deployment = _deployment_of(objects, caller)
    callee = _named(objects, "Deployment", callee_name)
    assert callee is not None, f"{caller.name} calls {callee_name}, which is not deployed"

    # host:port of the callee's ClusterIP Service, by its name in the caller's own namespace; or
    # for a caller that balances over the callee's pods, the gRPC target dns:///host:port of its
    # headless Service (DNS returns every ready pod's address).
    address = _config_value(objects, deployment, env) or ""
    service_name = f"{callee_name}-headless" if caller.balanced_peers else callee_name
    if caller.balanced_peers:
        assert address.startswith("dns:///"), f"{caller.name}: {env}={address!r} not dns:///"
        address = address.removeprefix("dns:///")
    assert "," not in address, f"{caller.name}: {env}={address!r}: one address"
    host, colon, port = address.rpartition(":")
    assert colon, f"{caller.name}: {env}={address!r} is not host:port"
    assert port.isdigit(), f"{caller.name}: {env}={address!r} is not host:port"
    namespace = deployment["metadata"].get("namespace")
    hosts = {service_name}
    if namespace:
        qualified = f"{service_name}.{namespace}"
        hosts |= {qualified, f"{qualified}.svc", f"{qualified}.svc.cluster.local"}
    assert host in hosts, f"{caller.name}: {env}={address!r} must name the Service {service_name}"
    service = _named(objects, "Service", service_name)
    assert service is not None, f"no Service {service_name}"
    headless = service["spec"].get("clusterIP") == "None"
    assert headless == caller.balanced_peers, f"Service {service_name}: headless is {headless}"
    assert _selects(service["spec"]["selector"], _pod_labels(callee))
    service_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert int(port) == service_port["port"], f"{caller.name}: {env} port != {callee_name}'s"
    if headless:
        # DNS of a headless Service gives pod addresses: nothing translates the port on the way.
        callee_grpc = _grpc_container_port(_containers(callee)[0])
        assert int(port) == callee_grpc, f"{caller.name}: {env} port != the pods' {callee_grpc}"

    # Policies see the pod address after the Service's translation: the caller's egress must
    # reach the callee's pods on their container port, and the callee's ingress admit the caller.
    callee_port = _grpc_container_port(_containers(callee)[0])
    egress = _named(objects, "NetworkPolicy", caller.name)
    ingress = _named(objects, "NetworkPolicy", callee_name)
    assert egress is not None, caller.name
    assert ingress is not None, callee_name
    assert any(
        _rule_admits(rule, "to", _pod_labels(callee), callee_port)
        for rule in egress["spec"]["egress"]
    ), f"NetworkPolicy {caller.name}: no egress to {callee_name}'s pods on {callee_port}"
    assert any(
        _rule_admits(rule, "from", _pod_labels(deployment), callee_port)
        for rule in ingress["spec"]["ingress"]
    ), f"NetworkPolicy {callee_name}: no ingress from {caller.name}'s pods on {callee_port}"


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_consumer_groups_scale_no_further_than_their_cap(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    objects = render(target)
    for service in SERVICES:
        if service.max_replicas is None:
            continue
        assert service.max_replicas <= TOPIC_PARTITIONS, f"{service.name}: idle replicas"
        hpa = _named(objects, "HorizontalPodAutoscaler", service.name)
        assert hpa is not None, service.name
        assert hpa["spec"]["maxReplicas"] <= service.max_replicas, (
            f"{service.name}: maxReplicas {hpa['spec']['maxReplicas']} > {service.max_replicas}"
        )


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_services_sized_by_their_state_keep_their_memory(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    objects = render(target)
    for service in SERVICES:
        if service.memory is None:
            continue
        resources = _containers(_deployment_of(objects, service))[0]["resources"]
        memory = (resources["requests"]["memory"], resources["limits"]["memory"])
        assert memory == service.memory, f"{service.name}: memory (request, limit) {memory}"


# --- jobs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_jobs_are_bounded_run_a_services_image_and_get_none_of_its_traffic(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    """A Job retries in place a bounded number of times within a deadline and is deleted some
    time after it ends; it runs the image of a deployed service; its pods carry a name of their
    own, so that no Service (no calls) or PDB of a service selects them, and have exactly one
    NetworkPolicy (pods pass the restricted-pod, resources and config checks above too)."""
    objects = render(target)
    images = {c["image"] for d in _of_kind(objects, "Deployment") for c in _containers(d)}
    for job in _of_kind(objects, "Job"):
        name = job["metadata"]["name"]
        spec = job["spec"]
        assert spec["template"]["spec"].get("restartPolicy") == "OnFailure", name
        assert isinstance(spec.get("backoffLimit"), int), f"{name}: no backoffLimit"
        for field in ("activeDeadlineSeconds", "ttlSecondsAfterFinished"):
            value = spec.get(field)
            assert isinstance(value, int), f"{name}: no {field}"
            assert value > 0, f"{name}: {field}"
        for container in _containers(job):
            assert container["image"] in images, f"{name}: {container['image']} is no service's"

        labels = _pod_labels(job)
        assert labels.get("app.kubernetes.io/name") not in SERVICE_IDS, name
        for service in _of_kind(objects, "Service"):
            assert not _selects(service["spec"].get("selector", {}), labels), (
                f"Service {service['metadata']['name']} sends calls to Job {name}'s pods"
            )
        for pdb in _of_kind(objects, "PodDisruptionBudget"):
            assert not _selects(pdb["spec"]["selector"].get("matchLabels", {}), labels), (
                f"PodDisruptionBudget {pdb['metadata']['name']} counts Job {name}'s pods"
            )
        policies = [
            p
            for p in _of_kind(objects, "NetworkPolicy")
            if _selects(p["spec"]["podSelector"].get("matchLabels", {}), labels)
        ]
        assert len(policies) == 1, f"Job {name}: needs exactly one NetworkPolicy"
        policy = policies[0]["spec"]
        assert set(policy["policyTypes"]) == {"Ingress", "Egress"}, name
        assert all(rule.get("from") for rule in policy.get("ingress", [])), name
        assert not any("ports" not in rule for rule in policy["egress"]), f"{name}: open egress"


REPLAY_TARGETS = [
    t for t in TARGETS if "metrics-replay" in {t.path.name, t.added.name if t.added else ""}
]
# MetricsSettings.namespace.
METRICS_NAMESPACE = re.compile(r"[a-z0-9_-]{1,64}")


@pytest.mark.parametrize("target", REPLAY_TARGETS, ids=[t.id for t in REPLAY_TARGETS])
def test_the_metrics_replay_job_runs_the_live_services_image_and_settings(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    # Imported here: only this test needs the metrics package.
    from crm_metrics.domain.catalog import Definitions

    objects = render(target)
    job = _named(objects, "Job", "metrics-replay")
    assert job is not None, f"{target.id}: no Job metrics-replay"
    service = SERVICES_BY_NAME["metrics"]
    live = _deployment_of(objects, service)
    assert job["metadata"].get("namespace") == live["metadata"].get("namespace")
    # One member in its consumer group: it finishes when it has checkpointed every partition.
    assert (job["spec"].get("parallelism"), job["spec"].get("completions")) == (1, 1)

    pod, live_pod = job["spec"]["template"]["spec"], live["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == live_pod["serviceAccountName"]
    [container], [live_container] = pod["containers"], live_pod["containers"]
    assert container["image"] == live_container["image"]
    assert container["envFrom"] == live_container["envFrom"], "the live service's ConfigMap"

    def mongodb_uri(c: Manifest) -> Manifest:
        entry: Manifest = next(e for e in c["env"] if e["name"] == "MONGODB_URI")
        return entry

    assert mongodb_uri(container) == mongodb_uri(live_container), "the live service's Secret"

    # `crm-metrics replay --namespace <ns> --definitions <versions>`, the package's console script.
    package = tomllib.loads(
        (REPO_ROOT / "services" / service.source_dir / "pyproject.toml").read_text(encoding="utf-8")
    )
    command = [*container.get("command", []), *container.get("args", [])]
    assert command[0] in package["project"]["scripts"], command
    assert command[1] == "replay", command
    options = dict(zip(command[2::2], command[3::2], strict=True))
    assert set(options) <= {"--namespace", "--definitions", "--from"}, command
    namespace = options.get("--namespace", "")
    assert METRICS_NAMESPACE.fullmatch(namespace), f"--namespace {namespace!r}"
    assert namespace != "live", "a replay writes into a namespace of its own"
    definitions = [d.strip() for d in options.get("--definitions", "").split(",") if d.strip()]
    assert definitions, "--definitions: the versions the replay computes with"
    Definitions.parse(definitions)


# --- ingress -------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_only_the_public_service_is_exposed_and_only_over_tls(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    """Every Ingress serves its hosts over TLS and routes to a named port of the ClusterIP
    Service of a public service (the gateway), whose NetworkPolicy admits a source outside the
    namespace (the ingress controller's pods) on that port."""
    objects = render(target)
    for ingress in _of_kind(objects, "Ingress"):
        name = ingress["metadata"]["name"]
        spec = ingress["spec"]
        assert "defaultBackend" not in spec, f"Ingress {name}: route by host and path only"
        tls_hosts = {h for tls in spec.get("tls", []) for h in tls.get("hosts", [])}
        assert all(tls.get("secretName") for tls in spec.get("tls", [])), name
        for rule in spec["rules"]:
            assert rule.get("host") in tls_hosts, f"Ingress {name}: {rule.get('host')} not TLS"
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = _named(objects, "Service", backend["name"])
                assert service is not None, f"Ingress {name}: no Service {backend['name']}"
                assert service["spec"].get("clusterIP") != "None", f"Ingress {name}: headless"
                assert "name" in backend["port"], f"Ingress {name}: use the Service's port name"
                port = next(
                    (p for p in service["spec"]["ports"] if p["name"] == backend["port"]["name"]),
                    None,
                )
                assert port is not None, f"Ingress {name}: {backend} is no port of the Service"
                deployments = [
                    d
                    for d in _of_kind(objects, "Deployment")
                    if _selects(service["spec"]["selector"], _pod_labels(d))
                ]
                assert deployments, f"Ingress {name}: Service {backend['name']} selects no pods"
                for deployment in deployments:
                    assert _spec_of(deployment).public, f"Ingress {name} exposes a backend"
                    policy = _named(objects, "NetworkPolicy", deployment["metadata"]["name"])
                    assert policy is not None, name
                    assert any(
                        any("namespaceSelector" in peer for peer in r["from"])
                        and port["targetPort"] in {p["port"] for p in r["ports"]}
                        for r in policy["spec"]["ingress"]
                    ), f"Ingress {name}: the controller may not reach {port['targetPort']}"


INGRESS_TARGETS = [
    t for t in TARGETS if "gateway-ingress" in {t.path.name, t.added.name if t.added else ""}
]


@pytest.mark.parametrize("target", INGRESS_TARGETS, ids=[t.id for t in INGRESS_TARGETS])
def test_the_gateway_ingress_exposes_both_apis(
    render: Callable[[RenderTarget], list[Manifest]], target: RenderTarget
) -> None:
    objects = render(target)
    ingresses = _of_kind(objects, "Ingress")
    routed = {
        path["backend"]["service"]["port"]["name"]
        for ingress in ingresses
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
        if path["backend"]["service"]["name"] == "gateway"
    }
    assert routed == set(SERVICES_BY_NAME["gateway"].ports), routed
    gateway = _deployment_of(objects, SERVICES_BY_NAME["gateway"])
    assert all(
        i["metadata"].get("namespace") == gateway["metadata"].get("namespace") for i in ingresses
    ), "the Ingresses must be in the gateway's namespace"


# --- container images ----------------------------------------------------------------------------


DOCKERFILE = REPO_ROOT / "Dockerfile"
"""The image of every service: `docker build --build-arg SERVICE=<name> .`"""


def _dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction; continuation lines joined, comments (and the
    `# syntax=` directive) dropped."""
    instructions = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending = f"{pending} {stripped}" if pending else stripped
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, arguments = pending.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def _stages(instructions: list[tuple[str, str]]) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(base, alias, instructions) of each build stage, in order (alias "" when unnamed)."""
    stages: list[tuple[str, str, list[tuple[str, str]]]] = []
    for instruction, arguments in instructions:
        if instruction == "FROM":
            words = arguments.split()
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append((words[0], alias, []))
        elif stages:
            stages[-1][2].append((instruction, arguments))
    return stages


def _image_of(service: ServiceSpec) -> list[tuple[str, str]]:
    """The instructions that make `service`'s image, `${SERVICE}` replaced by its name: the
    stages the final one builds on, following `FROM <stage>` back to the pinned base image."""
    instructions = [(i, a.replace("${SERVICE}", service.name)) for i, a in _dockerfile(DOCKERFILE)]
    stages = _stages(instructions)
    by_alias = {alias: (base, body) for base, alias, body in stages if alias}
    base, _, body = stages[-1]
    chain = [body]
    while base in by_alias:
        base, body = by_alias[base]
        chain.append(body)
    assert base == "${PYTHON_IMAGE}", f"{service.name}: the image builds on {base}"
    return [instruction for body in reversed(chain) for instruction in body]


def _dockerfile_assignments(instructions: list[tuple[str, str]], keyword: str) -> dict[str, str]:
    """The NAME=value pairs of every ARG or ENV instruction (`keyword`)."""
    values: dict[str, str] = {}
    for instruction, arguments in instructions:
        if instruction == keyword:
            for token in shlex.split(arguments):
                name, _, value = token.partition("=")
                values[name] = value
    return values


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_every_service_image_runs_its_module_as_the_pods_user_on_its_ports(
    render: Callable[[RenderTarget], list[Manifest]], service: ServiceSpec
) -> None:
    assert DOCKERFILE.is_file(), f"no {DOCKERFILE}"
    runtime = _image_of(service)
    build = [
        (i, a.replace("${SERVICE}", service.name))
        for base, alias, body in _stages(_dockerfile(DOCKERFILE))
        if alias == "build"
        for i, a in body
    ]
    source = service.source
    package = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))
    assert (source / "src" / service.module / "__main__.py").is_file(), service.module

    entrypoints = [json.loads(a) for i, a in runtime if i == "ENTRYPOINT"]
    assert entrypoints == [["python", "-m", service.module]], entrypoints
    syncs = [a for i, a in build if i == "RUN" and " uv sync " in f" {a} "]
    assert len(syncs) == 1, f"{service.name}: one `uv sync` in the build stage"
    assert {"--frozen", "--no-dev", "--no-editable"} <= set(syncs[0].split()), syncs[0]
    assert re.findall(r"--package\s+(\S+)", syncs[0]) == [package["project"]["name"]]
    copied = [a for i, a in runtime if i == "COPY"]
    assert copied == ["--from=build /app/.venv /app/.venv"], copied

    deployment = _deployment_of(render(BASE), service)
    container = _containers(deployment)[0]
    ports = {name: _container_port(container, name) for name in service.ports}
    exposed = [p for i, a in runtime if i == "EXPOSE" for p in a.split()]
    assert exposed == [str(p) for p in ports.values()], exposed
    env = _dockerfile_assignments(runtime, "ENV")
    for name, port in ports.items():
        assert env.get(_listen_address_env(name)) == f"0.0.0.0:{port}", env
    pod_security = deployment["spec"]["template"]["spec"]["securityContext"]
    assert (pod_security["runAsUser"], pod_security["runAsGroup"]) == (RUN_AS, RUN_AS)
    # Numeric, so that runAsNonRoot can verify it; the last USER is the one that runs.
    users = [a for i, a in runtime if i == "USER"]
    assert users, f"{service.name}: no USER (it would run as root)"
    assert users[-1] == f"{RUN_AS}:{RUN_AS}", users


def test_one_dockerfile_builds_every_service_and_no_other() -> None:
    """One Dockerfile: a `runtime-<name>` stage for each service of SERVICES and none else, and
    no service folder with a Dockerfile of its own."""
    aliases = {alias for _, alias, _ in _stages(_dockerfile(DOCKERFILE))}
    runtimes = {alias.removeprefix("runtime-") for alias in aliases if alias.startswith("runtime-")}
    assert runtimes == {service.name for service in SERVICES}, runtimes
    assert not sorted((REPO_ROOT / "services").glob("*/Dockerfile"))


def test_service_images_share_the_pinned_base_image_and_uv() -> None:
    """One workspace, one interpreter: every image builds on the same pinned base image, with
    the uv the Makefile pins."""
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    pinned_uv = re.search(r"^UV_VERSION\s*:=\s*(\S+)", makefile, re.MULTILINE)
    assert pinned_uv is not None, "Makefile: UV_VERSION"
    instructions = _dockerfile(DOCKERFILE)
    args = _dockerfile_assignments(instructions, "ARG")
    base_image = args.get("PYTHON_IMAGE", "")
    name, _, tag = base_image.rpartition(":")
    assert name, f"base image {base_image!r} has no tag"
    assert tag not in {"", "latest"}, f"base image {base_image!r} is not pinned"
    assert args.get("UV_VERSION") == pinned_uv.group(1), "uv version"
    stages = _stages(instructions)
    assert stages, "no FROM"
    aliases = {alias for _, alias, _ in stages if alias}
    # Python stages build on the pinned base (or on an earlier stage); a stage fetching
    # front-end assets with npm (the gateway's dashboard) may use a pinned Node image, never a
    # floating one.
    external = {base for base, _, _ in stages if base.split("-${")[0] not in aliases}
    python = {base for base in external if not base.startswith("node:")}
    assert python == {"${PYTHON_IMAGE}"}, f"FROM {sorted(external)}"
    for base in external - python:
        assert base.rpartition(":")[2] not in {"", "latest"}, base
    for service in SERVICES:
        _image_of(service)  # each image's chain ends on the pinned Python base


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


def test_dev_generates_every_secret_its_services_need(
    render: Callable[[RenderTarget], list[Manifest]],
) -> None:
    """The dev overlay applies on its own: no database Secret has to be created first. Keys
    (the credential files' Secrets) are the exception: none is in git, not even for dev, and the
    operator creates them as in production (docs/kubernetes.md)."""
    objects = render(_overlay("dev"))
    secrets = {s["metadata"]["name"] for s in _of_kind(objects, "Secret")}
    assert not secrets & CREDENTIAL_SECRETS, "keys must not be generated from files in git"
    for service in SERVICES:
        for secret in _secrets_used(_deployment_of(objects, service)) - CREDENTIAL_SECRETS:
            assert secret in secrets, f"{service.name}: {secret} not generated"


def test_production_runs_three_to_ten_replicas_spread_over_nodes(
    render: Callable[[RenderTarget], list[Manifest]],
) -> None:
    objects = render(_overlay("production"))
    deployments = _of_kind(objects, "Deployment")
    assert deployments
    for hpa in _of_kind(objects, "HorizontalPodAutoscaler"):
        # 3..10, or up to the service's own cap (a consumer group).
        cap = SERVICES_BY_NAME[hpa["spec"]["scaleTargetRef"]["name"]].max_replicas or 10
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, min(10, cap))
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
    for service in SERVICES:
        for topic in service.topics:
            assert topic in topics, f"{service.name} produces {topic}, which is not declared"
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
