"""Coverage of judge-similarity intervals against simulated truth (issue 14, item 3).

For each regime and seed: simulate GAIR-schema data with known truth (``bd.simulate``),
fit it, and compare every kind of ``bd.similarity`` (paper, deviation, agreement, kappa)
with the true similarity of the simulated judges that ``simulate`` writes beside the data
(``bd.load_truth``: ``similarity``, ``similarity_deviation``, ``similarity_agreement``,
``similarity_kappa``). Per (regime, kind), over all judge pairs of all seeds: the share of
90% intervals that cover the truth, the bias (mean of posterior mean - truth), Pearson r of
posterior means with the truth, the same bias and r of ``of_means``, and the mean interval
width. Prints one JSON line (settings, machine, date, per-fit diagnostics and seconds).

Beside the package's kinds, ``agreement_observed``: the observed share of co-labelled pairs
on which the two judges chose the same response, with a normal interval of half-width
z sqrt(O (1 - O) / n) -- model-free and unbiased for the true agreement (labels are
independent given the true probabilities), a reference for the model-based ``agreement``.

Regimes: ``prior`` (weights from the model's own prior, simulate's default scales = the
default spec's: the control where a correct fit is calibrated by construction),
``sparse`` (the paper-shaped heavy-tailed truth), ``sparse-pair`` (sparse plus a latent
pair quality of sd ``--pair-sd`` shared by every judge, fitted with ``--pair-spec``).

    python benchmarks/similarity_coverage.py                      # the RESULTS.md size
    python benchmarks/similarity_coverage.py --regimes sparse --seeds 1 --draws 300

Fits are cached in ``--cache`` (default a temporary folder) by their settings, so a second
run with the same settings only recomputes the similarities.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import bayesdissect as bd
from bayesdissect.queries.similarity import KINDS, similarity, true_agreement

TRUTH_NAME = {"paper": "similarity", "deviation": "similarity_deviation",
              "agreement": "similarity_agreement", "kappa": "similarity_kappa"}
REGIMES = ("prior", "sparse", "sparse-pair")


def _truth_values(truth, kind, data, pairs) -> np.ndarray:
    name = TRUTH_NAME[kind]
    if kind in ("agreement", "kappa") and (name not in truth or truth.sizes.get("judge")
                                           != data.sizes["judge"]):
        mat = true_agreement(truth, data, (kind,))[name]
    else:
        mat = truth[name]
    return np.array([float(mat.sel(judge=a, judge2=b)) for a, b in pairs])


def _fit(args, regime: str, seed: int, cache: Path) -> tuple[object, object, dict]:
    spec = args.pair_spec if regime == "sparse-pair" else args.spec
    tag = (f"{regime}-s{seed}-j{args.judges}-g{args.groups}-n{args.pairs}-{spec}-"
           f"c{args.chains}-d{args.draws}-t{args.tune}")
    data_path, fit_path = cache / f"{tag}.parquet", cache / f"{tag}.nc"
    kw = {} if regime == "prior" else {"regime": "sparse"}
    if regime == "sparse-pair":
        kw["pair_sd"] = args.pair_sd
    info = {"regime": regime, "seed": seed, "spec": spec}
    if not data_path.exists():
        bd.simulate(data_path, n_pairs=args.pairs, judges=args.judges, groups=args.groups,
                    seed=seed, **kw)
    if fit_path.exists():
        fit = bd.load_fit(fit_path)
        info["fit_s"] = None
    else:
        t0 = time.perf_counter()
        fit = bd.fit(str(data_path), spec, chains=args.chains, draws=args.draws,
                     tune=args.tune, seed=seed, progressbar=False, warn=False)
        info["fit_s"] = round(time.perf_counter() - t0, 1)
        fit.save(fit_path)
    d = fit.diagnostics
    info.update(max_rhat=round(float(d.get("max_rhat", np.nan)), 4),
                min_ess_bulk=round(float(d.get("min_ess_bulk", np.nan)), 1),
                divergences=int(d.get("divergences", 0)))
    return fit, bd.load_truth(data_path), info


def _observed_agreement(data, prob: float) -> tuple[np.ndarray, ...]:
    """(O, lower, upper, judges) of the observed agreement of every pair a < b."""
    from scipy.stats import norm

    y = data["y"].transpose("pair", "judge").values
    m = ~np.isnan(y)
    y1, y0 = np.where(m, y, 0.0), np.where(m, 1.0 - y, 0.0)
    n = m.T.astype(float) @ m.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        o = (y1.T @ y1 + y0.T @ y0) / n
        half = norm.ppf(0.5 + prob / 2) * np.sqrt(o * (1 - o) / n)
    ia, ib = np.triu_indices(y.shape[1], 1)
    return o[ia, ib], (o - half)[ia, ib], (o + half)[ia, ib]


def _summary(rows: list[tuple[np.ndarray, ...]]) -> dict:
    mean, lower, upper, of_means, true = (np.concatenate(c) for c in zip(*rows, strict=True))
    ok = np.isfinite(true) & np.isfinite(mean)
    mean, lower, upper, of_means, true = (a[ok] for a in (mean, lower, upper, of_means, true))
    return {"n": int(ok.sum()),
            "coverage": round(float(((lower <= true) & (true <= upper)).mean()), 3),
            "bias": round(float((mean - true).mean()), 4),
            "r": round(float(np.corrcoef(mean, true)[0, 1]), 4),
            "of_means_bias": round(float((of_means - true).mean()), 4),
            "of_means_r": round(float(np.corrcoef(of_means, true)[0, 1]), 4),
            "mean_width": round(float((upper - lower).mean()), 4)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regimes", default=",".join(REGIMES))
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--judges", type=int, default=8)
    ap.add_argument("--groups", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--spec", default="hierarchical")
    ap.add_argument("--pair-spec", default="hierarchical-pair")
    ap.add_argument("--pair-sd", type=float, default=1.0)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--prob", type=float, default=0.9)
    ap.add_argument("--cache", default=None)
    args = ap.parse_args(argv)
    cache = Path(args.cache or tempfile.mkdtemp(prefix="bd-simcov-"))
    cache.mkdir(parents=True, exist_ok=True)
    regimes = [r for r in args.regimes.split(",") if r]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    t_start = time.perf_counter()
    results: dict = {}
    fits: list[dict] = []
    query_s = 0.0
    for regime in regimes:
        per_kind: dict[str, list] = {k: [] for k in (*KINDS, "agreement_observed")}
        for seed in seeds:
            fit, truth, info = _fit(args, regime, seed, cache)
            fits.append(info)
            t0 = time.perf_counter()
            for kind in KINDS:
                df = similarity(fit, kind=kind, prob=args.prob)
                true = _truth_values(truth, kind, fit.data, zip(df.judge_a, df.judge_b,
                                                               strict=True))
                per_kind[kind].append((df["mean"].to_numpy(), df.lower.to_numpy(),
                                       df.upper.to_numpy(), df.of_means.to_numpy(), true))
                if kind == "agreement":   # same pair order (a < b in dataset order)
                    o, lo, hi = _observed_agreement(fit.data, args.prob)
                    per_kind["agreement_observed"].append((o, lo, hi, o, true))
            query_s += time.perf_counter() - t0
        results[regime] = {k: _summary(v) for k, v in per_kind.items()}
    out = {
        "benchmark": "similarity_coverage", "issue": 14,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count()},
        "settings": {"judges": args.judges, "groups": args.groups, "pairs": args.pairs,
                     "seeds": seeds, "spec": args.spec, "pair_spec": args.pair_spec,
                     "pair_sd": args.pair_sd, "chains": args.chains, "draws": args.draws,
                     "tune": args.tune, "prob": args.prob,
                     "prior_regime": "simulate's default scales (the default spec's prior)"},
        "results": results, "fits": fits,
        "query_s": round(query_s, 1), "total_s": round(time.perf_counter() - t_start, 1),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
