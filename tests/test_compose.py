"""The docker compose stack, its image and its documentation, checked without a Docker engine.

The compose file is rendered by a real Compose implementation (`docker compose config` or Debian's `docker-compose`
1.29, which `scripts/install-compose.sh` installs), so interpolation, anchors, profiles and the schema are Compose's
own, not a re-implementation. The Dockerfile is checked against requirements.lock, and docs/deployment.md against the
DAG params, the connections and the variables of .env.example.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
LOCK = REPO / "requirements.lock"
DEPLOYMENT_DOC = REPO / "docs" / "deployment.md"

PROFILES = ("tools", "debug", "flower")
AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-gpu",
    "airflow-init",
}
SERVICES = AIRFLOW_SERVICES | {"postgres", "redis", "elasticsearch", "minio", "minio-init"}
ONE_SHOT = {"airflow-init", "minio-init", "model-download", "airflow-cli"}
CPU_WORKER, GPU_WORKER = "airflow-worker", "airflow-worker-gpu"
CONNECTIONS = {"AIRFLOW_CONN_LATECHUNK_S3": "aws", "AIRFLOW_CONN_LATECHUNK_ES": "elasticsearch"}
# ${VAR}, ${VAR:-default}, ${VAR:?error}; `$${...}` is escaped for the container's shell, not Compose's.
COMPOSE_REF = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])[^}]*)?\}")
ONLY_A_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?][^}]*)?\}$")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|(^|_)TOKEN$")


# --- helpers ---------------------------------------------------------------------------------------------------


def find_compose() -> list[str] | None:
    """The Compose v2 plugin if the docker client has it, else a standalone docker-compose."""
    candidates = []
    if docker := shutil.which("docker"):
        candidates.append([docker, "compose"])
    if standalone := shutil.which("docker-compose"):
        candidates.append([standalone])
    for command in candidates:
        try:
            probe = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return command
    return None


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"{path.name}: not NAME=value: {line!r}"
            values[name.strip()] = value.strip()
    return values


def filled_env() -> dict[str, str]:
    """.env.example with every empty value filled in, as a user does in step 2 of the docs."""
    example = read_env_file(ENV_EXAMPLE)
    return {name: value or f"test{name.lower().replace('_', '')}0" for name, value in example.items()}


def run_compose_config(compose: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    # Variables of the calling shell win over the env file in Compose: keep the test's own values in charge.
    isolated = {
        name: value
        for name, value in os.environ.items()
        if name not in read_env_file(ENV_EXAMPLE) and not name.startswith(("LATECHUNK_", "AIRFLOW", "COMPOSE_"))
    }
    profiles = [arg for profile in PROFILES for arg in ("--profile", profile)]
    return subprocess.run(
        [*compose, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *profiles, "config"],
        cwd=REPO,
        env=isolated,
        capture_output=True,
        text=True,
        timeout=120,
    )


def tokens(command: Any) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command or []]


def celery_worker_options(command: Any) -> tuple[set[str], int | None]:
    """(queues, concurrency) of an `[airflow] celery worker ...` command; no -q means Airflow's default queue."""
    args = tokens(command)
    if args[:1] == ["airflow"]:
        args = args[1:]
    assert args[:2] == ["celery", "worker"], f"not a celery worker command: {command!r}"
    queues, concurrency = None, None
    rest = iter(args[2:])
    for arg in rest:
        name, _, inline = arg.partition("=")
        if name in ("-q", "--queues"):
            queues = set((inline or next(rest)).split(","))
        elif name in ("-c", "--concurrency"):
            concurrency = int(inline or next(rest))
    return queues if queues is not None else {"default"}, concurrency


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """target -> (type, source), from either the short (Compose 1) or the long (Compose 2) syntax."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
        else:
            source, target, kind = volume.get("source", ""), volume["target"], volume.get("type", "volume")
        found[target] = (kind, source)
    return found


def healthcheck_test(service: dict[str, Any]) -> list[str]:
    check = service.get("healthcheck") or {}
    if check.get("disable"):
        return []
    test = check.get("test") or []
    return tokens(test) if isinstance(test, str) else list(test)


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line):
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            result.append((instruction.upper(), arguments.strip()))
    return result


def raw_compose() -> dict[str, Any]:
    """The file as YAML (anchors merged, nothing interpolated): what is literally written in it."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


