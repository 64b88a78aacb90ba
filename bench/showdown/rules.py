"""A CEL rule's cost under load (issue 24): the native server on the HS256 `POST /validate` contract,
without a rule and with a typical one (`JWT_RULE`), side by side, wrk rounds interleaved. The token
carries the claims the rule reads (a nested role list and a flag) beside the usual ones, and both
servers get that same token, so the difference is the rule alone. The native server's token cache is
off, as for the `native` contender. The component's default build has no rules (docs/access.md), and
the showdown builds that one, so only the native server runs here.

`python3 bench/showdown.py --only rules` runs this phase alone (after building the native binary), into
its own files (`rules.json`, `rules.md`), never over a full run's report."""

from __future__ import annotations

import json

from .common import BenchFailure, median, progress, ratio, run
from .contenders import NATIVE_BIN, BY_NAME
from .http1 import http_request
from .load import wrk
from .prepare import corrupt
from .servers import Server, check_contract, start, stop, wait_ready

# The typical rule of `crates/service/benches/rules.rs` (a nested claim, a flag, the request's method),
# on the method this contract uses.
RULE = "'ops' in claims.realm_access.roles && claims.email_verified && request.method == 'POST'"
CLAIMS = {"realm_access": {"roles": ["dev", "ops"]}, "email_verified": True, "email": "bench@example.com",
          "groups": ["team-a", "team-b"]}
CONNECTIONS = 16


def mint(ctx, claims: dict) -> str:
    cmd = [str(NATIVE_BIN), "mint", "--sub", "bench", "--ttl", "86400"]
    for k, v in claims.items():
        cmd += ["--claim", f"{k}={json.dumps(v, separators=(',', ':'))}"]
    p = run(cmd, env=ctx.env_with(JWT_SECRET=ctx.secret), what="jwt-validator mint (rule claims)")
    return p.stdout.strip().splitlines()[-1].strip()


def rules(ctx) -> dict:
    """The results' `rules` part: one wrk run per server per round, and the rule's refusal checked."""
    seconds, rounds = (2, 2) if ctx.quick else (5, 3)
    token = mint(ctx, CLAIMS)
    tokens = {"valid": token, "invalid": corrupt(token)[0]}
    refused = mint(ctx, {**CLAIMS, "realm_access": {"roles": ["dev"]}})
    servers: dict[str, Server] = {}
    runs: list[dict] = []
    try:
        for key, extra in (("no-rule", {}), ("rule", {"JWT_RULE": RULE})):
            srv = start(ctx, "native", ctx.logs / f"rules-{key}.log", {"JWT_SECRET": ctx.secret, **extra})
            srv.contender = f"native/{key}"
            servers[key] = srv
            wait_ready(ctx, srv, token=token)
            check_contract(ctx, srv, tokens)
        # The rule is on: a token without the role is refused by the one server and not the other
        # (else a run where the rule was ignored would pass for a cheap rule).
        body = json.dumps({"token": refused}).encode()
        for key, want in (("no-rule", 200), ("rule", 403)):
            status, text = http_request(servers[key].port, body)
            ctx.checks["responses_checked"] += 1
            ok = status == want and (want == 200 or "rule_failed" in text)
            ctx.checks["preflight"].append({"contender": servers[key].contender, "check": "token without the role",
                                            "status": status, "expected": want, "ok": ok, "body": text[:160]})
            if not ok:
                raise BenchFailure(f"{servers[key].contender}: a token without the role answered {status} "
                                   f"{text[:200]!r}, expected {want}")
        plan = ["no-rule", "rule"]
        for key in plan:  # warm-up, checked, not reported
            wrk(ctx, servers[key], "valid", CONNECTIONS, 1, token=token)
        for rnd in range(rounds):
            for key in plan[rnd % 2:] + plan[:rnd % 2]:
                res = wrk(ctx, servers[key], "valid", CONNECTIONS, seconds, token=token)
                res.update({"server": key, "round": rnd})
                runs.append(res)
                progress("rules", f"native {key:8s} {res['rps']:>9,.0f} req/s "
                                  f"{res['req_per_cpu_s'] or 0:>9,.0f} req/CPU-s")
    finally:
        for srv in servers.values():
            stop(srv.proc)
    return {"rules": runs, "rules_config": {"rule": RULE, "claims": CLAIMS, "seconds": seconds, "rounds": rounds,
                                            "connections": CONNECTIONS, "contract": "POST /validate, HS256",
                                            "server": BY_NAME["native"].label + ", JWT_TOKEN_CACHE_SIZE=0"}}


def summarise_rules(runs: list[dict]) -> dict:
    """Medians of the rounds per server, and what the rule costs: no-rule ÷ rule in req/s and in
    requests per CPU-second, and the CPU-µs per request it adds."""
    out: dict = {}
    for key in ("no-rule", "rule"):
        mine = [r for r in runs if r["server"] == key]
        out[key] = {"rps": median([r["rps"] for r in mine]),
                    "req_per_cpu_s": median([r["req_per_cpu_s"] for r in mine if r["req_per_cpu_s"]])}
    a, b = out["no-rule"], out["rule"]
    out["no_rule_over_rule_rps"] = ratio(a["rps"], b["rps"])
    out["no_rule_over_rule_cpu"] = ratio(a["req_per_cpu_s"], b["req_per_cpu_s"])
    if a["req_per_cpu_s"] and b["req_per_cpu_s"]:
        out["added_cpu_us_per_request"] = round(1e6 / b["req_per_cpu_s"] - 1e6 / a["req_per_cpu_s"], 2)
    return out


def report_lines(r: dict, fmt_num, fmt_ratio) -> list[str]:
    s = (r.get("summary") or {}).get("rules")
    if not s:
        return []
    cfg = r.get("rules_config", {})
    L = ["## A CEL rule under load (native)", ""]
    L.append(f"{cfg.get('contract', 'POST /validate')}, the native server with its token cache off, without a rule and "
             f"with `JWT_RULE` set to `{cfg.get('rule', RULE)}`; the same token (its claims include those the rule "
             f"reads) to both. wrk, {cfg.get('connections', CONNECTIONS)} connections, {cfg.get('seconds', '?')} s per "
             f"run, {cfg.get('rounds', '?')} rounds interleaved; medians. A token without the role is checked to be "
             "refused (403 `rule_failed`) by the server with the rule before the load.")
    L.append("")
    L.append("| server | req/s | req per CPU-s |")
    L.append("| --- | --- | --- |")
    for key, name in (("no-rule", "no rule"), ("rule", "typical rule")):
        L.append(f"| native, {name} | {fmt_num(s[key]['rps'])} | {fmt_num(s[key]['req_per_cpu_s'])} |")
    L.append("")
    added = s.get("added_cpu_us_per_request")
    L.append(f"No rule ÷ rule: **{fmt_ratio(s['no_rule_over_rule_rps'])}** in req/s, "
             f"**{fmt_ratio(s['no_rule_over_rule_cpu'])}** in requests per CPU-second"
             + (f"; the rule adds {fmt_num(added)} CPU-µs per request (server side)." if added is not None else "."))
    L.append("")
    return L
