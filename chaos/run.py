"""`make chaos`: run the fault drills and write a report.

    python -m chaos.run [--backend auto|local|compose] [--short] [--only NAME ...]

`compose` drives `make up`'s stack (the real toxiproxy through its HTTP API, `docker compose kill` for
process faults); `local` builds its own stack on loopback (embedded PostgreSQL, the fault proxy of
chaos/proxy.py, the service as a child process). `auto` picks compose when a Docker engine answers and the
stack is up. The report (pass or fail per check, recovery times, ambiguous requests and how retries
resolved them) goes to results/chaos/<time>/report.json and report.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import asdict

from chaos.drills import DRILLS, DrillResult, run_drill
from chaos.stack import ROOT, ComposeStack, LocalStack, Stack


def _docker_stack_up() -> bool:
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)  # noqa: S607
        if info.returncode != 0:
            return False
        ps = subprocess.run(["docker", "compose", "ps", "-q", "ledger"], cwd=ROOT, capture_output=True,  # noqa: S607
                            text=True, timeout=20, check=False)  # fmt: skip
        return bool(ps.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        return False


def markdown(results: list[DrillResult], backend: str) -> str:
    header = "| Drill | Result | Recovery | Ambiguous → replayed / posted | Checks failed |"
    lines = [f"# Chaos drills ({backend} backend)", "", header, "|---|---|---|---|---|"]
    for r in results:
        failed = ", ".join(name for name, ok in r.checks.items() if not ok) or "none"
        recovery = r.details.get("recovery_seconds")
        lines.append(
            f"| {r.name} | {'PASS' if r.passed else 'FAIL'} | {recovery if recovery is not None else '-'} s | "
            f"{r.details['ambiguous_payments']} → {r.details['ambiguous_resolved_as_replay']} / "
            f"{r.details['ambiguous_resolved_as_first_post']} | {failed} |"
        )
    lines += [""]
    for r in results:
        lines += [f"## {r.name}", "", f"Hypothesis: {r.hypothesis}", ""]
        lines += [f"- {name}: {'pass' if ok else 'FAIL'}" for name, ok in r.checks.items()]
        lines += [f"- {key}: {value}" for key, value in r.details.items()] + [""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["auto", "local", "compose"], default="auto")
    parser.add_argument("--short", action="store_true", help="4 s faults instead of 10 s (what make test runs)")
    parser.add_argument("--only", nargs="*", choices=[d.name for d in DRILLS])
    args = parser.parse_args()
    backend = args.backend if args.backend != "auto" else ("compose" if _docker_stack_up() else "local")
    fault_seconds, calm_seconds = (4.0, 1.5) if args.short else (10.0, 5.0)
    drills = [d for d in DRILLS if not args.only or d.name in args.only]
    out = ROOT / "results" / "chaos" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    stack: Stack = ComposeStack() if backend == "compose" else LocalStack()
    results: list[DrillResult] = []
    try:
        for drill in drills:
            print(f"chaos: {drill.name}: {drill.hypothesis}", flush=True)
            result = asyncio.run(run_drill(stack, drill, fault_seconds=fault_seconds, calm_seconds=calm_seconds))
            results.append(result)
            failed = [name for name, ok in result.checks.items() if not ok]
            print(f"chaos: {drill.name}: {'PASS' if result.passed else 'FAIL ' + ', '.join(failed)} "
                  f"{json.dumps(result.details)}", flush=True)  # fmt: skip
    finally:
        stack.close()
    (out / "report.json").write_text(json.dumps([asdict(r) | {"passed": r.passed} for r in results], indent=2) + "\n")
    (out / "report.md").write_text(markdown(results, backend))
    passed = all(r.passed for r in results)
    print(f"chaos: {'PASS' if passed else 'FAIL'}: report in {out.relative_to(ROOT)}/report.md", flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
