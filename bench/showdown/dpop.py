"""The DPoP row: what a DPoP-bound request (RFC 9449; issue 26) costs the native server beside a plain
bearer token, and what the shared replay store (Redis) adds to it.

One native server per replay store (token cache off, as for the contenders), each configured with the
run's HS256 secret and an ES256 issuer key (`bench/dpop.js`). Per round, interleaved, wrk at 16
connections on `POST /validate`:
- `bearer HS256`: the run's HS256 token;
- `bearer ES256`: an ES256 token;
- `dpop ES256 (memory)`: the same key's DPoP-bound token (cnf.jkt) with a new proof per request
  (`{"token", "dpop", "method", "url"}`), the replay store in the process;
- `dpop ES256 (redis)`: the same against a server whose replay store is a local redis-server (its CPU
  counted with the server's).
A proof is single-use: before each DPoP run enough fresh proofs are minted (iat now), from the bearer
ES256 rate of that round; a run that ran out would get refusals and fail."""

from __future__ import annotations

import json
import shutil
import time

from .common import BENCH, BenchFailure, fmt_num, fmt_ratio, free_port, median, progress, ratio, run
from .contenders import NATIVE_BIN
from .load import wrk
from .servers import Server, spawn, stop, wait_ready

DPOP_SCRIPT = BENCH / "dpop.js"
CONNECTIONS = 16
METHOD, URL = "GET", "https://api.bench.example/orders"
ROWS = ["bearer HS256", "bearer ES256", "dpop ES256 (memory)", "dpop ES256 (redis)"]


def mint(ctx, count: int) -> dict:
    """The tokens, the JWKS, and `count` fresh proofs in the proofs file."""
    p = run(["node", str(DPOP_SCRIPT), str(ctx.work / "dpop-state.json"), str(ctx.work / "dpop-proofs.txt"),
             str(count), METHOD, URL], env=ctx.base_env, what="node bench/dpop.js")
    return json.loads(p.stdout.strip().splitlines()[-1])


def jwks_with_secret(ctx, jwks: dict) -> str:
    """The ES256 issuer key and the run's HS256 secret as one JWK set: one issuer, both tokens."""
    import base64
    oct_key = {"kty": "oct", "kid": "hs", "alg": "HS256",
               "k": base64.urlsafe_b64encode(ctx.secret.encode()).decode().rstrip("=")}
    return json.dumps({"keys": [*jwks["keys"], oct_key]}, separators=(",", ":"))


def check_dpop(srv: Server, token: str, proof: str) -> None:
    """A fresh proof is accepted, its replay refused: the row measures a working check."""
    from .http1 import http_request
    body = json.dumps({"token": token, "dpop": proof, "method": METHOD, "url": URL}).encode()
    first = http_request(srv.port, body)
    again = http_request(srv.port, body)
    if first[0] != 200 or again[0] != 401:
        raise BenchFailure(f"{srv.contender}: a DPoP proof answered {first[0]} then {again[0]} on its replay "
                           f"(expected 200 then 401): {first[1][:160]} / {again[1][:160]}")


def dpop(ctx) -> dict:
    """The results' `dpop` part."""
    if ctx.skipped.get("dpop"):
        return {}
    seconds, rounds = (ctx.load_seconds, 1) if ctx.quick else (ctx.load_seconds, 2)
    made = mint(ctx, 4)
    keys = jwks_with_secret(ctx, made["jwks"])
    tokens = {"bearer HS256": ctx.tokens["valid"], "bearer ES256": made["tokens"]["es256"]}
    bound = made["tokens"]["dpop"]
    redis = None
    servers: dict[str, Server] = {}
    runs: list[dict] = []
    try:
        stores = {"memory": {}}
        if shutil.which("redis-server"):
            port = free_port()
            redis = spawn("redis-server", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                           "--appendonly", "no"], ctx.base_env, ctx.logs / "redis.log", port)
            stores["redis"] = {"JWT_DPOP_REPLAY_STORE": f"redis://127.0.0.1:{port}/0"}
            time.sleep(0.3)
        else:
            ctx.skipped["dpop_redis"] = "redis-server not found (scripts/setup debian installs it)"
        for store, extra in stores.items():
            port = free_port()
            env = ctx.env_with(JWT_JWKS=keys, JWT_TOKEN_CACHE_SIZE="0", **extra)
            srv = spawn(f"native/{store}", [str(NATIVE_BIN), "--listen", f"127.0.0.1:{port}"], env,
                        ctx.logs / f"dpop-{store}.log", port)
            servers[store] = srv
            wait_ready(ctx, srv)
            proofs = (ctx.work / "dpop-proofs.txt").read_text().split()
            check_dpop(srv, bound, proofs[0])
            ctx.checks["responses_checked"] += 2
        plan = [row for row in ROWS if not row.startswith("dpop") or row.split("(")[1][:-1] in servers]
        for rnd in range(rounds):
            bearer_rps = None
            order = plan[rnd % len(plan):] + plan[:rnd % len(plan)]
            # The bearer ES256 run first in every round: its rate sizes the proofs of the DPoP runs.
            order.sort(key=lambda row: row != "bearer ES256")
            for row in order:
                if row.startswith("dpop"):
                    store = row.split("(")[1][:-1]
                    srv = servers[store]
                    count = max(20_000, int((bearer_rps or 10_000) * seconds * 1.5))
                    mint(ctx, count)
                    others = (redis,) if store == "redis" and redis else ()
                    res = wrk(ctx, srv, "valid", CONNECTIONS, seconds, token=bound, others=others,
                              extra_env={"SHOWDOWN_DPOP_PROOFS": str(ctx.work / "dpop-proofs.txt"),
                                         "SHOWDOWN_DPOP_METHOD": METHOD, "SHOWDOWN_DPOP_URL": URL})
                    res["proofs_minted"] = count
                else:
                    res = wrk(ctx, servers["memory"], "valid", CONNECTIONS, seconds, token=tokens[row])
                    if row == "bearer ES256":
                        bearer_rps = res["rps"]
                res.update({"row": row, "round": rnd})
                runs.append(res)
                progress("dpop", f"{row:20s} {res['rps']:>9,.0f} req/s {res['req_per_cpu_s'] or 0:>9,.0f} req/CPU-s "
                                 f"p50 {res['p50_ms']:.2f} ms p99 {res['p99_ms']:.2f} ms")
    finally:
        for srv in servers.values():
            stop(srv.proc)
        if redis:
            stop(redis.proc)
    return {"dpop": runs, "dpop_config": {"seconds": seconds, "rounds": rounds, "connections": CONNECTIONS,
                                          "method": METHOD, "url": URL}}


