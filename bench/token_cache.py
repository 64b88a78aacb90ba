#!/usr/bin/env python3
"""What the native server's verified-token cache buys: POST /validate throughput, cache on vs off,
for RS256 and ES256, in one interleaved run.

    cargo build --release -p jwtv-server && python3 bench/token_cache.py [--rounds 3] [--seconds 5]

Build with `-p jwtv-server`: a workspace-wide build unifies the component's `rustcrypto` feature into
the verifier and the native binary then verifies with RustCrypto instead of ring. The crypto backend
of the binary (from `jwtv_build_info`) is printed, and a run fails if it changes between samples
(`--binary` takes a private copy, safe from other builds in a shared target directory).

Variants, per algorithm (the same binary, the same tokens, only JWT_TOKEN_CACHE_SIZE differs):
  off/repeat   cache off (0), one token sent over and over
  on/repeat    cache on (default 10000), the same token: every request after the first is a hit
  off/unique   cache off, 2000 distinct tokens sent in turn
  on/unique    cache on with 1000 entries, the same 2000 tokens in turn: FIFO eviction makes every
               lookup a miss, so this is the cache's pure overhead (hash, lookup, insert, eviction)

The server is pinned to CPU 0 and wrk (one thread, 16 connections) to CPU 1 when `taskset` exists,
so the figure is what one server core does. Besides requests/s, requests per server CPU-second (from
/proc/PID/stat) are reported: they hold steady when other work shares the machine. Every response must
be 200; anything else fails the run. Prints a Markdown table of medians and the on/off ratios. Python 3
standard library, wrk, Linux.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "target" / "release" / "jwt-validator"  # or --binary
TESTDATA = ROOT / "crates" / "verifier" / "testdata"
KEYS = {"RS256": "rsa2048", "ES256": "p256"}
UNIQUE_TOKENS = 2000

LUA = r"""
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("POST", "/validate", {["Content-Type"] = "application/json"},
                    '{"token":"' .. tokens[i] .. '"}')
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
not_ok = 0
response = function(status, headers, body) if status ~= 200 then not_ok = not_ok + 1 end end
done = function(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + (t:get("not_ok") or 0) end
  io.write(string.format("RESULT requests=%d duration_us=%d not_ok=%d errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, bad,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def pinned(cpu: int, argv: list[str]) -> list[str]:
    return (["taskset", "-c", str(cpu)] + argv) if shutil.which("taskset") else argv


def config_env(alg: str, cache_size: int | None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "JWT_PUBLIC_KEY_FILE": str(TESTDATA / f"{KEYS[alg]}.pub.pem"),
        "JWT_ALGORITHMS": alg,
        "JWT_AUDIENCE": "bench",
        "RUST_LOG": "warn",
    }
    if cache_size is not None:
        env["JWT_TOKEN_CACHE_SIZE"] = str(cache_size)
    return env


def mint(alg: str, n: int) -> list[str]:
    key = TESTDATA / f"{KEYS[alg]}.pk8.pem"
    tokens = []
    for i in range(n):
        out = subprocess.run(
            [str(BINARY), "mint", "--private-key", str(key), "--alg", alg, "--aud", "bench",
             "--sub", f"user-{i}", "--ttl", "7200"],
            env=config_env(alg, None), capture_output=True, text=True, check=True, timeout=30,
        )
        tokens.append(out.stdout.strip())
    return tokens


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (fields 14 and 15 of /proc/PID/stat, after the comm)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(alg: str, cache_size: int, tokens_file: Path, lua: Path, seconds: int) -> dict:
    server = subprocess.Popen(
        pinned(0, [str(BINARY), "--listen", "127.0.0.1:0"]),
        env=config_env(alg, cache_size), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = server.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            raise RuntimeError(f"server did not start: {line!r}")
        base = match.group(1)
        env = dict(os.environ, TOKENS_FILE=str(tokens_file))
        def wrk(duration: int) -> list[str]:
            return pinned(1, ["wrk", "-t1", "-c16", f"-d{duration}s", "-s", str(lua), f"{base}/validate"])

        # Warm-up (connections, first verifications), then the measured run.
        subprocess.run(wrk(1), env=env, capture_output=True, check=True, timeout=30)
        cpu_before = cpu_seconds(server.pid)  # taskset execs the server: same PID
        out = subprocess.run(wrk(seconds), env=env, capture_output=True, text=True, check=True, timeout=seconds + 30)
        result = dict(re.findall(r"(\w+)=(\d+)", out.stdout.split("RESULT", 1)[1]))
        result = {k: int(v) for k, v in result.items()}
        result["cpu_s"] = cpu_seconds(server.pid) - cpu_before
        if result["not_ok"] or result["errors"]:
            raise RuntimeError(f"{alg} cache={cache_size}: non-200 answers or errors: {result}")
        metrics = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
        backend = re.search(r'jwtv_build_info\{[^}]*backend="(\w+)"', metrics)
        result["backend"] = backend.group(1) if backend else "?"
        hits = re.search(r'jwtv_token_cache_requests_total\{result="hit"\} (\d+)', metrics)
        misses = re.search(r'jwtv_token_cache_requests_total\{result="miss"\} (\d+)', metrics)
        result["hit_rate"] = (
            int(hits.group(1)) / max(1, int(hits.group(1)) + int(misses.group(1))) if hits and misses else None
        )
        result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
        result["per_cpu_s"] = result["requests"] / max(result["cpu_s"], 1e-9)
        return result
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> int:
    global BINARY
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--binary", type=Path, default=BINARY)
    args = parser.parse_args()
    BINARY = args.binary.resolve()
    if not BINARY.is_file():
        print(f"{BINARY} is missing: cargo build --release -p jwtv-server", file=sys.stderr)
        return 2
    if not shutil.which("wrk"):
        print("wrk is missing (apt-get install -y wrk)", file=sys.stderr)
        return 2
    variants = [("off/repeat", 0, "repeat"), ("on/repeat", 10_000, "repeat"),
                ("off/unique", 0, "unique"), ("on/unique", 1000, "unique")]
    samples: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lua = tmp / "tokens.lua"
        lua.write_text(LUA)
        files = {}
        for alg in KEYS:
            print(f"minting {UNIQUE_TOKENS} {alg} tokens...", file=sys.stderr)
            tokens = mint(alg, UNIQUE_TOKENS)
            (tmp / f"{alg}-repeat").write_text(tokens[0] + "\n")
            (tmp / f"{alg}-unique").write_text("\n".join(tokens) + "\n")
            files[alg] = {"repeat": tmp / f"{alg}-repeat", "unique": tmp / f"{alg}-unique"}
        # Interleaved: every round runs every variant, so drift in the machine's load hits all alike.
        for r in range(args.rounds):
            for alg in KEYS:
                for name, size, kind in variants:
                    result = run(alg, size, files[alg][kind], lua, args.seconds)
                    samples.setdefault((alg, name), []).append(result)
                    print(f"round {r + 1} {alg} {name}: {result['rps']:.0f} req/s, "
                          f"{result['per_cpu_s']:.0f} req/CPU-s "
                          f"(p50 {result['p50_us']} us, p99 {result['p99_us']} us, hit rate {result['hit_rate']})",
                          file=sys.stderr)
    backends = {r["backend"] for rs in samples.values() for r in rs}
    if len(backends) != 1:
        print(f"the binary changed during the run (backends {backends}): rerun with --binary", file=sys.stderr)
        return 1
    load = os.getloadavg()
    print(f"\nbackend {backends.pop()}; {os.cpu_count()} CPUs, load average {load[0]:.2f}; "
          f"server on CPU 0, wrk -t1 -c16 on CPU 1; "
          f"{args.rounds} rounds x {args.seconds} s, medians\n")
    print("| alg | variant | req/s | req per server CPU-s | p50 µs | p99 µs | hit rate |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    med, per_cpu = {}, {}
    for (alg, name), rs in samples.items():
        med[(alg, name)] = statistics.median(r["rps"] for r in rs)
        per_cpu[(alg, name)] = statistics.median(r["per_cpu_s"] for r in rs)
        hit = rs[-1]["hit_rate"]
        print(f"| {alg} | {name} | {med[(alg, name)]:.0f} | {per_cpu[(alg, name)]:.0f} | "
              f"{statistics.median(r['p50_us'] for r in rs):.0f} | "
              f"{statistics.median(r['p99_us'] for r in rs):.0f} | {'-' if hit is None else f'{hit:.3f}'} |")
    print()
    for alg in KEYS:
        def ratio(table: dict, kind: str) -> str:
            return f"{table[(alg, 'on/' + kind)] / table[(alg, 'off/' + kind)]:.2f}x"
        print(f"- {alg}: repeated token, cache on/off = {ratio(med, 'repeat')} req/s, "
              f"{ratio(per_cpu, 'repeat')} req/CPU-s; all misses, cache on/off = {ratio(med, 'unique')} req/s, "
              f"{ratio(per_cpu, 'unique')} req/CPU-s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
