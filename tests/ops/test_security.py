"""No secret is committed: detect-secrets over every tracked file, against the audited baseline
(`.secrets.baseline`: test fixtures and placeholders, each marked as not a secret)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOOK = Path(sys.executable).parent / "detect-secrets-hook"


def _hook(*files: str) -> subprocess.CompletedProcess[str]:
    assert HOOK.exists(), "detect-secrets is missing: make install"
    return subprocess.run(
        [str(HOOK), "--baseline", ".secrets.baseline", *files], cwd=ROOT, capture_output=True, text=True
    )


def test_no_secret_is_committed() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    result = _hook(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_committed_secret_would_be_caught(tmp_path: Path) -> None:
    planted = ROOT / "build" / "planted_secret.py"
    planted.parent.mkdir(exist_ok=True)
    planted.write_text('aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ8fKq3XhN"\n')
    try:
        result = _hook(str(planted.relative_to(ROOT)))
    finally:
        planted.unlink()
    assert result.returncode != 0
