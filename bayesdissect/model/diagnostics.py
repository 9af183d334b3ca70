"""Convergence diagnostics computed after every fit and stored with it (model.md §4).

R-hat and bulk/tail ESS (arviz_stats) for every element of every posterior variable;
divergences, tree-depth saturation and E-BFMI per chain (``arviz_stats.diagnose``); step
size, gradient evaluations and time per phase. A convergence warning names the worst
parameters when R-hat > 1.01, ESS < 400 or divergences > 0 (the fit is then reported as
not converged); a sampler warning (a note, not a failure) says when draws hit the maximum
tree depth or a chain's E-BFMI is below 0.3.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import xarray as xr

log = logging.getLogger("bayesdissect")

RHAT_MAX = 1.01
ESS_MIN = 400.0
BFMI_MIN = 0.3
N_WORST = 5
#: nutpie's sampler-statistic names -> ArviZ's (what ``arviz_stats.diagnose`` reads).
STAT_NAMES = {"depth": "tree_depth", "maxdepth_reached": "reached_max_treedepth",
              "logp": "lp", "mean_tree_accept": "acceptance_rate"}


class ConvergenceWarning(UserWarning):
    """The sampler's output does not meet the convergence thresholds."""


class SamplerWarning(UserWarning):
    """The sampler worked inefficiently (tree depth, E-BFMI): worth a look, not a failure."""


def standard_stats(ds: xr.Dataset) -> xr.Dataset:
    """Sampler statistics under ArviZ's names (nutpie's renamed where ArviZ's are absent),
    so ``arviz_stats.diagnose`` and ``arviz_plots`` find tree depth, lp, acceptance rate."""
    ren = {a: b for a, b in STAT_NAMES.items() if a in ds and b not in ds}
    return ds.rename(ren) if ren else ds


