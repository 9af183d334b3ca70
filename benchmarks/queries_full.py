"""Benchmark: every query of issue 4 on a paper-sized posterior.

There is no bundled paper-sized *fit* (sampling the full model takes far longer than a
benchmark), so this builds a posterior of the full size and shape from the bundled demo
data's true weights plus Gaussian noise (sd ``--noise``) in every term: 33 judges, 11
groups, 29 properties, 5,045 pairs / 166k labels, ``--chains`` x ``--draws`` draws
(default 4 x 500, the hierarchical spec's sampler default). The query code does not
care whether draws came from NUTS, so timings and memory are those of a real fit of
that size; what is not representative is only the content of the answers.

Run: ``python3 benchmarks/queries_full.py [--draws 500]``.
Reports wall time and the peak of memory allocated during each step (tracemalloc, which
numpy reports to), and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
import tracemalloc
from types import SimpleNamespace

import numpy as np
import xarray as xr


def build(chains: int, draws: int, noise: float, seed: int) -> SimpleNamespace:
    import bayesdissect as bd
    from bayesdissect.data.simulate import load_truth

    data = bd.load("demo")
    truth = load_truth("demo")
    rng = np.random.default_rng(seed)
    dv = {}
    for name in ("mu", "judge_offset", "group_offset", "cell_offset", "bias"):
        t = truth[name]
        vals = (t.values[None, None] + noise * rng.standard_normal(
            (chains, draws) + t.shape)).astype(np.float64)
        dv[name] = (("chain", "draw") + t.dims, vals)
    post = xr.Dataset(dv, coords={"chain": np.arange(chains), "draw": np.arange(draws),
                                  "judge": truth.judge.values, "group": truth.group.values,
                                  "property": truth.property.values})
    tree = xr.DataTree()
    tree["posterior"] = xr.DataTree(post)
    return SimpleNamespace(data=data, posterior=tree, spec=SimpleNamespace(name="hierarchical"))


def step(name: str, fn, results: list) -> object:  # noqa: ANN001
    tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    results.append((name, dt, peak / 2**20))
    print(f"{name:<44s} {dt:7.2f} s   peak +{peak / 2**20:7.0f} MiB", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    from bayesdissect.queries.clusters import clusters
    from bayesdissect.queries.effects import all_effects, contrast
    from bayesdissect.queries.predictive import compare_models, loo, ppc
    from bayesdissect.queries.similarity import similarity

    t0 = time.perf_counter()
    fit = build(args.chains, args.draws, args.noise, args.seed)
    s = args.chains * args.draws
    n_lab = int(fit.data.y.notnull().sum())
    print(f"posterior: {s} draws, {fit.data.sizes['judge']} judges, 11 groups, "
          f"{fit.data.sizes['property']} properties; data {fit.data.sizes['pair']} pairs, "
          f"{n_lab} labels; built in {time.perf_counter() - t0:.1f} s")
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"xarray {xr.__version__}, {platform.machine()}")
    res: list = []
    eff = step("effects, all 4 levels", lambda: all_effects(fit), res)
    step("contrast human vs gpt-4-1106-preview", lambda: contrast(
        fit, fit.data.judge.values[-1], fit.data.judge.values[-2]), res)
    sim = step("similarity agreement (default), 528 pairs", lambda: similarity(fit), res)
    step("similarity paper, 528 pairs", lambda: similarity(fit, kind="paper"), res)
    step("similarity deviation, 528 pairs", lambda: similarity(fit, kind="deviation"), res)
    cl = step("clusters (default kind and K) + co-clustering", lambda: clusters(fit), res)
    pc = step("ppc (shares, agreement, scores, calib.)", lambda: ppc(fit), res)
    lo = step("PSIS-LOO, all labels", lambda: loo(fit), res)
    step("ppc + LOO (the full predictive check)", lambda: (ppc(fit), loo(fit)), res)
    step("compare-models (2 x LOO)", lambda: compare_models([fit, fit], names=["a", "b"]), res)
    print(f"rows: effects {len(eff)}, similarity {len(sim)}, clusters K={cl.k}, "
          f"ppc agreement {len(pc.agreement)}, loo n_obs {lo.n_obs} "
          f"(elpd {lo.elpd_loo:.0f}, {lo.n_bad_k} bad k)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
