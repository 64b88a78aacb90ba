#!/usr/bin/env python3
"""Identity-provider faults per shell: what a valid token gets while the key server misbehaves.

    python3 bench/idp_faults.py [--shells native,component,filter] [--modes down,500,...]
                                [--probes 12] [--no-seed] [--label after] [--json OUT]
                                [--native PATH] [--component PATH] [--filter PATH]

The shapes of issue 23's outside fault-injection run, on loopback only: a key server (this process)
that is, from the start of each run, down (accepts and closes), answering 500, garbage, JSON that is
no key set, a document over the fetch cap, an empty 200, or slow (answering after the fetch timeout);
then a rotation (the provider adds a key: tokens of the old and the new key alternate; the
unknown-kid cooldown is cut to 1 s for this mode and waited out, as a rotation comes long after the
last fetch) and a spray of tokens naming unknown kids (the default 30 s cooldown). With `--warm`, each failure mode begins
only after one valid request was answered 200 (the provider heard once, then the outage: instances
started after that have not heard it). Each (shell, mode) starts a fresh shell against a fresh key server and
sends `--probes` requests one after the other, each bounded by a client timeout, so a run is bounded
in time and count.

Shells: the native binary (`--listen`), the component under `wasmtime serve` with
`--max-instance-reuse-count` (`--reuse`, 4: instances come and go during the run, as in the issue's
run), the proxy-wasm filter in Envoy (one worker) in front of an upstream that answers 200. Each is
configured with the key server's JWKS URL (plain http on loopback allowed) and, unless `--no-seed`,
a seed key set holding the signing key (`JWT_JWKS_SEED_FILE`; the filter's inline `jwks_seed`).

Per shell and mode it prints: the answers to valid tokens by status (the spray: to its unknown-kid
tokens), IdP requests per validation (every request the key server saw from the shell's start to
its last answer, over the probes), and the p50 of the first request of a new instance (the native
binary and the filter: the first request after start; the component: every `--reuse`-th request,
each the first of a new instance when requests come one at a time). Figures, not assertions:
`python3 -m unittest bench.test_idp_faults` checks the script on a short run.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import http.server
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ROOT = Path(__file__).resolve().parent.parent
ISSUER = "https://idp.faults.test"
AUDIENCE = "api"
JWKS_PATH = "/jwks"
#: Failure modes, in the order of issue 23, then the two shapes with a working provider.
FAILURES = ["down", "500", "garbage", "wrong_json", "oversized", "empty", "slow"]
MODES = FAILURES + ["rotation", "spray"]
#: The shells' default fetch timeout is 5 s: a slow provider answers after it.
SLOW_SECS = 6.0
#: Above the shells' default fetch cap (262,144 bytes).
OVERSIZED_BYTES = 300_000
#: A request's bound: the fetch timeout, with room for a loaded machine.
CLIENT_TIMEOUT = 15.0
#: The unknown-kid cooldown of the rotation mode, seconds.
ROTATION_COOLDOWN = 1
START_TIMEOUT = 90.0
#: How long `--warm` waits for a shell's first 200.
WARM_TIMEOUT = 30.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Key:
    """An ES256 key: its public JWK and the tokens it signs."""

    def __init__(self, kid: str):
        self.kid = kid
        self.private = ec.generate_private_key(ec.SECP256R1())
        numbers = self.private.public_key().public_numbers()
        self.jwk = {
            "kty": "EC",
            "crv": "P-256",
            "alg": "ES256",
            "use": "sig",
            "kid": kid,
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }

    def token(self, kid: str | None = None) -> str:
        header = {"alg": "ES256", "typ": "JWT", "kid": kid or self.kid}
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "faults", "exp": int(time.time()) + 900,
                  "iat": int(time.time())}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        der = self.private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def jwks(*keys: Key) -> str:
    return json.dumps({"keys": [k.jwk for k in keys]})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Quiet(http.server.ThreadingHTTPServer):
    """A loopback server that does not print a traceback when a client cuts a connection (the shells
    do, past their fetch cap or timeout: that is the fault under test)."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


