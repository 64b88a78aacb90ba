"""report.md and the summary it is drawn from: pure functions of results.json (so --render-only and
older results work), leading with the ratios."""

from __future__ import annotations

import containers as container_images  # bench/containers.py: the images section

from . import gateway
from .common import fmt_bytes, fmt_num, fmt_ratio, median, ratio
from .contenders import BASELINE, BY_NAME, label, present
from .dpop import report_lines as dpop_lines
from .floors import report_lines as floor_lines, summarise_floors
from .rules import report_lines as rules_lines, summarise_rules

# The original write-up's figures (Node/Express in a container vs a Rust component on Spin), quoted as theirs.
ORIGINAL = {
    "artifact": "188 MB vs 0.5 MB (548 KB)",
    "incremental build": "~45 s vs 4.2 s",
    "cold start": "~1200 ms vs ~10 ms",
    "idle memory": "~85 MB vs ~4 MB",
}


def summarise(r: dict) -> dict:
    """The results' `summary`: medians and ratios, from the raw samples alone (so --render-only can redo it)."""
    s: dict = {"cold_start_ms": {}, "idle_rss_mib": {}, "peak_rss_mib": {}, "size_bytes": {}, "throughput": {}}
    names = present(r["cold_start_ms"])
    for c in names:
        xs = r["cold_start_ms"][c]
        s["cold_start_ms"][c] = {"median": median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}
        s["idle_rss_mib"][c] = round(median(r["idle_rss_kib"][c]) / 1024, 2)
        s["peak_rss_mib"][c] = round(r["peak_rss_kib"][c] / 1024, 2)
    sz = r["sizes"]
    s["size_bytes"] = {c: sz[BY_NAME[c].size_key]["bytes"] for c in names if BY_NAME[c].size_key in sz}
    s["size_with_runtime_bytes"] = {}
    for c in names:
        rt = BY_NAME[c].runtime
        own = s["size_bytes"].get(c)
        rt_bytes = sz.get(f"runtime_{rt}", {}).get("bytes") if rt else 0
        s["size_with_runtime_bytes"][c] = own + rt_bytes if own is not None and rt_bytes is not None else None
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
    # the headline: node ÷ each other contender; throughput on the valid token at 16 connections
    head = "valid@16"
    tp = s["throughput"].get(head, {})
    ratios = {}
    for other in names:
        if other == BASELINE:
            continue
        ratios[other] = {
            "cold_start": ratio(s["cold_start_ms"][BASELINE]["median"], s["cold_start_ms"][other]["median"]),
            "idle_rss": ratio(s["idle_rss_mib"][BASELINE], s["idle_rss_mib"][other]),
            "peak_rss": ratio(s["peak_rss_mib"][BASELINE], s["peak_rss_mib"][other]),
            "size": ratio(s["size_bytes"].get(BASELINE), s["size_bytes"].get(other)),
            "size_with_runtime": ratio(s["size_with_runtime_bytes"][BASELINE], s["size_with_runtime_bytes"][other]),
            "throughput": ratio(tp.get(BASELINE, {}).get("rps"), tp.get(other, {}).get("rps")),
            "req_per_cpu_s": ratio(tp.get(BASELINE, {}).get("req_per_cpu_s"), tp.get(other, {}).get("req_per_cpu_s")),
        }
    s["ratios_node_over"] = ratios
    s["ratios_basis"] = {"throughput": head, "size_wasm": "raw .wasm", "size_wasm-cwasm": ".cwasm file"}
    if r.get("floors"):
        s["floors"] = summarise_floors(r["floors"])
    if r.get("gateway"):
        s["gateway"] = gateway.summarise(r["gateway"])
    if r.get("rules"):
        s["rules"] = summarise_rules(r["rules"])
    return s


# --------------------------------------------------------------------------------------------------
# report


def headline_lines(r) -> list[str]:
    """The ratios in one line per contender, for the terminal."""
    s = r["summary"]
    rat = s["ratios_node_over"]
    cs, rss, sz = s["cold_start_ms"], s["idle_rss_mib"], s["size_bytes"]
    tp = s["throughput"].get("valid@16", {})
    lines = []
    for other, x in rat.items():
        lines.append(
            f"node/{other}: cold start {fmt_ratio(x['cold_start'])} ({cs['node']['median']:.1f} vs {cs[other]['median']:.1f} ms), "
            f"idle RSS {fmt_ratio(x['idle_rss'])} ({rss['node']:.1f} vs {rss[other]:.1f} MiB), "
            f"size {fmt_ratio(x['size'])} ({fmt_bytes(sz['node'])} vs {fmt_bytes(sz[other])}), "
            f"throughput {fmt_ratio(x['throughput'])} ({tp.get('node', {}).get('rps', 0):,.0f} vs {tp.get(other, {}).get('rps', 0):,.0f} req/s)")
    return lines


def short_name(c: str) -> str:
    return {"wasm-cwasm": "cwasm"}.get(c, c)


