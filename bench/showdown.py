#!/usr/bin/env python3
"""The showdown: one command that measures jwt-validator against the Node baseline.

    python3 bench/showdown.py [--quick] [--out DIR]

Contenders (same POST /validate contract, same tokens, same machine, one invocation, interleaved):
  node        bench/node: Express + jsonwebtoken, the way the original service was written
  native      target/release/jwt-validator
  wasm        the component under `wasmtime serve` (pooling allocator, instances reused), from the .wasm
              (compiled at every start: wasmtime's cache is turned off)
  wasm-cwasm  the same component precompiled with `wasmtime compile`, served with --allow-precompiled

Figures: artifact size, clean and incremental build time, cold start, idle and peak RSS,
throughput and latency under load (wrk) for a valid and an invalid-signature token, requests per
server CPU-second, latency at a fixed offered rate, in-process verify cost per algorithm
(criterion). Every response's status is checked: anything unexpected fails the run.

Output (default bench/results/): report.md, results.json (every raw sample), chart.svg.
Python 3.11 standard library only. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import io
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import containers  # image sizes and container cold starts (bench/containers.py)

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NODE_APP = BENCH / "node"
WRK_SCRIPT = BENCH / "validate.lua"
CACHE = BENCH / ".cache" / "incremental"  # private source copy + target dir for incremental builds

CONTENDERS = ["node", "native", "wasm", "wasm-cwasm"]
# Requests one component instance may serve in turn (`wasmtime serve --max-instance-reuse-count`).
WASM_INSTANCE_REUSE = "64"
LABELS = {
    "node": "node (Express)",
    "native": "native",
    "wasm": "wasm (.wasm)",
    "wasm-cwasm": "wasm (.cwasm)",
}
COLORS = {"node": "#3c873a", "native": "#c0561d", "wasm": "#654ff0", "wasm-cwasm": "#a99bf7"}
RUST = ["native", "wasm"]  # what cargo builds
EXPECT = {"valid": "200:true", "invalid": "401:false"}  # status:valid-field of every answer
CARGO_JOBS = "2"
# wasm-opt through `jco opt` (-Oz): the component that ships (scripts/image) and that scripts/test checks
COMPONENT_OPT = ROOT / "scripts" / "component-opt"

# The original write-up's figures (Node/Express in a container vs a Rust component on Spin), quoted as theirs.
ORIGINAL = {
    "artifact": "188 MB vs 0.5 MB (548 KB)",
    "incremental build": "~45 s vs 4.2 s",
    "cold start": "~1200 ms vs ~10 ms",
    "idle memory": "~85 MB vs ~4 MB",
}


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


# --------------------------------------------------------------------------------------------------
# HTTP, with sockets


def http_request(port: int, body: bytes, *, timeout: float = 5.0, path: str = "/validate") -> tuple[int, str]:
    """One POST with Connection: close. Returns (status, body). Raises OSError on socket errors."""
    req = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(req)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    raw = b"".join(chunks)
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines or not lines[0].startswith(b"HTTP/1."):
        raise ConnectionError(f"not an HTTP response: {raw[:80]!r}")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(b":")
        headers[k.strip().lower()] = v.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        rest = dechunk(rest)
    return status, rest.decode("utf-8", "replace")


def dechunk(data: bytes) -> bytes:
    out = bytearray()
    while True:
        line, _, data = data.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += data[:size]
        data = data[size + 2:]


def validity(body: str) -> str:
    if '"valid":true' in body:
        return "true"
    if '"valid":false' in body:
        return "false"
    return "none"


async def read_response(reader: asyncio.StreamReader) -> tuple[int, str, bool]:
    """Read one HTTP/1.1 response. Returns (status, validity, keep_alive)."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("connection closed before a response")
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ConnectionError(f"not an HTTP status line: {line[:80]!r}")
    status = int(parts[1])
    length = None
    chunked = False
    keep_alive = parts[0] == b"HTTP/1.1"
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.partition(b":")
        k = k.strip().lower()
        v = v.strip().lower()
        if k == b"content-length":
            length = int(v)
        elif k == b"transfer-encoding" and b"chunked" in v:
            chunked = True
        elif k == b"connection":
            keep_alive = v == b"keep-alive" or (keep_alive and v != b"close")
    if chunked:
        body = bytearray()
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    elif length is not None:
        body = await reader.readexactly(length)
    else:
        body = await reader.read()
        keep_alive = False
    return status, validity(bytes(body).decode("utf-8", "replace")), keep_alive


async def fixed_rate_async(port: int, token: str, rate: float, duration: float) -> dict:
    """Open-loop generator: one request every 1/rate s, each on an idle keep-alive connection (a new
    one if none is idle, so a slow answer never delays the next send). Latency: send → full answer."""
    body = json.dumps({"token": token}, separators=(",", ":")).encode()
    request = (f"POST /validate HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    idle: list = []
    samples: list[tuple[float, float, str]] = []  # (latency s, lag s, "status:valid")
    errors: list[str] = []
    opened = 0

    async def connect():
        nonlocal opened
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        opened += 1
        return r, w

    async def one(due: float):
        t0 = time.perf_counter()
        try:
            conn = idle.pop() if idle else await connect()
            reader, writer = conn
            writer.write(request)
            await writer.drain()
            status, valid, keep = await asyncio.wait_for(read_response(reader), timeout=10)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, ValueError) as e:
            errors.append(f"{type(e).__name__}: {e}")
            return
        t1 = time.perf_counter()
        samples.append((t1 - t0, t0 - due, f"{status}:{valid}"))
        if keep:
            idle.append(conn)
        else:
            writer.close()

    for _ in range(4):
        idle.append(await connect())
    n = int(rate * duration)
    start = time.perf_counter() + 0.02
    tasks = []
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    wall = time.perf_counter() - start
    for _r, w in idle:
        w.close()
    counts: dict[str, int] = {}
    for _l, _g, k in samples:
        counts[k] = counts.get(k, 0) + 1
    lat = sorted(s[0] * 1000 for s in samples)
    return {
        "sent": n,
        "answered": len(samples),
        "wall_s": wall,
        "achieved_rps": len(samples) / wall if wall > 0 else None,
        "connections_opened": opened,
        "errors": errors,
        "counts": counts,
        "latencies_ms": [round(s[0] * 1000, 4) for s in samples],
        "send_lag_ms_max": round(max((s[1] for s in samples), default=0) * 1000, 3),
        "p50_ms": percentile(lat, 50),
        "p90_ms": percentile(lat, 90),
        "p99_ms": percentile(lat, 99),
        "max_ms": lat[-1] if lat else None,
    }


# --------------------------------------------------------------------------------------------------
# servers


@dataclass
class Server:
    contender: str
    port: int
    proc: subprocess.Popen
    log: Path | None = None
    t_spawn: float = 0.0  # perf_counter just before Popen
    idle_rss_kib: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid


LIVE: list[subprocess.Popen] = []  # every process group this harness started and has not ended yet


