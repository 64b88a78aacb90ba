"""Load: wrk runs (keep-alive, every answer counted by status and `valid` field) and the fixed-rate
client, against every contender side by side; CPU per request from /proc for every process involved."""

from __future__ import annotations

import asyncio
import json
import os
import time

from .common import EXPECT, WRK_SCRIPT, BenchFailure, group_cpu_s, proc_status_kib, progress, run
from .contenders import CONTENDERS
from .http1 import fixed_rate_async
from .servers import Server, check_contract, start, stop, wait_ready


def wrk(ctx, srv: Server, kind: str, conns: int, seconds: float, *, token: str | None = None,
        expect: str | None = None, others: tuple[Server, ...] = (), path: str = "/validate",
        bearer: bool = False, extra_env: dict | None = None) -> dict:
    """One wrk run against srv. `token` overrides the run's HS256 token of that kind; `expect` the
    expected "status:valid" answer ("401:*": any body); the CPU counted is that of srv and `others`
    (every process of their groups: a proxy's workers, say); `extra_env` goes to validate.lua (the
    DPoP proofs file)."""
    threads = 1 if conns == 1 else 2
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s", "--timeout", "5s",
           "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{srv.port}{path}"]
    groups = [srv, *others]
    env = ctx.env_with(SHOWDOWN_TOKEN=token or ctx.tokens[kind], SHOWDOWN_THREADS=str(threads),
                       **({"SHOWDOWN_BEARER": "1"} if bearer else {}), **(extra_env or {}))
    cpu0 = [group_cpu_s([g.pid]) for g in groups]
    ru0 = os.times()
    t0 = time.perf_counter()
    p = run(cmd, env=env, timeout=seconds + 60, what=f"wrk against {srv.contender}")
    wall = time.perf_counter() - t0
    ru1 = os.times()
    cpu1 = [group_cpu_s([g.pid]) for g in groups]
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
    check_counts(w["counts"], kind, where, total=w["requests"], expect=expect)
    ctx.checks["responses_checked"] += w["requests"]
    by_group = {g.contender: round(b - a, 3) for g, a, b in zip(groups, cpu0, cpu1)}
    cpu = sum(cpu1) - sum(cpu0)
    secs = w["duration_us"] / 1e6
    return {
        "contender": srv.contender, "token": kind, "connections": conns, "threads": threads,
        "duration_s": round(secs, 3), "wall_s": round(wall, 3), "requests": w["requests"],
        "rps": round(w["requests"] / secs, 1),
        "p50_ms": w["latency_us"]["p50"] / 1000, "p90_ms": w["latency_us"]["p90"] / 1000,
        "p99_ms": w["latency_us"]["p99"] / 1000, "p999_ms": w["latency_us"]["p999"] / 1000,
        "latency_us": w["latency_us"], "counts": w["counts"], "errors": w["errors"],
        "server_cpu_s": round(cpu, 3), **({"cpu_s_by_process": by_group} if others else {}),
        "req_per_cpu_s": round(w["requests"] / cpu, 1) if cpu > 0 else None,
        "client_cpu_s": round((ru1.children_user + ru1.children_system) - (ru0.children_user + ru0.children_system), 3),
    }

