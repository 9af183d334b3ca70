"""Diagnostics and saved-fit size at full size, on synthetic draws (no fitting): ONE JSON line.

Diagnostics (issue 12, item 1): a posterior shaped like the default full-size fit's (the
hierarchical spec on 33 judges x 11 groups x 29 properties: mu, sigma_judge / sigma_group /
sigma_cell per property, bias, judge / group / cell offsets = 11,952 parameters), float32
AR(1) draws (phi uniform in 0-0.9, a few chains shifted) of 4 chains x 1,000 and x 2,000
draws. Timed: ``compute_diagnostics`` (what every fit runs: the vectorised R-hat / bulk and
tail ESS of ``diagnostics.convergence_arrays`` plus the sampler checks), and "before":
``arviz_stats.rhat`` / ``ess(method="bulk")`` / ``ess(method="tail")`` on the same Dataset
(what compute_diagnostics called until issue 12), with the largest relative difference
between the two; wall and CPU seconds (CPU: all threads; less moved by other load).
(Until issue 12 the per-cell fits had their own copy, timed in RESULTS.md; it was merged.)

Storage (item 5): the bundled paper-sized demo data (33 judges x 5,045 pairs) with that
posterior at the default 4 x 1,800 draws, saved by ``Fit.save`` plain, compressed, thinned,
with the file's MB per group (each written alone) and save / load seconds.

Run alone (2 shared cores), e.g.:
    python3 benchmarks/diagnostics_speed.py
    python3 benchmarks/diagnostics_speed.py --skip-arviz --draws 1000   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

J, G, K = 33, 11, 29


def synthetic_posterior(chains: int, draws: int, seed: int = 0) -> xr.Dataset:
    """The default full-size fit's posterior layout, float32 AR(1) draws."""
    rng = np.random.default_rng(seed)
    shapes = {"mu": ("property",), "sigma_judge": ("property",), "sigma_group": ("property",),
              "sigma_cell": ("property",), "bias": ("judge",),
              "judge_offset": ("judge", "property"), "group_offset": ("group", "property"),
              "cell_offset": ("judge", "group", "property")}
    size = {"judge": J, "group": G, "property": K}
    n = sum(int(np.prod([size[d] for d in dims])) for dims in shapes.values())
    phi = rng.uniform(0.0, 0.9, n).astype(np.float32)
    scale = np.sqrt(1 - phi ** 2)
    x = np.empty((chains, draws, n), np.float32)
    x[:, 0] = rng.standard_normal((chains, n), dtype=np.float32)
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + scale * rng.standard_normal((chains, n),
                                                                   dtype=np.float32)
    x[0, :, : n // 100] += 0.2  # a few parameters with one chain off
    data_vars, a = {}, 0
    for name, dims in shapes.items():
        shape = tuple(size[d] for d in dims)
        m = int(np.prod(shape))
        vals = x[:, :, a:a + m].reshape(chains, draws, *shape)
        if name.startswith("sigma"):
            vals = np.abs(vals) * np.float32(0.3)
        data_vars[name] = (("chain", "draw", *dims), vals)
        a += m
    return xr.Dataset(data_vars, coords={
        "chain": np.arange(chains), "draw": np.arange(draws),
        "judge": [f"judge{i}" for i in range(J)], "group": [f"group{i}" for i in range(G)],
        "property": [f"p{i}" for i in range(K)]})


def synthetic_stats(chains: int, draws: int, seed: int = 0) -> xr.Dataset:
    """nutpie-like sampler statistics (float64 / integer / bool, as nutpie writes them)."""
    rng = np.random.default_rng(seed)
    shape = (chains, draws)
    f = {k: rng.normal(size=shape) for k in (
        "step_size", "step_size_bar", "acceptance_rate", "mean_tree_accept_sym",
        "max_energy_error", "lp", "energy", "energy_error", "fisher_distance")}
    i = {k: rng.integers(0, 64, shape).astype(np.uint64) for k in ("tree_depth", "n_steps")}
    b = {k: np.zeros(shape, bool) for k in ("diverging", "reached_max_treedepth", "tuning")}
    return xr.Dataset({k: (("chain", "draw"), v) for k, v in {**f, **i, **b}.items()},
                      coords={"chain": np.arange(chains), "draw": np.arange(draws)})


def bench_diagnostics(draws: int, skip_arviz: bool) -> dict:
    from bayesdissect.model.diagnostics import compute_diagnostics

    post = synthetic_posterior(4, draws)
    stats = synthetic_stats(4, draws)
    out: dict = {"shape": [4, draws, int(sum(v.size // (4 * draws)
                                             for v in post.data_vars.values()))]}
    t0, c0 = time.perf_counter(), time.process_time()
    diag = compute_diagnostics(post, stats)
    out["compute_diagnostics_s"] = round(time.perf_counter() - t0, 2)
    out["compute_diagnostics_cpu_s"] = round(time.process_time() - c0, 2)
    out["max_rhat"], out["min_ess_bulk"] = diag["max_rhat"], round(diag["min_ess_bulk"], 1)
    if not skip_arviz:
        import arviz_stats

        from bayesdissect.model.diagnostics import convergence_datasets

        t0, c0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = (arviz_stats.rhat(post), arviz_stats.ess(post, method="bulk"),
                   arviz_stats.ess(post, method="tail"))
        out["arviz_stats_s"] = round(time.perf_counter() - t0, 2)
        out["arviz_stats_cpu_s"] = round(time.process_time() - c0, 2)
        ours = convergence_datasets(post)
        for key, a, b in zip(("rhat", "ess_bulk", "ess_tail"), ours, ref, strict=True):
            rel = max(float(np.nanmax(np.abs(a[v].values - b[v].values) / np.abs(b[v].values)))
                      for v in a.data_vars)
            out[f"max_rel_diff_{key}"] = float(f"{rel:.2e}")
    return out


def on_disk_mb(fit, tmp: Path) -> dict[str, float]:  # noqa: ANN001
    """MB of each group of ``fit`` as the plain ``Fit.save`` writes it (each group alone
    in a netCDF file, less an empty file's size)."""
    from bayesdissect.model.fitted import _engine, netcdf_safe

    path = tmp / "group.nc"
    xr.Dataset().to_netcdf(path, engine=_engine())
    empty = path.stat().st_size
    out = {}
    for name, node in fit.idata.children.items():
        netcdf_safe(node.to_dataset()).to_netcdf(path, engine=_engine())
        out[str(name)] = round((path.stat().st_size - empty) / 1e6, 2)
    return out


def bench_storage(draws: int, reps: int) -> dict:
    import bayesdissect as bd
    from bayesdissect.model.fitted import Fit, load_fit
    from bayesdissect.model.specs import load_spec

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = bd.load("demo")
    post = synthetic_posterior(4, draws, seed=1)
    post = post.assign_coords(judge=np.asarray(data["judge"].values)[:J],
                              property=np.asarray(data["property"].values)[:K])
    groups = list(dict.fromkeys(np.asarray(data["group"].values).astype(str)))[:G]
    post = post.assign_coords(group=groups)
    fit = Fit(data, load_spec("hierarchical"), posterior=post,
              diagnostics={"chains": 4, "draws": draws}, settings={"draws": draws})
    fit.idata["sample_stats"] = xr.DataTree(synthetic_stats(4, draws))
    out: dict = {"pairs": int(data.sizes["pair"]), "judges": int(data.sizes["judge"]),
                 "labels": int(np.isfinite(np.asarray(data["y"].values, float)).sum()),
                 "draws": draws, "in_memory_mb": {}}
    for name, node in fit.idata.children.items():
        ds = node.to_dataset()
        out["in_memory_mb"][str(name)] = round(sum(v.nbytes for v in ds.variables.values())
                                               / 1e6, 2)
    big = sorted(((f"posterior/{v}", str(da.dtype), round(da.nbytes / 1e6, 1))
                  for v, da in post.data_vars.items()), key=lambda r: -r[2])[:4]
    out["largest_variables"] = big
    variants = {"plain": {}, "compress1": {"compress": 1}, "thin2": {"thin": 2},
                "thin3": {"thin": 3}, "thin2+compress1": {"thin": 2, "compress": 1}}
    with tempfile.TemporaryDirectory(prefix="bd-storage-") as tmp:
        for name, kw in variants.items():
            path = Path(tmp) / f"{name}.nc"
            ts, tl = [], []
            for _ in range(reps):
                t0 = time.perf_counter()
                fit.save(path, **kw)
                ts.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                back = load_fit(path)
                float(back.posterior["cell_offset"].values[0, -1, 0, 0, 0])
                tl.append(time.perf_counter() - t0)
            row = {"mb": round(path.stat().st_size / 1e6, 1), "save_s": round(min(ts), 2),
                   "load_s": round(min(tl), 2)}
            if name == "plain":
                row["on_disk_mb_by_group"] = on_disk_mb(fit, Path(tmp))
            if name == "thin2":  # the loaded thinned fit is the thinned fit
                ref = fit.thin(2).posterior
                row["equal_to_thinned"] = all(np.array_equal(ref[v].values,
                                                              back.posterior[v].values)
                                              for v in ref.data_vars)
            out[name] = row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--draws", type=int, nargs="+", default=[1000, 2000],
                    help="draws per chain of the diagnostics runs (4 chains)")
    ap.add_argument("--skip-arviz", action="store_true", help="do not time arviz_stats")
    ap.add_argument("--storage-draws", type=int, default=1800)
    ap.add_argument("--skip-storage", action="store_true")
    ap.add_argument("--reps", type=int, default=2, help="save / load repeats (min reported)")
    ap.add_argument("--json", default=None, help="also append the JSON line here")
    args = ap.parse_args(argv)

    import arviz_stats
    import scipy

    load0 = os.getloadavg()
    t0 = time.perf_counter()
    res: dict = {"benchmark": "diagnostics_speed",
                 "diagnostics": {str(d): bench_diagnostics(d, args.skip_arviz)
                                 for d in args.draws}}
    if not args.skip_storage:
        res["storage"] = bench_storage(args.storage_draws, args.reps)
    res.update({
        "total_s": round(time.perf_counter() - t0, 1),
        "loadavg_before": [round(x, 2) for x in load0],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), "
                   f"{platform.python_implementation()} {platform.python_version()}",
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__,
                     "arviz_stats": arviz_stats.__version__, "xarray": xr.__version__},
    })
    line = json.dumps(res)
    print(line)
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
