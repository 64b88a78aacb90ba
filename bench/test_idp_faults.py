#!/usr/bin/env python3
"""A short pass of the fault-figure script (bench/idp_faults.py): the native binary, two modes,
a few probes each; about ten seconds.

    python3 -m unittest bench.test_idp_faults        (from the repository root, after a cargo build)
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import unittest
from pathlib import Path

from bench import idp_faults


class KeyServerModes(unittest.TestCase):
    def test_each_failure_mode_answers_as_named_and_every_request_is_counted(self):
        key = idp_faults.Key("k1")
        expected = {"normal": 200, "500": 500, "garbage": 200, "wrong_json": 200, "oversized": 200,
                    "empty": 200}
        for mode, status in expected.items():
            ks = idp_faults.KeyServer(idp_faults.jwks(key), mode)
            try:
                got, _ = idp_faults.get(ks.port, idp_faults.JWKS_PATH, "x")
                self.assertEqual(got, status, mode)
                self.assertEqual(ks.count(), 1, mode)
            finally:
                ks.close()
        ks = idp_faults.KeyServer(idp_faults.jwks(key), "down")
        try:
            self.assertEqual(idp_faults.get(ks.port, idp_faults.JWKS_PATH, "x")[0], 0)
            self.assertEqual(ks.count(), 1)
        finally:
            ks.close()


class NativeShortPass(unittest.TestCase):
    def run_script(self, *extra: str) -> list[dict]:
        # The debug build `cargo test` just made (scripts/test), never a release binary left over.
        native = idp_faults.default_paths()["native"].parent.parent / "debug" / "jwt-validator"
        self.assertTrue(native.is_file(), f"{native} is missing: cargo build -p jwtv-server")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "rows.json"
            with contextlib.redirect_stdout(io.StringIO()) as table, contextlib.redirect_stderr(io.StringIO()):
                code = idp_faults.main(["--shells", "native", "--native", str(native), "--probes", "3",
                                        "--json", str(out), *extra])
            self.assertEqual(code, 0)
            self.assertIn("| native | down |", table.getvalue())
            return json.loads(out.read_text())

    def test_a_seed_serves_valid_tokens_through_an_outage_and_a_spray_stays_bounded(self):
        down, spray = self.run_script("--modes", "down,spray")
        # The seed holds the signing key: no 503 while the provider is down.
        self.assertEqual(down["statuses"], {"200": 3})
        self.assertTrue(down["seed"])
        # Unknown kids are refused, and within the cooldown they make no fetch of their own.
        self.assertEqual(spray["statuses"], {"401": 3})
        self.assertLessEqual(spray["idp_requests"], 1)

    def test_without_a_seed_an_outage_answers_503_to_valid_tokens(self):
        (down,) = self.run_script("--modes", "down", "--no-seed")
        self.assertEqual(down["statuses"], {"503": 3})
        self.assertGreaterEqual(down["idp_requests"], 1)


if __name__ == "__main__":
    unittest.main()
