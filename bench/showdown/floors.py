"""Runtime floors: per host mode (contenders.HOST_MODES), our server beside the same host answering a
fixed `{"valid":true}` with nothing else to do, under the same load; "ours ÷ floor" in CPU per request
is the share of the cost that is ours. HS256 with the run's secret, and RS256, ES256 and EdDSA against
the seven-key JWKS (the native server's token cache off)."""

from __future__ import annotations

from .common import BenchFailure, free_port, median, progress, ratio
from .contenders import HOST_MODES
from .load import wrk
from .prepare import jwks_env
from .servers import Server, check_contract, spawn, stop, wait_ready

ALGORITHMS = ["HS256", "RS256", "ES256", "EdDSA"]
CONNECTIONS = 16


def token_pair(ctx, alg: str) -> dict:
    return ctx.tokens if alg == "HS256" else ctx.jwks["tokens"][alg]


def floors(ctx) -> dict:
    """The results' `floors` part: one wrk run per host mode, server and token, per round."""
    seconds, rounds = (1, 1) if ctx.quick else (5, 2)
    runs: list[dict] = []
    for mode in HOST_MODES:
        missing = [str(a) for a in mode.artifacts if not a.exists()]
        if missing:
            raise BenchFailure(f"host mode {mode.name}: missing {', '.join(missing)}")
        servers: dict[str, Server] = {}
        try:
            for key, floor, jwt_env in (("floor", True, {}), ("ours-hs", False, {"JWT_SECRET": ctx.secret}),
                                        ("ours-jwks", False, jwks_env(ctx))):
                port = free_port()
                cmd, extra = mode.command(ctx, port, jwt_env, floor)
                srv = spawn(f"{mode.name}/{key}", cmd, ctx.env_with(**extra), ctx.logs / f"floor-{mode.name}-{key}.log", port)
                servers[key] = srv
                wait_ready(ctx, srv, token=ctx.jwks["tokens"]["RS256"]["valid"] if key == "ours-jwks" else None)
            check_contract(ctx, servers["ours-hs"])
            for alg in ALGORITHMS[1:]:
                check_contract(ctx, servers["ours-jwks"], token_pair(ctx, alg))
            plan = [("floor", "floor", "HS256")] + [("ours", "ours-hs" if a == "HS256" else "ours-jwks", a)
                                                    for a in ALGORITHMS]
            for who, key, alg in plan:  # warm-up, checked, not reported
                wrk(ctx, servers[key], "valid", CONNECTIONS, 1, token=token_pair(ctx, alg)["valid"])
            for rnd in range(rounds):
                order = plan[rnd % len(plan):] + plan[:rnd % len(plan)]
                for who, key, alg in order:
                    res = wrk(ctx, servers[key], "valid", CONNECTIONS, seconds, token=token_pair(ctx, alg)["valid"])
                    res.update({"host_mode": mode.name, "server": who, "alg": alg if who == "ours" else None,
                                "round": rnd})
                    runs.append(res)
                    progress("floors", f"{mode.name:10s} {who:5s} {alg if who == 'ours' else '':6s} "
                                       f"{res['rps']:>9,.0f} req/s {res['req_per_cpu_s'] or 0:>9,.0f} req/CPU-s")
        finally:
            for srv in servers.values():
                stop(srv.proc)
    return {"floors": runs, "floors_config": {"seconds": seconds, "rounds": rounds, "connections": CONNECTIONS,
                                              "host_modes": {m.name: m.label for m in HOST_MODES}}}


def summarise_floors(runs: list[dict]) -> dict:
    """Per host mode and algorithm: requests per CPU-second of the floor and of ours (medians of the
    rounds), and ours ÷ floor in CPU per request."""
    out: dict = {}
    modes = list(dict.fromkeys(r["host_mode"] for r in runs))
    for m in modes:
        floor = median([r["req_per_cpu_s"] for r in runs if r["host_mode"] == m and r["server"] == "floor"
                        and r["req_per_cpu_s"]])
        for alg in ALGORITHMS:
            ours = median([r["req_per_cpu_s"] for r in runs if r["host_mode"] == m and r["server"] == "ours"
                           and r["alg"] == alg and r["req_per_cpu_s"]])
            rps = median([r["rps"] for r in runs if r["host_mode"] == m and r["server"] == "ours" and r["alg"] == alg])
            if ours is None:
                continue
            out.setdefault(m, {})[alg] = {"floor_req_per_cpu_s": floor, "ours_req_per_cpu_s": ours, "ours_rps": rps,
                                          "ours_over_floor_cpu_per_req": ratio(floor, ours)}
    return out


def report_lines(r: dict, fmt_num, fmt_ratio) -> list[str]:
    s = r["summary"].get("floors")
    if not s:
        return []
    cfg = r.get("floors_config", {})
    L = ["## Runtime floors (ours ÷ floor, CPU per request)", ""]
    L.append("Each host mode runs our server beside a floor on the same host: a bare hyper 1 + tokio server "
             "(`bench/floors/hyper`) natively, a hello-world wasi:http component (`bench/floors/component`; for WASI 0.3 "
             "its `--features p3` build, through the same `wasip3` bindings as ours) under the same `wasmtime serve` "
             "flags, each answering a fixed `{\"valid\":true}` after reading the body. "
             f"wrk, {cfg.get('connections', CONNECTIONS)} connections, {cfg.get('seconds', '?')} s per run, "
             f"{cfg.get('rounds', '?')} round(s), interleaved; requests per server CPU-second, median of the rounds. "
             "HS256 with the run's secret; RS256, ES256 and EdDSA against a JWKS of seven keys (RSA-2048 under four "
             "kids, P-256, P-384, Ed25519), the native server's token cache off. **ours ÷ floor** is our CPU per "
             "request over the floor's: the share of the cost that is ours.")
    L.append("")
    L.append("| host mode | token | floor (req per CPU-s) | ours (req per CPU-s) | ours (req/s) | ours ÷ floor |")
    L.append("| --- | --- | --- | --- | --- | --- |")
    labels = cfg.get("host_modes", {})
    for m, algs in s.items():
        for alg, x in algs.items():
            L.append(f"| {labels.get(m, m)} | {alg} | {fmt_num(x['floor_req_per_cpu_s'])} | "
                     f"{fmt_num(x['ours_req_per_cpu_s'])} | {fmt_num(x['ours_rps'])} | "
                     f"**{fmt_ratio(x['ours_over_floor_cpu_per_req'])}** |")
    L.append("")
    native = s.get("native", {})
    rows = []
    for m in s:
        if m == "native":
            continue
        for alg, x in s[m].items():
            n = native.get(alg, {}).get("ours_req_per_cpu_s")
            rows.append(f"| {labels.get(m, m)} | {alg} | {fmt_ratio(ratio(n, x['ours_req_per_cpu_s']))} |")
    if rows:
        L += ["Native ÷ wasm, ours, CPU per request:", "", "| host mode | token | native ÷ this mode |",
              "| --- | --- | --- |", *rows, ""]
    return L
