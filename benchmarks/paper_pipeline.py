"""The paper's own fitting pipeline, timed and scored against the truth, beside ours.

What the paper's released code does (dataset.md §6; GAIR-NLP/Preference-Dissection,
``visualization/add_new_model_p3_bayeslr.py`` and ``app.py``), re-implemented here:

* one independent Bayesian logistic regression per (judge, group): y ~ Bernoulli(sigmoid(X a)),
  no intercept, a_k ~ Laplace(0, 0.1), X float32 (JAX default precision);
* numpyro NUTS, 500 warm-up + 2,000 draws, 4 chains, ``PRNGKey(0)``, no progress bar; a new
  ``MCMC`` object per run, as the released code builds one per call (so each run pays its own
  JIT compile, as theirs does);
* 10 folds: ``np.random.seed(0)``, shuffle the group's pairs once; fold i drops the block
  starting at ``int(i / 10 * N)`` of length ``int(N / 10)``; fit on the rest; the estimate is
  the mean of the 10 posterior means. The paper keeps no intervals; for coverage we score
  the mean of the 10 folds' 5% and 95% posterior quantiles (the same averaging applied to
  the interval ends).

Chains: the released code asks for 4 parallel host devices; on a plain CPU numpyro has one
device and runs them one after another, so ``--chain-method sequential`` is the default
here (``vectorized`` runs the 4 chains as one batched chain).

It is run on a seeded sample of scenario cells (judge x group) of the bundled simulated
demo data; each run is timed and the mean time per run is extrapolated to the paper's
5,280 runs (33 judges x 16 groups x 10 folds). Beside it, on the same data and machine:
our ``paper`` spec fitted jointly (all 363 scenario cells in one NUTS run) and our
``hierarchical`` spec; for each, wall time, and cell-level RMSE and 90% interval coverage
against the simulator's true weights (on the sampled cells, and on all cells for the joint
fits). Saved fits can be reused with ``--paper-fit`` / ``--hier-fit`` (their recorded wall
time is used); otherwise they are fitted here and saved to ``--save-dir``.

Run (two benchmarks never at once on this shared machine):
    python3 benchmarks/paper_pipeline.py --cells 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

RUNS_IN_PAPER = 33 * 16 * 10


def paper_model(x, y=None, scale: float = 0.1):  # noqa: ANN001, ANN201
    """The paper's model: Laplace(0, scale) weights, no intercept, Bernoulli-logit."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    alpha = numpyro.sample("alpha", dist.Laplace(jnp.zeros(x.shape[1]), scale))
    logits = jnp.dot(x, alpha)
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("obs", dist.Bernoulli(logits=logits), obs=y)


def paper_fit_once(x: np.ndarray, y: np.ndarray, chain_method: str) -> tuple[np.ndarray, ...]:
    """One run as the released code does it: posterior mean and 5%/95% quantiles."""
    import jax
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(NUTS(paper_model), num_warmup=500, num_samples=2000, num_chains=4,
                chain_method=chain_method, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), x, y)
    a = np.asarray(mcmc.get_samples()["alpha"], dtype=float)
    return a.mean(0), np.quantile(a, 0.05, axis=0), np.quantile(a, 0.95, axis=0)


def paper_cell(x: np.ndarray, y: np.ndarray, folds: int, chain_method: str) -> dict:
    """The 10-fold averaged estimate for one cell, with the time of each run."""
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y).astype(np.int32)
    np.random.seed(0)
    idx = np.arange(len(x))
    np.random.shuffle(idx)
    x, y = x[idx], y[idx]
    n = len(x)
    means, lows, highs, times = [], [], [], []
    for i in range(folds):
        if folds > 1:
            start, size = int(i / folds * n), int(n / folds)
            keep = np.r_[0:start, start + size:n]
        else:
            keep = np.arange(n)
        t0 = time.perf_counter()
        m, lo, hi = paper_fit_once(x[keep], y[keep], chain_method)
        times.append(time.perf_counter() - t0)
        means.append(m)
        lows.append(lo)
        highs.append(hi)
    return {"mean": np.mean(means, 0), "lower": np.mean(lows, 0), "upper": np.mean(highs, 0),
            "run_seconds": times, "n_pairs": n}


def score(mean: np.ndarray, lower: np.ndarray, upper: np.ndarray, true: np.ndarray) -> dict:
    """RMSE of the point estimate and share of true weights inside the interval."""
    return {"rmse": float(np.sqrt(np.mean((mean - true) ** 2))),
            "coverage90": float(np.mean((true >= lower) & (true <= upper))),
            "n_values": int(true.size)}


