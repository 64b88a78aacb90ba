#!/usr/bin/env python3
"""Tests of the showdown harness.

    python3 -m unittest bench.test_showdown        (from the repository root)
    python3 bench/test_showdown.py

QuickRun runs `bench/showdown.py --quick` end to end into a temporary directory and checks that
every figure is present and numeric, and that every response had the expected status. It takes a
few minutes once the builds exist (the first run on a machine also builds the incremental-build
cache under bench/.cache). The other classes need no run: StatusChecks shows, against a fake server
that answers 200 to anything, that an invalid token answered 200 fails the run instead of counting;
Rendering redraws the committed results, summarises floor runs, and renders the proxy-wasm filter's
configuration and its ratios beside jwt_authn.

A benchmark is never a timed test: nothing here asserts on speed.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from showdown import builds, cli, common, contenders, dpop, floors, gateway, http1, load, rules, servers  # noqa: E402
from showdown.context import Ctx  # noqa: E402

CONTENDERS = contenders.CONTENDERS
EXPECT = common.EXPECT

# figures a --quick run leaves out, each with its reason in results.json "skipped"
ALLOWED_SKIPS = {
    "build.clean",
    "build.incremental.node",
    "build.incremental.native",  # --quick times wasm-dev's incremental build only
    "build.incremental.wasm",
    "verify.other_algorithms",
    "verify.inside_wasmtime",
    "size.wasm_jco_opt",  # only when tools/jco is not installed
    "containers",  # --quick builds no images
}


def is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


class QuickRun(unittest.TestCase):
    out: str
    proc: subprocess.CompletedProcess
    results: dict

    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.mkdtemp(prefix="showdown-test-")
        cls.proc = subprocess.run(
            [sys.executable, str(BENCH / "showdown.py"), "--quick", "--out", cls.out],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800)
        path = Path(cls.out) / "results.json"
        cls.results = json.loads(path.read_text()) if path.exists() else {}
        done = [l for l in cls.proc.stdout.splitlines() if "showdown: done" in l]
        print(f"\n{done[-1].strip() if done else cls.proc.stdout[-2000:]}", file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.out, ignore_errors=True)

    def setUp(self):
        if self.proc.returncode != 0:
            self.fail(f"showdown --quick exited {self.proc.returncode}:\n{self.proc.stdout[-4000:]}")

    def number(self, value, what):
        self.assertTrue(is_number(value), f"{what} is not a number: {value!r}")
        return value

    def positive(self, value, what):
        self.assertGreater(self.number(value, what), 0, what)

    def test_progress_was_printed(self):
        for phase in ("prepare:", "size:", "build:", "cold start:", "load:", "fixed rate:", "floors:", "rules:",
                      "gateway:", "dpop:", "verify:"):
            self.assertIn(phase, self.proc.stdout)

    def test_every_figure_is_present_and_numeric(self):
        r = self.results
        s = r["summary"]
        for c in CONTENDERS:
            self.assertGreaterEqual(len(r["cold_start_ms"][c]), 10, f"cold start samples of {c}")
            for x in r["cold_start_ms"][c]:
                self.positive(x, f"cold start sample of {c}")
            self.positive(s["cold_start_ms"][c]["median"], f"cold start median of {c}")
            self.assertGreaterEqual(len(r["idle_rss_kib"][c]), 1)
            self.positive(s["idle_rss_mib"][c], f"idle RSS of {c}")
            self.positive(s["peak_rss_mib"][c], f"peak RSS of {c}")
            self.positive(s["size_bytes"][c], f"size of {c}")
            for key in ("valid@16", "invalid@16"):
                t = s["throughput"][key][c]
                for fig in ("rps", "p50_ms", "p99_ms", "req_per_cpu_s"):
                    self.positive(t[fig], f"{fig} of {c} at {key}")
            for kind in ("valid", "invalid"):
                f = s["fixed_rate"][kind][c]
                self.positive(f["p50_ms"], f"fixed-rate p50 of {c}, {kind}")
                self.positive(f["p99_ms"], f"fixed-rate p99 of {c}, {kind}")
        for c in builds.QUICK_RUST:
            self.positive(s["build_s"]["incremental"][c], f"incremental build of {c}")
        for mode in contenders.HOST_MODES:
            for alg in floors.ALGORITHMS:
                x = s["floors"][mode.name][alg]
                for fig in ("floor_req_per_cpu_s", "ours_req_per_cpu_s", "ours_over_floor_cpu_per_req"):
                    self.positive(x[fig], f"{fig} of {mode.name}, {alg}")
        for g in gateway.GATEWAYS:
            for alg in (gateway.ALGORITHMS if g.checks else ["any"]):
                x = s["gateway"][g.name][alg]
                for fig in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req"):
                    self.positive(x[fig], f"{fig} of gateway {g.name}, {alg}")
        for name, e in r["sizes"].items():
            self.positive(e["bytes"], f"size {name}")
            if not name.startswith("runtime_"):
                self.positive(e["gzip_bytes"], f"gzip size {name}")
        for key in ("native_stripped", "wasm_raw", "cwasm", "node_app_and_modules"):
            self.assertIn(key, r["sizes"])
        if "size.wasm_jco_opt" not in r["skipped"]:
            self.assertIn("wasm_jco_opt", r["sizes"])
        for backend in ("ring", "rustcrypto"):
            self.positive(r["verify_ns"][backend]["HS256"]["median_ns"], f"verify cost, {backend}")
        for how in ("string_secret", "keyobject_secret"):
            self.positive(r["verify_node_ns"][how]["median_ns"], f"node verify cost, {how}")
        for other in CONTENDERS[1:]:
            for fig, value in s["ratios_node_over"][other].items():
                self.positive(value, f"ratio node/{other} {fig}")
        env = r["environment"]
        self.assertTrue(env["cpu_model"])
        self.positive(env["cores"], "cores")
        self.assertEqual(len(env["loadavg_before"]), 3)
        self.assertEqual(len(env["loadavg_after"]), 3)
        for tool in ("rustc", "node", "wasmtime", "wrk"):
            self.assertNotIn(env["versions"][tool], ("", "?", "not found"), tool)

    def test_wasi_p3_and_the_filter_are_measured_beside_their_floors(self):
        s = self.results["summary"]
        for alg in floors.ALGORITHMS:
            self.positive(s["floors"]["wasm-p3"][alg]["ours_over_floor_cpu_per_req"], f"wasm-p3 ours ÷ floor, {alg}")
        for alg in gateway.ALGORITHMS:
            self.positive(gateway.cpu_per_req(s["gateway"], "envoy-filter", alg), f"filter CPU per request, {alg}")
        report = (Path(self.out) / "report.md").read_text()
        self.assertIn(contenders.HOST_MODES[-1].label, report)
        self.assertIn("| filter ÷ jwt_authn | filter ÷ Envoy floor |", report)

    def test_a_rule_is_measured_beside_no_rule_and_shown_to_refuse(self):
        s = self.results["summary"]["rules"]
        for key in ("no-rule", "rule"):
            self.positive(s[key]["rps"], f"rules, {key}, req/s")
        self.positive(s["no_rule_over_rule_cpu"], "no rule ÷ rule")
        refusals = [c for c in self.results["status_checks"]["preflight"] if c["check"] == "token without the role"]
        self.assertEqual([c["status"] for c in refusals], [200, 403])

    def test_every_status_was_the_expected_one(self):
        r = self.results
        self.assertTrue(r["status_checks"]["preflight"])
        for check in r["status_checks"]["preflight"]:
            self.assertTrue(check["ok"], check)
            self.assertEqual(check["status"], check["expected"], check)
        seen = set()
        for run in r["load"] + r["warmup"] + r["floors"] + r["rules"]:
            self.assertEqual(set(run["counts"]), {EXPECT[run["token"]]}, run["counts"])
            self.assertEqual(sum(run["counts"].values()), run["requests"])
            self.assertGreater(run["requests"], 0)
            for kind in ("connect", "read", "write", "timeout"):
                self.assertEqual(run["errors"][kind], 0, (run["contender"], run["errors"]))
            seen.add((run["contender"], run["token"]))
        self.assertLessEqual({(c, k) for c in CONTENDERS for k in ("valid", "invalid")}, seen)
        for run in r["gateway"]:
            want = "200" if run["token"] == "valid" else "401"
            self.assertEqual({k.split(":")[0] for k in run["counts"]}, {want}, (run["gateway"], run["counts"]))
            self.assertEqual(sum(run["counts"].values()), run["requests"])
        self.assertEqual({r_["gateway"] for r_ in r["gateway"]}, {g.name for g in gateway.GATEWAYS})
        if r["native_token_cache"]["present"]:
            extra = r["load_native_cached"]
            self.assertEqual({x["token"] for x in extra}, {"valid", "invalid"})
            for run in extra:
                self.assertEqual(run["counts"], {EXPECT[run["token"]]: run["requests"]})
                self.positive(run["rps"], "native with its token cache on")
        for fr in r["fixed_rate"]:
            self.assertEqual(fr["errors"], [])
            self.assertEqual(fr["counts"], {EXPECT[fr["token"]]: fr["sent"]})
            self.assertEqual(len(fr["latencies_ms"]), fr["sent"])
        self.assertGreater(r["status_checks"]["responses_checked"], 0)

    def test_only_known_figures_are_skipped(self):
        self.assertLessEqual(set(self.results["skipped"]), ALLOWED_SKIPS)
        for why in self.results["skipped"].values():
            self.assertTrue(why)

    def test_report_and_chart(self):
        report = (Path(self.out) / "report.md").read_text()
        self.assertTrue(report.startswith("# The showdown"))
        ratios = report.index("## Ratios")
        self.assertLess(ratios, report.index("## Conditions"), "the report leads with the ratios")
        self.assertIn("node ÷ native", report)
        self.assertIn("shared by the load generator", report)
        self.assertIn("No container engine", report)
        self.assertIn("chart.svg", report)
        svg = ET.parse(Path(self.out) / "chart.svg").getroot()
        self.assertTrue(svg.tag.endswith("svg"))
        bars = [e for e in svg.iter() if e.tag.endswith("rect") and any(t.tag.endswith("title") for t in e)]
        self.assertEqual(len(bars), 4 * len(CONTENDERS), "four panels of one bar per contender")

    def test_nothing_left_running_or_behind(self):
        self.assertFalse((Path(self.out) / ".work").exists(), "the work dir is removed after a run")
        for c, pid in self.results["load_pids"].items():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue  # gone
            self.assertFalse(any(w in cmdline for w in ("jwt-validator", "wasmtime serve", "server.js")),
                             f"{c} (pid {pid}) still running: {cmdline}")


FAKE_SERVER = r'''
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"valid":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''


class StatusChecks(unittest.TestCase):
    """A server that says 200 to an invalid token fails the run; it is never counted as fast."""

    def setUp(self):
        self.port = common.free_port()
        proc = subprocess.Popen([sys.executable, "-c", FAKE_SERVER, str(self.port)], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        servers.LIVE.append(proc)
        self.srv = servers.Server("native", self.port, proc)
        self.addCleanup(servers.stop, proc)
        deadline = time.monotonic() + 10
        while True:
            try:
                http1.http_request(self.port, b"{}")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        out = tempfile.mkdtemp(prefix="showdown-unit-")
        self.addCleanup(shutil.rmtree, out, True)
        self.ctx = Ctx(cli.parse_args(["--quick", "--out", out]))
        self.ctx.tokens = {"valid": "a.b.c", "invalid": "a.b.d"}

    def test_count_check(self):
        load.check_counts({"401:false": 5}, "invalid", "here", total=5)
        with self.assertRaisesRegex(common.BenchFailure, "unexpected answers"):
            load.check_counts({"401:false": 4, "200:true": 1}, "invalid", "here", total=5)
        with self.assertRaisesRegex(common.BenchFailure, "unexpected answers"):
            load.check_counts({"200:false": 5}, "valid", "here", total=5)
        with self.assertRaisesRegex(common.BenchFailure, "4 answers counted for 5"):
            load.check_counts({"200:true": 4}, "valid", "here", total=5)

    def test_count_check_with_any_body_still_checks_the_status(self):
        load.check_counts({"401:none": 3, "401:false": 2}, "invalid", "here", total=5, expect="401:*")
        with self.assertRaisesRegex(common.BenchFailure, "unexpected answers"):
            load.check_counts({"401:none": 4, "200:none": 1}, "invalid", "here", total=5, expect="401:*")

    @unittest.skipUnless(shutil.which("wrk"), "wrk is not installed")
    def test_wrk_run_with_an_invalid_token_answered_200_fails(self):
        ok = load.wrk(self.ctx, self.srv, "valid", 2, 1)
        self.assertEqual(set(ok["counts"]), {"200:true"})
        with self.assertRaisesRegex(common.BenchFailure, "unexpected answers.*200:true"):
            load.wrk(self.ctx, self.srv, "invalid", 2, 1)

    def test_fixed_rate_counts_every_answer(self):
        r = asyncio.run(http1.fixed_rate_async(self.port, "a.b.d", 50, 0.4))
        self.assertEqual(r["errors"], [])
        self.assertEqual(r["counts"], {"200:true": r["sent"]})
        with self.assertRaises(common.BenchFailure):
            load.check_counts(r["counts"], "invalid", "fixed rate", total=r["sent"])

    def test_contract_check_refuses_a_200_for_the_invalid_token(self):
        with self.assertRaisesRegex(common.BenchFailure, "invalid-signature answered 200"):
            servers.check_contract(self.ctx, self.srv)


class Rendering(unittest.TestCase):
    """Report and chart are pure: the committed results render again, floor runs summarise, and the filter's
    configuration and ratios come out as meant."""

    def test_committed_results_render_without_a_run(self):
        out = tempfile.mkdtemp(prefix="showdown-render-")
        self.addCleanup(shutil.rmtree, out, True)
        shutil.copy(BENCH / "results" / "results.json", out)
        self.assertEqual(cli.main(["--render-only", "--out", out]), 0)
        report = (Path(out) / "report.md").read_text()
        self.assertTrue(report.startswith("# The showdown"))
        self.assertIn("node ÷ native", report)
        ET.parse(Path(out) / "chart.svg")

    def test_render_only_without_results_says_so(self):
        out = tempfile.mkdtemp(prefix="showdown-render-")
        self.addCleanup(shutil.rmtree, out, True)
        self.assertEqual(cli.main(["--render-only", "--out", out]), 1)

    def test_floor_summary_is_ours_over_floor_in_cpu_per_request(self):
        runs = [{"host_mode": "native", "server": "floor", "alg": None, "req_per_cpu_s": 100_000.0, "rps": 1.0},
                {"host_mode": "native", "server": "ours", "alg": "HS256", "req_per_cpu_s": 80_000.0, "rps": 1.0},
                {"host_mode": "native", "server": "ours", "alg": "HS256", "req_per_cpu_s": 60_000.0, "rps": 1.0},
                {"host_mode": "native", "server": "ours", "alg": "HS256", "req_per_cpu_s": 40_000.0, "rps": 1.0}]
        s = floors.summarise_floors(runs)
        self.assertEqual(s["native"]["HS256"]["ours_req_per_cpu_s"], 60_000.0)
        self.assertAlmostEqual(s["native"]["HS256"]["ours_over_floor_cpu_per_req"], 100 / 60)

    def test_dpop_rows_are_ratios_of_cpu_per_request(self):
        def run(row, cpu):
            return {"row": row, "req_per_cpu_s": cpu, "rps": 1.0, "p50_ms": 1.0, "p99_ms": 1.0}
        runs = [run("bearer HS256", 40_000.0), run("bearer ES256", 20_000.0), run("bearer ES256", 10_000.0),
                run("dpop ES256 (memory)", 6_000.0), run("dpop ES256 (redis)", 4_000.0)]
        q = dpop.summarise(runs)["ratios_cpu_per_request"]
        self.assertAlmostEqual(q["dpop_memory_over_bearer_es256"], 15_000 / 6_000)
        self.assertAlmostEqual(q["dpop_memory_over_bearer_hs256"], 40_000 / 6_000)
        self.assertAlmostEqual(q["dpop_redis_over_dpop_memory"], 6_000 / 4_000)
        self.assertIn("- DPoP (redis) ÷ DPoP (memory): **1.50×**", dpop.report_lines({"dpop": runs}))

    def test_filter_beside_jwt_authn_is_a_ratio_of_cpu_per_request(self):
        def row(cpu):
            return {"rps": 1.0, "p50_ms": 1.0, "p99_ms": 1.0, "cpu_us_per_req": cpu, "cpu_us_per_req_without_upstream": cpu}
        s = {"envoy": {"any": row(50.0)}, "envoy-jwt_authn": {"HS256": row(80.0)}, "envoy-filter": {"HS256": row(120.0)}}
        lines = gateway.report_lines({"summary": {"gateway": s}}, common.fmt_num, common.fmt_ratio)
        self.assertIn("| HS256 | **1.50×** | 2.40× | 1.60× |", lines)

    def test_rule_summary_is_no_rule_over_rule(self):
        runs = [{"server": "no-rule", "rps": 100.0, "req_per_cpu_s": 50_000.0},
                {"server": "no-rule", "rps": 300.0, "req_per_cpu_s": 40_000.0},
                {"server": "rule", "rps": 80.0, "req_per_cpu_s": 40_000.0},
                {"server": "rule", "rps": 120.0, "req_per_cpu_s": 30_000.0}]
        s = rules.summarise_rules(runs)
        self.assertAlmostEqual(s["no_rule_over_rule_rps"], 200 / 100)
        self.assertAlmostEqual(s["no_rule_over_rule_cpu"], 45_000 / 35_000)
        self.assertAlmostEqual(s["added_cpu_us_per_request"], round(1e6 / 35_000 - 1e6 / 45_000, 2))
        lines = rules.report_lines({"summary": {"rules": s}}, common.fmt_num, common.fmt_ratio)
        self.assertIn("| native, typical rule | 100 | 35,000 |", lines)

    def test_a_phase_alone_never_writes_over_the_full_report(self):
        self.assertEqual(cli.parse_args(["--only", "rules", "--quick"]).out,
                         str(common.BENCH / ".cache" / "only"))
        self.assertEqual(cli.parse_args([]).out, str(common.BENCH / "results"))

    def test_filter_configuration_holds_the_key_material_as_toml(self):
        ctx = SimpleNamespace(secret='s"e\\cret', jwks={"jwks": '{"keys":[{"kty":"oct","k":"a\'b"}]}'},
                              filter_wasm=Path("/x/jwtv_filter.wasm"))
        for alg, key, want in (("HS256", "secret", ctx.secret), ("RS256", "jwks", ctx.jwks["jwks"])):
            [f] = gateway.filter_config(ctx, alg)
            config = f["typed_config"]["config"]
            self.assertEqual(config["vm_config"]["code"]["local"]["filename"], "/x/jwtv_filter.wasm")
            toml = tomllib.loads(config["configuration"]["value"])
            self.assertEqual(toml["issuers"], [{key: want}])
            self.assertEqual(toml["server"]["token_cache_size"], gateway.JWT_CACHE_SIZE)


class EditVariant(unittest.TestCase):
    def test_one_line_changes_and_the_original_comes_back(self):
        text = (ROOT / builds.EDIT_FILE).read_text()
        for n in (1, 2, 7):
            changed = builds.edit_variant(text, n)
            a, b = text.splitlines(), changed.splitlines()
            diff = [i for i in range(max(len(a), len(b))) if i >= len(a) or i >= len(b) or a[i] != b[i]]
            self.assertEqual(len(diff), 1, f"variant {n} changes exactly one line")
        self.assertEqual(builds.edit_variant(text, 0), text)
        self.assertEqual(len(builds.edit_variant("fn f() {}\n", 3).splitlines()), 2)


if __name__ == "__main__":
    unittest.main()
