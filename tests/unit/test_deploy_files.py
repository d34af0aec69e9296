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
COMPOSE_PG = DEPLOY / "compose.postgres.yaml"  # the PostgreSQL variant
COMPOSE_FILES = [COMPOSE, COMPOSE_PG]
K8S = DEPLOY / "k8s"
K8S_PG = DEPLOY / "k8s-postgres"  # a kustomize overlay of K8S
PROCFILE = DEPLOY.parent / "Procfile"
ENV_EXAMPLE = DEPLOY / "goalstore.env.example"
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


def _compose_services(path: Path = COMPOSE) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _yaml(path)[0]["services"]
    return services


def _goalstore_services(path: Path = COMPOSE) -> dict[str, dict[str, Any]]:
    """The compose services that run the GoalStore image (built from deploy/Dockerfile)."""
    return {
        name: service
        for name, service in _compose_services(path).items()
        if (service.get("build") or {}).get("dockerfile") == "deploy/Dockerfile"
    }


def _compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=VALUE list form
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


@pytest.mark.parametrize("compose", COMPOSE_FILES, ids=str)
def test_compose_runs_every_process(compose: Path) -> None:
    """Compose has Redis, the migrations, the three Procfile processes and monitoring."""
    expected = {"redis", "migrate", "web", "worker", "scheduler", "prometheus", "grafana"}

    assert set() == expected - set(_compose_services(compose))
    assert set() == {"migrate", "web", "worker", "scheduler"} - set(_goalstore_services(compose))


@pytest.mark.parametrize("compose", COMPOSE_FILES, ids=str)
def test_compose_goalstore_commands_are_real_subcommands(compose: Path) -> None:
    """Every command or entrypoint that runs goalstore parses with the CLI's parser."""
    commands = {
        (name, key): service[key]
        for name, service in _compose_services(compose).items()
        for key in ("command", "entrypoint")
        if key in service
    }
    goalstore = {where: argv for where, argv in commands.items() if "goalstore" in str(argv)}

    assert set() == {(name, "command") for name in _goalstore_services(compose)} - set(goalstore)
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


@pytest.mark.parametrize("compose", COMPOSE_FILES, ids=str)
def test_compose_workers_outlast_their_job_timeout(compose: Path) -> None:
    """SIGTERM lets the job in hand finish: the stop grace period exceeds its timeout."""
    services = _goalstore_services(compose)
    job_timeout = {
        name: int(_compose_env(services[name]).get("GOALSTORE_JOB_TIMEOUT_S", JOB_TIMEOUT_DEFAULT))
        for name in ("worker", "scheduler")
    }
    grace = {name: _seconds(services[name]["stop_grace_period"]) for name in job_timeout}

    assert job_timeout["scheduler"] < grace["scheduler"]
    assert max(job_timeout["worker"], EVENTS_JOB_TIMEOUT_S) < grace["worker"]


@pytest.mark.parametrize("compose", COMPOSE_FILES, ids=str)
def test_compose_web_healthcheck_asks_readyz(compose: Path) -> None:
    """The web healthcheck calls /readyz on the port the container publishes."""
    web = _compose_services(compose)["web"]
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


# --- the PostgreSQL variant (compose.postgres.yaml, k8s-postgres/) -------------------

# Procfile process -> the name of its compose service and of its Kubernetes workload.
PROCFILE_SERVICES = {
    "web": "web",
    "worker": "worker",
    "scheduler": "scheduler",
    "release": "migrate",
}
# Variables that hold a secret: never inline in a deploy file, always from a secret.
SECRET_NAMES = re.compile(r"PASSWORD|API_KEYS|SECRET|TOKEN")


def _procfile() -> dict[str, list[str]]:
    lines = [line for line in PROCFILE.read_text().splitlines() if line.strip()]
    return {name: shlex.split(command) for name, command in (ln.split(":", 1) for ln in lines)}