class KeyServer:
    """The identity provider's JWKS endpoint on loopback, in one of the modes; counts requests."""

    def __init__(self, document: str, mode: str = "normal"):
        self.document = document
        self.mode = mode
        self.requests = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_):
                pass

            def handle(self):
                with outer.lock:
                    outer.requests += 1
                    mode = outer.mode
                if mode == "down":
                    # Accepted and closed unread: a crashed provider behind a live address.
                    self.connection.close()
                    return
                super().handle()

            def do_GET(self):
                mode, document = outer.mode, outer.document
                status, body = 200, document.encode()
                if mode == "500":
                    status, body = 500, b'{"error":"internal"}'
                elif mode == "garbage":
                    body = b"\x00\xffnot json at all<html>"
                elif mode == "wrong_json":
                    body = b'{"issuer":"' + ISSUER.encode() + b'","keys":"none"}'
                elif mode == "oversized":
                    body = b'{"keys":[],"pad":"' + b"x" * OVERSIZED_BYTES + b'"}'
                elif mode == "empty":
                    body = b""
                elif mode == "slow":
                    time.sleep(SLOW_SECS)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

        self.server = Quiet(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{JWKS_PATH}"

    def count(self) -> int:
        with self.lock:
            return self.requests

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Upstream:
    """The application behind Envoy: 200 to everything."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = Quiet(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def get(port: int, path: str, token: str) -> tuple[int, float]:
    """One request; its status (0: no answer within the bound) and its duration in ms."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        response.read()
        status = response.status
    except OSError:
        status = 0
    finally:
        conn.close()
    return status, (time.perf_counter() - start) * 1000


def wait_listening(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"not listening on {port}: {log.read_text()[-2000:]}")


@dataclass
class Shell:
    """A started shell: where to send requests, and how to stop it."""

    port: int
    path: str
    proc: subprocess.Popen
    extra: list = field(default_factory=list)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for x in self.extra:
            x.close()


def default_paths() -> dict[str, Path]:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    native = target / "release/jwt-validator"
    if not native.is_file():
        native = target / "debug/jwt-validator"
    return {
        "native": native,
        "component": target / "wasm32-wasip2/wasm/jwtv_component.wasm",
        "filter": target / "wasm32-wasip1/release/jwtv_filter.wasm",
        "wasmtime": Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo")) / "bin/wasmtime",
        "envoy": ROOT / ".cache/bin/envoy",
    }


def env_config(ks: KeyServer, seed: str | None, seed_path: str, cooldown: int) -> dict[str, str]:
    env = {
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "JWT_JWKS_URI": ks.url,
        "JWT_ALLOW_HTTP_LOOPBACK": "true",
        "JWT_JWKS_REFETCH_COOLDOWN": str(cooldown),
    }
    if seed is not None:
        env["JWT_JWKS_SEED_FILE"] = seed_path
    return env


def start_native(args, work: Path, ks: KeyServer, seed: str | None, cooldown: int) -> Shell:
    if seed is not None:
        (work / "seed.json").write_text(seed)
    port = free_port()
    log = work / "native.log"
    env = {"PATH": os.environ.get("PATH", "")} | env_config(ks, seed, str(work / "seed.json"), cooldown)
    proc = subprocess.Popen([str(args.native), "--listen", f"127.0.0.1:{port}"], env=env,
                            stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    wait_listening(port, proc, log)
    return Shell(port, "/auth", proc)


def start_component(args, work: Path, ks: KeyServer, seed: str | None, cooldown: int) -> Shell:
    files = work / "files"
    files.mkdir(exist_ok=True)
    if seed is not None:
        (files / "seed.json").write_text(seed)
    port = free_port()
    log = work / "wasmtime.log"
    cmd = [str(args.wasmtime), "serve", "-S", "cli", "--max-instance-reuse-count", str(args.reuse),
           "--addr", f"127.0.0.1:{port}", "--dir", f"{files}::/files"]
    for k, v in env_config(ks, seed, "/files/seed.json", cooldown).items():
        cmd += ["--env", f"{k}={v}"]
    proc = subprocess.Popen(cmd + [str(args.component)], stdin=subprocess.DEVNULL,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    wait_listening(port, proc, log)
    return Shell(port, "/auth", proc)


def envoy_yaml(port: int, admin: int, upstream: int, wasm: Path, toml: str, ks: KeyServer) -> str:
    config = json.dumps({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": toml})

    def cluster(name: str, p: int) -> dict:
        return {"name": name, "connect_timeout": "1s", "load_assignment": {
            "cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": "127.0.0.1", "port_value": p}}}}]}]}}

    doc = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [{
                "name": "ingress",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                 "http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "ingress",
                        "route_config": {"virtual_hosts": [{"name": "app", "domains": ["*"], "routes": [
                            {"match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]},
                        "http_filters": [
                            {"name": "jwt-validator", "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                                "config": {
                                    "name": "jwt-validator",
                                    "vm_config": {"vm_id": "jwt-validator",
                                                  "runtime": "envoy.wasm.runtime.v8",
                                                  "code": {"local": {"filename": str(wasm)}}},
                                    "failure_policy": "FAIL_CLOSED",
                                    "configuration": json.loads(config)}}},
                            {"name": "envoy.filters.http.router", "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
                        ]}}]}]}],
            "clusters": [cluster("app", upstream), cluster(f"127.0.0.1:{ks.port}", ks.port)],
        },
    }
    return json.dumps(doc)