def sampler_checks(posterior: xr.Dataset, sample_stats: xr.Dataset) -> dict[str, Any]:
    """Divergences, tree-depth hits and E-BFMI per chain from ``arviz_stats.diagnose``.

    diagnose's own R-hat and ESS checks run on the smallest posterior variable only: the
    per-element R-hat and ESS of every variable are computed once, in
    ``compute_diagnostics`` (diagnose reports only which variables fail, not the worst
    elements, and would compute them twice at full size).
    """
    import arviz_stats

    stats = standard_stats(sample_stats)
    names = sorted(posterior.data_vars, key=lambda v: posterior[v].size)
    out: dict[str, Any] = {"divergences": 0, "max_treedepth_hits": 0, "bfmi": [],
                           "min_bfmi": float("nan")}
    if not names or not stats.data_vars:
        return out
    def indexed(ds: xr.Dataset) -> xr.Dataset:  # diagnose reads the chain coordinate
        return ds.assign_coords({d: np.arange(ds.sizes[d]) for d in ("chain", "draw")
                                 if d in ds.dims and d not in ds.coords})

    tree = xr.DataTree.from_dict({"posterior": indexed(posterior[names[:1]]),
                                  "sample_stats": indexed(stats)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its ESS / R-hat on one small variable
        with np.errstate(all="ignore"):
            _, res = arviz_stats.diagnose(tree, show_diagnostics=False, return_diagnostics=True,
                                          bfmi_threshold=BFMI_MIN)
    out["divergences"] = int(res.get("divergent", {}).get("n_divergent", 0))
    out["max_treedepth_hits"] = int(res.get("treedepth", {}).get("n_max", 0))
    bfmi = np.asarray(res.get("bfmi", {}).get("bfmi_values", []), dtype=float).ravel()
    out["bfmi"] = [float(v) for v in bfmi]
    out["min_bfmi"] = float(np.nanmin(bfmi)) if np.isfinite(bfmi).any() else float("nan")
    return out


def _labels(da: xr.DataArray, flat_idx: np.ndarray) -> list[str]:
    """Readable names like ``cell_offset[human, Code, clear]`` for flat element indices."""
    if da.ndim == 0:
        return [str(da.name)] * len(flat_idx)
    out = []
    for i in flat_idx:
        pos = np.unravel_index(int(i), da.shape)
        parts = [str(da[d].values[p]) if d in da.coords else str(p)
                 for d, p in zip(da.dims, pos, strict=True)]
        out.append(f"{da.name}[{', '.join(parts)}]")
    return out


def _worst(stat: xr.Dataset, largest: bool, n: int = N_WORST) -> list[tuple[str, float]]:
    """The ``n`` parameters with the largest (or smallest) value of a per-element statistic."""
    rows: list[tuple[str, float]] = []
    for name, da in stat.data_vars.items():
        vals = np.asarray(da.values, dtype=float).ravel()
        if vals.size == 0:
            continue
        key = np.where(np.isnan(vals), -np.inf if largest else np.inf, vals)
        order = np.argsort(-key if largest else key, kind="stable")[:n]
        da = da.rename(name)
        for lab, i in zip(_labels(da, order), order, strict=True):
            rows.append((lab, float(vals[i])))
    rows.sort(key=lambda r: (-r[1] if largest else r[1]) if np.isfinite(r[1]) else np.inf)
    return rows[:n]


def _stat(stats: xr.Dataset, *names: str) -> xr.DataArray | None:
    for n in names:
        if n in stats:
            return stats[n]
    return None


def compute_diagnostics(posterior: xr.Dataset, sample_stats: xr.Dataset,
                        timings: dict[str, float] | None = None,
                        warmup_stats: xr.Dataset | None = None) -> dict[str, Any]:
    """Diagnostics of one fit as a JSON-able dict (see module docstring for the keys)."""
    import arviz_stats

    post = posterior[[v for v in posterior.data_vars]]
    if post.sizes.get("chain", 1) >= 2 and post.sizes.get("draw", 0) >= 4:
        rhat = arviz_stats.rhat(post)
    else:
        rhat = post.isel(chain=0, draw=0) * np.nan
    ess_bulk = arviz_stats.ess(post, method="bulk")
    ess_tail = arviz_stats.ess(post, method="tail")
    worst_rhat = _worst(rhat, largest=True)
    worst_bulk = _worst(ess_bulk, largest=False)
    worst_tail = _worst(ess_tail, largest=False)

    def extreme(ds: xr.Dataset, fn) -> float:  # noqa: ANN001
        vals = [np.asarray(v.values, float).ravel() for v in ds.data_vars.values()]
        vals = np.concatenate(vals) if vals else np.array([np.nan])
        return float(fn(vals)) if np.isfinite(vals).any() else float("nan")

    n_params = int(sum(int(np.prod([post.sizes[d] for d in v.dims if d not in ("chain", "draw")]))
                       for v in post.data_vars.values()))
    checks = sampler_checks(post, sample_stats)
    depth = _stat(sample_stats, "depth", "tree_depth")
    step = _stat(sample_stats, "step_size")
    n_steps = _stat(sample_stats, "n_steps")
    grad_draw = int(np.asarray(n_steps.values).sum()) if n_steps is not None else None
    grad_tune = None
    if warmup_stats is not None and "n_steps" in warmup_stats:
        grad_tune = int(np.asarray(warmup_stats["n_steps"].values).sum())
    out: dict[str, Any] = {
        "max_rhat": extreme(rhat, np.nanmax),
        "min_ess_bulk": extreme(ess_bulk, np.nanmin),
        "min_ess_tail": extreme(ess_tail, np.nanmin),
        "divergences": checks["divergences"],
        "n_parameters": n_params,
        "chains": int(post.sizes.get("chain", 0)),
        "draws": int(post.sizes.get("draw", 0)),
        "worst_rhat": [list(r) for r in worst_rhat],
        "worst_ess_bulk": [list(r) for r in worst_bulk],
        "worst_ess_tail": [list(r) for r in worst_tail],
        "max_treedepth_hits": checks["max_treedepth_hits"],
        "bfmi": checks["bfmi"],
        "min_bfmi": checks["min_bfmi"],
        "mean_tree_depth": float(np.asarray(depth.values, float).mean()) if depth is not None
        else float("nan"),
        "step_size": float(np.asarray(step.isel(draw=-1).values, float).mean())
        if step is not None else float("nan"),
        "mean_steps_per_draw": float(np.asarray(n_steps.values, float).mean())
        if n_steps is not None else float("nan"),
        "grad_evals_draw": grad_draw,
        "grad_evals_tune": grad_tune,
    }
    out.update({k: float(v) for k, v in (timings or {}).items()})
    sampling = out.get("sampling_seconds")
    if sampling and grad_draw is not None:
        total_grad = grad_draw + (grad_tune or 0)
        out["grad_evals_per_second"] = total_grad / sampling if sampling > 0 else float("nan")
        if grad_tune is not None and total_grad > 0:
            # nutpie reports one wall time for both phases; split it by gradient work
            out["tune_seconds"] = sampling * grad_tune / total_grad
            out["draw_seconds"] = sampling * grad_draw / total_grad
    if sampling:
        out["min_ess_bulk_per_second"] = out["min_ess_bulk"] / sampling
    out["warnings"] = convergence_messages(out)
    out["sampler_warnings"] = sampler_messages(out)
    return out


def convergence_messages(d: dict[str, Any]) -> list[str]:
    """One message per failed threshold, naming the worst parameters."""
    msgs = []

    def names(rows: list) -> str:  # noqa: ANN001
        return ", ".join(f"{n} ({v:.3g})" for n, v in rows[:3])

    if np.isfinite(d["max_rhat"]) and d["max_rhat"] > RHAT_MAX:
        msgs.append(f"max R-hat {d['max_rhat']:.3f} > {RHAT_MAX}: {names(d['worst_rhat'])}")
    if np.isfinite(d["min_ess_bulk"]) and d["min_ess_bulk"] < ESS_MIN:
        msgs.append(f"min bulk ESS {d['min_ess_bulk']:.0f} < {ESS_MIN:.0f}: "
                    f"{names(d['worst_ess_bulk'])}")
    if np.isfinite(d["min_ess_tail"]) and d["min_ess_tail"] < ESS_MIN:
        msgs.append(f"min tail ESS {d['min_ess_tail']:.0f} < {ESS_MIN:.0f}: "
                    f"{names(d['worst_ess_tail'])}")
    if d["divergences"] > 0:
        msgs.append(f"{d['divergences']} divergent transitions (raise --target-accept or "
                    "change the parameterization)")
    return msgs


def sampler_messages(d: dict[str, Any]) -> list[str]:
    """One message per sampler-efficiency note (tree depth, E-BFMI); not failures."""
    msgs = []
    hits = int(d.get("max_treedepth_hits") or 0)
    if hits:
        total = int(d.get("chains", 0)) * int(d.get("draws", 0))
        share = f" ({100 * hits / total:.1f}%)" if total else ""
        msgs.append(f"{hits} of {total} draws{share} hit the maximum tree depth: their "
                    "trajectories were cut short, so the chains explore slowly (more draws "
                    "or a better parameterization help)")
    bfmi = [float(v) for v in d.get("bfmi") or []]
    low = [i for i, v in enumerate(bfmi) if np.isfinite(v) and v < BFMI_MIN]
    if low:
        msgs.append(f"E-BFMI {min(bfmi[i] for i in low):.2f} < {BFMI_MIN} in chain(s) "
                    f"{low}: momentum resampling explores the energy distribution poorly "
                    "(a reparameterization may help)")
    return msgs


def warn_if_unconverged(d: dict[str, Any]) -> None:
    """``warnings.warn`` each convergence problem (ConvergenceWarning) and each sampler
    note (SamplerWarning); never raises."""
    for msg in d.get("warnings", []):
        text = f"fit may not have converged: {msg}"
        warnings.warn(text, ConvergenceWarning, stacklevel=3)
    for msg in d.get("sampler_warnings", []):
        warnings.warn(f"sampler: {msg}", SamplerWarning, stacklevel=3)


def summary_table(d: dict[str, Any]) -> list[tuple[str, Any]]:
    """(metric, value) rows of the headline diagnostics, in display order."""
    keys = ["max_rhat", "min_ess_bulk", "min_ess_tail", "divergences", "max_treedepth_hits",
            "min_bfmi", "mean_tree_depth", "step_size", "mean_steps_per_draw", "n_parameters",
            "chains", "draws", "compile_seconds", "tune_seconds", "draw_seconds",
            "sampling_seconds", "total_seconds", "grad_evals_per_second", "min_ess_bulk_per_second"]
    return [(k, d[k]) for k in keys if k in d]