def load(ctx) -> dict:
    """The results' `load`, `warmup`, `fixed_rate`, `peak_rss_kib`, `load_native_cached` and
    `load_pids` parts, and one more idle RSS sample per contender."""
    results: dict = {"load": [], "warmup": [], "fixed_rate": [], "peak_rss_kib": {}, "load_pids": {},
                     "idle_rss_kib": {}}
    servers: dict[str, Server] = {}
    try:
        progress("load", "starting every contender (one at a time; idle RSS 1 s after its first answer)")
        for c in CONTENDERS:
            srv = start(ctx, c, None)
            servers[c] = srv
            wait_ready(ctx, srv)
            time.sleep(1.0)
            srv.idle_rss_kib = proc_status_kib(srv.pid, "VmRSS")
            results["load_pids"][c] = srv.pid
            results["idle_rss_kib"][c] = srv.idle_rss_kib
            check_contract(ctx, srv)
            progress("load", f"{c} up on 127.0.0.1:{srv.port}, pid {srv.pid}, idle RSS {srv.idle_rss_kib / 1024:.1f} MiB")
        for c in CONTENDERS:
            progress("load", f"warm-up {c}: {ctx.warmup_seconds}s at 16 connections (checked, not reported)")
            results["warmup"].append(wrk(ctx, servers[c], "valid", 16, ctx.warmup_seconds))
        i = 0
        for conns in ctx.connections:
            for kind in ("valid", "invalid"):
                order = CONTENDERS[i % len(CONTENDERS):] + CONTENDERS[:i % len(CONTENDERS)]
                i += 1
                for c in order:
                    res = wrk(ctx, servers[c], kind, conns, ctx.load_seconds)
                    results["load"].append(res)
                    progress("load", f"{c:10s} {kind:7s} c={conns:<3d} {res['rps']:>10,.0f} req/s  "
                                     f"p50 {res['p50_ms']:.2f} ms  p99 {res['p99_ms']:.2f} ms  "
                                     f"{res['req_per_cpu_s'] or 0:>9,.0f} req/CPU-s  {res['counts']}")
                    time.sleep(0.3)
        if ctx.native_has_cache:
            results["load_native_cached"] = load_native_cached(ctx)
        for kind in ("valid", "invalid"):
            for c in CONTENDERS:
                r = asyncio.run(fixed_rate_async(servers[c].port, ctx.tokens[kind], ctx.rate, ctx.rate_seconds))
                where = f"{c}, {kind} token, fixed rate {ctx.rate}/s"
                if r["errors"]:
                    raise BenchFailure(f"{where}: socket errors: {r['errors'][:5]}")
                check_counts(r["counts"], kind, where, total=r["sent"])
                ctx.checks["responses_checked"] += r["answered"]
                r.update({"contender": c, "token": kind, "rate": ctx.rate, "duration_s": ctx.rate_seconds})
                results["fixed_rate"].append(r)
                progress("fixed rate", f"{c:10s} {kind:7s} {ctx.rate}/s for {ctx.rate_seconds}s: "
                                       f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  {r['counts']}")
        for c, srv in servers.items():
            results["peak_rss_kib"][c] = proc_status_kib(srv.pid, "VmHWM")
    finally:
        for srv in servers.values():
            stop(srv.proc)
    return results


def load_native_cached(ctx) -> list[dict]:
    """The native server as shipped (verified-token cache on), 16 connections: how much a repeated
    valid token gains from skipping the signature check. Reported apart from the contenders."""
    extra = []
    srv = start(ctx, "native-cached", None)
    try:
        wait_ready(ctx, srv)
        check_contract(ctx, srv)
        progress("load", f"native with its token cache on (the default): warm-up {ctx.warmup_seconds}s")
        wrk(ctx, srv, "valid", 16, ctx.warmup_seconds)
        for kind in ("valid", "invalid"):
            res = wrk(ctx, srv, kind, 16, ctx.load_seconds)
            res["contender"] = "native-cached"
            extra.append(res)
            progress("load", f"native, token cache on, {kind:7s} c=16 {res['rps']:>10,.0f} req/s  "
                             f"p50 {res['p50_ms']:.2f} ms  p99 {res['p99_ms']:.2f} ms  "
                             f"{res['req_per_cpu_s'] or 0:>9,.0f} req/CPU-s  {res['counts']}")
    finally:
        stop(srv.proc)
    return extra


def check_counts(counts: dict, kind: str, where: str, total: int, expect: str | None = None) -> None:
    """Every answer must be the expected one ("200:true" for the valid token, "401:false" for the
    invalid one, or `expect`; "401:*" takes any body), and every request must have been answered:
    anything else fails the run."""
    want = expect or EXPECT[kind]
    status, _, body = want.partition(":")
    unexpected = {k: v for k, v in counts.items() if k != want and not (body == "*" and k.split(":")[0] == status)}
    if unexpected:
        raise BenchFailure(f"{where}: unexpected answers {unexpected} (expected only {want}); "
                           "an invalid token answered 200, or any other status, fails the run")
    answered = sum(counts.values())
    if answered != total or answered == 0:
        raise BenchFailure(f"{where}: {answered} answers counted for {total} requests")
