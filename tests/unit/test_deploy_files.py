"""deploy/ files parse, and name commands the project really has."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.config import Settings
from workers.cli import build_parser
from workers.events import JOB_TIMEOUT_S as EVENTS_JOB_TIMEOUT_S

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.parametrize("unit", sorted((DEPLOY / "systemd").glob("*.service")), ids=str)
def test_systemd_units_parse_and_run_real_subcommands(unit: Path) -> None:
    """Each unit has the three sections and its ExecStart is a goalstore subcommand."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(unit)

    assert {"Unit", "Service", "Install"} <= set(parser.sections())
    argv = shlex.split(parser["Service"]["ExecStart"])
    assert argv[0].endswith("/goalstore")
    build_parser().parse_args(argv[1:])  # exits (fails the test) on an unknown subcommand


@pytest.mark.parametrize("scenario", sorted((DEPLOY / "scenarios").glob("*.json")), ids=str)
def test_shipped_scenarios_are_valid(scenario: Path) -> None:
    """Every shipped scenario passes the scenario schema, with at least one expected conflict."""
    from service.scenario import Scenario

    parsed = Scenario.model_validate(json.loads(scenario.read_text()))

    assert any(step.expect == "conflict" for step in parsed.steps)


def test_systemd_units_share_one_database() -> None:
    """Migrations run against the same SQLite file the API serves."""
    prefix = "Environment=GOALSTORE_DATABASE="
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    # Read lines, not configparser: systemd allows a key (Environment=) many times.
    databases = {
        unit.name: [line[len(prefix) :] for line in unit.read_text().splitlines()
                    if line.startswith(prefix)]
        for unit in units
    }  # fmt: skip

    assert 2 <= len(units)
    assert {unit.name: ["/var/lib/goalstore/goalstore.db"] for unit in units} == databases


# --- shared readers -----------------------------------------------------------------

COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "goalstore.json"
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
JSON_FILES = sorted(DEPLOY.rglob("*.json"))
# Names of GoalStore samples in a PromQL expression (label values such as
# queue="goalstore-events" have a hyphen, job="goalstore" no underscore: not matched).
METRIC_NAME = re.compile(r"\b(goals?_[a-z_]+|goalstore_[a-z_]+)\b")
JOB_TIMEOUT_DEFAULT: int = Settings.model_fields["job_timeout_s"].default


