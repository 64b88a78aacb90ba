#!/usr/bin/env python3
"""CPU per request of Envoy's ext_authz to jwt-validator (gRPC over h2c, HTTP/2, HTTP/1.1) beside Envoy's own
jwt_authn, and of TLS on the native listener (issue 25). A quick, scratch-scale measurement between full showdown
runs (bench/showdown/gateway.py has the same gateways): HS256, the same token repeated, wrk -t1 -c16, Envoy
--concurrency 1, the docs/gateway files with only their addresses replaced; CPU read from /proc (utime+stime) of
every process before and after the run. The upstream is a second jwt-validator answering GET /healthz.

    bench/ext_authz_cpu.py [SECONDS] [jwt_authn|grpc|http1|http2 ...]   gateways (default: all, 5 s)
    bench/ext_authz_cpu.py tls [SECONDS]                                TLS vs plain, keep-alive and per connection

Needs target/release/jwt-validator, .cache/bin/envoy (scripts/setup proxies), wrk, curl and openssl.
"""
import base64, hashlib, hmac, json, os, re, socket, subprocess, sys, tempfile, time
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = f"{ROOT}/target/release/jwt-validator"
ENVOY = f"{ROOT}/.cache/bin/envoy"
SECRET = "gateway-bench-secret-32-bytes-long!"
TICK = os.sysconf("SC_CLK_TCK")
WORK = tempfile.mkdtemp(prefix="ext-authz-cpu-")
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def token():
    h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()); p = b64(json.dumps({"sub": "alice", "iss": "bench", "exp": int(time.time()) + 3600, "scope": "read"}).encode())
    return f"{h}.{p}.{b64(hmac.new(SECRET.encode(), f'{h}.{p}'.encode(), hashlib.sha256).digest())}"
def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK
def wait(p):
    for _ in range(200):
        try: socket.create_connection(("127.0.0.1", p), 0.2).close(); return
        except OSError: time.sleep(0.05)
    raise SystemExit(f"port {p} never opened")
def render(name, v, u, l, h2=False):
    t = open(f"{ROOT}/docs/gateway/{name}").read()
    for doc, p in (("3000", v), ("9000", u), ("8080", l)):
        t = t.replace(f"127.0.0.1:{doc}", f"127.0.0.1:{p}").replace(f"port_value: {doc}", f"port_value: {p}")
    if h2:
        t = t.replace("    - name: jwt_validator\n      type: STATIC\n", "    - name: jwt_validator\n      type: STATIC\n      typed_extension_protocol_options:\n        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n          \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n          explicit_http_config:\n            http2_protocol_options: {}\n")
    return t
