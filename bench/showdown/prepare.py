"""The artifacts and the tokens: builds what the run serves (our server and component, the runtime
floors), installs the Node apps from their lockfiles, precompiles the component, and makes the tokens:
HS256 with the run's secret, and RS256, ES256 and EdDSA against a fresh seven-key JWKS."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from .common import BENCH, CARGO_JOBS, ROOT, BenchFailure, progress, run
from .contenders import (FLOOR_NATIVE_BIN, FLOOR_WASM_FILE, NATIVE_BIN, NODE_APP, NODE_TUNED_APP, P3_FLOOR_WASM_FILE,
                          P3_WASM_FILE, WASM_FILE, WIDE_OPT_WASM_FILE, WIDE_WASM_FILE)

# wasm-opt through `jco opt` (-Oz): the component that ships (scripts/image) and that scripts/test checks
COMPONENT_OPT = ROOT / "scripts" / "component-opt"
COMPONENT_P3 = ROOT / "scripts" / "component-p3"
COMPONENT_WIDE = ROOT / "scripts" / "component-wide"
FILTER = ROOT / "scripts" / "filter"
JWKS_SCRIPT = BENCH / "jwks.js"
NODE_APPS = (NODE_APP, NODE_TUNED_APP)


def prepare(ctx) -> dict:
    """Build, install and mint; returns the results' `native_token_cache` and `tokens` parts."""
    progress("prepare", "building the native binary and floor (cargo build --release -p jwtv-server -p jwtv-floor-hyper)")
    run(["cargo", "build", "--release", "-p", "jwtv-server", "-p", "jwtv-floor-hyper", "-j", CARGO_JOBS],
        env=ctx.base_env, log=ctx.logs / "build-native.log", what="native build")
    # The WASI 0.3 builds first, copied aside: the WASI 0.2 build after them writes its own files back.
    progress("prepare", "building the WASI 0.3 component and floor (scripts/component-p3, --features p3)")
    run([str(COMPONENT_P3), str(P3_WASM_FILE)], env=ctx.env_with(CARGO_BUILD_JOBS=CARGO_JOBS),
        log=ctx.logs / "build-wasm-p3.log", what="WASI 0.3 component build")
    run(["cargo", "build", "-p", "jwtv-floor-component", "--features", "p3", "--target", "wasm32-wasip2",
         "--profile", "wasm", "-j", CARGO_JOBS], env=ctx.base_env, log=ctx.logs / "build-floor-p3.log",
        what="WASI 0.3 floor build")
    shutil.copyfile(FLOOR_WASM_FILE, P3_FLOOR_WASM_FILE)
    # Its own target dir: the default build's files stay as they are.
    progress("prepare", "building the wide-arithmetic component (scripts/component-wide)")
    run([str(COMPONENT_WIDE), str(WIDE_OPT_WASM_FILE)], env=ctx.env_with(CARGO_BUILD_JOBS=CARGO_JOBS),
        log=ctx.logs / "build-wasm-wide.log", what="wide-arithmetic component build")
    progress("prepare", "building the component and floor (cargo build --target wasm32-wasip2 --profile wasm)")
    run(["cargo", "build", "-p", "jwtv-component", "-p", "jwtv-floor-component", "--target", "wasm32-wasip2",
         "--profile", "wasm", "-j", CARGO_JOBS], env=ctx.base_env, log=ctx.logs / "build-wasm.log", what="component build")
    progress("prepare", "building the proxy-wasm filter (scripts/filter)")
    printed = run([str(FILTER)], env=ctx.env_with(JOBS=CARGO_JOBS), what="scripts/filter").stdout.strip().splitlines()
    ctx.filter_wasm = Path(printed[-1]) if printed else ctx.filter_wasm  # the path it prints
    for f in (NATIVE_BIN, WASM_FILE, FLOOR_NATIVE_BIN, FLOOR_WASM_FILE, P3_WASM_FILE, P3_FLOOR_WASM_FILE,
              WIDE_WASM_FILE, ctx.filter_wasm):
        if not f.exists():
            raise BenchFailure(f"expected artifact missing after the build: {f}")
    # The native server remembers verified tokens (JWT_TOKEN_CACHE_SIZE, on by default): with one
    # token sent over and over it would skip the signature check that node and wasm do on every
    # request. The contender runs with the cache off; one extra run shows the default.
    help_text = run([str(NATIVE_BIN), "--help"], env=ctx.base_env, what="jwt-validator --help").stdout
    ctx.native_has_cache = "JWT_TOKEN_CACHE_SIZE" in help_text
    for app in NODE_APPS:
        npm_ci_if_stale(ctx, app)
    progress("prepare", "precompiling the component (wasmtime compile → .cwasm)")
    run(["wasmtime", "compile", str(WASM_FILE), "-o", str(ctx.cwasm_file)], env=ctx.base_env, what="wasmtime compile")
    jco_opt(ctx)
    return {
        "native_token_cache": {"present": ctx.native_has_cache,
                               "contender_setting": "JWT_TOKEN_CACHE_SIZE=0" if ctx.native_has_cache else None},
        "tokens": {**mint_hs256(ctx), "jwks": make_jwks(ctx)},
    }


