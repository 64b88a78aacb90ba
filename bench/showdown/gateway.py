"""Gateway mode: a proxy in front of a static upstream, checking the token itself, asking jwt-validator
(`/auth`), or not at all (the proxy's floor); and jwt-validator's `/auth` alone. The client sends
`GET /` with `Authorization: Bearer`, as to any gateway. CPU per request counts every process involved
(proxy, validator, upstream), and is reported without the upstream too.

The upstream is the native floor (`bench/floors/hyper`: 200 `{"valid":true}`). The validator runs as
shipped (token cache on), since Envoy's jwt_authn caches verified tokens too; the token is repeated.
Envoy: `.cache/bin/envoy` (scripts/setup proxies), `--concurrency 1`; nginx: one worker.

Adding a gateway is one entry in GATEWAYS: which proxy, whether it calls the validator, and its
configuration. Envoy configurations are built from a list of HTTP filters (`envoy_config`): jwt_authn
is `envoy_with(jwt_authn)`, and our proxy-wasm filter `envoy_with(filter_config)`, where
`filter_config(ctx, alg)` returns the `envoy.filters.http.wasm` filter (a dict) for that token.
"""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .common import ROOT, BenchFailure, free_port, median, progress, ratio
from .contenders import FLOOR_NATIVE_BIN, NATIVE_BIN
from .http1 import http_request
from .load import wrk
from .prepare import jwks_env
from .servers import Server, spawn, stop, wait_ready