def _yaml(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _walk(value: Any, key: str) -> Iterator[Any]:
    """Every value stored under `key`, at any depth."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == key:
                yield v
            yield from _walk(v, key)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item, key)


def _parses(argv: list[str]) -> bool:
    """`goalstore ARGS` names a real subcommand with valid options."""
    if argv[:1] != ["goalstore"]:
        return False
    try:
        build_parser().parse_args(argv[1:])
    except SystemExit:
        return False
    return True


def _seconds(duration: str | int) -> float:
    """A compose duration (Go syntax: `660s`, `1m30s`) in seconds."""
    if isinstance(duration, int):
        return duration
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert duration == "".join(number + unit for number, unit in parts), duration
    return sum(float(number) * units[unit] for number, unit in parts)


# --- every file parses ----------------------------------------------------------------


@pytest.mark.parametrize("path", YAML_FILES, ids=str)
def test_yaml_files_parse(path: Path) -> None:
    """Each YAML file under deploy/ is well-formed, each document a mapping."""
    docs = _yaml(path)

    assert 1 <= len(docs)
    assert [dict] * len(docs) == [type(doc) for doc in docs]


@pytest.mark.parametrize("path", JSON_FILES, ids=str)
def test_json_files_parse(path: Path) -> None:
    """Each JSON file under deploy/ is well-formed and an object."""
    assert isinstance(json.loads(path.read_text()), dict)


# --- docker compose -------------------------------------------------------------------


def _compose_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _yaml(COMPOSE)[0]["services"]
    return services


def _goalstore_services() -> dict[str, dict[str, Any]]:
    """The compose services that run the GoalStore image (built from deploy/Dockerfile)."""
    return {
        name: service
        for name, service in _compose_services().items()
        if (service.get("build") or {}).get("dockerfile") == "deploy/Dockerfile"
    }


def _compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=VALUE list form
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def test_compose_runs_every_process() -> None:
    """Compose has Redis, the migrations, the three Procfile processes and monitoring."""
    expected = {"redis", "migrate", "web", "worker", "scheduler", "prometheus", "grafana"}

    assert set() == expected - set(_compose_services())
    assert set() == {"migrate", "web", "worker", "scheduler"} - set(_goalstore_services())


def test_compose_goalstore_commands_are_real_subcommands() -> None:
    """Every command or entrypoint that runs goalstore parses with the CLI's parser."""
    commands = {
        (name, key): service[key]
        for name, service in _compose_services().items()
        for key in ("command", "entrypoint")
        if key in service
    }
    goalstore = {where: argv for where, argv in commands.items() if "goalstore" in str(argv)}

    assert set() == {(name, "command") for name in _goalstore_services()} - set(goalstore)
    assert dict.fromkeys(goalstore, True) == {
        where: isinstance(argv, list) and _parses(argv) for where, argv in goalstore.items()
    }


def test_compose_goalstore_services_share_one_database() -> None:
    """Every GoalStore service mounts the one named volume and opens the same file on it."""
    services = _goalstore_services()
    volume, target = services["web"]["volumes"][0].split(":")[:2]
    database = _compose_env(services["web"])["GOALSTORE_DATABASE"]

    assert {name: [f"{volume}:{target}"] for name in services} == {
        name: service["volumes"] for name, service in services.items()
    }
    assert dict.fromkeys(services, database) == {
        name: _compose_env(service).get("GOALSTORE_DATABASE") for name, service in services.items()
    }
    assert Path(target) == Path(database).parent
    assert volume in _yaml(COMPOSE)[0]["volumes"]  # a named volume, not a bind mount


def test_compose_workers_outlast_their_job_timeout() -> None:
    """SIGTERM lets the job in hand finish: the stop grace period exceeds its timeout."""
    services = _goalstore_services()
    job_timeout = {
        name: int(_compose_env(services[name]).get("GOALSTORE_JOB_TIMEOUT_S", JOB_TIMEOUT_DEFAULT))
        for name in ("worker", "scheduler")
    }
    grace = {name: _seconds(services[name]["stop_grace_period"]) for name in job_timeout}

    assert job_timeout["scheduler"] < grace["scheduler"]
    assert max(job_timeout["worker"], EVENTS_JOB_TIMEOUT_S) < grace["worker"]


def test_compose_web_healthcheck_asks_readyz() -> None:
    """The web healthcheck calls /readyz on the port the container publishes."""
    web = _compose_services()["web"]
    port = str(web["ports"][0]).rsplit(":", 1)[-1]

    assert f"127.0.0.1:{port}/readyz" in " ".join(web["healthcheck"]["test"])
    assert port == _compose_env(web).get("PORT", str(Settings.model_fields["port"].default))


# --- Kubernetes -----------------------------------------------------------------------


def _k8s_files() -> list[Path]:
    return sorted(path for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")


def _k8s_docs() -> list[dict[str, Any]]:
    return [doc for path in _k8s_files() for doc in _yaml(path)]


def _k8s(kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in _k8s_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _is_goalstore(container: dict[str, Any]) -> bool:
    return bool(container["image"].split(":")[0].rsplit("/", 1)[-1] == "goalstore")


def _goalstore_pods() -> dict[str, dict[str, Any]]:
    """Pod specs of the workloads that run the GoalStore image, by workload name."""
    return {
        doc["metadata"]["name"]: doc["spec"]["template"]["spec"]
        for doc in _k8s_docs()
        if doc["kind"] in ("Deployment", "Job")
        and any(_is_goalstore(c) for c in doc["spec"]["template"]["spec"]["containers"])
    }


def _configmap() -> dict[str, str]:
    data: dict[str, str] = _k8s("ConfigMap", "goalstore-config")["data"]
    return data


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=str)
def test_k8s_manifests_name_themselves(path: Path) -> None:
    """Each manifest document has an apiVersion, a kind and a metadata.name."""
    docs = _yaml(path)
    if path.name == "kustomization.yaml":
        assert [("kustomize.config.k8s.io/v1beta1", "Kustomization")] == [
            (doc.get("apiVersion"), doc.get("kind")) for doc in docs
        ]
        return

    assert [True] * len(docs) == [
        all(isinstance(v, str) and v for v in
            (doc.get("apiVersion"), doc.get("kind"), (doc.get("metadata") or {}).get("name")))
        for doc in docs
    ]  # fmt: skip


def test_kustomization_lists_every_manifest() -> None:
    """`kubectl apply -k deploy/k8s` applies every manifest in the folder."""
    (kustomization,) = _yaml(K8S / "kustomization.yaml")

    assert sorted(path.name for path in _k8s_files()) == sorted(kustomization["resources"])


def test_k8s_goalstore_workloads() -> None:
    """Web, worker, scheduler and the migrate Job run the GoalStore image."""
    expected = {"goalstore-web", "goalstore-worker", "goalstore-scheduler", "goalstore-migrate"}

    assert set() == expected - set(_goalstore_pods())


def test_k8s_goalstore_commands_are_real_subcommands() -> None:
    """Every GoalStore container's command (and args) parses with the CLI's parser."""
    argvs = {
        (workload, c["name"]): [*c.get("command", []), *c.get("args", [])]
        for workload, pod in _goalstore_pods().items()
        for c in pod["containers"] + pod.get("initContainers", [])
        if _is_goalstore(c)
    }

    assert dict.fromkeys(argvs, True) == {where: _parses(argv) for where, argv in argvs.items()}


def test_k8s_web_probes_hit_health_endpoints_on_the_served_port() -> None:
    """Liveness asks /livez, readiness /readyz, on the port `goalstore serve` binds."""
    web = _k8s("Deployment", "goalstore-web")
    (container,) = web["spec"]["template"]["spec"]["containers"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    args = build_parser().parse_args(container["command"][1:])
    served = args.port or int(_configmap().get("PORT", Settings.model_fields["port"].default))
    service = _k8s("Service", "goalstore-web")

    def resolve(port: int | str) -> int:
        return named[port] if isinstance(port, str) else port

    assert {
        "startupProbe": ("/livez", served),
        "livenessProbe": ("/livez", served),
        "readinessProbe": ("/readyz", served),
    } == {
        probe: (container[probe]["httpGet"]["path"], resolve(container[probe]["httpGet"]["port"]))
        for probe in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert [served] == [resolve(p["targetPort"]) for p in service["spec"]["ports"]]
    assert str(served) == web["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]


def test_k8s_workers_outlast_their_job_timeout() -> None:
    """terminationGracePeriodSeconds exceeds the job timeout, so SIGTERM finishes the job."""
    job_timeout = int(_configmap().get("GOALSTORE_JOB_TIMEOUT_S", JOB_TIMEOUT_DEFAULT))
    pods = _goalstore_pods()
    grace = {
        name: pods[f"goalstore-{name}"]["terminationGracePeriodSeconds"]
        for name in ("worker", "scheduler")
    }

    assert job_timeout < grace["scheduler"]
    assert max(job_timeout, EVENTS_JOB_TIMEOUT_S) < grace["worker"]


def test_k8s_one_volume_mounted_by_every_goalstore_pod() -> None:
    """One ReadWriteOnce claim holds the SQLite file; every GoalStore pod mounts it there."""
    (claim,) = [doc for doc in _k8s_docs() if doc["kind"] == "PersistentVolumeClaim"]
    database = Path(_configmap()["GOALSTORE_DATABASE"])
    pods = _goalstore_pods()

    def mounts(pod: dict[str, Any]) -> set[tuple[str, str]]:
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in pod.get("volumes", [])
            if "persistentVolumeClaim" in v
        }
        return {
            (claims[m["name"]], m["mountPath"])
            for c in pod["containers"]
            if _is_goalstore(c)
            for m in c.get("volumeMounts", [])
            if m["name"] in claims
        }

    assert ["ReadWriteOnce"] == claim["spec"]["accessModes"]
    assert {name: {(claim["metadata"]["name"], str(database.parent))} for name in pods} == {
        name: mounts(pod) for name, pod in pods.items()
    }


def test_k8s_goalstore_pods_follow_the_web_pod() -> None:
    """Every long-running GoalStore pod but web must be scheduled on the web pod's node."""
    web_labels = _k8s("Deployment", "goalstore-web")["spec"]["template"]["metadata"]["labels"]
    followers = {
        doc["metadata"]["name"]: doc["spec"]["template"]["spec"]
        for doc in _k8s_docs()
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] in _goalstore_pods()
        and doc["metadata"]["name"] != "goalstore-web"
    }  # fmt: skip

    def follows_web(pod: dict[str, Any]) -> bool:
        terms = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        return any(
            term["topologyKey"] == "kubernetes.io/hostname"
            and term["labelSelector"]["matchLabels"].items() <= web_labels.items()
            for term in terms
        )

    assert set() == {"goalstore-worker", "goalstore-scheduler"} - set(followers)
    assert dict.fromkeys(followers, True) == {
        name: follows_web(pod) for name, pod in followers.items()
    }


def test_k8s_goalstore_pods_run_as_the_image_user() -> None:
    """Pods run as the Dockerfile's non-root user, with fsGroup so the volume is writable."""
    (user,) = [line.split()[1] for line in _dockerfile_final_stage() if line.startswith("USER ")]
    uid, gid = (int(part) for part in user.split(":"))

    assert dict.fromkeys(_goalstore_pods(), (True, uid, gid)) == {
        name: (
            pod["securityContext"]["runAsNonRoot"],
            pod["securityContext"]["runAsUser"],
            pod["securityContext"]["fsGroup"],
        )
        for name, pod in _goalstore_pods().items()
    }


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds_every_manifest() -> None:
    """`kubectl kustomize` (offline) renders exactly the manifests of the folder."""
    built = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=120
    )
    assert 0 == built.returncode, built.stderr
    rendered = [doc for doc in yaml.safe_load_all(built.stdout) if doc is not None]

    assert sorted((d["kind"], d["metadata"]["name"]) for d in _k8s_docs()) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in rendered
    )


# --- Prometheus and Grafana -----------------------------------------------------------


def test_prometheus_scrapes_web_metrics() -> None:
    """Prometheus scrapes /metrics of the compose web service and loads rules that exist."""
    (config,) = _yaml(PROMETHEUS / "prometheus.yml")
    (job,) = config["scrape_configs"]
    web_port = str(_compose_services()["web"]["ports"][0]).rsplit(":", 1)[-1]

    assert "/metrics" == job.get("metrics_path", "/metrics")
    assert [f"web:{web_port}"] == [t for sc in job["static_configs"] for t in sc["targets"]]
    assert [True] * len(config["rule_files"]) == [
        (PROMETHEUS / rule_file).is_file() for rule_file in config["rule_files"]
    ]


def _alert_exprs() -> list[str]:
    (rules,) = _yaml(PROMETHEUS / "alerts.yml")
    return [str(expr) for expr in _walk(rules, "expr")]


def _dashboard_exprs() -> list[str]:
    return [str(expr) for expr in _walk(json.loads(DASHBOARD.read_text()), "expr")]


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_metric_names_are_ones_goalstore_exposes(source: str) -> None:
    """Every GoalStore sample an alert or a dashboard panel queries is one /metrics emits."""
    from service.metrics import SAMPLE_NAMES

    exprs = _alert_exprs() if source == "alerts" else _dashboard_exprs()
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}

    assert 5 <= len(used)  # the pattern does find names
    assert set() == used - SAMPLE_NAMES