# --- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> list[str]:
    command = find_compose()
    if command is None:
        pytest.skip(
            "no Compose implementation found (neither `docker compose` nor `docker-compose` runs); "
            "run scripts/install-compose.sh"
        )
    return command


@pytest.fixture(scope="module")
def config(compose: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = run_compose_config(compose, filled_env(), tmp_path_factory.mktemp("compose"))
    assert result.returncode == 0, f"`compose config` rejected docker-compose.yaml:\n{result.stderr}"
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return config["services"]


# --- the compose file ------------------------------------------------------------------------------------------


def test_compose_renders_every_service(services):
    missing = SERVICES - services.keys()
    assert not missing, f"services missing from docker-compose.yaml: {sorted(missing)}"
    assert services["airflow-apiserver"]["command"] in ("api-server", ["api-server"])
    assert tokens(services["airflow-dag-processor"]["command"]) == ["dag-processor"]
    assert tokens(services["airflow-triggerer"]["command"]) == ["triggerer"]
    assert tokens(services["airflow-scheduler"]["command"]) == ["scheduler"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
    assert services["postgres"]["image"].split(":")[1].split(".")[0] == "16"


def test_gpu_worker_takes_only_the_gpu_queue_one_task_at_a_time_on_an_nvidia_gpu(services):
    from latechunk_operators.embed import LateChunkEmbedOperator

    embed_queue = inspect.signature(LateChunkEmbedOperator.__init__).parameters["queue"].default
    assert embed_queue == "gpu"
    queues, concurrency = celery_worker_options(services[GPU_WORKER]["command"])
    assert queues == {embed_queue}, f"the GPU worker must consume only {embed_queue!r}, not {sorted(queues)}"
    assert concurrency == 1
    devices = services[GPU_WORKER]["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1
    device = devices[0]
    assert device["driver"] == "nvidia"
    assert int(device["count"]) == 1
    assert "gpu" in device["capabilities"]


@pytest.mark.parametrize("worker", [GPU_WORKER, CPU_WORKER])
def test_workers_import_the_encoder_before_forking_their_tasks(services, worker):
    """Their Celery settings are Airflow's defaults plus the modules to import at start (all importable)."""
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
    from airflow.sdk.module_loading import import_string

    settings = import_string(services[worker]["environment"]["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"])
    assert {name: settings[name] for name in DEFAULT_CELERY_CONFIG} == DEFAULT_CELERY_CONFIG
    for module in settings["imports"]:
        importlib.import_module(module)
    assert "latechunk.embedding.encoders" in settings["imports"]


def test_cpu_worker_takes_the_default_queue_and_no_gpu(services):
    queues, _ = celery_worker_options(services[CPU_WORKER]["command"])
    assert "gpu" not in queues, "the CPU worker would take embed tasks off the GPU worker"
    assert services[CPU_WORKER]["environment"]["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] in queues
    reserved = [name for name, service in services.items() if "deploy" in service]
    assert reserved == [GPU_WORKER], f"only the GPU worker reserves devices, not {reserved}"
    gpu_consumers = [
        name
        for name, service in services.items()
        if tokens(service.get("command"))[:2] == ["celery", "worker"]
        and "gpu" in celery_worker_options(service["command"])[0]
    ]
    assert gpu_consumers == [GPU_WORKER]


def test_every_airflow_service_runs_the_one_project_image(services):
    images = {name: (services[name]["image"], services[name]["build"]["context"]) for name in AIRFLOW_SERVICES}
    assert len(set(images.values())) == 1, images
    (_, context), *_ = images.values()
    assert Path(context).resolve() == REPO
    assert Path(services[GPU_WORKER]["build"].get("dockerfile", "Dockerfile")).name == DOCKERFILE.name


def test_named_volumes_and_mounts(config, services):
    declared = set(config.get("volumes") or {})
    expected = {
        "postgres": "/var/lib/postgresql/data",
        "elasticsearch": "/usr/share/elasticsearch/data",
        "minio": "/data",
    }
    for name, target in expected.items():
        kind, source = mounts(services[name]).get(target, (None, None))
        assert kind == "volume" and source in declared, f"{name}: no named volume at {target}"
    hf_home = next(args for op, args in dockerfile_instructions() if op == "ENV" and "HF_HOME=" in args)
    hf_home = re.search(r"HF_HOME=(\S+)", hf_home).group(1)
    for name in AIRFLOW_SERVICES:
        service_mounts = mounts(services[name])
        for folder in ("dags", "plugins", "include"):
            kind, source = service_mounts.get(f"/opt/airflow/{folder}", (None, None))
            assert kind == "bind" and Path(source).resolve() == REPO / folder, f"{name}: {folder}/ not mounted"
        assert service_mounts.get("/opt/airflow/logs", ("", ""))[1] in declared, f"{name}: logs not on a volume"
        assert service_mounts.get(hf_home, ("", ""))[1] in declared, f"{name}: no model cache volume at {hf_home}"
        assert services[name]["environment"]["HF_HOME"] == hf_home


def test_long_running_services_have_healthchecks(services):
    for name in ("postgres", "redis", "elasticsearch", "minio", "airflow-apiserver", "airflow-scheduler"):
        assert name in services, name
    unchecked = [
        name
        for name, service in services.items()
        if name not in ONE_SHOT and healthcheck_test(service)[:1] not in (["CMD"], ["CMD-SHELL"])
    ]
    assert not unchecked, f"services without a healthcheck: {unchecked}"
    assert "/api/v2/monitor/health" in " ".join(healthcheck_test(services["airflow-apiserver"]))
    assert ":8974/health" in " ".join(healthcheck_test(services["airflow-scheduler"]))
    # Airflow waits for its backends to be healthy, and the workers for the services their tasks call.
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == depends["redis"]["condition"] == "service_healthy", name
    for worker in (CPU_WORKER, GPU_WORKER):
        depends = services[worker]["depends_on"]
        assert depends["elasticsearch"]["condition"] == "service_healthy"
        assert depends["minio-init"]["condition"] == "service_completed_successfully"


def test_elasticsearch_major_matches_the_pinned_client(services):
    client = lock_pins()["elasticsearch"]
    image, _, tag = services["elasticsearch"]["image"].rpartition(":")
    assert image.endswith("elasticsearch/elasticsearch"), image
    server_version = tuple(int(part) for part in tag.split(".")[:2])
    client_version = tuple(int(part) for part in client.split(".")[:2])
    assert server_version[0] == client_version[0], f"server {tag} vs client elasticsearch=={client}: majors differ"
    assert server_version >= client_version, f"server {tag} is older than client elasticsearch=={client}"
    env = services["elasticsearch"]["environment"]
    assert env["discovery.type"] == "single-node"
    assert re.search(r"-Xms(\S+) -Xmx\1", env["ES_JAVA_OPTS"]), env["ES_JAVA_OPTS"]
    assert env["xpack.security.enabled"] == "true"
    assert env["ELASTIC_PASSWORD"] == filled_env()["ELASTIC_PASSWORD"]


def test_connections_come_from_env_values_with_no_literal_secret(services):
    raw = raw_compose()
    raw_env = raw["x-airflow-common"]["environment"]
    for variable, conn_type in CONNECTIONS.items():
        written = json.loads(raw_env[variable])
        assert written["conn_type"] == conn_type
        assert ONLY_A_REF.match(written["password"]), f"{variable}: password is not a ${{...}} reference"
        if conn_type == "aws":
            assert ONLY_A_REF.match(written["login"]), f"{variable}: access key is not a ${{...}} reference"
    # Rendered: the JSON survives interpolation and carries what .env says, in every Airflow service.
    env = filled_env()
    for name in AIRFLOW_SERVICES:
        s3 = json.loads(services[name]["environment"]["AIRFLOW_CONN_LATECHUNK_S3"])
        assert (s3["login"], s3["password"]) == (env["LATECHUNK_S3_ACCESS_KEY"], env["LATECHUNK_S3_SECRET_KEY"])
        assert s3["extra"]["endpoint_url"] == "http://minio:9000"
        es = json.loads(services[name]["environment"]["AIRFLOW_CONN_LATECHUNK_ES"])
        assert (es["host"], es["port"], es["password"]) == ("elasticsearch", 9200, env["ELASTIC_PASSWORD"])


def test_no_secret_is_written_in_the_compose_file():
    literal = []
    for name, service in {**raw_compose()["services"], "x-airflow-common": raw_compose()["x-airflow-common"]}.items():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.partition("=")[::2] for item in environment)
        for variable, value in environment.items():
            value = "" if value is None else str(value)
            if SECRET_NAME.search(variable) and value and not ONLY_A_REF.match(value):
                literal.append(f"{name}.{variable}")
            for userinfo_password in re.findall(r"://[^:/@\s]*:([^@\s]+)@", value):
                if not ONLY_A_REF.match(userinfo_password):
                    literal.append(f"{name}.{variable} (password in a URL)")
    assert not literal, f"literal secrets in docker-compose.yaml: {literal}"
    # Required secrets have no default: a forgotten one stops Compose instead of starting with a known password.
    text = COMPOSE_FILE.read_text()
    for secret in ("POSTGRES_PASSWORD", "ELASTIC_PASSWORD", "MINIO_ROOT_PASSWORD", "LATECHUNK_S3_SECRET_KEY",
                   "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_ADMIN_PASSWORD"):
        kinds = {match.group(2) for match in COMPOSE_REF.finditer(text) if match.group(1) == secret}
        assert kinds == {":?"}, f"{secret} must be required (${{{secret}:?...}}), found {kinds}"


def test_compose_refuses_the_unfilled_env_example(compose, tmp_path):
    result = run_compose_config(compose, read_env_file(ENV_EXAMPLE), tmp_path)
    assert result.returncode != 0, "compose accepted .env.example with empty secrets"
    assert re.search(r"set [A-Z_]+ in \.env", result.stderr), result.stderr


def test_env_example_lists_exactly_the_variables_the_compose_file_reads():
    used = {match.group(1) for match in COMPOSE_REF.finditer(COMPOSE_FILE.read_text())}
    listed = set(read_env_file(ENV_EXAMPLE))
    assert not used - listed, f"used in docker-compose.yaml but not in .env.example: {sorted(used - listed)}"
    assert not listed - used, f"in .env.example but never used: {sorted(listed - used)}"
    filled = [name for name, value in read_env_file(ENV_EXAMPLE).items() if SECRET_NAME.search(name) and value]
    assert not filled, f"secrets must be left empty in .env.example: {filled}"


# --- the image -------------------------------------------------------------------------------------------------


def test_dockerfile_base_image_is_the_pinned_airflow():
    froms = [args for op, args in dockerfile_instructions() if op == "FROM"]
    assert len(froms) == 1, froms
    match = re.fullmatch(r"apache/airflow:(\d+\.\d+\.\d+)-python(\d+)\.(\d+)", froms[0])
    assert match, f"not an official apache/airflow:<version>-python<x.y> tag: {froms[0]}"
    assert match.group(1) == lock_pins()["apache-airflow"], "the base image is not the Airflow of requirements.lock"
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    low, high = re.fullmatch(r">=3\.(\d+),<3\.(\d+)", requires).groups()
    assert match.group(2) == "3" and int(low) <= int(match.group(3)) < int(high), requires


def test_dockerfile_installs_requirements_lock_and_the_package_without_deps():
    steps = dockerfile_instructions()
    copies = [args.split() for op, args in steps if op == "COPY"]
    lock_copy = next(
        (args for args in copies if [a for a in args if not a.startswith("--")][:-1] == ["requirements.lock"]), None
    )
    assert lock_copy, "the Dockerfile does not COPY requirements.lock"
    lock_in_image = lock_copy[-1]
    runs = [args for op, args in steps if op == "RUN"]
    pip_runs = [cmd for args in runs for cmd in re.split(r"&&|;", args) if re.search(r"\bpip install\b", cmd)]
    assert any(
        re.search(rf"(-r|--requirement)[ =]{re.escape(lock_in_image)}(\s|$)", cmd) for cmd in pip_runs
    ), f"no `pip install -r {lock_in_image}` in {pip_runs}"
    project = [cmd for cmd in pip_runs if "-r" not in cmd.split() and "--requirement" not in cmd]
    assert project and all("--no-deps" in cmd.split() for cmd in project), f"package not installed --no-deps: {project}"
    # A version written in the Dockerfile must agree with the lock (better: none at all besides FROM).
    pins = lock_pins()
    for cmd in pip_runs:
        for name, version in re.findall(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\"']+)", cmd):
            assert pins.get(name.lower().replace("_", "-")) == version, f"{name}=={version} differs from the lock"
    assert any("requirements.lock" in args and "r.specifier.contains" in args for args in runs), (
        "the build no longer verifies the installed versions against the lock"
    )


def test_dockerignore_keeps_what_the_dockerfile_copies_and_drops_the_rest():
    def excluded(path: str) -> bool:
        verdict = False
        for line in DOCKERIGNORE.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate, pattern = line.startswith("!"), line.lstrip("!").rstrip("/")
            pattern = pattern.removeprefix("**/")
            parts = path.split("/")
            candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))] + parts
            if any(re.fullmatch(fnmatch_regex(pattern), candidate) for candidate in candidates):
                verdict = not negate
        return verdict

    def fnmatch_regex(pattern: str) -> str:
        return "".join("[^/]*" if c == "*" else re.escape(c) for c in pattern)

    sources = []
    for op, args in dockerfile_instructions():
        if op == "COPY":
            sources += [arg.rstrip("/") for arg in args.split() if not arg.startswith("--")][:-1]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such file"
        assert not excluded(source), f".dockerignore drops {source}, which the Dockerfile copies"
    for path in (".env", ".venv", ".git", "var", "tests", "include/latechunk/__pycache__", "x.egg-info"):
        assert excluded(path), f".dockerignore lets {path} into the build context"


# --- the documentation -----------------------------------------------------------------------------------------


def test_deployment_doc_covers_every_param_connection_and_variable():
    from latechunk_operators.params import ingest_params

    doc = DEPLOYMENT_DOC.read_text()
    params = set(ingest_params())
    for dag_file in (REPO / "dags").glob("*.py"):
        params |= set(re.findall(r"params\[\"(\w+)\"\]\s*=\s*Param\(", dag_file.read_text()))
    missing = sorted(name for name in params if f"`{name}`" not in doc)
    assert not missing, f"DAG params missing from docs/deployment.md: {missing}"
    for name in ("latechunk_s3", "latechunk_es", *CONNECTIONS, "latechunk_ingest", "latechunk_reindex"):
        assert f"`{name}`" in doc, f"{name} missing from docs/deployment.md"
    undocumented = sorted(name for name in read_env_file(ENV_EXAMPLE) if f"`{name}`" not in doc)
    assert not undocumented, f".env.example variables missing from docs/deployment.md: {undocumented}"
    assert "docs/deployment.md" in (REPO / "README.md").read_text(), "README.md does not link docs/deployment.md"