DOCS = ROOT / "docs" / "gateway"
ENVOY = ROOT / ".cache" / "bin" / "envoy"
NGINX = shutil.which("nginx", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/nginx"
# The addresses written in docs/gateway/*, replaced by the ports a run picked.
DOC_VALIDATOR, DOC_UPSTREAM, DOC_LISTEN = "127.0.0.1:3000", "127.0.0.1:9000", "127.0.0.1:8080"
ALGORITHMS = ["HS256", "RS256"]
CONNECTIONS = 16
# Entries of the verified-token caches of jwt_authn and our filter (one token is sent over and over)
JWT_CACHE_SIZE = 100


@dataclass
class Ports:
    listen: int
    validator: int
    upstream: int


# (ctx, work dir, ports, token algorithm) -> the proxy's command, its configuration written into the work dir
Render = Callable[["object", Path, Ports, str], list[str]]


@dataclass(frozen=True)
class Gateway:
    name: str
    label: str
    proxy: str  # "envoy", "nginx", or "" (the client talks to the validator's /auth)
    validator: bool  # does a jwt-validator run behind the proxy
    render: Render | None  # writes the proxy's configuration, returns its command
    checks: bool = True  # False for a floor: the token is not looked at (measured once, valid only)


# ---------------------------------------------------------------------------------------------------
# Envoy


def envoy_config(ports: Ports, http_filters: list[dict], extra_clusters: list[dict] = ()) -> dict:
    """A listener routing everything to the upstream through these HTTP filters (the router last)."""
    def cluster(name, port):
        return {"name": name, "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
           "stat_prefix": "ingress",
           "route_config": {"virtual_hosts": [{"name": "app", "domains": ["*"],
                                               "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]},
           "http_filters": [*http_filters, {"name": "envoy.filters.http.router", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    return {"static_resources": {
        "listeners": [{"name": "ingress", "address": {"socket_address": {"address": "127.0.0.1", "port_value": ports.listen}},
                       "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                       "typed_config": hcm}]}]}],
        "clusters": [cluster("app", ports.upstream), *extra_clusters]}}


def envoy_command(work: Path, config_text: str) -> list[str]:
    path = work / "envoy.yaml"
    path.write_text(config_text)
    return [str(ENVOY), "-c", str(path), "--concurrency", "1", "--disable-hot-restart", "-l", "error"]


def envoy_with(filters: Callable[["object", str], list[dict]]) -> Render:
    """An Envoy gateway whose configuration is envoy_config with these HTTP filters (per token algorithm)."""
    def render(ctx, work, ports, alg):
        return envoy_command(work, json.dumps(envoy_config(ports, filters(ctx, alg)), indent=1))
    return render


def jwt_authn(ctx, alg: str) -> list[dict]:
    """Envoy's own JWT filter, with the same key material as the validator, inline, and its verified-token cache."""
    if alg == "HS256":
        k = base64.urlsafe_b64encode(ctx.secret.encode()).rstrip(b"=").decode()
        jwks = json.dumps({"keys": [{"kty": "oct", "alg": "HS256", "k": k}]})
    else:
        jwks = ctx.jwks["jwks"]
    return [{"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {"bench": {"local_jwks": {"inline_string": jwks}, "forward": True,
                                "jwt_cache_config": {"jwt_cache_size": JWT_CACHE_SIZE}}},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}]}}]


def filter_config(ctx, alg: str) -> list[dict]:
    """Our proxy-wasm filter (crates/filter, built by scripts/filter in prepare) with the validator's policy
    in the gateway phase: the same key material, inline in its TOML (no issuer or audience required, as the
    validator's environment there), and its verified-token cache on, sized as jwt_authn's jwt_cache."""
    # JSON strings are TOML basic strings too: the key material goes in escaped
    key = f"secret = {json.dumps(ctx.secret)}" if alg == "HS256" else f"jwks = {json.dumps(ctx.jwks['jwks'])}"
    toml = f"[server]\ntoken_cache_size = {JWT_CACHE_SIZE}\n\n[[issuers]]\n{key}\n"
    return [{"name": "jwt-validator", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {"name": "jwt-validator", "failure_policy": "FAIL_CLOSED",
                   "vm_config": {"vm_id": "jwt-validator", "runtime": "envoy.wasm.runtime.v8",
                                 "code": {"local": {"filename": str(ctx.filter_wasm)}}},
                   "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": toml}}}}]


def envoy_ext_authz(_ctx, work: Path, ports: Ports, _alg: str) -> list[str]:
    """docs/gateway/envoy.yaml as shipped, only its addresses replaced."""
    return envoy_command(work, doc_text("envoy.yaml", ports))


# The validator's cluster of docs/gateway/envoy.yaml, and the same cluster speaking HTTP/2 to it
VALIDATOR_CLUSTER = "    - name: jwt_validator\n      type: STATIC\n"
HTTP2_OPTIONS = ("      typed_extension_protocol_options:\n"
                 "        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
                 "          \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n"
                 "          explicit_http_config:\n"
                 "            http2_protocol_options: {}\n")


def envoy_ext_authz_h2(_ctx, work: Path, ports: Ports, _alg: str) -> list[str]:
    """docs/gateway/envoy.yaml with HTTP/2 (h2c prior knowledge) to the validator: one connection, streams."""
    text = doc_text("envoy.yaml", ports)
    if VALIDATOR_CLUSTER not in text:
        raise BenchFailure("docs/gateway/envoy.yaml changed its jwt_validator cluster")
    return envoy_command(work, text.replace(VALIDATOR_CLUSTER, VALIDATOR_CLUSTER + HTTP2_OPTIONS))


def envoy_ext_authz_grpc(_ctx, work: Path, ports: Ports, _alg: str) -> list[str]:
    """docs/gateway/envoy-grpc.yaml as shipped (gRPC ext_authz over h2c), only its addresses replaced."""
    return envoy_command(work, doc_text("envoy-grpc.yaml", ports))


# ---------------------------------------------------------------------------------------------------
# nginx


def doc_text(name: str, ports: Ports) -> str:
    """A docs/gateway file with its three addresses replaced, written `host:port` or (Envoy) `port_value: N`."""
    text = (DOCS / name).read_text()
    for doc, port in ((DOC_VALIDATOR, ports.validator), (DOC_UPSTREAM, ports.upstream), (DOC_LISTEN, ports.listen)):
        text = text.replace(doc, f"127.0.0.1:{port}").replace(f"port_value: {doc.split(':')[1]}", f"port_value: {port}")
    return text


def nginx(auth: bool) -> Render:
    """docs/gateway/nginx.conf (and the files it includes) with its addresses replaced; the floor is
    the same file without the auth_request of `location /`."""
    def render(_ctx, work, ports, _alg):
        for f in DOCS.glob("*.conf"):
            shutil.copy(f, work / f.name)
        conf = doc_text("nginx.conf", ports)
        if not auth:
            conf = conf.replace("auth_request /_jwt_auth;\n", "", 1).replace("include jwt_identity.conf;\n", "", 1)
        (work / "nginx.conf").write_text(conf)
        (work / "temp").mkdir(exist_ok=True)
        return [NGINX, "-p", str(work), "-c", str(work / "nginx.conf"), "-g", "daemon off;"]
    return render


GATEWAYS = [
    Gateway("validator", "jwt-validator `/auth`, no proxy", "", True, None),
    Gateway("nginx", "nginx, no auth (floor)", "nginx", False, nginx(auth=False), checks=False),
    Gateway("nginx-auth_request", "nginx `auth_request` → jwt-validator", "nginx", True, nginx(auth=True)),
    Gateway("envoy", "Envoy, no auth (floor)", "envoy", False, envoy_with(lambda _ctx, _alg: []), checks=False),
    Gateway("envoy-ext_authz", "Envoy `ext_authz` → jwt-validator", "envoy", True, envoy_ext_authz),
    Gateway("envoy-ext_authz-h2", "Envoy `ext_authz` over HTTP/2 → jwt-validator", "envoy", True, envoy_ext_authz_h2),
    Gateway("envoy-ext_authz-grpc", "Envoy gRPC `ext_authz` (h2c) → jwt-validator", "envoy", True,
            envoy_ext_authz_grpc),
    Gateway("envoy-jwt_authn", "Envoy `jwt_authn`", "envoy", False, envoy_with(jwt_authn)),
    Gateway("envoy-filter", "Envoy + jwt-validator proxy-wasm filter", "envoy", False, envoy_with(filter_config)),
]


# ---------------------------------------------------------------------------------------------------
# the phase


def start_gateway(ctx, g: Gateway, alg: str, work: Path) -> tuple[Server, list[Server], str]:
    """(the server the client talks to, every other process, the path) for this gateway and token."""
    ports = Ports(free_port(), free_port(), free_port())
    others: list[Server] = []
    try:
        others.append(spawn("upstream", [str(FLOOR_NATIVE_BIN), f"127.0.0.1:{ports.upstream}"], ctx.base_env,
                            work / "upstream.log", ports.upstream))
        validator = None
        if g.validator:
            jwt_env = {"JWT_SECRET": ctx.secret} if alg == "HS256" else jwks_env(ctx)
            validator = spawn("validator", [str(NATIVE_BIN), "--listen", f"127.0.0.1:{ports.validator}"],
                              ctx.env_with(**jwt_env), work / "validator.log", ports.validator)
            others.append(validator)
        if g.render is None:
            front, path = validator, "/auth"
            others.remove(validator)
        else:
            cmd = g.render(ctx, work, ports, alg)
            front, path = spawn(g.proxy, cmd, ctx.base_env, work / f"{g.proxy}.log", ports.listen), "/"
        return front, others, path
    except BaseException:
        for s in others:
            stop(s.proc)
        raise


def checks_tokens(g: Gateway) -> bool:
    """Whether this gateway looks at the token (a proxy's floor lets everything through)."""
    return g.checks


def check_gateway(ctx, g: Gateway, srv: Server, tokens: dict, path: str) -> None:
    """Valid token 200, invalid one 401 (a floor lets everything through: valid only)."""
    checks = [("valid", 200)] + ([("invalid", 401)] if checks_tokens(g) else [])
    for kind, want in checks:
        status, text = http_request(srv.port, b"", path=path, bearer=tokens[kind])
        ok = status == want
        ctx.checks["preflight"].append({"contender": f"gateway/{g.name}", "check": kind, "status": status,
                                        "expected": want, "ok": ok, "body": text[:160]})
        ctx.checks["responses_checked"] += 1
        if not ok:
            raise BenchFailure(f"gateway {g.name}: the {kind} token answered {status} {text[:200]!r}, expected {want}")


def gateway(ctx) -> dict:
    """The results' `gateway` part: per gateway and token, wrk runs (valid, and invalid where it checks)."""
    if not ENVOY.exists():
        raise BenchFailure(f"gateway mode needs Envoy at {ENVOY.relative_to(ROOT)}: scripts/setup proxies")
    if not Path(NGINX).exists():
        raise BenchFailure("gateway mode needs nginx (Debian's package): scripts/setup debian")
    seconds, rounds = (1, 1) if ctx.quick else (5, 2)
    runs: list[dict] = []
    for alg in ALGORITHMS:
        tokens = ctx.tokens if alg == "HS256" else ctx.jwks["tokens"][alg]
        for g in GATEWAYS:
            if alg != ALGORITHMS[0] and not checks_tokens(g):
                continue  # a floor does not look at the token: measured once
            work = ctx.work / "gateway" / f"{g.name}-{alg}"
            work.mkdir(parents=True, exist_ok=True)
            front, others, path = start_gateway(ctx, g, alg, work)
            try:
                wait_ready(ctx, front, token=tokens["valid"], gateway_path=path)
                check_gateway(ctx, g, front, tokens, path)
                kinds = ["valid", "invalid"] if checks_tokens(g) else ["valid"]
                wrk(ctx, front, "valid", CONNECTIONS, 1, token=tokens["valid"], expect="200:*", others=tuple(others),
                    path=path, bearer=True)
                for rnd in range(rounds):
                    for kind in kinds if rnd == 0 else ["valid"]:  # the invalid token: one round (budget)
                        res = wrk(ctx, front, kind, CONNECTIONS, seconds, token=tokens[kind],
                                  expect="200:*" if kind == "valid" else "401:*", others=tuple(others),
                                  path=path, bearer=True)
                        res.update({"gateway": g.name, "alg": alg if checks_tokens(g) else None, "round": rnd})
                        runs.append(res)
                        progress("gateway", f"{g.name:20s} {alg if checks_tokens(g) else '':6s} {kind:7s} "
                                            f"{res['rps']:>9,.0f} req/s  p50 {res['p50_ms']:.2f} ms  "
                                            f"{res['req_per_cpu_s'] or 0:>8,.0f} req per CPU-s (all processes)")
            finally:
                stop(front.proc)
                for s in others:
                    stop(s.proc)
    return {"gateway": runs, "gateway_config": {"seconds": seconds, "rounds": rounds, "connections": CONNECTIONS,
                                                "labels": {g.name: g.label for g in GATEWAYS}}}


def summarise(runs: list[dict]) -> dict:
    """Per gateway and token (valid-token runs): req/s, p50/p99, µs of CPU per request with and
    without the upstream, medians of the rounds."""
    out: dict = {}
    keys = list(dict.fromkeys((r["gateway"], r["alg"]) for r in runs))
    for name, alg in keys:
        xs = [r for r in runs if r["gateway"] == name and r["alg"] == alg and r["token"] == "valid"]
        if not xs:
            continue

        def us_per_req(r, skip_upstream=False):
            cpu = r["server_cpu_s"] - (r.get("cpu_s_by_process", {}).get("upstream", 0) if skip_upstream else 0)
            return cpu / r["requests"] * 1e6 if r["requests"] else None

        out.setdefault(name, {})[alg or "any"] = {
            "rps": median([r["rps"] for r in xs]), "p50_ms": median([r["p50_ms"] for r in xs]),
            "p99_ms": median([r["p99_ms"] for r in xs]),
            "cpu_us_per_req": median([us_per_req(r) for r in xs]),
            "cpu_us_per_req_without_upstream": median([us_per_req(r, True) for r in xs]),
        }
    return out


def report_lines(r: dict, fmt_num, fmt_ratio) -> list[str]:
    s = r["summary"].get("gateway")
    if not s:
        return []
    cfg = r.get("gateway_config", {})
    labels = cfg.get("labels", {})
    L = ["## Gateway mode", ""]
    L.append("The client sends `GET /` with `Authorization: Bearer` (the validator alone: `GET /auth`); behind each "
             "proxy a static upstream, the native floor (`bench/floors/hyper`, 200 `{\"valid\":true}`). CPU per "
             "request counts **every process involved** (proxy, validator, upstream), and again without the "
             "upstream. Envoy 1.40 `--concurrency 1`, nginx one worker, jwt-validator as shipped (token cache on: "
             "Envoy's jwt_authn and our proxy-wasm filter cache verified tokens too); the same token repeated. Configurations: "
             "`docs/gateway/nginx.conf` and `docs/gateway/envoy.yaml` with only their addresses replaced (the nginx "
             "floor without its `auth_request`), Envoy's floor, jwt_authn and our filter rendered by "
             "`bench/showdown/gateway.py` (the same keys inline). nginx keeps its upstream connections "
             "alive (`keepalive 16`), in its floor too. "
             f"wrk, {cfg.get('connections', CONNECTIONS)} connections, {cfg.get('seconds', '?')} s per run, "
             f"{cfg.get('rounds', '?')} round(s); medians.")
    L.append("")
    L.append("| gateway | token | req/s | p50 (ms) | p99 (ms) | CPU µs per request, all | without the upstream | ÷ its proxy's floor |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    floors = {"nginx-auth_request": "nginx", "envoy-ext_authz": "envoy", "envoy-ext_authz-h2": "envoy",
              "envoy-ext_authz-grpc": "envoy", "envoy-jwt_authn": "envoy", "envoy-filter": "envoy"}
    for name, algs in s.items():
        for alg, x in algs.items():
            f = cpu_per_req(s, floors.get(name, ""), "any")
            L.append(f"| {labels.get(name, name)} | {alg} | {fmt_num(x['rps'])} | {fmt_num(x['p50_ms'])} | "
                     f"{fmt_num(x['p99_ms'])} | {fmt_num(x['cpu_us_per_req'])} | "
                     f"{fmt_num(x['cpu_us_per_req_without_upstream'])} | {fmt_ratio(ratio(x['cpu_us_per_req'], f))} |")
    L.append("")
    if "envoy-filter" in s:
        L += ["Our proxy-wasm filter (`crates/filter`, V8) beside Envoy's own `jwt_authn`, both with a verified-token "
              "cache and the same keys inline: CPU per request, all processes.", "",
              "| token | filter ÷ jwt_authn | filter ÷ Envoy floor | jwt_authn ÷ Envoy floor |", "| --- | --- | --- | --- |"]
        floor = cpu_per_req(s, "envoy", "any")
        for alg in s["envoy-filter"]:
            ours, theirs = cpu_per_req(s, "envoy-filter", alg), cpu_per_req(s, "envoy-jwt_authn", alg)
            L.append(f"| {alg} | **{fmt_ratio(ratio(ours, theirs))}** | {fmt_ratio(ratio(ours, floor))} | "
                     f"{fmt_ratio(ratio(theirs, floor))} |")
        L.append("")
    if "envoy-ext_authz-grpc" in s and "envoy-jwt_authn" in s:
        L += ["jwt-validator behind Envoy's `ext_authz` (gRPC over h2c, HTTP/2, HTTP/1.1) beside Envoy's own `jwt_authn` "
              "(issue 25's target: gRPC at most 1.5×): CPU per request, all processes.", "",
              "| token | gRPC ÷ jwt_authn | HTTP/2 ÷ jwt_authn | HTTP/1.1 ÷ jwt_authn |", "| --- | --- | --- | --- |"]
        for alg in s["envoy-ext_authz-grpc"]:
            theirs = cpu_per_req(s, "envoy-jwt_authn", alg)
            cells = [fmt_ratio(ratio(cpu_per_req(s, g, alg), theirs))
                     for g in ("envoy-ext_authz-grpc", "envoy-ext_authz-h2", "envoy-ext_authz")]
            L.append(f"| {alg} | **{cells[0]}** | {cells[1]} | {cells[2]} |")
        L.append("")
    return L


def cpu_per_req(s: dict, name: str, alg: str) -> float | None:
    """A gateway's CPU µs per request (all processes) for a token, from the summary; None if not run."""
    return s.get(name, {}).get(alg, {}).get("cpu_us_per_req")