def _invocation(argv: list[str], port: str) -> dict[str, Any]:
    """What `goalstore ARGV` runs, with options as parsed; `$PORT` and an absent --port
    both mean the process's PORT."""
    argv = [port if arg == "$PORT" else arg for arg in argv]
    assert argv[:1] == ["goalstore"], argv
    parsed = vars(build_parser().parse_args(argv[1:]))
    if "port" in parsed:
        parsed["port"] = parsed["port"] if parsed["port"] is not None else int(port)
    return parsed


def _pg_url(url: str | None) -> Any:
    """The parts of a PostgreSQL URL that matter here (None when it is not one)."""
    from urllib.parse import urlsplit

    if url is None or not url.startswith("postgresql://"):
        return None
    return urlsplit(url)


def test_compose_postgres_runs_postgresql_for_every_goalstore_service() -> None:
    """A postgres:15 service with pg_isready and a named volume; every GoalStore service
    waits for it healthy and opens it by a postgresql:// URL naming that service."""
    services = _compose_services(COMPOSE_PG)
    postgres = services["postgres"]
    goalstore = _goalstore_services(COMPOSE_PG)
    urls = {name: _pg_url(_compose_env(service).get("GOALSTORE_DATABASE"))
            for name, service in goalstore.items()}  # fmt: skip
    (data_volume,) = postgres["volumes"]
    volume, target = data_volume.split(":")[:2]
    server_env = _compose_env(postgres)

    assert "postgres:15" == postgres["image"]
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert "/var/lib/postgresql/data" == target
    assert volume in _yaml(COMPOSE_PG)[0]["volumes"]  # a named volume, not a bind mount
    assert dict.fromkeys(goalstore, "service_healthy") == {
        name: service["depends_on"]["postgres"]["condition"] for name, service in goalstore.items()
    }
    assert dict.fromkeys(goalstore, ("postgres", 5432, None)) == {
        name: url and (url.hostname, url.port, url.password) for name, url in urls.items()
    }
    assert {(server_env["POSTGRES_USER"], "/" + server_env["POSTGRES_DB"])} == {
        (url.username, url.path) for url in urls.values()
    }


def test_compose_postgres_secrets_come_from_the_env_file() -> None:
    """Keys and the database password come from goalstore.env (required), never inline;
    the example file names every one of them."""
    services = _compose_services(COMPOSE_PG)
    readers = {**_goalstore_services(COMPOSE_PG), "postgres": services["postgres"]}
    example = ENV_EXAMPLE.read_text()

    assert dict.fromkeys(readers, True) == {
        name: {"path": "./goalstore.env", "required": True} in service.get("env_file", [])
        for name, service in readers.items()
    }
    assert {} == {
        (name, key): value
        for name, service in readers.items()
        for key, value in _compose_env(service).items()
        if SECRET_NAMES.search(key)
    }
    for name in ("GOALSTORE_API_KEYS", "PGPASSWORD", "POSTGRES_PASSWORD"):
        assert re.search(rf"^#? ?{name}=", example, re.MULTILINE), name


def test_compose_postgres_scales_without_shared_volumes() -> None:
    """No GoalStore service mounts a volume; web runs 3 replicas with a host port each;
    worker, scheduler and selector are scaled on their own."""
    goalstore = _goalstore_services(COMPOSE_PG)
    web = goalstore["web"]
    replicas = {
        name: (service.get("deploy") or {}).get("replicas") for name, service in goalstore.items()
    }
    host_ports = [str(port).rsplit(":", 1)[0] for port in web.get("ports", [])]

    assert {} == {
        name: service["volumes"] for name, service in goalstore.items() if "volumes" in service
    }
    assert 3 == replicas["web"]
    assert {"worker", "scheduler", "selector"} <= {name for name, n in replicas.items() if n}
    # Published ports: a range at least as long as the replicas (no collision), or none.
    for host in host_ports:
        first, _, last = host.partition("-")
        assert last and int(last) - int(first) + 1 >= replicas["web"], host


