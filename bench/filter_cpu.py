#!/usr/bin/env python3
"""Envoy's CPU per request with the jwt-validator proxy-wasm filter, beside Envoy's own jwt_authn and
the no-auth floor, in one interleaved run (issue 14 item 5's goal: the filter at or below jwt_authn).

    scripts/setup proxies && python3 bench/filter_cpu.py --wasm "$(scripts/filter)" [--rounds 3] [--seconds 4]

One Envoy worker (`--concurrency 1`), a route answered by `direct_response` (no upstream, so only the
proxy and its filter count), wrk with one thread and 16 connections sending one valid token over and
over, after a 1 s warm-up (V8 tiers the filter up to optimised code on background threads, which
is also why nothing is pinned to a CPU). CPU per request = the Envoy process's user+system time (from /proc/PID/stat) over the requests
wrk completed. Variants, each with the same issuer / audience / expiry checks and identity headers:
  none           no auth filter: the proxy's floor
  jwt_authn/HS   Envoy jwt_authn, HS256, with its verified-token cache (jwt_cache_config)
  filter/HS      the filter, HS256 (token_cache_size = 10000, as in docs/filter/envoy.yaml)
  jwt_authn/RS   as above, RS256 (a 2048-bit key of crates/verifier/testdata)
  filter/RS      as above, RS256: after the first request every check is a cache hit
  jwt_authn/RSx, filter/RSx   RS256 with both caches off: what every token being distinct costs (a
                 signature check per request; the cache lookup a distinct token would also pay is
                 left out, a few µs at most)
Rounds interleave the variants; medians are printed with the ratios to jwt_authn and to the floor.
Any non-200 answer fails the run. Loopback only; Python 3 standard library, openssl, wrk, Linux.
Not run by scripts/test: the figures depend on the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENVOY = ROOT / ".cache" / "bin" / "envoy"
RSA_KEY = ROOT / "crates" / "verifier" / "testdata" / "rsa2048.pk8.pem"
SECRET = b"0123456789abcdef0123456789abcdef"
ISSUER = "https://login.example.com"
AUDIENCE = "api"
START_TIMEOUT = 30.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(alg: str) -> str:
    header = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": "k1"}).encode())
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "email": "u@example.com",
              "scope": "read", "iat": now, "exp": now + 3600}
    signing_input = f"{header}.{b64(json.dumps(claims).encode())}".encode()
    if alg == "HS256":
        signature = hmac.new(SECRET, signing_input, hashlib.sha256).digest()
    else:
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(RSA_KEY)],
                                   input=signing_input, capture_output=True, check=True).stdout
    return f"{signing_input.decode()}.{b64(signature)}"


def rsa_jwks() -> str:
    text = subprocess.run(["openssl", "rsa", "-in", str(RSA_KEY), "-noout", "-modulus"],
                          capture_output=True, text=True, check=True).stdout
    modulus = bytes.fromhex(text.strip().split("=", 1)[1])
    key = {"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": b64(modulus), "e": "AQAB"}
    return json.dumps({"keys": [key]})


def hmac_jwks() -> str:
    return json.dumps({"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": b64(SECRET)}]})


def jwt_authn(alg: str, cache: bool = True) -> dict:
    jwks = hmac_jwks() if alg == "HS256" else rsa_jwks()
    provider = {
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "local_jwks": {"inline_string": jwks},
        "claim_to_headers": [{"header_name": "x-auth-subject", "claim_name": "sub"},
                             {"header_name": "x-auth-email", "claim_name": "email"}],
    }
    if cache:
        provider["jwt_cache_config"] = {"jwt_cache_size": 10000}
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"p": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "p"}}],
        },
    }


def wasm_filter(alg: str, wasm: Path, cache: bool = True) -> dict:
    if alg == "HS256":
        key = f'secret = "{SECRET.decode()}"'
    else:
        key = f"jwks = '{rsa_jwks()}'"
    toml = (f'[server]\ntoken_cache_size = {10000 if cache else 0}\n\n[[issuers]]\nissuer = "{ISSUER}"\n'
            f'audiences = ["{AUDIENCE}"]\nalgorithms = ["{alg}"]\n{key}\n\n'
            '[gateway]\nclaim_headers = { "X-Auth-Email" = "email" }\n')
    return {
        "name": "jwt-validator",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "jwt-validator",
                "vm_config": {"vm_id": "jwt-validator", "runtime": "envoy.wasm.runtime.v8",
                              "code": {"local": {"filename": str(wasm)}}},
                "failure_policy": "FAIL_CLOSED",
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                  "value": toml},
            },
        },
    }


def envoy_config(port: int, admin: int, auth: dict | None) -> dict:
    filters = ([auth] if auth else []) + [{
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }]
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {"listeners": [{
            "name": "ingress",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network."
                             "http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "ingress",
                    "route_config": {"virtual_hosts": [{
                        "name": "app", "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"},
                                    "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}],
                    }]},
                    "http_filters": filters,
                },
            }]}],
        }]},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) if match else 0


def wait_ready(port: int, token: str, deadline: float) -> None:
    request = f"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(request.encode())
                status = s.recv(64).split(b" ", 2)
                if len(status) > 1 and status[1] == b"200":
                    return
                raise SystemExit(f"filter_cpu: a valid token got {status!r}")
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"filter_cpu: Envoy did not answer on 127.0.0.1:{port} within {START_TIMEOUT} s")


def run(name: str, auth: dict | None, token: str, seconds: int, workdir: Path) -> dict:
    port, admin = free_port(), free_port()
    config = workdir / f"{name.replace('/', '-')}.json"
    config.write_text(json.dumps(envoy_config(port, admin, auth)))
    log = open(workdir / f"{name.replace('/', '-')}.log", "w")
    envoy = subprocess.Popen([str(ENVOY), "-c", str(config), "--concurrency", "1",
                              "--base-id", str(port), "-l", "warning"], stdout=log, stderr=log)
    try:
        wait_ready(port, token, time.monotonic() + START_TIMEOUT)
        wrk = ["wrk", "-t1", "-c16", "-H", f"Authorization: Bearer {token}", f"http://127.0.0.1:{port}/"]
        subprocess.run([*wrk, "-d1s"], capture_output=True, timeout=30, check=True)
        before = cpu_seconds(envoy.pid)
        out = subprocess.run([*wrk, f"-d{seconds}s"], capture_output=True, text=True,
                             timeout=seconds + 30, check=True).stdout
        cpu = cpu_seconds(envoy.pid) - before
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        if "Non-2xx" in out:
            raise SystemExit(f"filter_cpu: {name}: non-200 answers:\n{out}")
        return {"us": cpu / requests * 1e6, "rps": requests / seconds, "rss": rss_kib(envoy.pid)}
    finally:
        envoy.terminate()
        try:
            envoy.wait(timeout=10)
        except subprocess.TimeoutExpired:
            envoy.kill()
            envoy.wait(timeout=10)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wasm", type=Path, action="append", required=True,
                        help="the filter, as scripts/filter prints it; repeat to compare builds in one run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--only", default="", help="comma-separated variant names to run")
    args = parser.parse_args()
    if not ENVOY.exists():
        raise SystemExit(f"filter_cpu: {ENVOY} is missing: run scripts/setup proxies")
    tokens = {"HS256": mint("HS256"), "RS256": mint("RS256")}
    variants = {"none": (None, "HS256")}
    for alg, short, cache in (("HS256", "HS", True), ("RS256", "RS", True), ("RS256", "RSx", False)):
        variants[f"jwt_authn/{short}"] = (jwt_authn(alg, cache), alg)
        for wasm in args.wasm:
            name = "filter" if len(args.wasm) == 1 else f"filter:{wasm.stem}"
            variants[f"{name}/{short}"] = (wasm_filter(alg, wasm.resolve(), cache), alg)
    if args.only:
        wanted = args.only.split(",")
        variants = {k: v for k, v in variants.items() if re.sub(r":[^/]*", "", k) in wanted or k in wanted}
    samples: dict[str, list[dict]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="filter-cpu-") as tmp:
        for round_ in range(args.rounds):
            for name, (auth, alg) in variants.items():
                result = run(name, auth, tokens[alg], args.seconds, Path(tmp))
                samples[name].append(result)
                print(f"round {round_ + 1} {name:20} {result['us']:6.1f} µs/req "
                      f"{result['rps']:8.0f} req/s  RSS {result['rss'] / 1024:.0f} MiB", file=sys.stderr)
    med = {name: {k: statistics.median(s[k] for s in runs) for k in ("us", "rps", "rss")}
           for name, runs in samples.items()}
    for wasm in args.wasm:
        print(f"wasm: {wasm} ({wasm.stat().st_size / 1024:.0f} KiB)")
    print("| variant | req/s | CPU µs/request | vs jwt_authn | over the floor | Envoy RSS MiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, m in med.items():
        alg = name.split("/")[-1]
        ref = med.get(f"jwt_authn/{alg}")
        floor = med.get("none")
        ratio = f"{m['us'] / ref['us']:.2f}" if ref and name != "none" else ""
        over = f"{m['us'] - floor['us']:+.1f}" if floor and name != "none" else ""
        print(f"| {name} | {m['rps']:.0f} | {m['us']:.1f} | {ratio} | {over} | {m['rss'] / 1024:.0f} |")


if __name__ == "__main__":
    main()
