"""Audit the locked runtime dependencies for known vulnerabilities (pip-audit).

Fails when a vulnerability is found. When the advisory database cannot be reached (this project's machines
reach only the package index), it says so plainly and passes: an audit that did not happen is reported,
never mistaken for a clean one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LOCK_FILES = ("requirements/runtime.txt",)


def main() -> int:
    bindir = Path(sys.executable).parent
    failed = False
    for lock in LOCK_FILES:
        result = subprocess.run(
            [str(bindir / "pip-audit"), "-r", lock, "--require-hashes", "--disable-pip", "--format", "json",
             "--progress-spinner", "off"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        try:
            report = json.loads(result.stdout)
        except json.JSONDecodeError:
            print(f"dependency audit of {lock}: NOT PERFORMED, pip-audit failed: {result.stderr.strip()[-300:]}")
            continue
        dependencies = report.get("dependencies", [])
        vulnerable = [d for d in dependencies if d.get("vulns")]
        audited = [d for d in dependencies if "skip_reason" not in d]
        for dependency in vulnerable:
            ids = ", ".join(v["id"] for v in dependency["vulns"])
            print(f"VULNERABLE: {dependency['name']} {dependency['version']}: {ids}")
        if vulnerable:
            failed = True
        elif not audited:
            print(f"dependency audit of {lock}: NOT PERFORMED, the advisory database could not be reached "
                  f"({len(dependencies)} dependencies skipped)")  # fmt: skip
        else:
            print(f"dependency audit of {lock}: {len(audited)} audited, no known vulnerabilities "
                  f"({len(dependencies) - len(audited)} could not be audited)")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
