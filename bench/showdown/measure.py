"""Per-server figures besides the load: artifact sizes, cold starts with idle RSS, in-process verify
cost (criterion, and the Node baseline's own jwt.verify), and the container images (full runs)."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import time
from pathlib import Path

import containers as container_images  # image sizes and container cold starts (bench/containers.py)

from .common import CARGO_JOBS, ROOT, BenchFailure, gzip_size, fmt_bytes, progress, proc_status_kib, run, tree_bytes
from .contenders import CONTENDERS, NATIVE_BIN, NODE_APP, NODE_TUNED_APP, WASM_FILE, display_command
from .servers import start, stop, wait_ready


def sizes(ctx) -> dict:
    """The results' `sizes` part."""
    progress("size", "measuring artifacts")
    s: dict = {}

    def entry(path: Path, note: str = "") -> dict:
        data = path.read_bytes()
        return {"path": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
                "bytes": len(data), "gzip_bytes": gzip_size(data), **({"note": note} if note else {})}

    # native: strip a copy to be sure (the release profile already strips)
    stripped = ctx.work / "jwt-validator.stripped"
    if shutil.which("strip"):
        run(["strip", "-o", str(stripped), str(NATIVE_BIN)], what="strip")
        s["native_stripped"] = entry(stripped, "target/release/jwt-validator, stripped")
    else:
        s["native_stripped"] = entry(NATIVE_BIN, "strip not found: the release profile's own strip=true")
    s["wasm_raw"] = entry(WASM_FILE)
    if ctx.opt_file.exists():
        s["wasm_jco_opt"] = entry(ctx.opt_file, "jco opt -- -Oz (not the served artifact)")
    s["cwasm"] = entry(ctx.cwasm_file, "wasmtime compile output (x86-64 machine code, host-specific)")
    # node: what is deployed is the app plus node_modules
    for key, app in (("node_app_and_modules", NODE_APP), ("node_tuned_app_and_modules", NODE_TUNED_APP)):
        app_bytes, app_files = tree_bytes(app)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=9) as tf:
            tf.add(app, arcname="app")
        s[key] = {"path": f"{app.relative_to(ROOT)} (+ node_modules)", "bytes": app_bytes, "files": app_files,
                  "gzip_bytes": len(buf.getvalue()), "note": "gzip_bytes: .tar.gz of the directory"}
    # context: the runtimes each artifact needs (not counted in the ratios)
    for key, tool in (("runtime_node", "node"), ("runtime_wasmtime", "wasmtime")):
        p = shutil.which(tool, path=ctx.base_env["PATH"])
        if p:
            s[key] = {"path": os.path.realpath(p), "bytes": os.path.getsize(os.path.realpath(p))}
    progress("size", ", ".join(f"{k} {fmt_bytes(v['bytes'])}" for k, v in s.items() if not k.startswith("runtime")))
    return s


def cold_starts(ctx) -> dict:
    """The results' `cold_start_ms`, `idle_rss_kib` (first samples) and `commands` parts."""
    samples = {c: [] for c in CONTENDERS}
    idle = {c: [] for c in CONTENDERS}
    n = ctx.cold_runs
    for r in range(n):
        order = CONTENDERS[r % len(CONTENDERS):] + CONTENDERS[:r % len(CONTENDERS)]
        with_idle = r < ctx.idle_rounds
        for c in order:
            log = ctx.logs / f"cold-{c}-{r}.log"
            srv = start(ctx, c, log)
            try:
                t1 = wait_ready(ctx, srv)
                samples[c].append(round((t1 - srv.t_spawn) * 1000, 3))
                ctx.checks["responses_checked"] += 1
                if with_idle:
                    time.sleep(1.0)
                    idle[c].append(proc_status_kib(srv.pid, "VmRSS"))
            finally:
                stop(srv.proc)
            log.unlink(missing_ok=True)
        progress("cold start", f"round {r + 1}/{n}: " + ", ".join(f"{c} {samples[c][-1]:.1f} ms" for c in CONTENDERS))
    return {"cold_start_ms": samples, "idle_rss_kib": idle,
            "commands": {c: display_command(ctx, c) for c in CONTENDERS}}


def verify_cost(ctx) -> dict:
    """The results' `verify_ns` and `verify_node_ns` parts."""
    home = ctx.work / "criterion"
    shutil.rmtree(home, ignore_errors=True)
    out: dict = {}
    if ctx.quick:
        extra = ["--warm-up-time", "0.5", "--measurement-time", "1", "HS256"]
        ctx.skipped["verify.other_algorithms"] = "--quick measures HS256 only"
    else:
        extra = ["--warm-up-time", "1", "--measurement-time", "2"]
    for backend, feats in (("ring", []), ("rustcrypto", ["--features", "rustcrypto"])):
        progress("verify", f"criterion, {backend} backend (cargo bench -p jwtv-verifier {' '.join(feats)})")
        run(["cargo", "bench", "-p", "jwtv-verifier", "-j", CARGO_JOBS, "--bench", "verify", *feats, "--", *extra],
            env=ctx.env_with(CRITERION_HOME=str(home)), log=ctx.logs / f"criterion-{backend}.log",
            what=f"cargo bench ({backend})", timeout=3600)
    for est in sorted(home.glob("**/new/estimates.json")):
        meta = json.loads((est.parent / "benchmark.json").read_text())
        group = meta["group_id"]  # verify/<backend>
        backend = group.split("/")[-1]
        e = json.loads(est.read_text())
        out.setdefault(backend, {})[meta["function_id"]] = {
            "median_ns": e["median"]["point_estimate"], "mean_ns": e["mean"]["point_estimate"],
            "mean_ci95_ns": [e["mean"]["confidence_interval"]["lower_bound"], e["mean"]["confidence_interval"]["upper_bound"]],
        }
    if not out:
        raise BenchFailure(f"criterion wrote no estimates under {home}")
    progress("verify", "node: jwt.verify in process (bench/node/verify-cost.js), string secret and KeyObject")
    p = run(["node", str(NODE_APP / "verify-cost.js"), "3" if ctx.quick else "7"],
            env=ctx.env_with(JWT_SECRET=ctx.secret), what="node verify-cost.js")
    vnode = json.loads(p.stdout.strip().splitlines()[-1])
    ctx.skipped["verify.inside_wasmtime"] = (
        "not run inside wasmtime: criterion's harness is not built for wasm32-wasip2 here; the floors section "
        "measures each algorithm inside wasmtime over HTTP, and rustcrypto on native is the Rust code the "
        "wide component build and the filter run")
    for backend, algs in out.items():
        progress("verify", f"{backend}: " + ", ".join(f"{a} {v['median_ns'] / 1000:.1f} µs" for a, v in sorted(algs.items())))
    vn = vnode
    progress("verify", f"node jsonwebtoken HS256: string secret {vn['string_secret']['median_ns'] / 1000:.1f} µs, "
                       f"KeyObject {vn['keyobject_secret']['median_ns'] / 1000:.1f} µs")
    return {"verify_ns": out, "verify_node_ns": vnode}

def containers(ctx) -> dict:
    """The results' `containers` part (full runs)."""
    if ctx.quick:
        ctx.skipped["containers"] = "--quick builds no images (bench/containers.py measures them alone)"
        return {}
    try:
        return {"containers": container_images.measure(ctx.cold_runs, lambda m: progress("containers", m))}
    except container_images.ContainerFailure as e:
        raise BenchFailure(f"containers: {e}") from e