def start_filter(args, work: Path, ks: KeyServer, seed: str | None, cooldown: int) -> Shell:
    toml = (f'[fetch]\nallow_http_loopback = true\nrefetch_cooldown_secs = {cooldown}\n\n'
            f'[[issuers]]\nissuer = "{ISSUER}"\n'
            f'audiences = ["{AUDIENCE}"]\njwks_uri = "{ks.url}"\n')
    if seed is not None:
        toml += f"jwks_seed = '{seed}'\n"
    upstream = Upstream()
    port, admin = free_port(), free_port()
    conf = work / "envoy.json"
    conf.write_text(envoy_yaml(port, admin, upstream.port, args.filter, toml, ks))
    log = work / "envoy.log"
    proc = subprocess.Popen([str(args.envoy), "-c", str(conf), "--concurrency", "1",
                             "--disable-hot-restart", "-l", "warning"],
                            stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc, log)
    except RuntimeError:
        upstream.close()
        raise
    return Shell(port, "/", proc, [upstream])


STARTERS = {"native": start_native, "component": start_component, "filter": start_filter}


def run_mode(args, shell: str, mode: str) -> dict:
    """One shell, one mode, fresh processes: the statuses, IdP requests, first-request times."""
    old, new = Key("k1"), Key("k2")
    seed = None if args.no_seed else jwks(old)
    ks = KeyServer(jwks(old), "normal" if mode in ("rotation", "spray") or args.warm else mode)
    work = Path(tempfile.mkdtemp(prefix=f"idp-faults-{shell}-"))
    statuses: Counter = Counter()
    times: list[float] = []
    warmups = 0
    try:
        # A rotation comes long after the last fetch: the unknown-kid cooldown (30 s by default,
        # since the start-up fetch) is cut to 1 s there, and waited out. The spray keeps the default.
        cooldown = ROTATION_COOLDOWN if mode == "rotation" else 30
        started = STARTERS[shell](args, work, ks, seed, cooldown)
        try:
            for i in range(args.probes):
                which = ""
                if mode == "rotation":
                    if i == 1:
                        ks.document = jwks(old, new)
                        time.sleep(ROTATION_COOLDOWN + 0.2)
                    which = "new " if i % 2 else "old "
                    token = (new if i % 2 else old).token()
                elif mode == "spray":
                    token = old.token(kid=f"spray-{secrets.token_hex(6)}")
                else:
                    token = old.token()
                if i == 0 and args.warm and mode in FAILURES:
                    # The shell hears the provider (the filter fetches on its first tick, so its
                    # first requests may still get 503); the outage starts then.
                    deadline = time.monotonic() + WARM_TIMEOUT
                    while get(started.port, started.path, token)[0] != 200:
                        warmups += 1
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"{shell}: no 200 within {WARM_TIMEOUT} s of warm-up")
                        time.sleep(0.1)
                    warmups += 1
                    ks.mode = mode
                status, ms = get(started.port, started.path, token)
                statuses[f"{which}{status}"] += 1
                times.append(ms)
            idp = ks.count()
        finally:
            started.stop()
    finally:
        ks.close()
        shutil.rmtree(work, ignore_errors=True)
    if shell == "component":
        # Requests come one at a time, so instance k serves requests k·reuse+1 … (k+1)·reuse; the
        # warm-up requests shift the probes.
        firsts = times[(args.reuse - warmups % args.reuse) % args.reuse::args.reuse]
    else:
        firsts = times[:1]
    return {
        "shell": shell,
        "mode": mode,
        "seed": seed is not None,
        "warm": bool(args.warm and mode in FAILURES),
        "probes": args.probes,
        "statuses": dict(sorted(statuses.items())),
        "idp_requests": idp,
        "idp_per_validation": idp / args.probes,
        "first_ms_p50": statistics.median(firsts),
        "first_samples": len(firsts),
    }


