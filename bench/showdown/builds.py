"""Build times: clean (a fresh target dir; npm ci into an empty dir) and incremental after a one-line
change to the handler both targets share, in a private copy of the workspace, for the native server,
the shipped component (`wasm` profile) and the component's edit-build-run profile (`wasm-dev`)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from .common import BENCH, CARGO_JOBS, ROOT, progress, run
from .contenders import NODE_APP

CACHE = BENCH / ".cache" / "incremental"  # private source copy + target dir for incremental builds
# what cargo builds, timed: the native server, the component as shipped, the component for the edit loop
RUST = ["native", "wasm", "wasm-dev"]
# --quick times the edit loop's profile only: the shipped profiles (fat LTO) would first build a second copy
# of every dependency in the private target dir, minutes on a fresh machine for figures a quick run
# does not report.
QUICK_RUST = ["wasm-dev"]
CLEAN = ["native", "wasm", "node"]  # clean builds: the shipped artifacts (and npm ci)
# what the private copy needs to build (the workspace's members)
COPIED = ("Cargo.toml", "Cargo.lock", "crates", "bench/floors")


def sync_copy() -> Path:
    """Mirror the workspace sources into the private copy, touching only files whose content
    differs (cargo decides by mtime). The handler file is compared modulo our own one-line edit."""
    src = CACHE / "src"
    src.mkdir(parents=True, exist_ok=True)
    state = cache_state()
    wanted: set[Path] = set()
    for top in COPIED:
        base = ROOT / top
        paths = [base] if base.is_file() else [p for p in base.rglob("*") if p.is_file()]
        for p in paths:
            rel = p.relative_to(ROOT)
            if "target" in rel.parts:
                continue
            wanted.add(rel)
            dst = src / rel
            data = p.read_bytes()
            if rel == EDIT_FILE:
                data = edit_variant(data.decode(), state["variant"]).encode()
            if not dst.exists() or dst.read_bytes() != data:
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(data)
    for p in list(src.rglob("*")):
        if p.is_file() and p.relative_to(src) not in wanted:
            p.unlink()
    return src

def cache_state() -> dict:
    f = CACHE / "state.json"
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError):
        return {"variant": 0}

def cargo_build_cmd(which: str, manifest: Path) -> list[str]:
    if which == "native":
        return ["cargo", "build", "--manifest-path", str(manifest), "--release", "-p", "jwtv-server", "-j", CARGO_JOBS]
    return ["cargo", "build", "--manifest-path", str(manifest), "-p", "jwtv-component",
            "--target", "wasm32-wasip2", "--profile", which, "-j", CARGO_JOBS]

def timed_build(ctx, which: str, src: Path, target: Path, log: Path) -> float:
    env = ctx.env_with(CARGO_TARGET_DIR=str(target))
    t0 = time.perf_counter()
    run(cargo_build_cmd(which, src / "Cargo.toml"), cwd=src, env=env, log=log, what=f"{which} build")
    return time.perf_counter() - t0

def timed_rust(ctx) -> list[str]:
    """The cargo builds whose incremental time this run measures."""
    return QUICK_RUST if ctx.quick else RUST

def builds(ctx) -> dict:
    """The results' `build` part."""
    b: dict = {"clean_s": {}, "incremental_s": {}, "notes": {}}
    progress("build", f"syncing the private source copy ({CACHE.relative_to(ROOT)}/src)")
    src = sync_copy()
    # clean builds: a fresh CARGO_TARGET_DIR under the out dir each time; node: npm ci into a fresh dir
    if ctx.quick:
        ctx.skipped["build.clean"] = "--quick skips clean builds"
    else:
        clean_target = ctx.work / "clean-target"
        for c in CLEAN:
            b["clean_s"][c] = []
        for i in range(ctx.build_runs):
            order = CLEAN[i % 3:] + CLEAN[:i % 3]
            for c in order:
                if c == "node":
                    d = ctx.work / "node-clean"
                    shutil.rmtree(d, ignore_errors=True)
                    d.mkdir(parents=True)
                    for f in ("package.json", "package-lock.json", "server.js"):
                        shutil.copy2(NODE_APP / f, d / f)
                    progress("build", f"clean {i + 1}/{ctx.build_runs}: node (npm ci into an empty dir)")
                    t0 = time.perf_counter()
                    run(["npm", "ci", "--no-audit", "--no-fund"], cwd=d, env=ctx.base_env,
                        log=ctx.logs / f"clean-node-{i}.log", what="npm ci (clean)")
                    dt = time.perf_counter() - t0
                    shutil.rmtree(d, ignore_errors=True)
                else:
                    shutil.rmtree(clean_target, ignore_errors=True)
                    progress("build", f"clean {i + 1}/{ctx.build_runs}: {c} (fresh CARGO_TARGET_DIR)")
                    dt = timed_build(ctx, c, src, clean_target, ctx.logs / f"clean-{c}-{i}.log")
                b["clean_s"][c].append(round(dt, 3))
                progress("build", f"  clean {c}: {dt:.1f}s")
        shutil.rmtree(clean_target, ignore_errors=True)
        b["notes"]["node_clean"] = "npm ci from the committed lockfile into an empty directory (npm's local cache warm)"
    # incremental: a one-line change to the handler, in the private copy (never in the work tree)
    target = CACHE / "target"
    rust = timed_rust(ctx)
    for c in RUST:
        if c not in rust:
            ctx.skipped[f"build.incremental.{c}"] = f"--quick times the incremental build of {', '.join(rust)} only"
    progress("build", "incremental: bringing the private target dir up to date (not timed)")
    for c in rust:
        timed_build(ctx, c, src, target, ctx.logs / f"incr-warm-{c}.log")
    state = cache_state()
    original = (ROOT / EDIT_FILE).read_text()
    for c in rust:
        b["incremental_s"][c] = []
    for i in range(ctx.build_runs):
        state["variant"] += 1
        (src / EDIT_FILE).write_text(edit_variant(original, state["variant"]))
        (CACHE / "state.json").write_text(json.dumps(state))
        for c in (rust if i % 2 == 0 else rust[::-1]):
            progress("build", f"incremental {i + 1}/{ctx.build_runs}: {c} after a one-line change to {EDIT_FILE}")
            dt = timed_build(ctx, c, src, target, ctx.logs / f"incr-{c}-{i}.log")
            b["incremental_s"][c].append(round(dt, 3))
            progress("build", f"  incremental {c}: {dt:.1f}s")
    b["edit"] = {"file": str(EDIT_FILE), "change": edit_description(original)}
    ctx.skipped["build.incremental.node"] = (
        "node has no build step: a change to server.js needs only a restart "
        "(the original's ~45 s was a container image rebuild; see \"Containers\" for our images)")
    return b


# --------------------------------------------------------------------------------------------------
# the one-line change for incremental builds

EDIT_FILE = Path("crates/service/src/validate.rs")
EDIT_NEEDLE = "Content-Type must be application/json"


def edit_variant(text: str, n: int) -> str:
    """The handler with one line changed (variant n; 0 is the original): the 415 message gains a
    marker. If the message ever moves, a constant is appended instead: still one changed line."""
    if n == 0:
        return text
    if EDIT_NEEDLE in text:
        return text.replace(EDIT_NEEDLE, f"{EDIT_NEEDLE} [edit {n}]", 1)
    return text.rstrip("\n") + f"\npub const SHOWDOWN_EDIT: u32 = {n};\n"


def edit_description(text: str) -> str:
    if EDIT_NEEDLE in text:
        return f"the 415 message string \"{EDIT_NEEDLE}…\" gains \" [edit N]\""
    return "a line `pub const SHOWDOWN_EDIT: u32 = N;` appended"
