"""Benchmark: the what-if queries of issue 13 on a paper-sized posterior.

The posterior is the one of ``queries_full.py`` (the bundled demo data's true weights plus
Gaussian noise in every term: 33 judges, 11 groups, 29 properties, 5,045 pairs), here at
the default sampler size of 4 x 1,800 draws. Timed, with the peak of memory allocated
during each step (tracemalloc) and the process's peak RSS:

* whatif for all judges (two interventions: ``lengthy`` = 0, ``no severe errors`` += 1);
* exploitability, all 33 judges x 29 properties, at its default (2,000 evenly thinned
  draws) and with ``--all-draws`` also on every draw;
* explain one pair for all judges; departs for every judge vs the human.

Targets (issue 13): whatif <= 5 s, exploitability <= 30 s, explain <= 2 s.

Run: ``python3 benchmarks/whatif_full.py [--draws 1800] [--all-draws]``.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from queries_full import build, step  # noqa: E402  (the same paper-sized posterior)

TARGETS = {"whatif, all judges": 5.0, "exploitability, 33 x 29 (default draws)": 30.0,
           "explain one pair, all judges": 2.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--draws", type=int, default=1800)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--all-draws", action="store_true",
                    help="also time exploitability on every draw (max_draws=None)")
    args = ap.parse_args()

    import bayesdissect as bd

    t0 = time.perf_counter()
    fit = build(args.chains, args.draws, args.noise, args.seed)
    s = args.chains * args.draws
    pair = int(fit.data.pair.values[0])
    print(f"posterior: {s} draws, {fit.data.sizes['judge']} judges, 11 groups, "
          f"{fit.data.sizes['property']} properties; data {fit.data.sizes['pair']} pairs; "
          f"built in {time.perf_counter() - t0:.1f} s")
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"xarray {xr.__version__}, {platform.machine()}")
    res: list = []
    wi = step("whatif, all judges", lambda: bd.whatif(
        fit, {"lengthy": 0}, shift={"no severe errors": 1}), res)
    step("whatif, all judges, by group", lambda: bd.whatif(
        fit, {"lengthy": 0}, shift={"no severe errors": 1}, by_group=True), res)
    ex = step("exploitability, 33 x 29 (default draws)", lambda: bd.exploitability(fit), res)
    if args.all_draws:
        step("exploitability, 33 x 29 (every draw)",
             lambda: bd.exploitability(fit, max_draws=None), res)
    step("explain one pair, all judges", lambda: bd.explain(fit, pair), res)
    dp = step("departs, 32 judges vs human", lambda: bd.departs(fit), res)
    print(f"rows: whatif {len(wi)} ({wi.attrs['n_intervened']} pairs intervened), "
          f"exploitability {len(ex)} on {ex.attrs['n_draws']} draws, departs {len(dp)}")
    for name, dt, _ in res:
        if name in TARGETS:
            ok = "ok" if dt <= TARGETS[name] else "OVER"
            print(f"target {name}: {dt:.2f} s <= {TARGETS[name]:.0f} s: {ok}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
