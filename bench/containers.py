"""The showdown's container figures: image sizes and container cold starts, measured.

Builds the images with scripts/image into a throw-away podman store, then for each image:
- size uncompressed (as the store holds it) and compressed (gzip layers, as a registry stores them:
  the image copied to an OCI layout with `podman push`, layer and config blob sizes summed);
- for each runnable one (native, node), cold start as a container: `podman run` spawned → first
  200 from POST /validate, polled tightly, median of N. The SpinKube (wasm) image needs
  containerd-shim-spin, not available here: its start stays the bare `wasmtime serve` figure.

    python3 bench/containers.py [--runs N]     prints the figures as JSON

bench/showdown.py calls measure() in a full run; report_lines() renders its section of report.md.
Python 3.11 standard library only; podman, skopeo from Debian (scripts/setup deploy).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTAINERS_CONF = os.environ.get("CONTAINERS_CONF", str(ROOT / "deploy/podman/containers.conf"))
READY_TIMEOUT = 30.0  # seconds from `podman run` to the first 200, else the run fails
# The original write-up's container figures, quoted as theirs beside ours.
ORIGINAL = {"node image": "188 MB (node:20-slim based)", "spin app": "0.5 MB", "node cold start": "~1200 ms"}


class ContainerFailure(Exception):
    """A build or run that did not do what the measurement needs; the message says which."""


class Podman:
    """podman on a private, throw-away store; everything started here is removed by name."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="jwtv-containers-"))
        self.base = ["podman", "--root", str(self.dir / "root"), "--runroot", str(self.dir / "runroot")]
        self.env = dict(os.environ, CONTAINERS_CONF=CONTAINERS_CONF)

    def __call__(self, *args, timeout=120, check=True) -> subprocess.CompletedProcess:
        done = subprocess.run([*self.base, *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, env=self.env)
        if check and done.returncode != 0:
            raise ContainerFailure(f"podman {' '.join(map(str, args))}: {done.stderr.strip()[-800:]}")
        return done

    def close(self):
        self("rm", "--all", "--force", "--time", "0", check=False)
        self("system", "reset", "--force", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_images(podman: Podman) -> dict[str, str]:
    done = subprocess.run([str(ROOT / "scripts/image")], capture_output=True, text=True, timeout=3600,
                          env=dict(podman.env, PODMAN=" ".join(podman.base)))
    if done.returncode != 0:
        raise ContainerFailure(f"scripts/image: {done.stderr.strip()[-1500:]}")
    return dict(line.split(" ", 1) for line in done.stdout.splitlines())


def image_sizes(podman: Podman, ref: str) -> dict:
    """Uncompressed bytes in the store, and compressed bytes (gzip layers + config) as pushed."""
    uncompressed = int(podman("image", "inspect", "--format", "{{.Size}}", ref).stdout)
    layout = podman.dir / ("layout-" + ref.rsplit("/", 1)[-1].replace(":", "-"))
    podman("push", "--compression-format", "gzip", ref, f"oci:{layout}", timeout=600)
    index = json.loads((layout / "index.json").read_text())
    blob = lambda d: layout / "blobs/sha256" / d.split(":", 1)[1]  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_bytes())
    compressed = manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    return {"uncompressed_bytes": uncompressed, "compressed_bytes": compressed,
            "layers": len(manifest["layers"])}


def post_validate(port: int, token: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/validate",
                                     data=json.dumps({"token": token}).encode(),
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=1.0) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def cold_start_ms(podman: Podman, ref: str, env: dict[str, str], token: str) -> float:
    """`podman run` spawned → the first 200 from POST /validate, in ms; the container is then removed."""
    name = f"jwtv-cold-{secrets.token_hex(4)}"
    args = ["run", "--detach", "--name", name, "--network", "host", "--read-only"]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    t0 = time.perf_counter()
    run = subprocess.Popen([*podman.base, *args, ref], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, env=podman.env)
    try:
        while time.perf_counter() - t0 < READY_TIMEOUT:
            try:
                if post_validate(env["PORT"], token) == 200:
                    return (time.perf_counter() - t0) * 1000
            except OSError:
                pass
            if run.poll() not in (None, 0):
                raise ContainerFailure(f"podman run {ref}: {run.stderr.read().decode()[-800:]}")
            time.sleep(0.002)
        raise ContainerFailure(f"{ref}: no 200 within {READY_TIMEOUT:.0f}s of podman run")
    finally:
        run.wait(timeout=60)
        podman("rm", "--force", "--time", "0", name, check=False)


def mint(podman: Podman, native_ref: str, secret: str) -> str:
    return podman("run", "--rm", "--network", "none", "--env", f"JWT_SECRET={secret}",
                  native_ref, "mint", "--sub", "bench").stdout.strip()


def measure(runs: int, progress=lambda msg: None) -> dict:
    """Every container figure, as the showdown's results.json "containers" part."""
    podman = Podman()
    try:
        progress("building the images (scripts/image)")
        t0 = time.monotonic()
        refs = build_images(podman)
        build_s = round(time.monotonic() - t0, 1)
        sizes = {}
        for name in ("node", "native", "wasm"):
            progress(f"size of the {name} image")
            sizes[name] = image_sizes(podman, refs[name])
        secret = secrets.token_hex(32)
        token = mint(podman, refs["native"], secret)
        cold = {"node": [], "native": []}
        for i in range(runs):  # interleaved, as the showdown's own cold starts
            for name in cold:
                port = free_port()
                env = {"JWT_SECRET": secret, "PORT": port}
                env.update({"JWT_LISTEN": f"127.0.0.1:{port}"} if name == "native" else {"HOST": "127.0.0.1"})
                cold[name].append(round(cold_start_ms(podman, refs[name], env, token), 2))
            progress(f"cold start round {i + 1}/{runs}")
        return {
            "engine": podman("--version").stdout.strip() + ", runc, --network host",
            "build_s": build_s,
            "refs": refs,
            "image_bytes": sizes,
            "cold_start_ms": {name: {"median": round(statistics.median(xs), 2), "min": min(xs), "max": max(xs),
                                     "n": len(xs), "samples": xs} for name, xs in cold.items()},
            "not_runnable": {"wasm": "the SpinKube image needs containerd-shim-spin, which is not available "
                                     "here: the component's cold start is the bare wasmtime figure"},
            "original": ORIGINAL,
        }
    finally:
        podman.close()


def mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB" if n >= 1048576 else f"{n / 1024:.0f} KiB"


def report_lines(c: dict, bare_cold_ms: dict) -> list[str]:
    """The "Containers" section of report.md: sizes and starts beside the bare-process figures."""
    sizes, cold = c["image_bytes"], c["cold_start_ms"]
    lines = ["## Containers", "",
             f"Images built by `scripts/image`, run with {c['engine']}. Compressed: gzip layers + config, "
             "as a registry stores them. The write-up's figures are theirs: "
             + "; ".join(f"{k} {v}" for k, v in c["original"].items()) + ".", "",
             "| | node (Express) | native | wasm (SpinKube image) |", "| --- | --- | --- | --- |",
             "| image, uncompressed | " + " | ".join(mib(sizes[n]["uncompressed_bytes"]) for n in ("node", "native", "wasm")) + " |",
             "| image, compressed | " + " | ".join(mib(sizes[n]["compressed_bytes"]) for n in ("node", "native", "wasm")) + " |",
             f"| cold start, `podman run` → first 200 (median of {cold['native']['n']}) | "
             f"{cold['node']['median']:.0f} ms | {cold['native']['median']:.0f} ms | not runnable here |"]
    if bare_cold_ms:
        lines.append("| cold start, bare process (above; wasm: `wasmtime serve` of the .cwasm) | "
                     + " | ".join(f"{bare_cold_ms[n]:.1f} ms" for n in ("node", "native", "wasm-cwasm")) + " |")
    lines += ["", f"- wasm: {c['not_runnable']['wasm']}."]
    if c.get("run_note"):
        lines.append(f"- {c['run_note']}")
    lines.append("")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description="Measure the images: sizes and container cold starts.")
    p.add_argument("--runs", type=int, default=10, help="cold starts per image (default 10)")
    a = p.parse_args()
    print(json.dumps(measure(a.runs, progress=lambda m: print(f"[containers] {m}", file=sys.stderr, flush=True)), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