def test_dashboard_shows_the_seed_metrics() -> None:
    """The dashboard charts every metric the seed's users expect (DESIGN.md section 10)."""
    seed = {
        "goals_total", "goals_by_state", "goals_adopted_total", "goal_selected_total",
        "goal_blocked_by_belief_total", "goal_prioritize_latency_seconds_bucket",
    }  # fmt: skip
    used = {name for expr in _dashboard_exprs() for name in METRIC_NAME.findall(expr)}

    assert set() == seed - used


def test_dashboard_uses_the_provisioned_datasource() -> None:
    """Panels and queries name the provisioned Prometheus by uid; Grafana loads the file."""
    (datasources,) = _yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yaml")
    (providers,) = _yaml(GRAFANA / "provisioning" / "dashboards" / "goalstore.yaml")
    (provisioned,) = [ds["uid"] for ds in datasources["datasources"]]
    dashboard = json.loads(DASHBOARD.read_text())
    used = {
        (ref["type"], ref["uid"])
        for ref in _walk(dashboard, "datasource")
        if isinstance(ref, dict) and ref.get("type") != "grafana"  # built-in annotations
    }
    grafana_mounts = {
        volume.split(":")[1]: (COMPOSE.parent / volume.split(":")[0]).resolve()
        for volume in _compose_services()["grafana"]["volumes"]
        if volume.startswith(".")
    }
    (provider,) = providers["providers"]

    assert {("prometheus", provisioned)} == used
    assert "goalstore" == dashboard["uid"]
    assert DASHBOARD.parent.resolve() == grafana_mounts[provider["options"]["path"]]


