#!/usr/bin/env python3
"""What N replicas of jwt-validator cost the identity provider: key-set fetches over time, simulated.

    python3 bench/idp_load.py [--replicas 2,10,100] [--max-age 600] [--hours 24] [--seed 1] [--json]

A deterministic model (same seed, same figures) of the schedule in crates/server/src/keys/remote.rs:
- start-up: every replica fetches when it starts (all at once by default: a rollout, a restart);
- refresh: then again after each TTL, the IdP's `Cache-Control: max-age` clamped to [min, max] TTL
  (the default TTL without one); with jitter each wait is drawn in [0.8, 1.0] x TTL
  (crates/server/src/keys/jitter.rs), without it exactly TTL;
- rotation: the IdP publishes a new key, and later tokens signed with it reach every replica at the
  same moment. A replica that fetched since the publication already has it; any other refetches
  at once, or when the cooldown since its last fetch (of any kind) has passed: at most one extra
  fetch per replica. The unknown-kid refetch does not move the refresh schedule (as in remote.rs).

Figures per (replicas, jitter): fetches per hour in the steady state, the busiest second in the steady
state, the busiest second at start-up, and for a rotation the extra fetches and the busiest second
they make. `python3 -m unittest bench.test_idp_load` checks the model.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass, replace

#: The earliest point of a jittered wait, as in crates/server/src/keys/jitter.rs.
EARLIEST = 0.8


@dataclass(frozen=True)
class Schedule:
    """The refresh settings of every replica (defaults: jwt-validator's)."""

    max_age: float | None = None  # the IdP's Cache-Control max-age, seconds; None: not sent
    default_ttl: float = 600.0
    min_ttl: float = 60.0
    max_ttl: float = 86400.0
    cooldown: float = 30.0
    jitter: bool = True

    def ttl(self) -> float:
        if self.max_age is None:
            return self.default_ttl
        return min(max(self.max_age, self.min_ttl), self.max_ttl)

    def wait(self, rng: random.Random) -> float:
        ttl = self.ttl()
        return ttl * (EARLIEST + (1 - EARLIEST) * rng.random()) if self.jitter else ttl


@dataclass(frozen=True)
class Rotation:
    """A new key: published at `published`, first used in tokens at `used` (seconds)."""

    published: float
    used: float


def replica_fetches(
    schedule: Schedule,
    start: float,
    horizon: float,
    rng: random.Random,
    rotation: Rotation | None = None,
) -> tuple[list[float], float | None]:
    """One replica's fetch times in [start, horizon), and its unknown-kid refetch if it made one."""
    periodic = []
    t = start
    while t < horizon:
        periodic.append(t)
        t += schedule.wait(rng)
    if rotation is None or rotation.used < start:
        return periodic, None
    if any(rotation.published <= p <= rotation.used for p in periodic):
        return periodic, None  # a refresh picked the new key up before any token needed it
    last = max(p for p in periodic if p <= rotation.used)
    refetch = max(rotation.used, last + schedule.cooldown)
    if any(rotation.used < p <= refetch for p in periodic) or refetch >= horizon:
        return periodic, None  # within the cooldown a refresh came first
    return sorted(periodic + [refetch]), refetch


def simulate(
    replicas: int,
    schedule: Schedule,
    hours: float,
    seed: int,
    rollout: float = 0.0,
    rotation: Rotation | None = None,
) -> dict:
    """Every replica's fetches; replicas start evenly over `rollout` seconds (0: all at once)."""
    horizon = hours * 3600
    master = random.Random(seed)
    fetches: list[float] = []
    refetches: list[float] = []
    for i in range(replicas):
        rng = random.Random(master.getrandbits(64))
        start = rollout * i / replicas
        times, refetch = replica_fetches(schedule, start, horizon, rng, rotation)
        fetches.extend(times)
        if refetch is not None:
            refetches.append(refetch)
    fetches.sort()
    return {"fetches": fetches, "refetches": sorted(refetches), "horizon": horizon}


def busiest_second(times: list[float], start: float = 0.0, end: float = float("inf")) -> int:
    """The most fetches in any one-second window starting at a fetch, within [start, end)."""
    window = [t for t in times if start <= t < end]
    best, lo = 0, 0
    for hi, t in enumerate(window):
        while window[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def figures(replicas: int, schedule: Schedule, hours: float, seed: int) -> dict:
    """The figures of one row: steady state from two TTLs on, and a rotation in the middle."""
    ttl = schedule.ttl()
    run = simulate(replicas, schedule, hours, seed)
    steady_from = 2 * ttl
    steady = [t for t in run["fetches"] if t >= steady_from]
    steady_hours = (run["horizon"] - steady_from) / 3600
    # Off the refresh grid on purpose: a rotation lands at an arbitrary moment.
    used = round(run["horizon"] / 2 + 0.37 * ttl, 3)
    rotations = {}
    for name, lead in (("used_at_once", 0.0), ("published_a_ttl_before", ttl)):
        rotated = simulate(
            replicas, schedule, hours, seed, rotation=Rotation(used - lead, used)
        )
        extra = rotated["refetches"]
        rotations[name] = {
            "extra_fetches": len(extra),
            "busiest_second": busiest_second(extra),
            "within_the_cooldown": sum(1 for t in extra if t < used + schedule.cooldown + 1),
        }
    return {
        "replicas": replicas,
        "jitter": schedule.jitter,
        "ttl_s": ttl,
        "fetches_per_hour": round(len(steady) / steady_hours, 1),
        "busiest_second_steady": busiest_second(steady),
        "busiest_second_startup": busiest_second(run["fetches"], 0, 1),
        "rotation": rotations,
    }


def table(rows: list[dict]) -> str:
    head = (
        "| replicas | jitter | fetches per hour | busiest second, steady | busiest second, start-up "
        "| rotation, key used at once: extra fetches (busiest second) "
        "| rotation, key published a TTL before use |\n"
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |\n"
    )
    lines = []
    for r in rows:
        now, ahead = r["rotation"]["used_at_once"], r["rotation"]["published_a_ttl_before"]
        lines.append(
            f"| {r['replicas']} | {'on' if r['jitter'] else 'off'} | {r['fetches_per_hour']:g} "
            f"| {r['busiest_second_steady']} | {r['busiest_second_startup']} "
            f"| {now['extra_fetches']} ({now['busiest_second']}) | {ahead['extra_fetches']} |"
        )
    return head + "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", default="2,10,100", help="comma-separated replica counts")
    parser.add_argument("--max-age", type=float, default=None, help="the IdP's max-age (s)")
    parser.add_argument("--default-ttl", type=float, default=600.0)
    parser.add_argument("--min-ttl", type=float, default=60.0)
    parser.add_argument("--max-ttl", type=float, default=86400.0)
    parser.add_argument("--cooldown", type=float, default=30.0)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="JSON instead of a Markdown table")
    args = parser.parse_args(argv)
    try:
        counts = [int(n) for n in args.replicas.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--replicas: {args.replicas!r} is not a list of whole numbers")
    if not counts or min(counts) < 1:
        parser.error("--replicas: give at least one count, each 1 or more")
    base = Schedule(
        max_age=args.max_age,
        default_ttl=args.default_ttl,
        min_ttl=args.min_ttl,
        max_ttl=args.max_ttl,
        cooldown=args.cooldown,
    )
    rows = [
        figures(n, replace(base, jitter=jitter), args.hours, args.seed)
        for n in counts
        for jitter in (False, True)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(
            f"TTL {base.ttl():g} s, cooldown {base.cooldown:g} s, {args.hours:g} h, seed {args.seed}; "
            "replicas all started at once\n"
        )
        print(table(rows), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