@pytest.mark.parametrize("compose", COMPOSE_FILES, ids=str)
def test_compose_commands_are_the_procfiles(compose: Path) -> None:
    """web, worker, scheduler and migrate run what the Procfile's processes run."""
    services = _goalstore_services(compose)

    assert {
        process: _invocation(argv, _compose_env(services["web"]).get("PORT", "8000"))
        for process, argv in _procfile().items()
    } == {
        process: _invocation(
            services[name]["command"], _compose_env(services[name]).get("PORT", "8000")
        )
        for process, name in PROCFILE_SERVICES.items()
    }


# Kubernetes: kustomize's strategic-merge patches, as far as the overlay uses them, so the
# overlay is checked without kubectl (and against `kubectl kustomize` where it is installed).
MERGE_KEYS = {"containers": "name", "initContainers": "name", "volumes": "name", "env": "name",
              "volumeMounts": "mountPath"}  # fmt: skip


def _merge(base: Any, patch: Any) -> Any:
    """`patch` applied to `base` by strategic merge: maps merge, null removes a key, a list
    with a merge key merges item by item (`$patch: delete` removes one), others replace."""
    if not (isinstance(base, dict) and isinstance(patch, dict)):
        return patch
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif MERGE_KEYS.get(key) and isinstance(value, list):
            merged[key] = _merge_list(merged.get(key, []), value, MERGE_KEYS[key])
        else:
            merged[key] = _merge(merged.get(key), value)
    return merged


def _merge_list(base: list[Any], patch: list[Any], key: str) -> list[Any]:
    merged = list(base)
    for item in patch:
        at = [i for i, old in enumerate(merged) if old[key] == item[key]]
        if item.get("$patch") == "delete":
            merged = [old for old in merged if old[key] != item[key]]
        elif at:
            merged[at[0]] = _merge(merged[at[0]], item)
        else:
            merged.insert(0, item)
    return merged


def _kustomize(directory: Path) -> list[dict[str, Any]]:
    """What `kubectl kustomize DIRECTORY` renders, for the features deploy/ uses."""
    (kustomization,) = _yaml(directory / "kustomization.yaml")
    used = {"apiVersion", "kind", "resources", "patches", "labels", "images"}
    assert set() == set(kustomization) - used, "a kustomize feature this reader lacks"
    docs: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        docs += _kustomize(path) if path.is_dir() else _yaml(path)
    for entry in kustomization.get("patches", []):
        assert {"path"} == set(entry), "only whole-file strategic-merge patches"
        (patch,) = _yaml(directory / entry["path"])
        ident = (patch["kind"], patch["metadata"]["name"])
        (index,) = [i for i, d in enumerate(docs) if (d["kind"], d["metadata"]["name"]) == ident]
        if patch.get("$patch") == "delete":
            del docs[index]
        else:
            docs[index] = _merge(docs[index], patch)
    for label in kustomization.get("labels", []):
        assert {"pairs"} == set(label)  # metadata labels only, as kustomize's default
        for doc in docs:
            labels = {**doc["metadata"].get("labels", {}), **label["pairs"]}
            doc["metadata"] = {**doc["metadata"], "labels": labels}
    for image in kustomization.get("images", []):
        for container in _walk(docs, "containers"):
            for c in container:
                if c["image"].split(":")[0] == image["name"]:
                    c["image"] = f"{image['name']}:{image['newTag']}"
    return docs