def fit_summary(fit, judges: list[str], groups: list[str]) -> dict:  # noqa: ANN001
    """Posterior mean and 90% interval of the cell weights w[judge, group, property]."""
    from bayesdissect.queries.weights import cell_weights

    post = fit.draws
    w = cell_weights(post)
    w = w.sel(judge=judges, group=groups).transpose("chain", "draw", "judge", "group",
                                                    "property")
    flat = w.values.reshape((-1,) + w.shape[2:])
    return {"mean": flat.mean(0), "lower": np.quantile(flat, 0.05, axis=0),
            "upper": np.quantile(flat, 0.95, axis=0)}


def get_fit(kind: str, path: str | None, save_dir: Path, data, args) -> tuple:  # noqa: ANN001
    """Load a saved fit or fit it here; returns (fit, wall seconds, where it came from)."""
    import bayesdissect as bd

    if path:
        f = bd.load_fit(path)
        secs = f.diagnostics.get("total_seconds")
        return f, float(secs) if secs is not None else float("nan"), f"reused {path}"
    kw = {}
    if args.chains:
        kw["chains"] = args.chains
    if args.draws:
        kw["draws"] = args.draws
    if args.tune:
        kw["tune"] = args.tune
    t0 = time.perf_counter()
    f = bd.fit(data, model=kind, seed=1, progressbar=False, **kw)
    secs = time.perf_counter() - t0
    out = save_dir / f"paper_pipeline_{kind}.nc"
    f.save(out)
    return f, secs, f"fitted here, saved to {out}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=4, help="scenario cells to run the paper "
                    "method on (default 4 = 40 runs)")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--cell-seed", type=int, default=0, help="seed of the cell sample")
    ap.add_argument("--chain-method", default="sequential",
                    choices=["sequential", "vectorized", "parallel"])
    ap.add_argument("--paper-fit", default=None, help="reuse a saved `paper` spec fit")
    ap.add_argument("--hier-fit", default=None, help="reuse a saved `hierarchical` fit")
    ap.add_argument("--skip-ours", action="store_true", help="only the paper method")
    ap.add_argument("--skip-paper-method", action="store_true",
                    help="skip the paper method (score our fits on the same sampled cells)")
    ap.add_argument("--kinds", default="hierarchical,paper",
                    help="which of our specs to fit beside it, in this order")
    ap.add_argument("--reuse-paper-method", default=None, metavar="JSON",
                    help="reuse the paper method's per-cell results saved by an earlier run "
                         "(save-dir/paper_method_cells.json) instead of rerunning it")
    ap.add_argument("--chains", type=int, default=None)
    ap.add_argument("--draws", type=int, default=None)
    ap.add_argument("--tune", type=int, default=None)
    ap.add_argument("--save-dir", default="/tmp/bd-paper-pipeline")
    ap.add_argument("--json", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)

    import bayesdissect as bd
    from bayesdissect.data.simulate import load_truth

    save_dir = Path(args.save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    data = bd.load("demo")
    truth = load_truth("demo")
    judges_all = [str(j) for j in truth["judge"].values]
    groups_all = [str(g) for g in truth["group"].values]
    rng = np.random.default_rng(args.cell_seed)
    picks = rng.choice(len(judges_all) * len(groups_all), size=args.cells, replace=False)
    cells = [(judges_all[p // len(groups_all)], groups_all[p % len(groups_all)]) for p in picks]
    props = [str(p) for p in truth["property"].values]
    x_all = data["x"].sel(property=props).values
    group_of = np.asarray(data["group"].values).astype(str)

    import jax
    import numpyro

    result: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), "
                   f"{platform.python_implementation()} {platform.python_version()}",
        "versions": {"numpyro": numpyro.__version__, "jax": jax.__version__,
                     "bayesdissect": bd.__version__},
        "settings": {"cells": cells, "folds": args.folds, "chain_method": args.chain_method,
                     "num_warmup": 500, "num_samples": 2000, "num_chains": 4,
                     "prior": "Laplace(0, 0.1)", "key": "PRNGKey(0)"},
    }
    # ---- the paper's method on the sampled cells
    pm_mean, pm_lo, pm_hi, true_cells, run_times = [], [], [], [], []
    if args.skip_paper_method:
        true_cells = [truth["w"].sel(judge=j, group=g, property=props).values for j, g in cells]
        run_times, paper_wall = [float("nan")], float("nan")
        pm_mean = pm_lo = pm_hi = [[float("nan")] * len(props)] * len(cells)
    elif args.reuse_paper_method:
        saved = json.loads(Path(args.reuse_paper_method).read_text())
        cells = [tuple(c) for c in saved["cells"]]
        result["settings"]["cells"] = cells
        result["settings"]["reused_paper_method"] = args.reuse_paper_method
        pm_mean, pm_lo, pm_hi = saved["mean"], saved["lower"], saved["upper"]
        run_times = saved["run_seconds"]
        paper_wall = saved["wall_seconds"]
        true_cells = [truth["w"].sel(judge=j, group=g, property=props).values for j, g in cells]
    else:
        t_paper = time.perf_counter()
        for j, g in cells:
            keep = (group_of == g) & np.isfinite(data["y"].sel(judge=j).values)
            res = paper_cell(x_all[keep], data["y"].sel(judge=j).values[keep], args.folds,
                             args.chain_method)
            pm_mean.append(res["mean"].tolist())
            pm_lo.append(res["lower"].tolist())
            pm_hi.append(res["upper"].tolist())
            true_cells.append(truth["w"].sel(judge=j, group=g, property=props).values)
            run_times.extend(res["run_seconds"])
            print(f"paper method {j} / {g}: {res['n_pairs']} pairs, runs "
                  f"{np.round(res['run_seconds'], 1).tolist()} s", file=sys.stderr, flush=True)
        paper_wall = time.perf_counter() - t_paper
        (save_dir / "paper_method_cells.json").write_text(json.dumps(
            {"cells": cells, "mean": pm_mean, "lower": pm_lo, "upper": pm_hi,
             "run_seconds": run_times, "wall_seconds": paper_wall}))
    true_cells_a = np.asarray(true_cells)
    per_run = float(np.mean(run_times))
    result["paper_method"] = {
        "runs": len(run_times), "wall_seconds": paper_wall,
        "seconds_per_run_mean": per_run, "seconds_per_run_min": float(np.min(run_times)),
        "seconds_per_run_max": float(np.max(run_times)),
        "first_run_seconds": float(run_times[0]),
        "extrapolated_seconds_5280_runs": per_run * RUNS_IN_PAPER,
        "extrapolated_hours_5280_runs": per_run * RUNS_IN_PAPER / 3600,
        "sampled_cells": score(np.asarray(pm_mean), np.asarray(pm_lo), np.asarray(pm_hi),
                               true_cells_a),
    }
    print(json.dumps(result["paper_method"], indent=1), file=sys.stderr, flush=True)
    if not args.skip_ours:
        sj = [j for j, _ in cells]
        sg = [g for _, g in cells]
        paths = {"paper": args.paper_fit, "hierarchical": args.hier_fit}
        for kind in [k.strip() for k in args.kinds.split(",") if k.strip()]:
            path = paths[kind]
            f, secs, origin = get_fit(kind, path, save_dir, data, args)
            allc = fit_summary(f, judges_all, groups_all)
            true_all = truth["w"].sel(judge=judges_all, group=groups_all,
                                      property=props).values
            mean_c = np.asarray([allc["mean"][judges_all.index(j), groups_all.index(g)]
                                 for j, g in zip(sj, sg, strict=True)])
            lo_c = np.asarray([allc["lower"][judges_all.index(j), groups_all.index(g)]
                               for j, g in zip(sj, sg, strict=True)])
            hi_c = np.asarray([allc["upper"][judges_all.index(j), groups_all.index(g)]
                               for j, g in zip(sj, sg, strict=True)])
            d = f.diagnostics
            result[f"ours_{kind}"] = {
                "origin": origin, "wall_seconds": secs,
                "settings": dict(getattr(f, "settings", {}) or {}),
                "max_rhat": d.get("max_rhat"), "min_ess_bulk": d.get("min_ess_bulk"),
                "divergences": d.get("divergences"),
                "sampled_cells": score(mean_c, lo_c, hi_c, true_cells_a),
                "all_cells": score(allc["mean"], allc["lower"], allc["upper"], true_all),
            }
            print(json.dumps(result[f"ours_{kind}"], indent=1, default=str), file=sys.stderr,
                  flush=True)
        pm = result["paper_method"]
        ratios = {}
        if "ours_hierarchical" in result:
            hi_ = result["ours_hierarchical"]
            ratios["speed_paper_extrapolated_over_hierarchical"] = \
                pm["extrapolated_seconds_5280_runs"] / hi_["wall_seconds"]
            ratios["rmse_hierarchical_over_paper_method_sampled_cells"] = \
                hi_["sampled_cells"]["rmse"] / pm["sampled_cells"]["rmse"]
        if "ours_paper" in result:
            ratios["speed_paper_extrapolated_over_paper_spec_joint"] = \
                pm["extrapolated_seconds_5280_runs"] / result["ours_paper"]["wall_seconds"]
        if "ours_paper" in result and "ours_hierarchical" in result:
            ratios["rmse_hierarchical_over_paper_spec_all_cells"] = \
                result["ours_hierarchical"]["all_cells"]["rmse"] / \
                result["ours_paper"]["all_cells"]["rmse"]
        result["ratios"] = ratios
    text = json.dumps(result, indent=1, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
