"""Who runs in the showdown, and how each is started: the one place to add a contender or a host mode.

A `Contender` serves the `POST /validate` contract with the run's HS256 secret and goes through every
per-server figure (cold start, idle and peak RSS, load, fixed rate). A `HostMode` runs a server and its
floor (the same host answering a fixed `{"valid":true}`) the same way, for the runtime-floor figures;
the wasm host modes differ only in the component they serve and the `wasmtime serve` flags.
Gateway contenders (a proxy in front of an upstream) are in `gateway.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .common import BENCH, ROOT

NODE_APP = BENCH / "node"
NODE_TUNED_APP = BENCH / "node-tuned"
# Requests one component instance may serve in turn (`wasmtime serve --max-instance-reuse-count`).
WASM_INSTANCE_REUSE = "64"
WASM_FILE = ROOT / "target" / "wasm32-wasip2" / "wasm" / "jwtv_component.wasm"
NATIVE_BIN = ROOT / "target" / "release" / "jwt-validator"
FLOOR_NATIVE_BIN = ROOT / "target" / "release" / "floor-hyper"
FLOOR_WASM_FILE = ROOT / "target" / "wasm32-wasip2" / "wasm" / "floor_component.wasm"
# The WASI 0.3 builds (`--features p3`), copied aside: cargo writes them under the names above.
P3_WASM_FILE = WASM_FILE.with_name("jwtv_component_p3.wasm")
P3_FLOOR_WASM_FILE = FLOOR_WASM_FILE.with_name("floor_component_p3.wasm")
# The wide-arithmetic build (scripts/component-wide), raw as cargo writes it in its own target dir (like
# WASM_FILE); the script's binaryen-optimised output, what ships, goes to WIDE_OPT_WASM_FILE.
WIDE_WASM_FILE = ROOT / "target" / "wide" / "wasm32-wasip2" / "wasm" / "jwtv_component.wasm"
WIDE_OPT_WASM_FILE = WASM_FILE.with_name("jwtv_component_wide.wasm")

# (args, extra environment) of a server on a port; `jwt_env` is the validator's key configuration
# (JWT_SECRET=… or JWT_JWKS=…), so the same command serves HS256 and the JWKS tokens.
Command = tuple[list[str], dict[str, str]]


def wasmtime_serve(port: int, jwt_env: dict[str, str], *flags: str) -> list[str]:
    """`wasmtime serve` as the README runs it (pooling allocator, cache off: compiled at every start)."""
    cmd = ["wasmtime", "serve", "-S", "cli", "-O", "pooling-allocator=y", "-C", "cache=n", *flags,
           "--addr", f"127.0.0.1:{port}"]
    for k, v in jwt_env.items():
        cmd += ["--env", f"{k}={v}"]
    return cmd


def reuse_flags() -> list[str]:
    return ["--max-instance-reuse-count", WASM_INSTANCE_REUSE]


@dataclass(frozen=True)
class Contender:
    name: str
    label: str
    color: str
    command: Callable[["object", int, dict[str, str]], Command]  # (ctx, port, jwt_env)
    # what to put in the report's command line instead of the environment's values
    shown_env: tuple[str, ...] = ()
    size_key: str = ""  # its artifact in the results' `sizes`
    runtime: str = ""  # the runtime it needs besides (its size is in `sizes` as runtime_<name>)


def _node(app: Path):
    def command(_ctx, port, jwt_env):
        return ["node", str(app / "server.js")], {**jwt_env, "PORT": str(port), "HOST": "127.0.0.1"}
    return command


def _native(cache_off: bool):
    def command(ctx, port, jwt_env):
        extra = {"JWT_TOKEN_CACHE_SIZE": "0"} if cache_off and ctx.native_has_cache else {}
        return [str(NATIVE_BIN), "--listen", f"127.0.0.1:{port}"], {**jwt_env, **extra}
    return command


def _wasm(precompiled: bool):
    def command(ctx, port, jwt_env):
        serve = wasmtime_serve(port, jwt_env, *reuse_flags())
        if precompiled:
            return serve + ["--allow-precompiled", str(ctx.cwasm_file)], {}
        return serve + [str(WASM_FILE)], {}
    return command


CONTENDER_LIST = [
    Contender("node", "node (Express)", "#3c873a", _node(NODE_APP), ("JWT_SECRET", "PORT"),
              "node_app_and_modules", "node"),
    Contender("node-tuned", "node (tuned)", "#8cc84b", _node(NODE_TUNED_APP), ("JWT_SECRET", "PORT"),
              "node_tuned_app_and_modules", "node"),
    Contender("native", "native", "#c0561d", _native(cache_off=True), ("JWT_SECRET", "JWT_TOKEN_CACHE_SIZE"),
              "native_stripped"),
    Contender("wasm", "wasm (.wasm)", "#654ff0", _wasm(precompiled=False), (), "wasm_raw", "wasmtime"),
    Contender("wasm-cwasm", "wasm (.cwasm)", "#a99bf7", _wasm(precompiled=True), (), "cwasm", "wasmtime"),
]
# Not a contender of its own: the native server as shipped (token cache on), one extra load run.
NATIVE_CACHED = Contender("native-cached", "native, token cache on", "#c0561d", _native(cache_off=False),
                          ("JWT_SECRET",))

BY_NAME = {c.name: c for c in CONTENDER_LIST + [NATIVE_CACHED]}
CONTENDERS = [c.name for c in CONTENDER_LIST]
BASELINE = "node"
LABELS = {c.name: c.label for c in CONTENDER_LIST}
COLORS = {c.name: c.color for c in CONTENDER_LIST}


def present(per_contender: dict) -> list[str]:
    """The contenders a results.json has figures for, in the registry's order (older runs lack the newer ones)."""
    return [c for c in CONTENDERS if c in per_contender]


