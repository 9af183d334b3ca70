"""Adding a judge to the paper-sized fit: fast path time (target <= 60 s) and accuracy,
and the exact path's time next to a full fit.

The new judge is drawn from the simulator's own hierarchical prior around the bundled demo
data's true population terms: w_new[g] = mu + N(0, sigma_judge) + group_offset[g] +
N(0, sigma_cell), bias ~ N(0, 0.3); its labels are Bernoulli(sigmoid(bias + x . w_new[g]))
on the demo pairs, passed in the paper's format (a list of "A"/"B" per source row, null
for the dropped rows). So its true weights are known and the added judge's intervals can be
scored.

Needs a saved full-size hierarchical fit of the demo data (``--fit``; the paper pipeline
benchmark saves one to /tmp/bd-paper-pipeline/paper_pipeline_hierarchical.nc).

    python3 benchmarks/add_judge.py --fit FIT.nc [--exact]
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


def scores(fit, name: str, true_cell: np.ndarray, true_judge: np.ndarray) -> dict:  # noqa: ANN001
    """RMSE and 90% coverage of the new judge's cell and judge-level weights."""
    from bayesdissect.queries.weights import cell_weights

    post = fit.draws
    w = cell_weights(post).sel(judge=name).transpose("chain", "draw", "group", "property")
    flat = w.values.reshape(-1, *w.shape[2:])
    wj = (post["mu"] + post["judge_offset"].sel(judge=name)).transpose("chain", "draw",
                                                                          "property")
    fj = wj.values.reshape(-1, wj.shape[-1])
    out = {}
    for label, draws, true in (("cell", flat, true_cell), ("judge", fj, true_judge)):
        lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
        out[label] = {"rmse": float(np.sqrt(np.mean((draws.mean(0) - true) ** 2))),
                      "coverage90": float(np.mean((true >= lo) & (true <= hi))),
                      "mean_sd": float(draws.std(0).mean()), "n_values": int(true.size)}
    return out, flat


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fit", default="/tmp/bd-paper-pipeline/paper_pipeline_hierarchical.nc")
    ap.add_argument("--exact", action="store_true", help="also time the exact path")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import bayesdissect as bd
    from bayesdissect.data.simulate import load_truth
    from bayesdissect.queries.addjudge import add_judge

    t0 = time.perf_counter()
    fit = bd.load_fit(args.fit)
    load_s = time.perf_counter() - t0
    truth = load_truth("demo")
    data = fit.data
    groups = [str(g) for g in truth.group.values]
    props = [str(p) for p in data.property.values]
    rng = np.random.default_rng(args.seed)
    k = len(props)
    mu = truth["mu"].sel(property=props).values
    a = rng.normal(0, 1, k) * truth["sigma_judge"].sel(property=props).values
    c = rng.normal(0, 1, (len(groups), k)) * truth["sigma_cell"].sel(property=props).values
    w_new = mu + a + truth["group_offset"].sel(group=groups, property=props).values + c
    bias = rng.normal(0, 0.3)
    gidx = np.asarray([groups.index(str(g)) for g in data.group.values])
    x = data["x"].sel(property=props).values
    p = 1 / (1 + np.exp(-(bias + np.einsum("nk,nk->n", x, w_new[gidx]))))
    y = rng.random(p.shape) < p
    n_rows = data.sizes["pair"] + int(data.attrs.get("n_dropped", 0))
    labels: list[str | None] = [None] * n_rows
    for pair, yy in zip(data.pair.values, y, strict=True):
        labels[int(pair)] = "A" if yy else "B"
    name = "new-judge"
    # with zero-sum offsets (the default spec) mu + judge_offset is the judge's weights
    # averaged over groups, so that is the truth to score the judge level against
    true_judge = w_new.mean(axis=0)

    result: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
        "fit": {"path": args.fit, "judges": int(fit.data.sizes["judge"]),
                "pairs": int(fit.data.sizes["pair"]),
                "chains_x_draws": [int(fit.draws.sizes["chain"]), int(fit.draws.sizes["draw"])],
                "full_fit_total_seconds": fit.diagnostics.get("total_seconds"),
                "load_seconds": load_s},
    }
    t0 = time.perf_counter()
    fast = add_judge(fit, labels, name, seed=1)
    fast_s = time.perf_counter() - t0
    tmp = Path("/tmp/bd-add-judge-fast.nc")
    t1 = time.perf_counter()
    fast.save(tmp)
    save_s = time.perf_counter() - t1
    sc, flat_fast = scores(fast, name, w_new, true_judge)
    result["fast"] = {"seconds": fast_s, "save_seconds": save_s,
                      "info": fast.diagnostics["add_judge"], **sc}
    print(json.dumps(result, indent=1, default=str), file=sys.stderr, flush=True)
    if args.exact:
        t0 = time.perf_counter()
        exact = add_judge(fit, labels, name, method="exact", seed=1)
        exact_s = time.perf_counter() - t0
        sc, flat_exact = scores(exact, name, w_new, true_judge)
        z = np.abs(flat_fast.mean(0) - flat_exact.mean(0)) / flat_exact.std(0)
        ratio = flat_fast.std(0) / flat_exact.std(0)
        result["exact"] = {"seconds": exact_s, "info": exact.diagnostics.get("add_judge"),
                           "max_rhat": exact.diagnostics.get("max_rhat"),
                           "min_ess_bulk": exact.diagnostics.get("min_ess_bulk"),
                           "divergences": exact.diagnostics.get("divergences"), **sc,
                           "fast_vs_exact": {"z_mean": float(z.mean()), "z_max": float(z.max()),
                                             "sd_ratio_min": float(ratio.min()),
                                             "sd_ratio_max": float(ratio.max())}}
    text = json.dumps(result, indent=1, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
