#!/usr/bin/env python3
"""Tests of the identity-provider load model (bench/idp_load.py); a second or so.

    python3 -m unittest bench.test_idp_load        (from the repository root)
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import unittest

from bench import idp_load
from bench.idp_load import Rotation, Schedule, busiest_second, figures, replica_fetches, simulate


class Schedules(unittest.TestCase):
    def test_max_age_is_clamped_to_the_ttl_bounds_and_defaults_without_one(self):
        self.assertEqual(Schedule(max_age=5).ttl(), 60)
        self.assertEqual(Schedule(max_age=10**6).ttl(), 86400)
        self.assertEqual(Schedule(max_age=300).ttl(), 300)
        self.assertEqual(Schedule().ttl(), 600)

    def test_jittered_waits_stay_within_four_fifths_of_the_ttl_and_the_ttl(self):
        rng = random.Random(3)
        waits = [Schedule().wait(rng) for _ in range(2000)]
        self.assertTrue(all(480 <= w <= 600 for w in waits))
        self.assertLess(min(waits), 485)
        self.assertGreater(max(waits), 595)
        self.assertEqual(Schedule(jitter=False).wait(rng), 600)

    def test_without_jitter_replicas_started_together_fetch_in_lockstep(self):
        row = figures(10, Schedule(jitter=False), hours=6, seed=1)
        self.assertEqual(row["fetches_per_hour"], 60)  # 10 replicas x 6 per hour
        self.assertEqual(row["busiest_second_steady"], 10)

    def test_jitter_spreads_the_refreshes_for_at_most_a_quarter_more_fetches(self):
        row = figures(100, Schedule(), hours=6, seed=1)
        self.assertGreater(row["fetches_per_hour"], 600)
        self.assertLessEqual(row["fetches_per_hour"], 600 * 1.25)
        self.assertLess(row["busiest_second_steady"], 20)
        self.assertEqual(row["busiest_second_startup"], 100, "the first fetch is not delayed")

    def test_a_rotation_costs_at_most_one_refetch_per_replica(self):
        for jitter in (False, True):
            schedule = Schedule(jitter=jitter)
            row = figures(50, schedule, hours=4, seed=2)
            at_once = row["rotation"]["used_at_once"]
            self.assertLessEqual(at_once["extra_fetches"], 50)
            self.assertEqual(at_once["within_the_cooldown"], at_once["extra_fetches"])
            self.assertEqual(row["rotation"]["published_a_ttl_before"]["extra_fetches"], 0)

    def test_a_refetch_waits_for_the_cooldown_since_the_last_fetch(self):
        schedule = Schedule(jitter=False)
        # Periodic fetches at 0, 600, 1200...; the new kid is used 10 s after the 600 s refresh.
        times, refetch = replica_fetches(
            schedule, 0, 3600, random.Random(0), Rotation(published=605, used=610)
        )
        self.assertEqual(refetch, 630)
        self.assertIn(630, times)
        # Published before the 600 s refresh: that refresh already had it.
        _, refetch = replica_fetches(
            schedule, 0, 3600, random.Random(0), Rotation(published=590, used=610)
        )
        self.assertIsNone(refetch)

    def test_the_same_seed_gives_the_same_run(self):
        a = simulate(20, Schedule(), hours=2, seed=9)
        b = simulate(20, Schedule(), hours=2, seed=9)
        self.assertEqual(a, b)
        self.assertNotEqual(a, simulate(20, Schedule(), hours=2, seed=10))

    def test_busiest_second_counts_a_sliding_window(self):
        self.assertEqual(busiest_second([0.0, 0.5, 0.99, 1.0, 5.0]), 3)
        self.assertEqual(busiest_second([]), 0)

    def test_the_command_prints_a_table_and_json(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            idp_load.main(["--replicas", "2", "--hours", "1"])
        self.assertIn("| 2 | on |", out.getvalue())
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            idp_load.main(["--replicas", "3", "--hours", "1", "--json"])
        rows = json.loads(out.getvalue())
        self.assertEqual([r["jitter"] for r in rows], [False, True])


if __name__ == "__main__":
    unittest.main()