def _pods(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Pod specs of the GoalStore workloads among rendered documents, by workload name."""
    return {
        doc["metadata"]["name"]: doc["spec"]["template"]["spec"]
        for doc in docs
        if doc["kind"] in ("Deployment", "Job")
        and any(_is_goalstore(c) for c in doc["spec"]["template"]["spec"]["containers"])
    }


def _rendered(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def test_k8s_postgres_overlay_patches_the_base() -> None:
    """The overlay is the base plus patches, and every file in it is one of them."""
    (kustomization,) = _yaml(K8S_PG / "kustomization.yaml")
    files = sorted(path.name for path in K8S_PG.glob("*.yaml") if path.name != "kustomization.yaml")

    assert ["../k8s"] == kustomization["resources"]
    assert files == sorted(entry["path"] for entry in kustomization["patches"])
    assert [True] * len(files) == [
        any((d["kind"], d["metadata"]["name"]) == (p["kind"], p["metadata"]["name"])
            for d in _k8s_docs())
        for name in files for p in _yaml(K8S_PG / name)
    ]  # fmt: skip  # each patch names a base object (kustomize fails on one that does not)


def test_k8s_postgres_no_goalstore_pod_holds_the_store() -> None:
    """No claim, no node pinning, and no volume but an emptyDir (/tmp) in any GoalStore pod."""
    docs = _kustomize(K8S_PG)
    pods = _pods(docs)
    expected = {"goalstore-web", "goalstore-worker", "goalstore-scheduler", "goalstore-selector",
                "goalstore-migrate"}  # fmt: skip

    def kept(pod: dict[str, Any]) -> tuple[set[str], set[str], bool]:
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounted = {m["name"] for c in pod["containers"] for m in c.get("volumeMounts", [])}
        not_scratch = {name for name, v in volumes.items() if set(v) != {"name", "emptyDir"}}
        return not_scratch, mounted - volumes.keys(), "podAffinity" in pod.get("affinity", {})

    assert set() == expected - set(pods)
    assert [] == [d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert dict.fromkeys(pods, (set(), set(), False)) == {name: kept(p) for name, p in pods.items()}


def test_k8s_postgres_web_runs_three_replicas_and_the_workers_scale_apart() -> None:
    """web: 3 replicas, rolled one at a time, spread over nodes; worker, scheduler and
    selector are Deployments of their own, none replaced with Recreate."""
    docs = _kustomize(K8S_PG)
    deployments = {name: _rendered(docs, "Deployment", name) for name in _pods(docs)
                   if name != "goalstore-migrate"}  # fmt: skip
    web = deployments["goalstore-web"]
    spread = web["spec"]["template"]["spec"].get("topologySpreadConstraints", [])

    assert 3 == web["spec"]["replicas"]
    assert ["kubernetes.io/hostname"] == [c["topologyKey"] for c in spread]
    assert {"goalstore-worker", "goalstore-scheduler", "goalstore-selector"} < set(deployments)
    assert dict.fromkeys(deployments, "RollingUpdate") == {
        name: d["spec"].get("strategy", {}).get("type", "RollingUpdate")
        for name, d in deployments.items()
    }


def test_k8s_postgres_database_url_comes_from_the_secret() -> None:
    """Every GoalStore container reads GOALSTORE_DATABASE from the Secret (required), and
    the ConfigMap holds no database location."""
    docs = _kustomize(K8S_PG)
    config = _rendered(docs, "ConfigMap", "goalstore-config")["data"]
    secret_refs = {
        (workload, c["name"]): [e for e in c.get("env", []) if e["name"] == "GOALSTORE_DATABASE"]
        for workload, pod in _pods(docs).items()
        for c in pod["containers"]
        if _is_goalstore(c)
    }
    required = [{"name": "GOALSTORE_DATABASE",
                 "valueFrom": {"secretKeyRef": {"name": "goalstore-secrets",
                                                "key": "GOALSTORE_DATABASE"}}}]  # fmt: skip

    assert "GOALSTORE_DATABASE" not in config
    assert [] == [value for value in config.values() if "://" in value and "@" in value]
    assert dict.fromkeys(secret_refs, required) == secret_refs
    assert int(config["GOALSTORE_DB_POOL_SIZE"]) >= 1


@pytest.mark.parametrize("directory", [K8S, K8S_PG], ids=str)
def test_k8s_commands_are_the_procfiles(directory: Path) -> None:
    """web, worker, scheduler and the migrate Job run what the Procfile's processes run,
    and every GoalStore container's command parses."""
    docs = _kustomize(directory)
    pods = _pods(docs)
    port = _rendered(docs, "ConfigMap", "goalstore-config")["data"].get("PORT", "8000")

    def command(workload: str) -> list[str]:
        (container,) = pods[workload]["containers"]
        return [*container.get("command", []), *container.get("args", [])]

    assert {process: _invocation(argv, port) for process, argv in _procfile().items()} == {
        process: _invocation(command(f"goalstore-{name}"), port)
        for process, name in PROCFILE_SERVICES.items()
    }
    assert dict.fromkeys(pods, True) == {name: _parses(command(name)) for name in pods}


def test_k8s_reader_renders_the_base_as_its_files() -> None:
    """The reader above, on the base, gives exactly the base's manifests (plus its label)."""
    rendered = {(d["kind"], d["metadata"]["name"]): d for d in _kustomize(K8S)}

    assert sorted((d["kind"], d["metadata"]["name"]) for d in _k8s_docs()) == sorted(rendered)
    assert [True] * len(rendered) == [
        rendered[(d["kind"], d["metadata"]["name"])]["spec" if "spec" in d else "data"]
        == d["spec" if "spec" in d else "data"]
        for d in _k8s_docs()
    ]


def _canonical(value: Any) -> Any:
    """Lists of mappings in a fixed order: kustomize and the reader may order them apart."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        if all(isinstance(v, dict) for v in items):
            return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
        return items
    return value


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_renders_the_postgres_overlay_as_the_reader_does() -> None:
    """`kubectl kustomize deploy/k8s-postgres` (offline) gives what the checks above read."""
    built = subprocess.run(
        ["kubectl", "kustomize", str(K8S_PG)], capture_output=True, text=True, timeout=120
    )
    assert 0 == built.returncode, built.stderr
    rendered = [doc for doc in yaml.safe_load_all(built.stdout) if doc is not None]

    def by_name(docs: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
        return {(d["kind"], d["metadata"]["name"]): _canonical(d) for d in docs}

    assert by_name(rendered) == by_name(_kustomize(K8S_PG))


# --- Prometheus and Grafana -----------------------------------------------------------


@pytest.mark.parametrize("compose", COMPOSE_FILES, ids=str)
def test_prometheus_scrapes_web_metrics(compose: Path) -> None:
    """Prometheus scrapes /metrics of the compose web service and loads rules that exist."""
    (config,) = _yaml(PROMETHEUS / "prometheus.yml")
    (job,) = config["scrape_configs"]
    web_port = str(_compose_services(compose)["web"]["ports"][0]).rsplit(":", 1)[-1]

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


def test_alerts_hold_seed_000s_rollback_threshold_and_safety_line() -> None:
    """Seed 000's activation plan: roll back when task success falls below 80% (from the
    tasks-finished counter's succeeded share), and a safety violation (a goal handed over
    while contradicting an active belief) alerts as soon as there is one."""
    (rules,) = _yaml(PROMETHEUS / "alerts.yml")
    alerts = {r["alert"]: r for group in rules["groups"] for r in group["rules"]}
    rollback = " ".join(alerts["GoalStoreTaskSuccessBelowRollbackThreshold"]["expr"].split())
    safety = alerts["GoalStoreSafetyViolation"]

    assert 'goalstore_tasks_finished_total{state="succeeded"}' in rollback
    assert re.search(r"\) < 0\.8 and ", rollback), rollback
    assert re.fullmatch(r"max\(increase\(goal_safety_violations_total\[\w+\]\)\) > 0",
                        safety["expr"])  # fmt: skip
    assert {"critical"} == {
        alerts[name]["labels"]["severity"]
        for name in ("GoalStoreTaskSuccessBelowRollbackThreshold", "GoalStoreSafetyViolation")
    }


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
