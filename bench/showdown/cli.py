"""The command line: runs the phases in order, each returning its part of results.json, then writes
results.json, report.md and chart.svg; --render-only redraws the last two from results.json alone."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from pathlib import Path

from . import dpop as dpop_phase
from . import floors as floors_phase
from . import gateway as gateway_phase
from . import rules as rules_phase
from .builds import builds
from .chart import chart_svg
from .common import BENCH, CARGO_JOBS, T_START, BenchFailure, fmt_num, fmt_ratio, loadavg, progress
from .context import Ctx, environment, preflight
from .load import load
from .measure import cold_starts, containers, sizes, verify_cost
from .prepare import prepare, prepare_native
from .report import headline_lines, report_md, summarise
from .servers import stop_all

# In order; each returns the part of results.json it measured. A new phase is one more line.
PHASES = [
    ("prepare", prepare),
    ("size", lambda ctx: {"sizes": sizes(ctx)}),
    ("build", lambda ctx: {"build": builds(ctx)}),
    ("cold_start", cold_starts),
    ("load", load),
    ("floors", floors_phase.floors),
    ("rules", rules_phase.rules),
    ("gateway", gateway_phase.gateway),
    ("dpop", dpop_phase.dpop),
    ("verify", verify_cost),
    ("containers", containers),
]


def merge(r: dict, part: dict) -> None:
    """A phase's part into the results; the load phase's idle RSS readings join the cold-start ones."""
    for k, v in part.items():
        if k == "idle_rss_kib" and k in r:
            for c, kib in v.items():
                r[k].setdefault(c, []).append(kib)
        else:
            r[k] = v


# Phases that `--only` runs alone, each after the one build it needs, into files of their own.
ONLY = {"rules": (rules_phase.rules, rules_phase.summarise_rules, rules_phase.report_lines),
        "dpop": (dpop_phase.dpop, dpop_phase.summarise, lambda r, _num, _ratio: dpop_phase.report_lines(r))}


def run_only(ctx: Ctx, name: str) -> int:
    """One phase alone: `<out>/<name>.json` (its raw samples, the conditions) and `<out>/<name>.md`."""
    ctx.out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(ctx.work, ignore_errors=True)
    ctx.logs.mkdir(parents=True)
    progress("showdown", f"{name} alone ({'quick' if ctx.quick else 'full'}) into {ctx.out}")
    r: dict = {"schema": 2, "mode": f"only {name}" + (" (quick)" if ctx.quick else ""),
               "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "environment": environment(ctx)}
    r["environment"]["loadavg_before"] = loadavg()
    prepare_native(ctx)
    measure, summarise_part, lines_of = ONLY[name]
    merge(r, measure(ctx))
    r["status_checks"] = ctx.checks
    r["environment"]["loadavg_after"] = loadavg()
    r["summary"] = {name: summarise_part(r[name])}
    (ctx.out / f"{name}.json").write_text(json.dumps(r, indent=1) + "\n")
    env = r["environment"]
    lines = [f"# Showdown, {name} alone", "",
             f"{r['started_at']}, {env['cpu_model']}, {env['cores']} cores, load average "
             f"{env['loadavg_before']} before and {env['loadavg_after']} after; git {env.get('git_commit', '?')}.", "",
             *lines_of(r, fmt_num, fmt_ratio)]
    (ctx.out / f"{name}.md").write_text("\n".join(lines) + "\n")
    shutil.rmtree(ctx.work, ignore_errors=True)
    for line in lines[4:]:
        if line.startswith("|") or line.startswith("No rule"):
            print("  " + line)
    return 0


def run_all(ctx: Ctx) -> dict:
    ctx.out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(ctx.work, ignore_errors=True)
    ctx.logs.mkdir(parents=True)
    progress("showdown", f"{'quick' if ctx.quick else 'full'} run into {ctx.out}")
    preflight(ctx)
    r: dict = {"schema": 2, "mode": "quick" if ctx.quick else "full", "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    r["environment"] = environment(ctx)
    r["environment"]["loadavg_before"] = loadavg()
    env = r["environment"]
    progress("showdown", f"{env['cpu_model']}, {env['cores']} cores, load {env['loadavg_before']}; "
                         "the load generator and the servers share these cores")
    r["config"] = {"cold_runs": ctx.cold_runs, "idle_rounds_in_cold_start": ctx.idle_rounds,
                   "connections": ctx.connections, "load_seconds": ctx.load_seconds,
                   "warmup_seconds": ctx.warmup_seconds, "fixed_rate_rps": ctx.rate,
                   "fixed_rate_seconds": ctx.rate_seconds, "build_runs": ctx.build_runs,
                   "cargo_jobs": int(CARGO_JOBS)}
    r["phase_s"] = {}
    for name, step in PHASES:
        t0 = time.monotonic()
        merge(r, step(ctx))
        r["phase_s"][name] = round(time.monotonic() - t0, 1)
    r["skipped"] = ctx.skipped
    r["status_checks"] = ctx.checks
    r["environment"]["loadavg_after"] = loadavg()
    r["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    r["duration_s"] = round(time.monotonic() - T_START, 1)
    return r


def write(out: Path, r: dict) -> None:
    r["summary"] = summarise(r)
    (out / "results.json").write_text(json.dumps(r, indent=1) + "\n")
    (out / "chart.svg").write_text(chart_svg(r))
    (out / "report.md").write_text(report_md(r))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Measure jwt-validator (native and wasm) against the Node baseline.")
    p.add_argument("--quick", action="store_true",
                   help="a few minutes: 16 connections for 3 s, 1 incremental build (wasm-dev only), no clean builds, "
                        "1 s floor runs, HS256-only criterion")
    p.add_argument("--out", default=None, help="output directory (default: bench/results)")
    p.add_argument("--cold-runs", type=int, default=None, help="cold starts per contender (default 20; quick 10; at least 10)")
    p.add_argument("--build-runs", type=int, default=None,
                   help="clean and incremental builds per contender (default 3; quick 1): each clean native build "
                        "takes minutes on 2 cores")
    p.add_argument("--only", choices=sorted(ONLY),
                   help="run one phase alone (building only the native binary), into <out>/<phase>.json and .md; "
                        "the default out is then bench/.cache/only, never the full run's report")
    p.add_argument("--render-only", action="store_true",
                   help="measure nothing: redraw report.md and chart.svg from the out dir's results.json")
    a = p.parse_args(argv)
    if a.out is None:
        a.out = str(BENCH / ".cache" / "only") if a.only else str(BENCH / "results")
    if a.cold_runs is not None and a.cold_runs < 10:
        p.error("--cold-runs must be at least 10")
    if a.build_runs is not None and a.build_runs < 1:
        p.error("--build-runs must be at least 1")
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    ctx = Ctx(args)
    if args.render_only:
        path = ctx.out / "results.json"
        try:
            r = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            print(f"showdown: cannot read {path}: {e}", file=sys.stderr)
            return 1
        write(ctx.out, r)
        for line in headline_lines(r):
            print(line)
        return 0

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        if args.only:
            return run_only(ctx, args.only)
        r = run_all(ctx)
        write(ctx.out, r)
        shutil.rmtree(ctx.work, ignore_errors=True)
        progress("showdown", f"done in {r['duration_s']:.0f}s ("
                             + ", ".join(f"{k} {v:.0f}s" for k, v in r["phase_s"].items()) + f"): {ctx.out / 'report.md'}")
        for line in headline_lines(r):
            print("  " + line)
        return 0
    except BenchFailure as e:
        print(f"\nshowdown: FAILED: {e}", file=sys.stderr, flush=True)
        print(f"showdown: logs in {ctx.logs}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nshowdown: interrupted", file=sys.stderr)
        return 130
    finally:
        stop_all()
        shutil.rmtree(ctx.work / "clean-target", ignore_errors=True)
