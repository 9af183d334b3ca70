"""Calibration of a model spec against simulated truth (issue 14, items 2 and 5).

One row per (regime, spec): ``bd.simulate`` data with known truth in the regime, a fit of
the spec, and against the truth's cell weights w[judge, group, property]:

* cell-level RMSE of the posterior means, and its ratio to the paper's own per-cell
  method on the same data (the ``paper`` spec: independent Laplace(0, 0.1) weights per
  judge x group, fitted cell by cell at the paper's settings; ``--baseline``),
* 90% (``--prob``) equal-tailed interval coverage overall and for |w| > 0.3,
* judge similarity, kinds ``paper`` and ``agreement``: Pearson r of posterior means with
  the true similarity, and 90% interval coverage over all judge pairs,
* elpd_loo (PSIS-LOO over every label) and its SE, the number of Pareto k > threshold,
* fit seconds, max R-hat, min bulk / tail ESS, divergences.

Regimes: ``prior`` (the model's own prior: the control), ``sparse`` (paper-shaped heavy-
tailed truth), ``sparse-pair`` (sparse plus a pair quality of sd ``--pair-sd`` shared by
every judge). Data and fits are cached in ``--cache`` by their settings, so each row can be
run on its own (one fit at a time on 2 cores) and the table assembled at the end:

    python3 benchmarks/calibration.py --regime sparse --spec hierarchical        # full size
    python3 benchmarks/calibration.py --regime sparse --spec paper               # baseline
    python3 benchmarks/calibration.py --regime sparse --spec hierarchical --judges 8 \\
        --groups 3 --pairs 2000 --draws 500 --tune 500                          # small

Prints one JSON line per row (appended to ``--json`` if given). The baseline RMSE is read
from the cache (the ``paper`` row of the same data); run it first or the ratio is null.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

import bayesdissect as bd
from bayesdissect.queries.similarity import similarity
from bayesdissect.queries.weights import cell_weights

TRUTH_NAME = {"paper": "similarity", "agreement": "similarity_agreement"}
BIG = 0.3


def _data(args: argparse.Namespace, cache: Path) -> Path:
    tag = f"{args.regime}-s{args.seed}-j{args.judges}-g{args.groups}-n{args.pairs}"
    if args.regime == "sparse-pair":
        tag += f"-p{args.pair_sd:g}"
    path = cache / f"{tag}.parquet"
    if not path.exists():
        kw: dict = {} if args.regime == "prior" else {"regime": "sparse"}
        if args.regime == "sparse-pair":
            kw["pair_sd"] = args.pair_sd
        bd.simulate(path, n_pairs=args.pairs, judges=args.judges or None,
                    groups=args.groups or None, seed=args.seed, **kw)
    return path


def _fit_tag(args: argparse.Namespace, spec: str) -> str:
    if spec == "paper":
        return "paper-default"
    return f"{Path(spec).stem}-c{args.chains}-d{args.draws}-t{args.tune}-seed{args.fit_seed}"


def _fit(args: argparse.Namespace, data_path: Path, spec: str) -> tuple[object, float | None]:
    fit_path = data_path.with_suffix(f".{_fit_tag(args, spec)}.nc")
    if fit_path.exists():
        return bd.load_fit(fit_path), None
    kw = {} if spec == "paper" else {"chains": args.chains, "draws": args.draws,
                                     "tune": args.tune}
    t0 = time.perf_counter()
    fit = bd.fit(str(data_path), spec, seed=args.fit_seed, progressbar=False, warn=False, **kw)
    seconds = time.perf_counter() - t0
    fit.settings["fit_seconds"] = round(seconds, 1)
    fit.save(fit_path)
    return fit, seconds


def _weights_table(fit: object, truth: object, prob: float) -> dict:
    w = cell_weights(fit.posterior)
    tw = truth["w"].sel(judge=w.judge, group=w.group, property=w.property)
    true = tw.transpose("judge", "group", "property").values
    flat = w.values.reshape(-1, *true.shape)
    mean = flat.mean(0)
    lo, hi = np.quantile(flat, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    cover = (lo <= true) & (true <= hi)
    big = np.abs(true) > BIG
    return {"cells": int(true.size), "rmse": float(np.sqrt(((mean - true) ** 2).mean())),
            "coverage": float(cover.mean()), "n_big": int(big.sum()),
            "coverage_big": float(cover[big].mean()) if big.any() else None,
            "rmse_big": float(np.sqrt(((mean - true)[big] ** 2).mean())) if big.any() else None,
            "mean_width": float((hi - lo).mean())}


def _similarity_table(fit: object, truth: object, data: object, prob: float) -> dict:
    from bayesdissect.queries.similarity import true_agreement

    out = {}
    for kind, name in TRUTH_NAME.items():
        df = similarity(fit, kind=kind, prob=prob)
        mat = truth[name] if name in truth else true_agreement(truth, data, (kind,))[name]
        true = np.array([float(mat.sel(judge=a, judge2=b))
                         for a, b in zip(df.judge_a, df.judge_b, strict=True)])
        mean = df["mean"].to_numpy()
        cover = (df.lower.to_numpy() <= true) & (true <= df.upper.to_numpy())
        out[kind] = {"pairs": int(true.size), "r": float(np.corrcoef(mean, true)[0, 1]),
                     "coverage": float(cover.mean()), "bias": float((mean - true).mean())}
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regime", choices=("prior", "sparse", "sparse-pair"), default="sparse")
    ap.add_argument("--spec", default="hierarchical")
    ap.add_argument("--seed", type=int, default=1, help="data seed")
    ap.add_argument("--fit-seed", type=int, default=1)
    ap.add_argument("--judges", type=int, default=0, help="0 = the paper's 33")
    ap.add_argument("--groups", type=int, default=0, help="0 = the 11 scenarios")
    ap.add_argument("--pairs", type=int, default=5240)
    ap.add_argument("--pair-sd", type=float, default=1.0)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--draws", type=int, default=1800)
    ap.add_argument("--tune", type=int, default=300)
    ap.add_argument("--prob", type=float, default=0.9)
    ap.add_argument("--no-loo", action="store_true")
    ap.add_argument("--cache", default="/tmp/bd-calibration")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    data_path = _data(args, cache)
    truth = bd.load_truth(data_path)
    fit, fit_s = _fit(args, data_path, args.spec)
    if fit_s is None:
        fit_s = fit.settings.get("fit_seconds")
    t0 = time.perf_counter()
    row: dict = {"weights": _weights_table(fit, truth, args.prob)}
    if args.spec != "paper":
        row["similarity"] = _similarity_table(fit, truth, fit.data, args.prob)
        if not args.no_loo:
            res = bd.loo(fit)
            row["elpd_loo"] = round(float(res.elpd_loo), 1)
            row["elpd_loo_se"] = round(float(np.sqrt(res.pointwise.size)
                                             * np.std(res.pointwise)), 1)
            row["n_bad_k"] = int(res.n_bad_k)
    base = data_path.with_suffix(f".{_fit_tag(args, 'paper')}.nc")
    if base.exists() and args.spec != "paper":
        b = _weights_table(bd.load_fit(base), truth, args.prob)
        row["paper_method_rmse"] = b["rmse"]
        row["rmse_ratio"] = row["weights"]["rmse"] / b["rmse"]
    d = fit.diagnostics
    out = {
        "benchmark": "calibration", "issue": 14,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "settings": {"regime": args.regime, "spec": args.spec, "seed": args.seed,
                     "fit_seed": args.fit_seed, "judges": fit.data.sizes["judge"],
                     "groups": int(np.unique(fit.data["group"].values).size),
                     "pairs": fit.data.sizes["pair"], "pair_sd": args.pair_sd,
                     "sampler": fit.settings.get("sampler"), "chains": fit.settings.get("chains"),
                     "draws": fit.settings.get("draws"), "tune": fit.settings.get("tune"),
                     "prob": args.prob},
        "fit_s": fit_s,
        "diagnostics": {k: d.get(k) for k in ("max_rhat", "min_ess_bulk", "min_ess_tail",
                                              "divergences")},
        **row,
        "query_s": round(time.perf_counter() - t0, 1),
        "total_s": round(time.perf_counter() - t_start, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }
    line = json.dumps(out, default=float)
    print(line)
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(line + "\n")
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