def statuses_text(statuses: dict) -> str:
    return " ".join(f"{k.replace(' 0', ' none') if k != '0' else 'none'}×{v}"
                    for k, v in statuses.items())


def table(rows: list[dict], label: str) -> str:
    lines = [
        f"| shell | mode | seed | answers ({label}) | IdP requests / validation | first request p50 (ms) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['shell']} | {r['mode']} | {'yes' if r['seed'] else 'no'} | "
                     f"{statuses_text(r['statuses'])} | {r['idp_per_validation']:.2f} | "
                     f"{r['first_ms_p50']:.1f} |")
    return "\n".join(lines)


def parse_args(argv=None):
    paths = default_paths()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shells", default="native,component,filter")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--probes", type=int, default=12)
    p.add_argument("--reuse", type=int, default=4, help="the component's --max-instance-reuse-count")
    p.add_argument("--no-seed", action="store_true", help="configure no seed key set")
    p.add_argument("--warm", action="store_true",
                   help="the failure modes begin after one valid request (not counted) was answered 200")
    p.add_argument("--label", default="valid tokens by status")
    p.add_argument("--json", type=Path, help="also write the rows here")
    for name, path in paths.items():
        p.add_argument(f"--{name}", type=Path, default=path)
    args = p.parse_args(argv)
    args.shells = [s for s in args.shells.split(",") if s]
    args.modes = [m for m in args.modes.split(",") if m]
    for s in args.shells:
        if s not in STARTERS:
            p.error(f"unknown shell {s!r}: one of {', '.join(STARTERS)}")
    for m in args.modes:
        if m not in MODES:
            p.error(f"unknown mode {m!r}: one of {', '.join(MODES)}")
    if args.probes < 1 or args.reuse < 1:
        p.error("--probes and --reuse must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = []
    for shell in args.shells:
        for mode in args.modes:
            row = run_mode(args, shell, mode)
            print(f"{shell:9} {mode:10} {statuses_text(row['statuses']):20} "
                  f"idp/validation {row['idp_per_validation']:.2f} first p50 {row['first_ms_p50']:.1f} ms",
                  file=sys.stderr, flush=True)
            rows.append(row)
    print(table(rows, args.label))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
