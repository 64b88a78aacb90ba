"""The run's context: its settings (quick or full), paths, environment, secret and tokens, the
figures it skipped and its status-check tally; plus the preflight and the environment record."""

from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import subprocess
from pathlib import Path

from .common import ROOT, BenchFailure, proc_meminfo_total, version_of
from .contenders import NODE_APP, NODE_TUNED_APP
from .gateway import ENVOY, NGINX


class Ctx:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.out = Path(args.out).resolve()
        self.work = self.out / ".work"
        self.logs = self.work / "logs"
        self.secret = secrets.token_urlsafe(24)  # 32 ASCII characters: a 32-byte HS256 secret
        self.skipped: dict[str, str] = {}
        self.checks = {"preflight": [], "responses_checked": 0}
        self.base_env = {k: v for k, v in os.environ.items()
                         if not k.startswith("JWT_") and k not in ("PORT", "HOST", "RUST_LOG")}
        cargo_bin = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo")) / "bin"
        self.base_env["PATH"] = f"{cargo_bin}:{self.base_env.get('PATH', '')}"
        self.cwasm_file = self.work / "jwtv_component.cwasm"
        self.opt_file = self.work / "jwtv_component.opt.wasm"
        self.jco = ROOT / "tools" / "jco" / "node_modules" / ".bin" / "jco"
        self.filter_wasm = ROOT / "target" / "wasm32-wasip1" / "release" / "jwtv_filter.wasm"  # as scripts/filter prints
        self.native_has_cache = False  # set by prepare(): does this build have JWT_TOKEN_CACHE_SIZE?
        self.tokens: dict[str, str] = {}  # HS256: "valid", "invalid" (set by prepare)
        self.jwks: dict = {}  # the JWKS run: "jwks" (JSON text) and "tokens" per algorithm (set by prepare)

    # ------------------------------------------------------------------ settings

    @property
    def cold_runs(self):
        return self.args.cold_runs or (10 if self.quick else 20)

    @property
    def idle_rounds(self):  # cold-start rounds that also wait 1 s for an idle RSS sample
        return 0 if self.quick else 4

    @property
    def connections(self):
        return [16] if self.quick else [1, 16, 64]

    @property
    def load_seconds(self):
        # full: 6 s, down from 10, to keep the full run near 25 minutes with the peers, floors and gateways
        return 3 if self.quick else 6

    @property
    def warmup_seconds(self):
        return 1 if self.quick else 3

    @property
    def rate(self):
        return 200

    @property
    def rate_seconds(self):
        return 2 if self.quick else 5

    @property
    def build_runs(self):
        return self.args.build_runs or (1 if self.quick else 3)

    def env_with(self, **extra) -> dict:
        e = dict(self.base_env)
        e.update(extra)
        return e


def preflight(ctx) -> None:
    """Every tool the run needs, or one message naming all that are missing."""
    missing = []
    for tool, why in [("cargo", "builds"), ("rustc", "builds"), ("node", "the Node baseline"),
                      ("npm", "npm ci of the Node baseline"), ("wasmtime", "serving the component"),
                      ("wrk", "the load generator")]:
        if shutil.which(tool, path=ctx.base_env["PATH"]) is None:
            missing.append((tool, why))
    if missing:
        lines = [f"  {t} (for {w})" for t, w in missing]
        hint = []
        if any(t == "wrk" for t, _ in missing):
            hint.append("wrk is Debian's package: apt-get install wrk (this harness installs nothing itself)")
        if any(t == "wasmtime" for t, _ in missing):
            hint.append("wasmtime: scripts/setup wasmtime")
        raise BenchFailure("missing tools:\n" + "\n".join(lines) + ("\n" + "\n".join(hint) if hint else ""))


def environment(ctx) -> dict:
    """The conditions of the run: machine, load, git state and versions."""
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = proc_meminfo_total()
    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout.strip()
    changed = [l[3:] for l in subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                             text=True).stdout.splitlines() if l.strip()]
    dirty = bool(changed)
    node_pkgs = {}
    for app, names in ((NODE_APP, ("express", "jsonwebtoken")), (NODE_TUNED_APP, ("fastify",))):
        for name in names:
            pj = app / "node_modules" / name / "package.json"
            if pj.exists():
                node_pkgs[name] = json.loads(pj.read_text()).get("version")
    env = {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "memory_total_mib": mem_kib // 1024 if mem_kib else None,
        "kernel": platform.release(),
        "os": platform.platform(),
        "load_generator_shares_cores": True,
        "git_commit": git,
        "git_tracked_changes": dirty,
        "git_changed_files": changed,
        "versions": {
            "rustc": version_of(["rustc", "--version"]),
            "cargo": version_of(["cargo", "--version"]),
            "node": version_of(["node", "--version"]),
            "npm": version_of(["npm", "--version"]),
            "wasmtime": version_of(["wasmtime", "--version"]),
            "wrk": version_of(["wrk", "-v"]),
            "python": platform.python_version(),
            "jco": version_of([str(ctx.jco), "--version"]) if ctx.jco.exists() else "not installed",
            "envoy": version_of([str(ENVOY), "--version"]) if ENVOY.exists() else "not installed",
            "nginx": version_of([NGINX, "-v"]),
            **{f"npm:{k}": v for k, v in node_pkgs.items()},
        },
    }
    return env