# --- Dockerfile -----------------------------------------------------------------------


def _dockerfile_final_stage() -> list[str]:
    """The Dockerfile's instructions after its last FROM, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    return lines[last_from:]


def test_dockerfile_runs_a_real_subcommand() -> None:
    """The image's default command (exec form) is a goalstore subcommand."""
    (cmd,) = [line for line in _dockerfile_final_stage() if line.startswith("CMD ")]
    entrypoint = [line for line in _dockerfile_final_stage() if line.startswith("ENTRYPOINT ")]
    argv = json.loads(cmd.removeprefix("CMD "))

    assert [] == entrypoint
    assert _parses(argv)


# --- systemd --------------------------------------------------------------------------


def test_systemd_workers_outlast_their_job_timeout() -> None:
    """systemd waits longer than the job timeout before it kills a stopping worker."""

    def timeout_stop(unit: str) -> int:
        (line,) = [
            line
            for line in (DEPLOY / "systemd" / unit).read_text().splitlines()
            if line.startswith("TimeoutStopSec=")
        ]
        return int(line.removeprefix("TimeoutStopSec="))

    assert JOB_TIMEOUT_DEFAULT < timeout_stop("goalstore-scheduler.service")
    assert max(JOB_TIMEOUT_DEFAULT, EVENTS_JOB_TIMEOUT_S) < timeout_stop("goalstore-worker.service")
