"""CPU accounting for one benchmark run, from /proc (the method of shared/perf/cpu_snap.py, per process tree).

A background thread samples, every `interval` seconds, the machine's CPU counters (/proc/stat) and the CPU
time (utime + stime, plus cutime + cstime: children already reaped) of a few named process trees: the
PostgreSQL postmaster and its backends, the service, the load generator, and this runner. CPU used in a
window is interpolated between the samples around the window's ends, so that a generator's start-up (k6
compiles its script) and the runner's own set-up are left out. Whatever the machine did besides those trees
is "foreign" CPU: another user's build or test run sharing the machine; a run with more than
`FOREIGN_FLAG_PCT` of the machine foreign is flagged.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from dataclasses import dataclass, field

HZ = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
FOREIGN_FLAG_PCT = 10.0


def _stat_fields(pid: int | str) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    return raw[raw.rindex(")") + 2 :].split()  # fields from 'state' (field 3) on


def _process_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, own ticks utime+stime, reaped children's ticks cutime+cstime)."""
    table: dict[int, tuple[int, int, int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            f = _stat_fields(name)
        except (OSError, ValueError):
            continue  # exited meanwhile
        table[int(name)] = (int(f[1]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14]))
    return table


def tree_ticks(root: int, table: dict[int, tuple[int, int, int]]) -> int:
    """CPU ticks of a process, its live descendants, and every descendant already reaped (in cutime)."""
    if root not in table:
        return 0
    children: dict[int, list[int]] = {}
    for pid, (ppid, _own, _reaped) in table.items():
        children.setdefault(ppid, []).append(pid)
    total = table[root][1] + table[root][2]
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        _ppid, own, _reaped = table[pid]
        total += own  # a live descendant's reaped children are counted when it is reaped itself
        stack.extend(children.get(pid, []))
    return total


def ticks(pid: int, tree: bool, table: dict[int, tuple[int, int, int]]) -> int:
    """A process tree's CPU ticks, or (tree=False) the process's own, without any child's."""
    if tree:
        return tree_ticks(pid, table)
    return table[pid][1] if pid in table else 0


def machine_ticks() -> tuple[int, int, int]:
    """(total, busy, steal) ticks of the whole machine since boot."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    total = sum(values[:8])  # guest time is already inside user time
    idle = values[3] + values[4]
    steal = values[7] if len(values) > 7 else 0
    return total, total - idle, steal


@dataclass
class Sample:
    t: float
    machine: tuple[int, int, int]
    trees: dict[str, int]


@dataclass
class Sampler:
    """Samples named process trees in the background; `window(t0, t1)` gives CPU seconds used in between."""

    interval: float = 0.2
    roots: dict[str, tuple[int, bool]] = field(default_factory=dict)  # name -> (pid, with descendants)
    samples: list[Sample] = field(default_factory=list)
    finals: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (exit time, CPU seconds)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def watch(self, name: str, pid: int, *, tree: bool = True) -> None:
        with self._lock:
            self.roots[name] = (pid, tree)
            self.finals.pop(name, None)

    def forget(self, name: str) -> None:
        with self._lock:
            self.roots.pop(name, None)

    def exited(self, name: str, cpu_seconds: float, when: float) -> None:
        """A direct child was reaped: its whole-life CPU (from wait4's rusage) closes its series."""
        with self._lock:
            self.finals[name] = (when, cpu_seconds)
            self.roots.pop(name, None)

    def sample(self) -> None:
        table = _process_table()
        with self._lock:
            trees = {name: ticks(pid, tree, table) for name, (pid, tree) in self.roots.items()}
            self.samples.append(Sample(time.time(), machine_ticks(), trees))

    def start(self) -> None:
        self._stop.clear()
        self.samples = []
        self.finals = {}
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    # -- reading -------------------------------------------------------------------------------------------
    def _at(self, t: float, value_of) -> float | None:  # type: ignore[no-untyped-def]
        """Linear interpolation of a sampled counter at time t (None if never sampled around t)."""
        points = [(s.t, v) for s in self.samples if (v := value_of(s)) is not None]
        if not points:
            return None
        times = [p[0] for p in points]
        i = bisect.bisect_left(times, t)
        if i == 0:
            return float(points[0][1])
        if i == len(points):
            return float(points[-1][1])
        (t0, v0), (t1, v1) = points[i - 1], points[i]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else float(v1)

    def window(self, t0: float, t1: float) -> dict[str, float]:
        """CPU seconds per tree and for the whole machine between t0 and t1 (wall clock, time.time())."""
        out: dict[str, float] = {"wall": t1 - t0}
        names = {n for s in self.samples for n in s.trees} | set(self.finals)
        for name in names:
            start = self._at(t0, lambda s, n=name: s.trees.get(n))
            end = self._at(t1, lambda s, n=name: s.trees.get(n))
            if name in self.finals and t0 <= self.finals[name][0] <= t1 + 1:
                end = self.finals[name][1] * HZ  # exact: the reaped process's whole-life CPU
            out[name] = max(0.0, ((end or 0.0) - (start or 0.0)) / HZ)
        total0, total1 = self._at(t0, lambda s: s.machine[0]), self._at(t1, lambda s: s.machine[0])
        busy0, busy1 = self._at(t0, lambda s: s.machine[1]), self._at(t1, lambda s: s.machine[1])
        steal0, steal1 = self._at(t0, lambda s: s.machine[2]), self._at(t1, lambda s: s.machine[2])
        total = (total1 or 0.0) - (total0 or 0.0)
        out["machine_capacity"] = total / HZ
        out["machine_busy"] = ((busy1 or 0.0) - (busy0 or 0.0)) / HZ
        out["steal"] = ((steal1 or 0.0) - (steal0 or 0.0)) / HZ
        known = sum(v for k, v in out.items() if k in names)
        out["foreign"] = max(0.0, out["machine_busy"] - known)
        return out


def foreign_pct_now(roots: dict[str, tuple[int, bool]], seconds: float = 1.0) -> float:
    """Share of the machine (in %) used by processes outside `roots` over the next `seconds`."""
    table = _process_table()
    known0 = sum(ticks(pid, tree, table) for pid, tree in roots.values())
    total0, busy0, _ = machine_ticks()
    time.sleep(seconds)
    table = _process_table()
    known1 = sum(ticks(pid, tree, table) for pid, tree in roots.values())
    total1, busy1, _ = machine_ticks()
    if total1 <= total0:
        return 0.0
    return max(0.0, 100.0 * ((busy1 - busy0) - (known1 - known0)) / (total1 - total0))


def wait_for_quiet(
    roots: dict[str, tuple[int, bool]], *, max_wait: float, threshold_pct: float = 15.0
) -> tuple[float, float]:
    """Wait (at most max_wait seconds) until foreign CPU is under threshold; return (waited, last foreign %)."""
    started = time.time()
    foreign = foreign_pct_now(roots, 1.0) if max_wait > 0 else 0.0
    while foreign >= threshold_pct and time.time() - started < max_wait:
        foreign = foreign_pct_now(roots, 1.0)
    return round(time.time() - started, 1), round(foreign, 1)