def stop(proc: subprocess.Popen) -> None:
    """End the process group we created for this server (start_new_session: its pgid is its pid)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
    else:
        # the leader is gone; make sure nothing it started lingers in its group
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if proc in LIVE:
        LIVE.remove(proc)


def stop_all() -> None:
    for p in list(LIVE):
        stop(p)


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.out = Path(args.out).resolve()
        self.work = self.out / ".work"
        self.logs = self.work / "logs"
        self.secret = secrets.token_urlsafe(24)  # 32 ASCII characters: a 32-byte HS256 secret
        self.results: dict = {
            "schema": 1,
            "mode": "quick" if self.quick else "full",
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "skipped": {},
            "status_checks": {"preflight": [], "responses_checked": 0},
        }
        self.base_env = {k: v for k, v in os.environ.items()
                         if not k.startswith("JWT_") and k not in ("PORT", "HOST", "RUST_LOG")}
        cargo_bin = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo")) / "bin"
        self.base_env["PATH"] = f"{cargo_bin}:{self.base_env.get('PATH', '')}"
        self.native_bin = ROOT / "target" / "release" / "jwt-validator"
        self.wasm_file = ROOT / "target" / "wasm32-wasip2" / "wasm" / "jwtv_component.wasm"
        self.cwasm_file = self.work / "jwtv_component.cwasm"
        self.opt_file = self.work / "jwtv_component.opt.wasm"
        self.jco = ROOT / "tools" / "jco" / "node_modules" / ".bin" / "jco"
        self.native_has_cache = False  # set by prepare(): does this build have JWT_TOKEN_CACHE_SIZE?

    # ------------------------------------------------------------------ settings

    @property
    def cold_runs(self):
        return self.args.cold_runs or (10 if self.quick else 20)

    @property
    def idle_rounds(self):  # cold-start rounds that also wait 1 s for an idle RSS sample
        return 0 if self.quick else 4

    @property
    def connections(self):
        return [16] if self.quick else [1, 16, 64]

    @property
    def load_seconds(self):
        return 3 if self.quick else 10

    @property
    def warmup_seconds(self):
        return 1 if self.quick else 3

    @property
    def rate(self):
        return 200

    @property
    def rate_seconds(self):
        return 2 if self.quick else 5

    @property
    def build_runs(self):
        return 1 if self.quick else 3

    def env_with(self, **extra) -> dict:
        e = dict(self.base_env)
        e.update(extra)
        return e

    # ------------------------------------------------------------------ preflight and environment

    def preflight(self):
        missing = []
        for tool, why in [("cargo", "builds"), ("rustc", "builds"), ("node", "the Node baseline"),
                          ("npm", "npm ci of the Node baseline"), ("wasmtime", "serving the component"),
                          ("wrk", "the load generator")]:
            if shutil.which(tool, path=self.base_env["PATH"]) is None:
                missing.append((tool, why))
        if missing:
            lines = [f"  {t} (for {w})" for t, w in missing]
            hint = []
            if any(t == "wrk" for t, _ in missing):
                hint.append("wrk is Debian's package: apt-get install wrk (this harness installs nothing itself)")
            if any(t == "wasmtime" for t, _ in missing):
                hint.append("wasmtime: scripts/setup wasmtime")
            raise BenchFailure("missing tools:\n" + "\n".join(lines) + ("\n" + "\n".join(hint) if hint else ""))

    def environment(self) -> dict:
        cpu = "?"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = proc_meminfo_total()
        git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True).stdout.strip()
        changed = [l[3:] for l in subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                                 text=True).stdout.splitlines() if l.strip()]
        dirty = bool(changed)
        node_pkgs = {}
        for name in ("express", "jsonwebtoken"):
            pj = NODE_APP / "node_modules" / name / "package.json"
            if pj.exists():
                node_pkgs[name] = json.loads(pj.read_text()).get("version")
        env = {
            "cpu_model": cpu,
            "cores": os.cpu_count(),
            "memory_total_mib": mem_kib // 1024 if mem_kib else None,
            "kernel": platform.release(),
            "os": platform.platform(),
            "load_generator_shares_cores": True,
            "git_commit": git,
            "git_tracked_changes": dirty,
            "git_changed_files": changed,
            "versions": {
                "rustc": version_of(["rustc", "--version"]),
                "cargo": version_of(["cargo", "--version"]),
                "node": version_of(["node", "--version"]),
                "npm": version_of(["npm", "--version"]),
                "wasmtime": version_of(["wasmtime", "--version"]),
                "wrk": version_of(["wrk", "-v"]),
                "python": platform.python_version(),
                "jco": version_of([str(self.jco), "--version"]) if self.jco.exists() else "not installed",
                **{f"npm:{k}": v for k, v in node_pkgs.items()},
            },
        }
        return env

    # ------------------------------------------------------------------ artifacts

    def prepare(self):
        progress("prepare", "building the native binary (cargo build --release -p jwtv-server)")
        run(["cargo", "build", "--release", "-p", "jwtv-server", "-j", CARGO_JOBS], env=self.base_env,
            log=self.logs / "build-native.log", what="native build")
        progress("prepare", "building the component (cargo build -p jwtv-component --target wasm32-wasip2 --profile wasm)")
        run(["cargo", "build", "-p", "jwtv-component", "--target", "wasm32-wasip2", "--profile", "wasm", "-j", CARGO_JOBS],
            env=self.base_env, log=self.logs / "build-wasm.log", what="component build")
        for f in (self.native_bin, self.wasm_file):
            if not f.exists():
                raise BenchFailure(f"expected artifact missing after the build: {f}")
        # The native server remembers verified tokens (JWT_TOKEN_CACHE_SIZE, on by default): with one
        # token sent over and over it would skip the signature check that node and wasm do on every
        # request. The contender runs with the cache off; one extra run shows the default.
        help_text = run([str(self.native_bin), "--help"], env=self.base_env, what="jwt-validator --help").stdout
        self.native_has_cache = "JWT_TOKEN_CACHE_SIZE" in help_text
        self.results["native_token_cache"] = {"present": self.native_has_cache,
                                              "contender_setting": "JWT_TOKEN_CACHE_SIZE=0" if self.native_has_cache else None}
        stamp = NODE_APP / "node_modules" / ".package-lock.json"
        lock = NODE_APP / "package-lock.json"
        if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
            progress("prepare", "npm ci in bench/node (from the committed lockfile)")
            run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_APP, env=self.base_env,
                log=self.logs / "npm-ci.log", what="npm ci (bench/node)")
        progress("prepare", "precompiling the component (wasmtime compile → .cwasm)")
        run(["wasmtime", "compile", str(self.wasm_file), "-o", str(self.cwasm_file)], env=self.base_env,
            what="wasmtime compile")
        if self.jco.exists():
            # cached by the input's digest (jco takes ~10 s): bench/.cache/jco/<sha256>.wasm
            digest = hashlib.sha256(self.wasm_file.read_bytes() + COMPONENT_OPT.read_bytes()).hexdigest()
            cached = BENCH / ".cache" / "jco" / f"{digest}.wasm"
            if not cached.exists():
                progress("prepare", "jco opt (binaryen wasm-opt -Oz on the component's core modules)")
                cached.parent.mkdir(parents=True, exist_ok=True)
                for old in cached.parent.glob("*.wasm"):
                    old.unlink()
                tmp = cached.with_suffix(".tmp")
                run([str(COMPONENT_OPT), str(self.wasm_file), str(tmp)],
                    env=self.base_env, log=self.logs / "jco-opt.log", what="jco opt")
                # the optimised component must still be a valid one
                run(["wasmtime", "compile", str(tmp), "-o", str(self.work / "opt-check.cwasm")],
                    env=self.base_env, what="wasmtime compile (jco-optimised component)")
                tmp.rename(cached)
            else:
                progress("prepare", "jco opt: cached result for this component")
            shutil.copyfile(cached, self.opt_file)
        else:
            self.results["skipped"]["size.wasm_jco_opt"] = "tools/jco is not installed (npm ci in tools/jco)"
        progress("prepare", "minting the tokens (jwt-validator mint, HS256, 32-byte secret)")
        p = run([str(self.native_bin), "mint", "--sub", "bench", "--ttl", "86400"],
                env=self.env_with(JWT_SECRET=self.secret), what="jwt-validator mint")
        token = p.stdout.strip().splitlines()[-1].strip()
        header, payload, sig = token.split(".")
        mid = len(sig) // 2
        repl = "A" if sig[mid] != "A" else "B"
        bad = f"{header}.{payload}.{sig[:mid]}{repl}{sig[mid + 1:]}"
        self.tokens = {"valid": token, "invalid": bad}
        self.results["tokens"] = {
            "alg": "HS256",
            "secret_bytes": len(self.secret.encode()),
            "valid_token_chars": len(token),
            "invalid": f"signature character {mid} of {len(sig)} changed ({sig[mid]!r} → {repl!r})",
        }

    # ------------------------------------------------------------------ sizes

    def sizes(self):
        progress("size", "measuring artifacts")
        s: dict = {}

        def entry(path: Path, note: str = "") -> dict:
            data = path.read_bytes()
            return {"path": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
                    "bytes": len(data), "gzip_bytes": gzip_size(data), **({"note": note} if note else {})}

        # native: strip a copy to be sure (the release profile already strips)
        stripped = self.work / "jwt-validator.stripped"
        if shutil.which("strip"):
            run(["strip", "-o", str(stripped), str(self.native_bin)], what="strip")
            s["native_stripped"] = entry(stripped, "target/release/jwt-validator, stripped")
        else:
            s["native_stripped"] = entry(self.native_bin, "strip not found: the release profile's own strip=true")
        s["wasm_raw"] = entry(self.wasm_file)
        if self.opt_file.exists():
            s["wasm_jco_opt"] = entry(self.opt_file, "jco opt -- -Oz (not the served artifact)")
        s["cwasm"] = entry(self.cwasm_file, "wasmtime compile output (x86-64 machine code, host-specific)")
        # node: what is deployed is the app plus node_modules
        app_bytes, app_files = tree_bytes(NODE_APP)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=9) as tf:
            tf.add(NODE_APP, arcname="app")
        s["node_app_and_modules"] = {"path": "bench/node (+ node_modules)", "bytes": app_bytes, "files": app_files,
                                     "gzip_bytes": len(buf.getvalue()), "note": "gzip_bytes: .tar.gz of the directory"}
        # context: the runtimes each artifact needs (not counted in the ratios)
        for key, tool in (("runtime_node", "node"), ("runtime_wasmtime", "wasmtime")):
            p = shutil.which(tool, path=self.base_env["PATH"])
            if p:
                s[key] = {"path": os.path.realpath(p), "bytes": os.path.getsize(os.path.realpath(p))}
        self.results["sizes"] = s
        progress("size", ", ".join(f"{k} {fmt_bytes(v['bytes'])}" for k, v in s.items() if not k.startswith("runtime")))

    # ------------------------------------------------------------------ build times

    def sync_copy(self) -> Path:
        """Mirror the workspace sources into the private copy, touching only files whose content
        differs (cargo decides by mtime). The handler file is compared modulo our own one-line edit."""
        src = CACHE / "src"
        src.mkdir(parents=True, exist_ok=True)
        state = self.cache_state()
        wanted: set[Path] = set()
        for top in ("Cargo.toml", "Cargo.lock", "crates"):
            base = ROOT / top
            paths = [base] if base.is_file() else [p for p in base.rglob("*") if p.is_file()]
            for p in paths:
                rel = p.relative_to(ROOT)
                if "target" in rel.parts:
                    continue
                wanted.add(rel)
                dst = src / rel
                data = p.read_bytes()
                if rel == EDIT_FILE:
                    data = edit_variant(data.decode(), state["variant"]).encode()
                if not dst.exists() or dst.read_bytes() != data:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.write_bytes(data)
        for p in list(src.rglob("*")):
            if p.is_file() and p.relative_to(src) not in wanted:
                p.unlink()
        return src

    def cache_state(self) -> dict:
        f = CACHE / "state.json"
        try:
            return json.loads(f.read_text())
        except (OSError, ValueError):
            return {"variant": 0}

    def cargo_build_cmd(self, which: str, manifest: Path) -> list[str]:
        if which == "native":
            return ["cargo", "build", "--manifest-path", str(manifest), "--release", "-p", "jwtv-server", "-j", CARGO_JOBS]
        return ["cargo", "build", "--manifest-path", str(manifest), "-p", "jwtv-component",
                "--target", "wasm32-wasip2", "--profile", "wasm", "-j", CARGO_JOBS]

    def timed_build(self, which: str, src: Path, target: Path, log: Path) -> float:
        env = self.env_with(CARGO_TARGET_DIR=str(target))
        t0 = time.perf_counter()
        run(self.cargo_build_cmd(which, src / "Cargo.toml"), cwd=src, env=env, log=log, what=f"{which} build")
        return time.perf_counter() - t0

    def builds(self):
        b: dict = {"clean_s": {}, "incremental_s": {}, "notes": {}}
        self.results["build"] = b
        progress("build", f"syncing the private source copy ({CACHE.relative_to(ROOT)}/src)")
        src = self.sync_copy()
        # clean builds: a fresh CARGO_TARGET_DIR under the out dir each time; node: npm ci into a fresh dir
        if self.quick:
            self.results["skipped"]["build.clean"] = "--quick skips clean builds"
        else:
            clean_target = self.work / "clean-target"
            for c in ("native", "wasm", "node"):
                b["clean_s"][c] = []
            for i in range(self.build_runs):
                order = ["native", "wasm", "node"][i % 3:] + ["native", "wasm", "node"][:i % 3]
                for c in order:
                    if c == "node":
                        d = self.work / "node-clean"
                        shutil.rmtree(d, ignore_errors=True)
                        d.mkdir(parents=True)
                        for f in ("package.json", "package-lock.json", "server.js"):
                            shutil.copy2(NODE_APP / f, d / f)
                        progress("build", f"clean {i + 1}/{self.build_runs}: node (npm ci into an empty dir)")
                        t0 = time.perf_counter()
                        run(["npm", "ci", "--no-audit", "--no-fund"], cwd=d, env=self.base_env,
                            log=self.logs / f"clean-node-{i}.log", what="npm ci (clean)")
                        dt = time.perf_counter() - t0
                        shutil.rmtree(d, ignore_errors=True)
                    else:
                        shutil.rmtree(clean_target, ignore_errors=True)
                        progress("build", f"clean {i + 1}/{self.build_runs}: {c} (fresh CARGO_TARGET_DIR)")
                        dt = self.timed_build(c, src, clean_target, self.logs / f"clean-{c}-{i}.log")
                    b["clean_s"][c].append(round(dt, 3))
                    progress("build", f"  clean {c}: {dt:.1f}s")
            shutil.rmtree(clean_target, ignore_errors=True)
            b["notes"]["node_clean"] = "npm ci from the committed lockfile into an empty directory (npm's local cache warm)"
        # incremental: a one-line change to the handler, in the private copy (never in the work tree)
        target = CACHE / "target"
        progress("build", "incremental: bringing the private target dir up to date (not timed)")
        for c in RUST:
            self.timed_build(c, src, target, self.logs / f"incr-warm-{c}.log")
        state = self.cache_state()
        original = (ROOT / EDIT_FILE).read_text()
        for c in RUST:
            b["incremental_s"][c] = []
        for i in range(self.build_runs):
            state["variant"] += 1
            (src / EDIT_FILE).write_text(edit_variant(original, state["variant"]))
            (CACHE / "state.json").write_text(json.dumps(state))
            for c in (RUST if i % 2 == 0 else RUST[::-1]):
                progress("build", f"incremental {i + 1}/{self.build_runs}: {c} after a one-line change to {EDIT_FILE}")
                dt = self.timed_build(c, src, target, self.logs / f"incr-{c}-{i}.log")
                b["incremental_s"][c].append(round(dt, 3))
                progress("build", f"  incremental {c}: {dt:.1f}s")
        b["edit"] = {"file": str(EDIT_FILE), "change": edit_description(original)}
        self.results["skipped"]["build.incremental.node"] = (
            "node has no build step: a change to server.js needs only a restart "
            "(the original's ~45 s was a container image rebuild; see \"Containers\" for our images)")

    # ------------------------------------------------------------------ servers

    def command(self, c: str, port: int) -> tuple[list[str], dict]:
        if c == "node":
            return ["node", str(NODE_APP / "server.js")], self.env_with(JWT_SECRET=self.secret, PORT=str(port), HOST="127.0.0.1")
        if c in ("native", "native-cached"):
            extra = {"JWT_TOKEN_CACHE_SIZE": "0"} if c == "native" and self.native_has_cache else {}
            return [str(self.native_bin), "--listen", f"127.0.0.1:{port}"], self.env_with(JWT_SECRET=self.secret, **extra)
        # As the README runs it: instances reused (WASI 0.2's default is one per request).
        serve = ["wasmtime", "serve", "-S", "cli", "-O", "pooling-allocator=y", "-C", "cache=n",
                 "--max-instance-reuse-count", WASM_INSTANCE_REUSE,
                 "--addr", f"127.0.0.1:{port}", "--env", f"JWT_SECRET={self.secret}"]
        if c == "wasm":
            return serve + [str(self.wasm_file)], self.base_env
        return serve + ["--allow-precompiled", str(self.cwasm_file)], self.base_env

    def display_command(self, c: str) -> str:
        cmd, _ = self.command(c, 0)
        s = " ".join(cmd).replace(self.secret, "$JWT_SECRET").replace(str(self.work), "<out>/.work")
        s = s.replace(str(ROOT) + "/", "").replace("127.0.0.1:0", "127.0.0.1:PORT")
        if c == "node":
            s = "JWT_SECRET=... PORT=... " + s
        elif c == "native":
            s = "JWT_SECRET=... " + ("JWT_TOKEN_CACHE_SIZE=0 " if self.native_has_cache else "") + s
        return s

    def spawn(self, c: str, log: Path | None) -> Server:
        port = free_port()
        cmd, env = self.command(c, port)
        out = open(log, "wb") if log else subprocess.DEVNULL
        try:
            t_spawn = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if log:
                out.close()
        LIVE.append(proc)
        return Server(c, port, proc, log, t_spawn)

    def wait_ready(self, srv: Server, timeout: float = 30.0) -> float:
        """Poll POST /validate (valid token) tightly until a 200; returns the seconds it took from now."""
        body = json.dumps({"token": self.tokens["valid"]}).encode()
        deadline = time.perf_counter() + timeout
        while True:
            if srv.proc.poll() is not None:
                tail = srv.log.read_text(errors="replace")[-2000:] if srv.log and srv.log.exists() else ""
                raise BenchFailure(f"{srv.contender} exited with {srv.proc.returncode} before answering\n{tail}")
            try:
                status, text = http_request(srv.port, body, timeout=10)
            except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError):
                status = None
            except (OSError, ConnectionError, ValueError) as e:
                status = None
                if time.perf_counter() > deadline:
                    raise BenchFailure(f"{srv.contender}: socket error while waiting for it: {e}")
            if status == 200:
                if validity(text) != "true":
                    raise BenchFailure(f"{srv.contender}: 200 without \"valid\":true for the valid token: {text[:200]}")
                return time.perf_counter()
            if status is not None and status != 503:
                raise BenchFailure(f"{srv.contender}: the valid token was answered {status}: {text[:200]}")
            if time.perf_counter() > deadline:
                raise BenchFailure(f"{srv.contender}: no 200 from POST /validate within {timeout}s of the spawn")
            time.sleep(0.001)

    def check_contract(self, srv: Server):
        """The statuses the harness relies on, for this server: valid 200, invalid 401, no token 400."""
        checks = [
            ("valid", json.dumps({"token": self.tokens["valid"]}).encode(), 200, "true"),
            ("invalid-signature", json.dumps({"token": self.tokens["invalid"]}).encode(), 401, "false"),
            ("no token", b"{}", 400, "false"),
        ]
        for name, body, want, want_valid in checks:
            try:
                status, text = http_request(srv.port, body)
            except (OSError, ConnectionError, ValueError) as e:
                raise BenchFailure(f"{srv.contender}: socket error on the {name} check: {e}")
            ok = status == want and validity(text) == want_valid
            self.results["status_checks"]["preflight"].append(
                {"contender": srv.contender, "check": name, "status": status, "expected": want, "ok": ok,
                 "body": text[:160]})
            self.results["status_checks"]["responses_checked"] += 1
            if not ok:
                raise BenchFailure(f"{srv.contender}: {name} answered {status} {text[:200]!r}, expected {want} "
                                   f"with \"valid\":{want_valid}")

    # ------------------------------------------------------------------ cold start and idle memory

    def cold_starts(self):
        samples = {c: [] for c in CONTENDERS}
        idle = {c: [] for c in CONTENDERS}
        self.results["cold_start_ms"] = samples
        self.results["idle_rss_kib"] = idle
        self.results["commands"] = {c: self.display_command(c) for c in CONTENDERS}
        n = self.cold_runs
        for r in range(n):
            order = CONTENDERS[r % 4:] + CONTENDERS[:r % 4]
            with_idle = r < self.idle_rounds
            for c in order:
                log = self.logs / f"cold-{c}-{r}.log"
                srv = self.spawn(c, log)
                try:
                    t1 = self.wait_ready(srv)
                    samples[c].append(round((t1 - srv.t_spawn) * 1000, 3))
                    self.results["status_checks"]["responses_checked"] += 1
                    if with_idle:
                        time.sleep(1.0)
                        idle[c].append(proc_status_kib(srv.pid, "VmRSS"))
                finally:
                    stop(srv.proc)
                log.unlink(missing_ok=True)
            progress("cold start", f"round {r + 1}/{n}: " + ", ".join(f"{c} {samples[c][-1]:.1f} ms" for c in CONTENDERS))

    # ------------------------------------------------------------------ load

    def wrk(self, srv: Server, kind: str, conns: int, seconds: float) -> dict:
        threads = 1 if conns == 1 else 2
        cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s", "--timeout", "5s",
               "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{srv.port}/validate"]
        cpu0 = proc_cpu_s(srv.pid)
        ru0 = os.times()
        t0 = time.perf_counter()
        p = run(cmd, env=self.env_with(SHOWDOWN_TOKEN=self.tokens[kind]), timeout=seconds + 60,
                what=f"wrk against {srv.contender}")
        wall = time.perf_counter() - t0
        ru1 = os.times()
        cpu1 = proc_cpu_s(srv.pid)
        if srv.proc.poll() is not None:
            raise BenchFailure(f"{srv.contender} died during the load (exit {srv.proc.returncode})")
        line = next((l for l in p.stdout.splitlines() if l.startswith("SHOWDOWN_RESULT ")), None)
        if line is None:
            raise BenchFailure(f"wrk printed no SHOWDOWN_RESULT line:\n{p.stdout[-1500:]}")
        w = json.loads(line[len("SHOWDOWN_RESULT "):])
        where = f"{srv.contender}, {kind} token, {conns} connection(s)"
        socket_errors = {k: v for k, v in w["errors"].items() if k != "status" and v}
        if socket_errors:
            raise BenchFailure(f"{where}: socket errors {socket_errors}")
        check_counts(w["counts"], kind, where, total=w["requests"])
        self.results["status_checks"]["responses_checked"] += w["requests"]
        cpu = cpu1 - cpu0
        secs = w["duration_us"] / 1e6
        return {
            "contender": srv.contender, "token": kind, "connections": conns, "threads": threads,
            "duration_s": round(secs, 3), "wall_s": round(wall, 3), "requests": w["requests"],
            "rps": round(w["requests"] / secs, 1),
            "p50_ms": w["latency_us"]["p50"] / 1000, "p90_ms": w["latency_us"]["p90"] / 1000,
            "p99_ms": w["latency_us"]["p99"] / 1000, "p999_ms": w["latency_us"]["p999"] / 1000,
            "latency_us": w["latency_us"], "counts": w["counts"], "errors": w["errors"],
            "server_cpu_s": round(cpu, 3),
            "req_per_cpu_s": round(w["requests"] / cpu, 1) if cpu > 0 else None,
            "client_cpu_s": round((ru1.children_user + ru1.children_system) - (ru0.children_user + ru0.children_system), 3),
        }

    def load(self):
        servers: dict[str, Server] = {}
        self.results["load"] = []
        self.results["warmup"] = []
        self.results["fixed_rate"] = []
        self.results["peak_rss_kib"] = {}
        try:
            progress("load", "starting every contender (one at a time; idle RSS 1 s after its first answer)")
            for c in CONTENDERS:
                srv = self.spawn(c, None)
                servers[c] = srv
                self.wait_ready(srv)
                time.sleep(1.0)
                srv.idle_rss_kib = proc_status_kib(srv.pid, "VmRSS")
                self.results.setdefault("load_pids", {})[c] = srv.pid
                self.results["idle_rss_kib"][c].append(srv.idle_rss_kib)
                self.check_contract(srv)
                progress("load", f"{c} up on 127.0.0.1:{srv.port}, pid {srv.pid}, idle RSS {srv.idle_rss_kib / 1024:.1f} MiB")
            for c in CONTENDERS:
                progress("load", f"warm-up {c}: {self.warmup_seconds}s at 16 connections (checked, not reported)")
                self.results["warmup"].append(self.wrk(servers[c], "valid", 16, self.warmup_seconds))
            i = 0
            for conns in self.connections:
                for kind in ("valid", "invalid"):
                    order = CONTENDERS[i % 4:] + CONTENDERS[:i % 4]
                    i += 1
                    for c in order:
                        res = self.wrk(servers[c], kind, conns, self.load_seconds)
                        self.results["load"].append(res)
                        progress("load", f"{c:10s} {kind:7s} c={conns:<3d} {res['rps']:>10,.0f} req/s  "
                                         f"p50 {res['p50_ms']:.2f} ms  p99 {res['p99_ms']:.2f} ms  "
                                         f"{res['req_per_cpu_s'] or 0:>9,.0f} req/CPU-s  {res['counts']}")
                        time.sleep(0.3)
            if self.native_has_cache:
                self.load_native_cached()
            for kind in ("valid", "invalid"):
                for c in CONTENDERS:
                    r = asyncio.run(fixed_rate_async(servers[c].port, self.tokens[kind], self.rate, self.rate_seconds))
                    where = f"{c}, {kind} token, fixed rate {self.rate}/s"
                    if r["errors"]:
                        raise BenchFailure(f"{where}: socket errors: {r['errors'][:5]}")
                    check_counts(r["counts"], kind, where, total=r["sent"])
                    self.results["status_checks"]["responses_checked"] += r["answered"]
                    r.update({"contender": c, "token": kind, "rate": self.rate, "duration_s": self.rate_seconds})
                    self.results["fixed_rate"].append(r)
                    progress("fixed rate", f"{c:10s} {kind:7s} {self.rate}/s for {self.rate_seconds}s: "
                                           f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  {r['counts']}")
            for c, srv in servers.items():
                self.results["peak_rss_kib"][c] = proc_status_kib(srv.pid, "VmHWM")
        finally:
            for srv in servers.values():
                stop(srv.proc)

    def load_native_cached(self):
        """The native server as shipped (verified-token cache on), 16 connections: how much a repeated
        valid token gains from skipping the signature check. Reported apart from the contenders."""
        extra = self.results.setdefault("load_native_cached", [])
        srv = self.spawn("native-cached", None)
        try:
            self.wait_ready(srv)
            self.check_contract(srv)
            progress("load", f"native with its token cache on (the default): warm-up {self.warmup_seconds}s")
            self.wrk(srv, "valid", 16, self.warmup_seconds)
            for kind in ("valid", "invalid"):
                res = self.wrk(srv, kind, 16, self.load_seconds)
                res["contender"] = "native-cached"
                extra.append(res)
                progress("load", f"native, token cache on, {kind:7s} c=16 {res['rps']:>10,.0f} req/s  "
                                 f"p50 {res['p50_ms']:.2f} ms  p99 {res['p99_ms']:.2f} ms  "
                                 f"{res['req_per_cpu_s'] or 0:>9,.0f} req/CPU-s  {res['counts']}")
        finally:
            stop(srv.proc)

    # ------------------------------------------------------------------ criterion

    def verify_cost(self):
        home = self.work / "criterion"
        shutil.rmtree(home, ignore_errors=True)
        out: dict = {}
        if self.quick:
            extra = ["--warm-up-time", "0.5", "--measurement-time", "1", "HS256"]
            self.results["skipped"]["verify.other_algorithms"] = "--quick measures HS256 only"
        else:
            extra = ["--warm-up-time", "1", "--measurement-time", "2"]
        for backend, feats in (("ring", []), ("rustcrypto", ["--features", "rustcrypto"])):
            progress("verify", f"criterion, {backend} backend (cargo bench -p jwtv-verifier {' '.join(feats)})")
            run(["cargo", "bench", "-p", "jwtv-verifier", "-j", CARGO_JOBS, "--bench", "verify", *feats, "--", *extra],
                env=self.env_with(CRITERION_HOME=str(home)), log=self.logs / f"criterion-{backend}.log",
                what=f"cargo bench ({backend})", timeout=3600)
        for est in sorted(home.glob("**/new/estimates.json")):
            meta = json.loads((est.parent / "benchmark.json").read_text())
            group = meta["group_id"]  # verify/<backend>
            backend = group.split("/")[-1]
            e = json.loads(est.read_text())
            out.setdefault(backend, {})[meta["function_id"]] = {
                "median_ns": e["median"]["point_estimate"], "mean_ns": e["mean"]["point_estimate"],
                "mean_ci95_ns": [e["mean"]["confidence_interval"]["lower_bound"], e["mean"]["confidence_interval"]["upper_bound"]],
            }
        if not out:
            raise BenchFailure(f"criterion wrote no estimates under {home}")
        self.results["verify_ns"] = out
        progress("verify", "node: jwt.verify in process (bench/node/verify-cost.js), string secret and KeyObject")
        p = run(["node", str(NODE_APP / "verify-cost.js"), "3" if self.quick else "7"],
                env=self.env_with(JWT_SECRET=self.secret), what="node verify-cost.js")
        self.results["verify_node_ns"] = json.loads(p.stdout.strip().splitlines()[-1])
        self.results["skipped"]["verify.inside_wasmtime"] = (
            "the criterion bench cannot be built for wasm32-wasip2 here: its dev-dependencies sign with ring, "
            "which needs clang for wasm32 (not installed); rustcrypto on native is the same Rust code the component runs, "
            "and the HTTP figures include the cost inside wasmtime")
        for backend, algs in out.items():
            progress("verify", f"{backend}: " + ", ".join(f"{a} {v['median_ns'] / 1000:.1f} µs" for a, v in sorted(algs.items())))
        vn = self.results["verify_node_ns"]
        progress("verify", f"node jsonwebtoken HS256: string secret {vn['string_secret']['median_ns'] / 1000:.1f} µs, "
                           f"KeyObject {vn['keyobject_secret']['median_ns'] / 1000:.1f} µs")

    # ------------------------------------------------------------------ summary

    def containers(self):
        if self.quick:
            self.results["skipped"]["containers"] = "--quick builds no images (bench/containers.py measures them alone)"
            return
        try:
            self.results["containers"] = containers.measure(self.cold_runs, lambda m: progress("containers", m))
        except containers.ContainerFailure as e:
            raise BenchFailure(f"containers: {e}") from e

    def summarise(self):
        r = self.results
        s: dict = {"cold_start_ms": {}, "idle_rss_mib": {}, "peak_rss_mib": {}, "size_bytes": {}, "throughput": {}}
        for c in CONTENDERS:
            xs = r["cold_start_ms"][c]
            s["cold_start_ms"][c] = {"median": median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}
            s["idle_rss_mib"][c] = round(median(r["idle_rss_kib"][c]) / 1024, 2)
            s["peak_rss_mib"][c] = round(r["peak_rss_kib"][c] / 1024, 2)
        sz = r["sizes"]
        s["size_bytes"] = {"node": sz["node_app_and_modules"]["bytes"], "native": sz["native_stripped"]["bytes"],
                           "wasm": sz["wasm_raw"]["bytes"], "wasm-cwasm": sz["cwasm"]["bytes"]}
        rt_node = sz.get("runtime_node", {}).get("bytes")
        rt_wasm = sz.get("runtime_wasmtime", {}).get("bytes")
        s["size_with_runtime_bytes"] = {
            "node": s["size_bytes"]["node"] + rt_node if rt_node else None,
            "native": s["size_bytes"]["native"],
            "wasm": s["size_bytes"]["wasm"] + rt_wasm if rt_wasm else None,
            "wasm-cwasm": s["size_bytes"]["wasm-cwasm"] + rt_wasm if rt_wasm else None,
        }
        for run_ in r["load"]:
            key = f"{run_['token']}@{run_['connections']}"
            s["throughput"].setdefault(key, {})[run_["contender"]] = {
                "rps": run_["rps"], "p50_ms": run_["p50_ms"], "p99_ms": run_["p99_ms"], "req_per_cpu_s": run_["req_per_cpu_s"]}
        s["fixed_rate"] = {}
        for fr in r["fixed_rate"]:
            s["fixed_rate"].setdefault(fr["token"], {})[fr["contender"]] = {"p50_ms": fr["p50_ms"], "p99_ms": fr["p99_ms"]}
        b = r["build"]
        s["build_s"] = {"clean": {c: median(v) for c, v in b["clean_s"].items()},
                        "incremental": {c: median(v) for c, v in b["incremental_s"].items()}}
        # the headline: node ÷ native and node ÷ wasm; throughput on the valid token at 16 connections
        head = "valid@16"
        tp = s["throughput"].get(head, {})
        ratios = {}
        for other in ("native", "wasm", "wasm-cwasm"):
            ratios[other] = {
                "cold_start": ratio(s["cold_start_ms"]["node"]["median"], s["cold_start_ms"][other]["median"]),
                "idle_rss": ratio(s["idle_rss_mib"]["node"], s["idle_rss_mib"][other]),
                "peak_rss": ratio(s["peak_rss_mib"]["node"], s["peak_rss_mib"][other]),
                "size": ratio(s["size_bytes"]["node"], s["size_bytes"][other]),
                "size_with_runtime": ratio(s["size_with_runtime_bytes"]["node"], s["size_with_runtime_bytes"][other]),
                "throughput": ratio(tp.get("node", {}).get("rps"), tp.get(other, {}).get("rps")),
                "req_per_cpu_s": ratio(tp.get("node", {}).get("req_per_cpu_s"), tp.get(other, {}).get("req_per_cpu_s")),
            }
        s["ratios_node_over"] = ratios
        s["ratios_basis"] = {"throughput": head, "size_wasm": "raw .wasm", "size_wasm-cwasm": ".cwasm file"}
        r["summary"] = s

    # ------------------------------------------------------------------ main

    def main(self):
        self.out.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.work, ignore_errors=True)
        self.logs.mkdir(parents=True)
        progress("showdown", f"{'quick' if self.quick else 'full'} run into {self.out}")
        self.preflight()
        r = self.results
        r["environment"] = self.environment()
        r["environment"]["loadavg_before"] = loadavg()
        env = r["environment"]
        progress("showdown", f"{env['cpu_model']}, {env['cores']} cores, load {env['loadavg_before']}; "
                             "the load generator and the servers share these cores")
        r["config"] = {"cold_runs": self.cold_runs, "idle_rounds_in_cold_start": self.idle_rounds,
                       "connections": self.connections, "load_seconds": self.load_seconds,
                       "warmup_seconds": self.warmup_seconds, "fixed_rate_rps": self.rate,
                       "fixed_rate_seconds": self.rate_seconds, "build_runs": self.build_runs,
                       "cargo_jobs": int(CARGO_JOBS)}
        r["phase_s"] = {}
        for name, step in (("prepare", self.prepare), ("size", self.sizes), ("build", self.builds),
                           ("cold_start", self.cold_starts), ("load", self.load), ("verify", self.verify_cost),
                           ("containers", self.containers)):
            t0 = time.monotonic()
            step()
            r["phase_s"][name] = round(time.monotonic() - t0, 1)
        r["environment"]["loadavg_after"] = loadavg()
        r["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        r["duration_s"] = round(time.monotonic() - T_START, 1)
        self.summarise()
        (self.out / "results.json").write_text(json.dumps(r, indent=1) + "\n")
        (self.out / "chart.svg").write_text(chart_svg(r))
        (self.out / "report.md").write_text(report_md(r))
        shutil.rmtree(self.work, ignore_errors=True)
        progress("showdown", f"done in {r['duration_s']:.0f}s ("
                             + ", ".join(f"{k} {v:.0f}s" for k, v in r["phase_s"].items()) + f"): {self.out / 'report.md'}")
        for line in headline_lines(r):
            print("  " + line)


def check_counts(counts: dict, kind: str, where: str, total: int) -> None:
    """Every answer must be the expected one ("200:true" for the valid token, "401:false" for the
    invalid one), and every request must have been answered: anything else fails the run."""
    unexpected = {k: v for k, v in counts.items() if k != EXPECT[kind]}
    if unexpected:
        raise BenchFailure(f"{where}: unexpected answers {unexpected} (expected only {EXPECT[kind]}); "
                           "an invalid token answered 200, or any other status, fails the run")
    answered = sum(counts.values())
    if answered != total or answered == 0:
        raise BenchFailure(f"{where}: {answered} answers counted for {total} requests")


def proc_meminfo_total():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return None


# --------------------------------------------------------------------------------------------------
# the one-line change for incremental builds

EDIT_FILE = Path("crates/service/src/validate.rs")
EDIT_NEEDLE = "Content-Type must be application/json"


def edit_variant(text: str, n: int) -> str:
    """The handler with one line changed (variant n; 0 is the original): the 415 message gains a
    marker. If the message ever moves, a constant is appended instead: still one changed line."""
    if n == 0:
        return text
    if EDIT_NEEDLE in text:
        return text.replace(EDIT_NEEDLE, f"{EDIT_NEEDLE} [edit {n}]", 1)
    return text.rstrip("\n") + f"\npub const SHOWDOWN_EDIT: u32 = {n};\n"


def edit_description(text: str) -> str:
    if EDIT_NEEDLE in text:
        return f"the 415 message string \"{EDIT_NEEDLE}…\" gains \" [edit N]\""
    return "a line `pub const SHOWDOWN_EDIT: u32 = N;` appended"


# --------------------------------------------------------------------------------------------------
# report


def headline_lines(r) -> list[str]:
    s = r["summary"]
    rat = s["ratios_node_over"]
    cs, rss, sz = s["cold_start_ms"], s["idle_rss_mib"], s["size_bytes"]
    tp = s["throughput"].get("valid@16", {})
    lines = []
    for other in ("native", "wasm", "wasm-cwasm"):
        x = rat[other]
        lines.append(
            f"node/{other}: cold start {fmt_ratio(x['cold_start'])} ({cs['node']['median']:.1f} vs {cs[other]['median']:.1f} ms), "
            f"idle RSS {fmt_ratio(x['idle_rss'])} ({rss['node']:.1f} vs {rss[other]:.1f} MiB), "
            f"size {fmt_ratio(x['size'])} ({fmt_bytes(sz['node'])} vs {fmt_bytes(sz[other])}), "
            f"throughput {fmt_ratio(x['throughput'])} ({tp.get('node', {}).get('rps', 0):,.0f} vs {tp.get(other, {}).get('rps', 0):,.0f} req/s)")
    return lines


def report_md(r) -> str:
    s = r["summary"]
    env = r["environment"]
    v = env["versions"]
    rat = s["ratios_node_over"]
    cs, rss, peak, sz = s["cold_start_ms"], s["idle_rss_mib"], s["peak_rss_mib"], s["size_bytes"]
    tp16 = s["throughput"].get("valid@16", {})
    L = []
    L.append("# The showdown: jwt-validator vs the Node baseline")
    L.append("")
    L.append(f"{'Quick' if r['mode'] == 'quick' else 'Full'} run of `python3 bench/showdown.py"
             f"{' --quick' if r['mode'] == 'quick' else ''}`, {r['started_at']}, commit `{env['git_commit'][:12]}`"
             f"{' (with uncommitted changes)' if env['git_tracked_changes'] else ''}; {r['duration_s']:.0f} s.")
    L.append("")
    L.append("## Ratios (node ÷ ours)")
    L.append("")
    L.append("Each ratio is the Node baseline's figure divided by ours, next to both raw figures. Above 1 for time, "
             "memory and bytes means ours is smaller; for throughput a ratio below 1 means ours serves more "
             "(the inverse is given in brackets). Throughput: valid token, 16 connections.")
    L.append("")
    L.append("| figure | node | native | node ÷ native | wasm (.wasm) | node ÷ wasm | wasm (.cwasm) | node ÷ cwasm |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    swr = s["size_with_runtime_bytes"]
    rows = [
        ("cold start (median)", "cold_start", lambda c: f"{fmt_num(cs[c]['median'])} ms", False),
        ("idle RSS", "idle_rss", lambda c: f"{fmt_num(rss[c])} MiB", False),
        ("peak RSS after load", "peak_rss", lambda c: f"{fmt_num(peak[c])} MiB", False),
        ("artifact size", "size", lambda c: fmt_bytes(sz[c]), False),
        ("artifact + the runtime it needs", "size_with_runtime", lambda c: fmt_bytes(swr[c]), False),
        ("throughput (req/s)", "throughput", lambda c: f"{tp16.get(c, {}).get('rps', 0):,.0f}", True),
        ("requests per server CPU-second", "req_per_cpu_s",
         lambda c: f"{tp16.get(c, {}).get('req_per_cpu_s') or 0:,.0f}", True),
    ]
    for label, key, val, higher_better in rows:
        cells = [label, val("node")]
        for o in ("native", "wasm", "wasm-cwasm"):
            x = rat[o][key]
            txt = fmt_ratio(x)
            if higher_better and x:
                txt += f" ({fmt_ratio(1 / x)} more)" if x < 1 else f" ({fmt_ratio(x)} less)"
            cells += [val(o), f"**{txt}**"]
        L.append("| " + " | ".join(cells) + " |")
    L.append("")
    L.append("![showdown chart](chart.svg)")
    L.append("")
    L.append("## Conditions")
    L.append("")
    L.append(f"- CPU: {env['cpu_model']}, **{env['cores']} cores shared by the load generator (wrk, or the Python fixed-rate "
             f"client) and the server under test**; nothing is pinned. Memory {env['memory_total_mib']} MiB.")
    L.append(f"- Load average before / after: {' '.join(map(str, env['loadavg_before']))} / {' '.join(map(str, env['loadavg_after']))} "
             "(the machine is shared with other builds; requests per CPU-second is the figure least affected).")
    L.append(f"- Versions: {v['rustc']}; node {v['node']} (express {v.get('npm:express', '?')}, jsonwebtoken "
             f"{v.get('npm:jsonwebtoken', '?')}); {v['wasmtime']}; {v['wrk']}; Python {v['python']}; jco {v['jco']}.")
    L.append(f"- Kernel {env['kernel']}. Only 127.0.0.1.")
    if r.get("containers"):
        L.append(f"- Containers: {r['containers']['engine']} (see \"Containers\"). "
                 "The original write-up's figures (Node/Express in a container vs a Rust component on Spin) are theirs: "
                 + "; ".join(f"{k} {v_}" for k, v_ in ORIGINAL.items()) + ".")
    else:
        L.append("- No container engine in this run (--quick, or no podman): a container's own start-up and image "
                 "size are not measured here (bench/containers.py). The original write-up's figures (Node/Express in "
                 "a container vs a Rust component on Spin) are theirs: "
                 + "; ".join(f"{k} {v_}" for k, v_ in ORIGINAL.items()) + ".")
    L.append("- Token: HS256, 32-byte secret (the same string handed to every contender; node passes it to "
             "`jwt.verify` as a string). Invalid token: one middle character of the signature changed.")
    L.append("- Commands:")
    for c in CONTENDERS:
        L.append(f"  - {LABELS[c]}: `{r['commands'][c]}`")
    L.append("")
    L.append("## Artifact size")
    L.append("")
    L.append("| artifact | bytes | gzip -9 |")
    L.append("| --- | --- | --- |")
    names = {"node_app_and_modules": "node: app + node_modules", "native_stripped": "native: stripped binary",
             "wasm_raw": "wasm: component (.wasm, as built)", "wasm_jco_opt": "wasm: component after `jco opt` (-Oz)",
             "cwasm": "wasm: precompiled (.cwasm)"}
    for k, label in names.items():
        if k in r["sizes"]:
            e = r["sizes"][k]
            L.append(f"| {label} | {e['bytes']:,} ({fmt_bytes(e['bytes'])}) | {e['gzip_bytes']:,} ({fmt_bytes(e['gzip_bytes'])}) |")
    rt = [f"{k.split('_')[1]} {fmt_bytes(r['sizes'][k]['bytes'])}" for k in ("runtime_node", "runtime_wasmtime") if k in r["sizes"]]
    if rt:
        L.append("")
        L.append(f"Not counted above: the runtime each needs ({', '.join(rt)}); the native binary needs none.")
    L.append("")
    L.append("## Build time (seconds)")
    L.append("")
    b = r["build"]
    L.append("| contender | clean (median) | clean samples | incremental (median) | incremental samples |")
    L.append("| --- | --- | --- | --- | --- |")
    for c, label in (("node", "node (npm ci)"), ("native", "native"), ("wasm", "wasm")):
        cl = b["clean_s"].get(c, [])
        inc = b["incremental_s"].get(c, [])
        L.append(f"| {label} | {fmt_num(median(cl)) if cl else '—'} | {', '.join(map(str, cl)) or '—'} | "
                 f"{fmt_num(median(inc)) if inc else '—'} | {', '.join(map(str, inc)) or '—'} |")
    L.append("")
    L.append(f"Incremental: {b['edit']['change']} in `{b['edit']['file']}` (the handler both targets share), built in a "
             "private copy of the workspace; `cargo build -j 2`, release profile (native: fat LTO, 1 codegen unit; "
             "wasm: the `wasm` profile, opt-level z). Node has no build step; its clean figure is `npm ci`.")
    L.append("")
    L.append("## Cold start and memory")
    L.append("")
    L.append("| contender | cold start median (ms) | min | max | n | idle RSS (MiB) | peak RSS after load (MiB) |")
    L.append("| --- | --- | --- | --- | --- | --- | --- |")
    for c in CONTENDERS:
        x = cs[c]
        L.append(f"| {LABELS[c]} | {fmt_num(x['median'])} | {fmt_num(x['min'])} | {fmt_num(x['max'])} | {x['n']} | "
                 f"{rss[c]:.1f} | {peak[c]:.1f} |")
    L.append("")
    L.append("Cold start: spawn of the serving process → first `POST /validate` answered 200 with `\"valid\":true`, "
             "polled every millisecond. `wasm (.wasm)` compiles the component at every start (wasmtime's cache off); "
             "`wasm (.cwasm)` loads machine code compiled ahead of time. Idle RSS: VmRSS 1 s after the first answer "
             f"(median of {len(r['idle_rss_kib']['node'])}); for wasm it is the `wasmtime serve` process. Peak RSS: VmHWM "
             "after all the load below.")
    L.append("")
    if r.get("containers"):
        L += containers.report_lines(r["containers"], {c: cs[c]["median"] for c in ("node", "native", "wasm-cwasm")})
    L.append("## Throughput and latency under load (wrk)")
    L.append("")
    L.append(f"{r['config']['load_seconds']} s per run, after a {r['config']['warmup_seconds']} s warm-up; keep-alive "
             "connections; every response's status and `valid` field counted by the wrk script.")
    L.append("")
    L.append("| token | connections | contender | req/s | p50 (ms) | p99 (ms) | server CPU (s) | req per CPU-s | answers |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for run_ in sorted(r["load"], key=lambda x: (x["token"] != "valid", x["connections"], CONTENDERS.index(x["contender"]))):
        L.append(f"| {run_['token']} | {run_['connections']} | {LABELS[run_['contender']]} | {run_['rps']:,.0f} | "
                 f"{fmt_num(run_['p50_ms'])} | {fmt_num(run_['p99_ms'])} | {run_['server_cpu_s']:.2f} | "
                 f"{run_['req_per_cpu_s'] or 0:,.0f} | {', '.join(f'{k} ×{v}' for k, v in run_['counts'].items())} |")
    L.append("")
    nc = r.get("load_native_cached") or []
    if nc:
        L.append("The `native` contender runs with `JWT_TOKEN_CACHE_SIZE=0`, so that it checks the signature on every "
                 "request like node and wasm. As shipped, the native server remembers verified tokens (only valid ones), "
                 "so a repeated valid token skips the signature check. The same load with that default:")
        L.append("")
        L.append("| token | connections | native, token cache on | req/s | p50 (ms) | p99 (ms) | req per CPU-s | answers |")
        L.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for x in nc:
            L.append(f"| {x['token']} | {x['connections']} | default (on) | {x['rps']:,.0f} | {fmt_num(x['p50_ms'])} | "
                     f"{fmt_num(x['p99_ms'])} | {x['req_per_cpu_s'] or 0:,.0f} | "
                     f"{', '.join(f'{k} ×{v}' for k, v in x['counts'].items())} |")
        L.append("")
    L.append("## Latency at a fixed offered rate")
    L.append("")
    fr = r["fixed_rate"]
    if fr:
        L.append(f"{fr[0]['rate']} requests/s for {fr[0]['duration_s']} s from a Python asyncio client (open loop: a slow "
                 "answer never delays the next send), well under every contender's saturation. Includes the client's own "
                 "overhead, the same for all.")
        L.append("")
        L.append("| token | contender | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | answers |")
        L.append("| --- | --- | --- | --- | --- | --- | --- |")
        for x in fr:
            L.append(f"| {x['token']} | {LABELS[x['contender']]} | {fmt_num(x['p50_ms'])} | {fmt_num(x['p90_ms'])} | "
                     f"{fmt_num(x['p99_ms'])} | {fmt_num(x['max_ms'])} | {', '.join(f'{k} ×{v}' for k, v in x['counts'].items())} |")
    L.append("")
    L.append("## In-process verify cost (criterion)")
    L.append("")
    L.append("One full verification (parse, key selection, signature, claims) per algorithm, `cargo bench -p jwtv-verifier`; "
             "`ring` is the native backend, `rustcrypto` the pure-Rust backend the WebAssembly component runs (here "
             "compiled natively).")
    L.append("")
    vn = r.get("verify_ns", {})
    algs = sorted({a for b_ in vn.values() for a in b_}, key=alg_order)
    L.append("| algorithm | ring (µs, median) | rustcrypto (µs, median) | rustcrypto ÷ ring |")
    L.append("| --- | --- | --- | --- |")
    for a in algs:
        ring_ = vn.get("ring", {}).get(a, {}).get("median_ns")
        rc = vn.get("rustcrypto", {}).get(a, {}).get("median_ns")
        L.append(f"| {a} | {fmt_num(ring_ / 1000) if ring_ else '—'} | {fmt_num(rc / 1000) if rc else '—'} | {fmt_ratio(ratio(rc, ring_))} |")
    L.append("")
    vnode = r.get("verify_node_ns")
    if vnode:
        st, ko = vnode["string_secret"]["median_ns"], vnode["keyobject_secret"]["median_ns"]
        L.append(f"Node baseline, in process (`bench/node/verify-cost.js`, jsonwebtoken {v.get('npm:jsonwebtoken', '?')}, HS256): "
                 f"**{fmt_num(st / 1000)} µs** per `jwt.verify` with the secret as a string, as `server.js` (and the original) "
                 f"does; {fmt_num(ko / 1000)} µs with a `KeyObject`. Handed a string, jsonwebtoken first tries "
                 "`crypto.createPublicKey(secret)`, which throws, on every call: most of the baseline's CPU per request.")
        L.append("")
    L.append("## Status checks")
    L.append("")
    L.append(f"{r['status_checks']['responses_checked']:,} responses checked; every one had the expected status "
             "(valid token 200 `\"valid\":true`, invalid-signature token 401 `\"valid\":false`, no token 400). "
             "Any other answer, or any socket error, fails the run instead of counting.")
    L.append("")
    if r["skipped"]:
        L.append("## Not measured")
        L.append("")
        for k, why in r["skipped"].items():
            L.append(f"- `{k}`: {why}")
        L.append("")
    L.append("Every raw sample is in `results.json`.")
    L.append("")
    return "\n".join(L)


def alg_order(a: str):
    order = ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
    return (order.index(a) if a in order else len(order), a)


# --------------------------------------------------------------------------------------------------
# chart: hand-written SVG, four panels of grouped bars on log scales


def esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def chart_svg(r) -> str:
    s = r["summary"]
    tp = s["throughput"].get("valid@16", {})
    panels = [
        ("Cold start", "ms, median — lower is better", {c: s["cold_start_ms"][c]["median"] for c in CONTENDERS},
         lambda x: f"{fmt_num(x)} ms"),
        ("Idle memory (RSS)", "MiB — lower is better", {c: s["idle_rss_mib"][c] for c in CONTENDERS},
         lambda x: f"{fmt_num(x)} MiB"),
        ("Artifact size", "bytes, runtimes not counted — lower is better", {c: s["size_bytes"][c] for c in CONTENDERS}, fmt_bytes),
        ("Throughput", "req/s, valid token, 16 conns — higher is better",
         {c: tp.get(c, {}).get("rps") for c in CONTENDERS}, lambda x: f"{x:,.0f}/s"),
    ]
    W, H = 1200, 480
    pw, ph = 250, 270  # plot area per panel
    left0, top = 60, 135
    gap = 285
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           f'font-family="Helvetica, Arial, sans-serif">',
           f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
           f'<text x="20" y="30" font-size="20" font-weight="bold">jwt-validator showdown: node vs native vs wasm</text>',
           f'<text x="20" y="52" font-size="12" fill="#555">{esc(r["environment"]["cpu_model"])}, '
           f'{r["environment"]["cores"]} cores shared with the load generator · {esc(r["mode"])} run {esc(r["started_at"])} · '
           f'log scales; under each bar: compared with node</text>']
    # legend
    lx = 20
    for c in CONTENDERS:
        out.append(f'<rect x="{lx}" y="66" width="14" height="14" fill="{COLORS[c]}"/>')
        out.append(f'<text x="{lx + 20}" y="78" font-size="13">{esc(LABELS[c])}</text>')
        lx += 30 + 8 * len(LABELS[c]) + 20
    for i, (title, unit, vals, fmt) in enumerate(panels):
        x0 = left0 + i * gap
        y0 = top
        present = [v for v in vals.values() if v]
        out.append(f'<text x="{x0}" y="{y0 - 14}" font-size="15" font-weight="bold">{esc(title)}</text>')
        out.append(f'<text x="{x0}" y="{y0 + ph + 62}" font-size="11" fill="#555">{esc(unit)}</text>')
        if not present:
            continue
        lo = 10 ** math.floor(math.log10(min(present)) - 0.5)  # every bar at least half a decade tall
        hi = 10 ** math.ceil(math.log10(max(present) * 1.0001))
        if hi / lo < 100:
            lo = hi / 100
        span = math.log10(hi) - math.log10(lo)

        def y(v):
            return y0 + ph - (math.log10(v) - math.log10(lo)) / span * ph

        # decade grid lines
        d = lo
        while d <= hi * 1.0001:
            yy = y(d)
            out.append(f'<line x1="{x0}" y1="{yy:.1f}" x2="{x0 + pw}" y2="{yy:.1f}" stroke="#e3e3e3"/>')
            out.append(f'<text x="{x0 - 6}" y="{yy + 4:.1f}" font-size="10" fill="#777" text-anchor="end">{esc(tick(d))}</text>')
            d *= 10
        out.append(f'<line x1="{x0}" y1="{y0 + ph}" x2="{x0 + pw}" y2="{y0 + ph}" stroke="#333"/>')
        bw = pw / len(CONTENDERS) * 0.7
        for j, c in enumerate(CONTENDERS):
            v = vals.get(c)
            bx = x0 + j * pw / len(CONTENDERS) + (pw / len(CONTENDERS) - bw) / 2
            if not v:
                out.append(f'<text x="{bx + bw / 2:.1f}" y="{y0 + ph - 4}" font-size="10" text-anchor="middle">n/a</text>')
                continue
            yy = y(v)
            out.append(f'<rect x="{bx:.1f}" y="{yy:.1f}" width="{bw:.1f}" height="{y0 + ph - yy:.1f}" fill="{COLORS[c]}">'
                       f'<title>{esc(LABELS[c])}: {esc(fmt(v))}</title></rect>')
            out.append(f'<text x="{bx + bw / 2:.1f}" y="{yy - 5:.1f}" font-size="10" text-anchor="middle">{esc(fmt(v))}</text>')
            out.append(f'<text x="{bx + bw / 2:.1f}" y="{y0 + ph + 16}" font-size="10" text-anchor="middle" fill="#333">'
                       f'{esc(LABELS[c].split(" ")[0] if c != "wasm-cwasm" else "cwasm")}</text>')
            base = vals.get("node")
            if c != "node" and base:
                num, word = versus(title, base, v).split(" ", 1)
                out.append(f'<text x="{bx + bw / 2:.1f}" y="{y0 + ph + 30}" font-size="10" text-anchor="middle" '
                           f'fill="#222" font-weight="bold">{esc(num)}</text>')
                out.append(f'<text x="{bx + bw / 2:.1f}" y="{y0 + ph + 41}" font-size="9.5" text-anchor="middle" '
                           f'fill="#222">{esc(word)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def versus(title: str, node: float, v: float) -> str:
    """A bar's comparison with node's, in words: '27× faster', '2.6× more'."""
    r_ = node / v
    if title == "Throughput":
        word, r_ = ("more", 1 / r_) if r_ < 1 else ("less", r_)
    elif title == "Cold start":
        word, r_ = ("faster", r_) if r_ >= 1 else ("slower", 1 / r_)
    elif title == "Artifact size":
        word, r_ = ("smaller", r_) if r_ >= 1 else ("larger", 1 / r_)
    else:
        word, r_ = ("less", r_) if r_ >= 1 else ("more", 1 / r_)
    return f"{r_:.0f}× {word}" if r_ >= 10 else f"{r_:.1f}× {word}"


def tick(v: float) -> str:
    if v >= 1e9:
        return f"{v / 1e9:g}G"
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


# --------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Measure jwt-validator (native and wasm) against the Node baseline.")
    p.add_argument("--quick", action="store_true",
                   help="about a minute or two: 16 connections for 3 s, 1 incremental build, no clean builds, HS256-only criterion")
    p.add_argument("--out", default=str(BENCH / "results"), help="output directory (default: bench/results)")
    p.add_argument("--cold-runs", type=int, default=None, help="cold starts per contender (default 20; quick 10; at least 10)")
    p.add_argument("--render-only", action="store_true",
                   help="measure nothing: redraw report.md and chart.svg from the out dir's results.json")
    a = p.parse_args(argv)
    if a.cold_runs is not None and a.cold_runs < 10:
        p.error("--cold-runs must be at least 10")
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    if args.render_only:
        r = json.loads((bench.out / "results.json").read_text())
        bench.results = r
        bench.summarise()
        (bench.out / "results.json").write_text(json.dumps(r, indent=1) + "\n")
        (bench.out / "chart.svg").write_text(chart_svg(r))
        (bench.out / "report.md").write_text(report_md(r))
        for line in headline_lines(r):
            print(line)
        return 0

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        bench.main()
        return 0
    except BenchFailure as e:
        print(f"\nshowdown: FAILED: {e}", file=sys.stderr, flush=True)
        print(f"showdown: logs in {bench.logs}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nshowdown: interrupted", file=sys.stderr)
        return 130
    finally:
        stop_all()
        shutil.rmtree(bench.work / "clean-target", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