def prepare_native(ctx) -> None:
    """What a phase run alone (`--only`) needs: the native binary, and whether it has a token cache."""
    progress("prepare", "building the native binary (cargo build --release -p jwtv-server)")
    run(["cargo", "build", "--release", "-p", "jwtv-server", "-j", CARGO_JOBS],
        env=ctx.base_env, log=ctx.logs / "build-native.log", what="native build")
    if not NATIVE_BIN.exists():
        raise BenchFailure(f"expected artifact missing after the build: {NATIVE_BIN}")
    help_text = run([str(NATIVE_BIN), "--help"], env=ctx.base_env, what="jwt-validator --help").stdout
    ctx.native_has_cache = "JWT_TOKEN_CACHE_SIZE" in help_text
    mint_hs256(ctx)  # the dpop phase sends the run's HS256 token beside its own


def npm_ci_if_stale(ctx, app) -> None:
    stamp = app / "node_modules" / ".package-lock.json"
    lock = app / "package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        name = app.relative_to(ROOT)
        progress("prepare", f"npm ci in {name} (from the committed lockfile)")
        run(["npm", "ci", "--no-audit", "--no-fund"], cwd=app, env=ctx.base_env,
            log=ctx.logs / f"npm-ci-{app.name}.log", what=f"npm ci ({name})")


def jco_opt(ctx) -> None:
    if not ctx.jco.exists():
        ctx.skipped["size.wasm_jco_opt"] = "tools/jco is not installed (npm ci in tools/jco)"
        return
    # cached by the input's digest (jco takes ~10 s): bench/.cache/jco/<sha256>.wasm
    digest = hashlib.sha256(WASM_FILE.read_bytes() + COMPONENT_OPT.read_bytes()).hexdigest()
    cached = BENCH / ".cache" / "jco" / f"{digest}.wasm"
    if not cached.exists():
        progress("prepare", "jco opt (binaryen wasm-opt -Oz on the component's core modules)")
        cached.parent.mkdir(parents=True, exist_ok=True)
        for old in cached.parent.glob("*.wasm"):
            old.unlink()
        tmp = cached.with_suffix(".tmp")
        run([str(COMPONENT_OPT), str(WASM_FILE), str(tmp)],
            env=ctx.base_env, log=ctx.logs / "jco-opt.log", what="jco opt")
        # the optimised component must still be a valid one
        run(["wasmtime", "compile", str(tmp), "-o", str(ctx.work / "opt-check.cwasm")],
            env=ctx.base_env, what="wasmtime compile (jco-optimised component)")
        tmp.rename(cached)
    else:
        progress("prepare", "jco opt: cached result for this component")
    shutil.copyfile(cached, ctx.opt_file)


def corrupt(token: str) -> tuple[str, str]:
    """The token with one middle character of its signature changed (still canonical base64url)."""
    header, payload, sig = token.split(".")
    mid = len(sig) // 2
    repl = "A" if sig[mid] != "A" else "B"
    return f"{header}.{payload}.{sig[:mid]}{repl}{sig[mid + 1:]}", \
        f"signature character {mid} of {len(sig)} changed ({sig[mid]!r} → {repl!r})"


def mint_hs256(ctx) -> dict:
    progress("prepare", "minting the tokens (jwt-validator mint, HS256, 32-byte secret)")
    p = run([str(NATIVE_BIN), "mint", "--sub", "bench", "--ttl", "86400"],
            env=ctx.env_with(JWT_SECRET=ctx.secret), what="jwt-validator mint")
    token = p.stdout.strip().splitlines()[-1].strip()
    bad, how = corrupt(token)
    ctx.tokens = {"valid": token, "invalid": bad}
    return {"alg": "HS256", "secret_bytes": len(ctx.secret.encode()), "valid_token_chars": len(token), "invalid": how}


def make_jwks(ctx) -> dict:
    progress("prepare", "a JWKS of seven fresh keys and RS256, ES256, EdDSA tokens (bench/jwks.js)")
    p = run(["node", str(JWKS_SCRIPT), "86400"], env=ctx.base_env, what="node bench/jwks.js")
    made = json.loads(p.stdout.strip().splitlines()[-1])
    ctx.jwks = {"jwks": json.dumps(made["jwks"], separators=(",", ":")), "tokens": made["tokens"]}
    return {"keys": [f"{k['kty']} {k.get('crv', '')} {k['kid']}".replace("  ", " ") for k in made["jwks"]["keys"]],
            "algorithms": sorted(made["tokens"]), "token_cache": "off (JWT_TOKEN_CACHE_SIZE=0) for the native server"}


def jwks_env(ctx) -> dict[str, str]:
    """The validator's key configuration for the JWKS tokens (inline, so wasm needs no mounted file)."""
    return {"JWT_JWKS": ctx.jwks["jwks"]}