def label(name: str) -> str:
    return LABELS.get(name, name)


def display_command(ctx, name: str) -> str:
    """The command line for the report, with secrets and scratch paths replaced by names."""
    c = BY_NAME[name]
    cmd, env = c.command(ctx, 0, {"JWT_SECRET": ctx.secret})
    s = " ".join(cmd).replace(ctx.secret, "$JWT_SECRET").replace(str(ctx.work), "<out>/.work")
    s = s.replace(str(ROOT) + "/", "").replace("127.0.0.1:0", "127.0.0.1:PORT")
    shown = [f"{k}={'0' if k == 'JWT_TOKEN_CACHE_SIZE' else '...'}" for k in c.shown_env if k in env]
    return " ".join(shown + [s])


# ---------------------------------------------------------------------------------------------------
# host modes: one runtime, its floor and our server on it


@dataclass(frozen=True)
class HostMode:
    name: str
    label: str
    # (ctx, port, jwt_env, floor?) -> the command; the floor ignores jwt_env
    command: Callable[["object", int, dict[str, str], bool], Command]
    # artifacts this mode needs, checked before the phase runs
    artifacts: tuple[Path, ...] = field(default_factory=tuple)


def _native_mode(ctx, port, jwt_env, floor):
    if floor:
        return [str(FLOOR_NATIVE_BIN), f"127.0.0.1:{port}"], {}
    return _native(cache_off=True)(ctx, port, jwt_env)


def wasm_mode(name: str, label: str, ours: Path, floor: Path, flags: list[str]) -> HostMode:
    """A `wasmtime serve` host mode: which component pair, which flags. A WASI 0.3 build is one more of these."""
    def command(_ctx, port, jwt_env, is_floor):
        return wasmtime_serve(port, {} if is_floor else jwt_env, *flags) + [str(floor if is_floor else ours)], {}
    return HostMode(name, label, command, (ours, floor))


HOST_MODES = [
    HostMode("native", "native (hyper 1 + tokio)", _native_mode, (NATIVE_BIN, FLOOR_NATIVE_BIN)),
    wasm_mode("wasm-reuse", f"wasm, an instance per {WASM_INSTANCE_REUSE} requests", WASM_FILE, FLOOR_WASM_FILE,
              reuse_flags()),
    # the second build for hosts with Wasm wide arithmetic (RustCrypto, 64-bit limbs), beside the same floor
    wasm_mode("wasm-wide", f"wasm, wide arithmetic, an instance per {WASM_INSTANCE_REUSE} requests", WIDE_WASM_FILE,
              FLOOR_WASM_FILE, [*reuse_flags(), "-W", "wide-arithmetic=y"]),
    wasm_mode("wasm-fresh", "wasm, a fresh instance per request", WASM_FILE, FLOOR_WASM_FILE,
              ["--max-instance-reuse-count", "1"]),
    # wasmtime's own defaults for a WASI 0.3 component: an instance serves up to 128 requests, 16 at once
    wasm_mode("wasm-p3", "wasm, WASI 0.3, an instance per 128 requests, 16 at once",
              P3_WASM_FILE, P3_FLOOR_WASM_FILE, ["-S", "p3", "-W", "component-model-async"]),
]
