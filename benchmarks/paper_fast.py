"""The paper's model at the paper's settings, all cells at once: time, convergence, agreement.

``bayesdissect.model.percell.fit_per_cell`` fits the ``paper`` spec (independent
Laplace(0, 0.1) weights per judge x group, no bias) as one NUTS problem per cell, every cell
and chain together in one vectorised JAX loop, with the paper's settings (4 chains x (500
warm-up + 2,000 draws)). This script fits the bundled simulated paper-sized data (33 judges x
16 groups: the 11 scenarios and the 5 query-specific cases = 528 cells) and prints ONE JSON
line: times per phase, settings, versions, the load average, max R-hat and min bulk / tail
ESS over cells, divergences, and, with ``--agree N``, the agreement of N sampled cells with
``benchmarks/paper_pipeline.py``'s own numpyro runs of the same cells (one run each, as the
paper's code makes it: a new MCMC object, ``PRNGKey(0)``): max |difference of posterior
means| / its Monte Carlo standard error (both sides' sd / sqrt(bulk ESS)).

``--folds 10`` runs the paper's 10 folds of 90% (the estimate is the mean of the fold
posterior means); ``--judges N`` fits the first N judges only, e.g. to extrapolate the folds
run: the loop's cost grows with the number of chains.

Run (one benchmark at a time on this shared machine; JAX_PLATFORMS=cpu is set here):
    python3 benchmarks/paper_fast.py --agree 3
    python3 benchmarks/paper_fast.py --folds 10 --thin 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402


def numpyro_cell(x: np.ndarray, y: np.ndarray) -> dict:
    """One run of the paper's numpyro fit (paper_pipeline.paper_model, its settings), with
    the posterior mean, sd and bulk ESS of each weight."""
    import jax
    from numpyro.infer import MCMC, NUTS

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from paper_pipeline import paper_model

    from bayesdissect.model.diagnostics import convergence_arrays

    t0 = time.perf_counter()
    mcmc = MCMC(NUTS(paper_model), num_warmup=500, num_samples=2000, num_chains=4,
                chain_method="sequential", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), np.asarray(x, np.float32), np.asarray(y).astype(np.int32))
    a = np.asarray(mcmc.get_samples(group_by_chain=True)["alpha"], dtype=float)
    conv = convergence_arrays(a)
    return {"mean": a.mean((0, 1)), "sd": a.std((0, 1), ddof=1), "ess": conv["ess_bulk"],
            "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="demo", help="what bayesdissect.load reads (default demo)")
    ap.add_argument("--judges", type=int, default=None, help="fit only the first N judges")
    ap.add_argument("--groups", default="scenarios+cases")
    ap.add_argument("--folds", type=int, default=None)
    ap.add_argument("--thin", type=int, default=1)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parameterization", default="auto", choices=["auto", "direct"])
    ap.add_argument("--agree", type=int, default=0, help="cells to rerun with numpyro")
    ap.add_argument("--agree-seed", type=int, default=0, help="seed of the cell sample")
    ap.add_argument("--save", default=None, help="save the fit here (netCDF)")
    ap.add_argument("--json", default=None, help="also write the JSON line here")
    args = ap.parse_args(argv)

    import jax
    import numpyro

    import bayesdissect as bd
    from bayesdissect.model.percell import fit_per_cell

    load0 = os.getloadavg()
    data = bd.load(args.data)
    judges = [str(j) for j in data["judge"].values]
    if args.judges:
        judges = judges[:args.judges]
    passes: list[tuple[float, int, int, int]] = []
    t0 = time.perf_counter()
    fit = fit_per_cell(data, "paper", chains=args.chains, draws=args.draws, tune=args.tune,
                       seed=args.seed, folds=args.folds, groups=args.groups, judges=judges,
                       thin=args.thin, parameterization=args.parameterization,
                       progress=lambda n, slowest, total, active: passes.append(
                           (time.perf_counter() - t0, n, slowest, active)))
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    d = fit.diagnostics
    cs = fit.idata["cell_stats"].to_dataset()
    keys = ("prepare_seconds", "compile_seconds", "tune_seconds", "draw_seconds",
            "sampling_seconds", "diagnostics_seconds", "total_seconds")
    result: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), "
                   f"{platform.python_implementation()} {platform.python_version()}",
        "load_average_before": [round(v, 2) for v in load0],
        "load_average_after": [round(v, 2) for v in load1],
        "versions": {"jax": jax.__version__, "numpyro": numpyro.__version__,
                     "numpy": np.__version__, "bayesdissect": bd.__version__},
        "jax_platform": jax.devices()[0].platform,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "settings": {k: fit.settings[k] for k in
                     ("chains", "draws", "tune", "seed", "folds", "groups", "thin",
                      "target_accept", "max_tree_depth", "parameterization")},
        "cells": int(cs["divergences"].size), "judges": len(judges),
        "groups": [str(g) for g in cs["group"].values],
        "chains_total": fit.settings["n_chains_total"],
        "wall_seconds": wall,
        **{k: d[k] for k in keys if k in d},
        "loop_passes": fit.settings["loop_passes"], "loop_efficiency": d["loop_efficiency"],
        "grad_evals_tune": d["grad_evals_tune"], "grad_evals_draw": d["grad_evals_draw"],
        "max_rhat": d["max_rhat"], "min_ess_bulk": d["min_ess_bulk"],
        "min_ess_tail": d["min_ess_tail"], "divergences": d["divergences"],
        "max_treedepth_hits": d["max_treedepth_hits"],
        "mean_steps_per_draw": d["mean_steps_per_draw"], "mean_step_size": d["step_size"],
        "worst_rhat": d["worst_rhat"][:3], "worst_ess_bulk": d["worst_ess_bulk"][:3],
        "cells_rhat_over_1.01": int((cs["rhat"].max("property") > 1.01).sum()),
        "cells_ess_bulk_under_400": int((cs["ess_bulk"].min("property") < 400).sum()),
        "compactions": fit.settings["compactions"],
        "progress_seconds_passes_slowest_active": [
            [round(t, 1), n, k, a] for t, n, k, a in passes[::max(1, len(passes) // 10)]],
    }
    if args.agree:
        result["agreement"] = agreement(fit, data, args.agree, args.agree_seed)
    if args.save:
        fit.save(args.save)
    line = json.dumps(result, default=float)
    print(line)
    if args.json:
        Path(args.json).write_text(line + "\n")
    return 0


def agreement(fit, data, n_cells: int, seed: int) -> dict:  # noqa: ANN001
    """Rerun ``n_cells`` sampled cells with the paper's numpyro code; compare the means."""
    from bayesdissect.model.percell import cell_design

    if fit.settings["folds"] not in (None, 1):
        return {"skipped": "agreement is checked on a run without folds"}
    post = fit.posterior["w_cell"]
    judges = [str(j) for j in post["judge"].values]
    groups = [str(g) for g in post["group"].values]
    design = cell_design(data.sel(judge=judges), groups)
    ours_mean = post.mean(("chain", "draw")).values
    ours_sd = post.std(("chain", "draw"), ddof=1).values
    ours_ess = fit.idata["cell_stats"]["ess_bulk"].values
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(judges) * len(groups), size=n_cells, replace=False)
    rows, zmax, dmax = [], 0.0, 0.0
    for p in picks:
        j, g = divmod(int(p), len(groups))
        lab = design.sign[g][:, j] != 0
        x = design.x[g][lab]
        y = (design.sign[g][lab, j] > 0).astype(np.int32)
        ref = numpyro_cell(x, y)
        se = np.sqrt(ours_sd[j, g] ** 2 / ours_ess[j, g] + ref["sd"] ** 2 / ref["ess"])
        diff = np.abs(ours_mean[j, g] - ref["mean"])
        z = diff / se
        rows.append({"judge": judges[j], "group": groups[g], "pairs": int(lab.sum()),
                     "max_abs_diff": float(diff.max()), "max_diff_over_se": float(z.max()),
                     "rms_diff_over_se": float(np.sqrt(np.mean(z ** 2))),
                     "numpyro_seconds": ref["seconds"]})
        zmax, dmax = max(zmax, float(z.max())), max(dmax, float(diff.max()))
    n_values = n_cells * ours_mean.shape[-1]
    return {"cells": rows, "max_abs_diff": dmax, "max_diff_over_se": zmax,
            "values_compared": n_values,
            "note": "diff / se of independent runs is ~N(0, 1) per value; the max over "
                    f"{n_values} values of |N(0, 1)| is typically "
                    f"{np.sqrt(2 * np.log(n_values)):.1f}"}


if __name__ == "__main__":
    sys.exit(main())