def summarise(runs: list[dict]) -> dict:
    """Per row: requests per server CPU-second and req/s (medians of the rounds); the ratios in CPU per
    request against the bearer rows, and redis against memory."""
    rows: dict = {}
    for row in ROWS:
        mine = [r for r in runs if r["row"] == row]
        if mine:
            rows[row] = {"req_per_cpu_s": median([r["req_per_cpu_s"] for r in mine if r["req_per_cpu_s"]]),
                         "rps": median([r["rps"] for r in mine]),
                         "p50_ms": median([r["p50_ms"] for r in mine]), "p99_ms": median([r["p99_ms"] for r in mine])}

    def cpu_ratio(a, b):  # CPU per request of a over b
        if a in rows and b in rows:
            return ratio(rows[b]["req_per_cpu_s"], rows[a]["req_per_cpu_s"])
        return None

    return {"rows": rows, "ratios_cpu_per_request": {
        "dpop_memory_over_bearer_es256": cpu_ratio("dpop ES256 (memory)", "bearer ES256"),
        "dpop_memory_over_bearer_hs256": cpu_ratio("dpop ES256 (memory)", "bearer HS256"),
        "dpop_redis_over_dpop_memory": cpu_ratio("dpop ES256 (redis)", "dpop ES256 (memory)"),
        "dpop_redis_over_bearer_es256": cpu_ratio("dpop ES256 (redis)", "bearer ES256"),
    }}


def report_lines(r: dict) -> list[str]:
    runs = r.get("dpop")
    if not runs:
        return []
    s = summarise(runs)
    cfg = r.get("dpop_config", {})
    L = ["## DPoP-bound requests (native)", ""]
    L.append("The native server (token cache off) on `POST /validate`: bearer tokens beside an ES256 DPoP-bound token "
             "(`cnf.jkt`) sent with a new ES256 proof per request (`{\"token\", \"dpop\", \"method\", \"url\"}`, each "
             "proof single-use, minted ahead by `bench/dpop.js`), the replay store in memory or a local redis-server "
             f"(its CPU counted). wrk, {cfg.get('connections', CONNECTIONS)} connections, {cfg.get('seconds', '?')} s "
             f"per run, {cfg.get('rounds', '?')} round(s), interleaved; medians of the rounds. The load generator "
             "shares the cores.")
    L += ["", "| request | req/s | req per CPU-s | p50 ms | p99 ms |", "| --- | --- | --- | --- | --- |"]
    for row, x in s["rows"].items():
        L.append(f"| {row} | {fmt_num(x['rps'])} | {fmt_num(x['req_per_cpu_s'])} | {x['p50_ms']:.2f} | "
                 f"{x['p99_ms']:.2f} |")
    q = s["ratios_cpu_per_request"]
    L += ["", "CPU per request:", "",
          f"- DPoP (memory) ÷ bearer ES256: **{fmt_ratio(q['dpop_memory_over_bearer_es256'])}**",
          f"- DPoP (memory) ÷ bearer HS256: **{fmt_ratio(q['dpop_memory_over_bearer_hs256'])}**",
          f"- DPoP (redis) ÷ DPoP (memory): **{fmt_ratio(q['dpop_redis_over_dpop_memory'])}**",
          f"- DPoP (redis) ÷ bearer ES256: **{fmt_ratio(q['dpop_redis_over_bearer_es256'])}**", ""]
    return L
