"""Scale: a 10x paper-sized dataset (52,400 pairs x 33 judges, ~1.7M labels), the default
spec fitted on it, and every query, with wall time and peak memory after each step (issue 12,
item 4). Prints ONE JSON line.

Peak memory is the process's maximum resident set (``ru_maxrss``) after each step, so it
only grows; a step that holds a pairs x judges x draws array would show as a jump. The fit's
draws default to a short run (2 chains x (100 + 100)): on this 2-core machine a converged
fit of the 10x data took 53 min on 2026-12-08 (RESULTS.md); the memory of the
likelihood, the sampler and the queries does not depend on how long the chains run, except
for the draws held (posterior: chains x draws x ~12,000 parameters).

    python3 benchmarks/scale_10x.py                       # short fit, all queries
    python3 benchmarks/scale_10x.py --chains 4 --tune 300 --draws 3000   # the default fit
                                                          # (until converged, 1,000-3,000)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, default=10, help="pairs = scale x 5,240")
    ap.add_argument("--model", default="hierarchical-pair", help="the default spec")
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--tune", type=int, default=100)
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default=None, help="a simulated file to reuse (else written)")
    ap.add_argument("--json", default=None, help="also write the JSON line here")
    args = ap.parse_args(argv)

    import numpy as np

    import bayesdissect as bd

    steps: dict[str, dict[str, float]] = {}

    def step(name: str, t0: float) -> None:
        steps[name] = {"seconds": round(time.perf_counter() - t0, 1),
                       "peak_gib": round(peak_gib(), 2)}
        print(f"{name}: {steps[name]}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    path = Path(args.data) if args.data else (
        Path(tempfile.gettempdir()) / f"bd-scale{args.scale}-seed{args.seed}.parquet")
    if not path.exists():
        bd.simulate(path, n_pairs=5240 * args.scale, seed=args.seed)
    step("simulate", t0)
    t0 = time.perf_counter()
    data = bd.load(path)
    step("load", t0)
    n_labels = int(np.isfinite(data["y"].values).sum())

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bd.fit(data, args.model, chains=args.chains, tune=args.tune, draws=args.draws,
                     seed=args.seed, progressbar=False, warn=False)
    step("fit", t0)
    d = fit.diagnostics
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fn in (
                ("effects", lambda: bd.effects(fit)),
                ("similarity", lambda: bd.similarity(fit)),
                ("clusters", lambda: bd.clusters(fit)),
                ("ppc", lambda: bd.ppc(fit)),
                ("loo", lambda: bd.loo(fit)),
                ("exploitability", lambda: bd.exploitability(fit)),
                ("save", lambda: fit.save(Path(tempfile.gettempdir()) / "bd-scale-fit.nc"))):
            t0 = time.perf_counter()
            fn()
            step(name, t0)
    out = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                   f"{platform.python_implementation()} {platform.python_version()}",
        "versions": {m: __import__(m).__version__ for m in ("numpy", "jax", "pymc", "nutpie")},
        "data": {"pairs": int(data.sizes["pair"]), "judges": int(data.sizes["judge"]),
                 "labels": n_labels, "file": str(path)},
        "settings": {k: fit.settings[k] for k in ("sampler", "chains", "draws", "min_draws",
                                                  "tune", "seed")},
        "model": fit.spec.name, "n_parameters": d.get("n_parameters"),
        "fit": {k: d.get(k) for k in ("draws", "compile_seconds", "tune_seconds",
                                      "draw_seconds", "sampling_seconds",
                                      "diagnostics_seconds", "grad_evals_per_second",
                                      "mean_steps_per_draw", "max_rhat", "min_ess_bulk",
                                      "min_ess_tail", "divergences", "worst_rhat",
                                      "worst_ess_bulk")},
        "steps": steps,
        "peak_gib": round(peak_gib(), 2),
        "load_average": os.getloadavg(),
    }
    line = json.dumps(out, default=float)
    print(line)
    if args.json:
        Path(args.json).write_text(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
