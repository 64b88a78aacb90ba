"""What every part of the harness shares: paths, the failure type, progress lines, running commands,
reading /proc, and number formatting."""

from __future__ import annotations

import gzip
import math
import os
import statistics
import socket
import subprocess
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
ROOT = BENCH.parent
WRK_SCRIPT = BENCH / "validate.lua"
CARGO_JOBS = "2"
EXPECT = {"valid": "200:true", "invalid": "401:false"}  # status:valid-field of every answer


class BenchFailure(Exception):
    """A failed run: an unexpected status, a socket error, a build that broke, a server that did not start."""


# --------------------------------------------------------------------------------------------------
# progress


T_START = time.monotonic()


def progress(phase: str, msg: str) -> None:
    print(f"[{time.monotonic() - T_START:7.1f}s] {phase}: {msg}", flush=True)


# --------------------------------------------------------------------------------------------------
# small helpers


def run(cmd, *, cwd=ROOT, env=None, timeout=3600, log: Path | None = None, what: str = "") -> subprocess.CompletedProcess:
    """Run a command to completion; raise BenchFailure (with the output's tail) if it fails."""
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, errors="replace")
    except subprocess.TimeoutExpired:
        raise BenchFailure(f"{what or cmd[0]}: still running after {timeout}s: {' '.join(map(str, cmd))}")
    except FileNotFoundError:
        raise BenchFailure(f"{what or cmd[0]}: command not found: {cmd[0]}")
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(p.stdout)
    if p.returncode != 0:
        tail = "\n".join(p.stdout.splitlines()[-25:])
        raise BenchFailure(f"{what or cmd[0]} failed (exit {p.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return p


def version_of(cmd) -> str:
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30, cwd=ROOT)
        lines = [l for l in p.stdout.splitlines() if l.strip() and "npm warn" not in l.lower()]
        return lines[0].strip() if lines else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "not found"


def median(xs):
    return statistics.median(xs) if xs else None


def percentile(sorted_xs, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_xs:
        return None
    k = max(0, min(len(sorted_xs) - 1, math.ceil(p / 100 * len(sorted_xs)) - 1))
    return sorted_xs[k]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def proc_status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise BenchFailure(f"/proc/{pid}/status has no {key}")


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def group_cpu_s(pgids: list[int]) -> float:
    """utime + stime, in seconds, of every live process in these process groups (each server is
    started as a session leader, so its group is its pid: a proxy's master and workers all count)."""
    wanted = set(pgids)
    total = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) in wanted:
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def tree_bytes(path: Path) -> tuple[int, int]:
    """Apparent size in bytes and file count of every regular file under path."""
    total = files = 0
    for dirpath, _dirs, names in os.walk(path):
        for n in names:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if not os.path.islink(p):
                total += st.st_size
                files += 1
    return total, files


def gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def fmt_bytes(n) -> str:
    if n is None:
        return "—"
    if n >= 1024 * 1024:
        return f"{n / 1048576:.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.0f} KiB"
    return f"{n} B"


def fmt_num(x, digits=3) -> str:
    if x is None:
        return "—"
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    decimals = max(0, digits - 1 - mag)
    return f"{x:,.{decimals}f}"


def fmt_ratio(x) -> str:
    if x is None:
        return "—"
    if x >= 10:
        return f"{x:.1f}×"
    if x >= 0.1:
        return f"{x:.2f}×"
    return f"{x:.3g}×"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def proc_meminfo_total():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return None