def jwt_authn(u, l):
    k = b64(SECRET.encode())
    jwks = json.dumps({"keys": [{"kty": "oct", "alg": "HS256", "k": k}]})
    def cl(n, p): return {"name": n, "type": "STATIC", "connect_timeout": "1s", "load_assignment": {"cluster_name": n, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}}]}]}}
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", "stat_prefix": "ingress",
           "route_config": {"virtual_hosts": [{"name": "app", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]},
           "http_filters": [{"name": "envoy.filters.http.jwt_authn", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {"bench": {"local_jwks": {"inline_string": jwks}, "forward": True, "jwt_cache_config": {"jwt_cache_size": 100}}},
                "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}]}},
               {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    return json.dumps({"static_resources": {"listeners": [{"name": "ingress", "address": {"socket_address": {"address": "127.0.0.1", "port_value": l}}, "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}]}], "clusters": [cl("app", u)]}})
def run(kind, seconds):
    v, u, l = port(), port(), port()
    env = dict(os.environ, JWT_SECRET=SECRET, JWT_LOG_DECISIONS="none")
    procs = {}
    procs["upstream"] = subprocess.Popen([BIN, "--listen", f"127.0.0.1:{u}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if kind != "jwt_authn":
        procs["validator"] = subprocess.Popen([BIN, "--listen", f"127.0.0.1:{v}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conf = {"jwt_authn": lambda: jwt_authn(u, l), "grpc": lambda: render("envoy-grpc.yaml", v, u, l),
            "http1": lambda: render("envoy.yaml", v, u, l), "http2": lambda: render("envoy.yaml", v, u, l, True)}[kind]()
    open(f"{WORK}/{kind}.yaml", "w").write(conf)
    procs["envoy"] = subprocess.Popen([ENVOY, "-c", f"{WORK}/{kind}.yaml", "--concurrency", "1", "--disable-hot-restart", "-l", "error"], stdout=subprocess.DEVNULL, stderr=open(f"{WORK}/{kind}.log", "w"))
    try:
        for p in (u, l) + ((v,) if kind != "jwt_authn" else ()): wait(p)
        time.sleep(0.5)
        url = f"http://127.0.0.1:{l}/healthz"
        hdr = f"Authorization: Bearer {token()}"
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", hdr, url], capture_output=True, text=True).stdout
        bad = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer x.y.z", url], capture_output=True, text=True).stdout
        assert out == "200" and bad == "401", (kind, out, bad)
        subprocess.run(["wrk", "-t1", "-c16", "-d1s", "-H", hdr, url], capture_output=True)
        before = {n: cpu(p.pid) for n, p in procs.items()}
        w = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds}s", "-H", hdr, url], capture_output=True, text=True).stdout
        after = {n: cpu(p.pid) for n, p in procs.items()}
        reqs = int(re.search(r"(\d+) requests in", w).group(1))
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", w)
        assert not non2xx, (kind, w)
        us = {n: (after[n] - before[n]) / reqs * 1e6 for n in procs}
        return reqs / seconds, us
    finally:
        for p in procs.values(): p.kill(); p.wait()


def tls_run(d, tls, close, seconds):
    p = port()
    env = dict(os.environ, JWT_SECRET=SECRET, JWT_LOG_DECISIONS="none")
    if tls:
        env.update(JWT_TLS_CERT_FILE=f"{d}/cert.pem", JWT_TLS_KEY_FILE=f"{d}/key.pem")
    proc = subprocess.Popen([BIN, "--listen", f"127.0.0.1:{p}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait(p); time.sleep(0.3)
        url = f"{'https' if tls else 'http'}://127.0.0.1:{p}/auth"
        hdrs = ["-H", f"Authorization: Bearer {token()}"] + (["-H", "Connection: close"] if close else [])
        conns = "-c4" if close else "-c16"
        subprocess.run(["wrk", "-t1", conns, "-d1s", *hdrs, url], capture_output=True)
        before = cpu(proc.pid)
        w = subprocess.run(["wrk", "-t1", conns, f"-d{seconds}s", *hdrs, url], capture_output=True, text=True).stdout
        after = cpu(proc.pid)
        reqs = int(re.search(r"(\d+) requests in", w).group(1))
        assert "Non-2xx" not in w, w
        return reqs / seconds, (after - before) / reqs * 1e6
    finally:
        proc.kill(); proc.wait()


def tls_main(seconds):
    d = tempfile.mkdtemp(prefix="ext-authz-cpu-pki-")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    for tls, close in [(False, False), (True, False), (False, True), (True, True)]:
        rps, us = tls_run(d, tls, close, seconds)
        print(f"{'TLS  ' if tls else 'plain'} {'new connection per request' if close else 'keep-alive':27s} "
              f"{rps:8.0f} req/s  validator CPU {us:6.1f} us/req", flush=True)


def main(argv):
    if argv[:1] == ["tls"]:
        return tls_main(int(argv[1]) if len(argv) > 1 else 5)
    seconds = int(argv[0]) if argv else 5
    for kind in argv[1:] or ["jwt_authn", "grpc", "http1", "http2"]:
        rps, us = run(kind, seconds)
        without = sum(x for n, x in us.items() if n != "upstream")
        print(f"{kind:10s} {rps:8.0f} req/s  CPU us/req: all {sum(us.values()):6.1f}  without upstream {without:6.1f}  "
              + " ".join(f"{n} {x:.1f}" for n, x in us.items()), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