def report_md(r) -> str:
    """report.md, from results.json alone."""
    s = r["summary"]
    names = present(r["cold_start_ms"])
    others = [c for c in names if c != BASELINE]
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
    L.append("| figure | node | " + " | ".join(f"{label(o)} | node ÷ {short_name(o)}" for o in others) + " |")
    L.append("| --- | --- |" + " --- | --- |" * len(others))
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
    for fig, key, val, higher_better in rows:
        cells = [fig, val(BASELINE)]
        for o in others:
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
             f"{v.get('npm:jsonwebtoken', '?')}; tuned: fastify {v.get('npm:fastify', '?')}); {v['wasmtime']}; {v['wrk']}; "
             f"Python {v['python']}; jco {v['jco']}"
             + (f"; {v['envoy']}; {v['nginx']}" if "envoy" in v else "") + ".")
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
             "`jwt.verify` as a string, node-tuned makes it a `KeyObject` once). Invalid token: one middle character "
             "of the signature changed."
             + (" Runtime floors and gateway mode also use RS256, ES256 and EdDSA tokens against a JWKS of seven fresh "
                "keys (`bench/jwks.js`)." if r.get("tokens", {}).get("jwks") else ""))
    L.append("- Commands:")
    for c, cmd in r["commands"].items():
        L.append(f"  - {label(c)}: `{cmd}`")
    L.append("")
    L.append("## Artifact size")
    L.append("")
    L.append("| artifact | bytes | gzip -9 |")
    L.append("| --- | --- | --- |")
    artifacts = {"node_app_and_modules": "node: app + node_modules",
                 "node_tuned_app_and_modules": "node (tuned): app + node_modules",
                 "native_stripped": "native: stripped binary", "wasm_raw": "wasm: component (.wasm, as built)",
                 "wasm_jco_opt": "wasm: component after `jco opt` (-Oz)", "cwasm": "wasm: precompiled (.cwasm)"}
    for k, what in artifacts.items():
        if k in r["sizes"]:
            e = r["sizes"][k]
            L.append(f"| {what} | {e['bytes']:,} ({fmt_bytes(e['bytes'])}) | {e['gzip_bytes']:,} ({fmt_bytes(e['gzip_bytes'])}) |")
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
    build_labels = {"node": "node (npm ci)", "native": "native", "wasm": "wasm (`wasm` profile, shipped)",
                    "wasm-dev": "wasm (`wasm-dev` profile, edit loop)"}
    for c, what in build_labels.items():
        cl = b["clean_s"].get(c, [])
        inc = b["incremental_s"].get(c, [])
        if not cl and not inc:
            continue
        L.append(f"| {what} | {fmt_num(median(cl)) if cl else '—'} | {', '.join(map(str, cl)) or '—'} | "
                 f"{fmt_num(median(inc)) if inc else '—'} | {', '.join(map(str, inc)) or '—'} |")
    L.append("")
    L.append(f"Incremental: {b['edit']['change']} in `{b['edit']['file']}` (the handler both targets share), built in a "
             "private copy of the workspace; `cargo build -j 2`, release profile (native: fat LTO, 1 codegen unit; "
             "wasm: the `wasm` profile, opt-level z; `wasm-dev`: the edit loop's profile, not shipped). Node has no "
             "build step; its clean figure is `npm ci`.")
    L.append("")
    L.append("## Cold start and memory")
    L.append("")
    L.append("| contender | cold start median (ms) | min | max | n | idle RSS (MiB) | peak RSS after load (MiB) |")
    L.append("| --- | --- | --- | --- | --- | --- | --- |")
    for c in names:
        x = cs[c]
        L.append(f"| {label(c)} | {fmt_num(x['median'])} | {fmt_num(x['min'])} | {fmt_num(x['max'])} | {x['n']} | "
                 f"{rss[c]:.1f} | {peak[c]:.1f} |")
    L.append("")
    L.append("Cold start: spawn of the serving process → first `POST /validate` answered 200 with `\"valid\":true`, "
             "polled every millisecond. `wasm (.wasm)` compiles the component at every start (wasmtime's cache off); "
             "`wasm (.cwasm)` loads machine code compiled ahead of time. Idle RSS: VmRSS 1 s after the first answer "
             f"(median of {len(r['idle_rss_kib']['node'])}); for wasm it is the `wasmtime serve` process. Peak RSS: VmHWM "
             "after all the load below.")
    L.append("")
    if r.get("containers"):
        L += container_images.report_lines(r["containers"], {c: cs[c]["median"] for c in ("node", "native", "wasm-cwasm")})
    L.append("## Throughput and latency under load (wrk)")
    L.append("")
    L.append(f"{r['config']['load_seconds']} s per run, after a {r['config']['warmup_seconds']} s warm-up; keep-alive "
             "connections; every response's status and `valid` field counted by the wrk script.")
    L.append("")
    L.append("| token | connections | contender | req/s | p50 (ms) | p99 (ms) | server CPU (s) | req per CPU-s | answers |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for run_ in sorted(r["load"], key=lambda x: (x["token"] != "valid", x["connections"], names.index(x["contender"]))):
        L.append(f"| {run_['token']} | {run_['connections']} | {label(run_['contender'])} | {run_['rps']:,.0f} | "
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
            L.append(f"| {x['token']} | {label(x['contender'])} | {fmt_num(x['p50_ms'])} | {fmt_num(x['p90_ms'])} | "
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
    L += floor_lines(r, fmt_num, fmt_ratio)
    L += dpop_lines(r)
    L += gateway.report_lines(r, fmt_num, fmt_ratio)
    L += rules_lines(r, fmt_num, fmt_ratio)
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
