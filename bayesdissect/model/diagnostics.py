"""Convergence diagnostics computed after every fit and stored with it (model.md §4).

R-hat and bulk/tail ESS for every element of every posterior variable, by arviz_stats'
definitions (``rhat`` method "rank", ``ess`` "bulk" and "tail") in one vectorised pass
(``convergence_arrays``: seconds at full size where arviz_stats' per-element loop took ~50);
divergences, tree-depth saturation and E-BFMI per chain (``arviz_stats.diagnose``); step
size, gradient evaluations and time per phase. A convergence warning names the worst
parameters when R-hat > 1.01, ESS < 400 or divergences > 0 (the fit is then reported as
not converged); a sampler warning (a note, not a failure) says when draws hit the maximum
tree depth or a chain's E-BFMI is below 0.3.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
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


# ------------------------------------------------------------- R-hat and ESS, vectorised

#: Values per chunk of elements (chunk = this // (chains * draws)): ~4 MB of float32 draws.
CHUNK_VALUES = 1 << 20
_Z_TABLES: dict[int, np.ndarray] = {}


def _z_table(m: int) -> np.ndarray:
    """Blom's normal scores of the average ranks 1, 1.5, ..., m of m values (float32),
    indexed by 2 * rank - 2: arviz_stats' ``_z_scale`` of a rank, looked up."""
    if m not in _Z_TABLES:
        from scipy import stats

        r = np.arange(1.0, m + 0.5, 0.5)
        _Z_TABLES[m] = stats.norm.ppf((r - 0.375) / (m + 0.25)).astype(np.float32)
    return _Z_TABLES[m]


def _scores(srt: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The normal score (``table``, by 2 * rank - 2) of each sorted value (rows of ``srt``,
    ascending) at its average rank, as ``scipy.stats.rankdata(method="average")`` ranks
    (tied draws share the mean of their positions). Ties are few (repeated MCMC draws):
    only their runs are visited; without ties the result is a broadcast view."""
    n_e, m = srt.shape
    plain = np.broadcast_to(table[::2], (n_e, m))
    eq = np.zeros((n_e, m), dtype=bool)
    np.equal(srt[:, 1:], srt[:, :-1], out=eq[:, :-1])  # value j + 1 equals value j
    flat = np.flatnonzero(eq)  # (the last column stays False: runs never cross rows)
    if flat.size == 0:
        return plain
    row, j = np.divmod(flat, m)
    out = plain.copy()
    run = np.concatenate([[0], np.cumsum(np.diff(flat) != 1)])  # runs of equal pairs
    step = np.diff(run) != 0
    first = j[np.r_[True, step]]  # each run's first value
    last = j[np.r_[step, True]] + 1  # and its last
    score = table[(first + last)[run]]
    out[row, j] = score
    out[row, j + 1] = score
    return out


def _lerp_quantile(srt: np.ndarray, prob: float) -> np.ndarray:
    """``np.quantile(row, prob)`` ("linear") of each row of sorted values, NumPy's formula."""
    h = (srt.shape[1] - 1) * prob
    lo = int(np.floor(h))
    hi = min(lo + 1, srt.shape[1] - 1)
    a, b = srt[:, lo], srt[:, hi]
    t = srt.dtype.type(h - lo)
    diff = b - a
    return np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)


def _rhat_from_moments(mean: np.ndarray, var: np.ndarray, n: int) -> np.ndarray:
    """arviz_stats' ``_rhat`` from per-chain means and variances (E, chains), n per chain."""
    between = n * np.var(np.asarray(mean, np.float64), axis=1, ddof=1)
    within = np.asarray(var, np.float64).mean(axis=1)
    with np.errstate(all="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def _ess_series(s: np.ndarray) -> np.ndarray:
    """ESS of each element's chains (E, chains, n): arviz_stats' ``_ess`` (autocovariance
    by FFT, Geyer's initial positive and monotone sequences), for all elements at once.

    The FFT is float32 (scipy), and the chains' power spectra are averaged before the one
    inverse FFT per element (only the mean over chains of each lag's autocovariance is
    used, and the inverse FFT is linear).
    """
    from scipy import fft

    n_e, m, n = s.shape
    total = m * n
    s = np.asarray(s, dtype=np.float32)
    const = s.max(axis=(1, 2)) == s.min(axis=(1, 2))
    chain_mean = s.mean(axis=2, dtype=np.float64)
    size = fft.next_fast_len(2 * n, real=True)
    f = fft.rfft(s - chain_mean[:, :, None].astype(np.float32), n=size, axis=2)
    power = np.square(f.real).mean(axis=1) + np.square(f.imag).mean(axis=1)
    acov = fft.irfft(power, n=size, axis=1)[:, :n].astype(np.float64) / n
    mean_var = acov[:, 0] * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if m > 1:
        var_plus = var_plus + np.var(chain_mean, axis=1, ddof=1)
    with np.errstate(all="ignore"):
        rho = 1.0 - (mean_var[:, None] - acov) / var_plus[:, None]
    rho[:, 0] = 1.0
    n_pairs = n // 2
    pair = rho[:, 0:2 * n_pairs:2] + rho[:, 1:2 * n_pairs:2]  # S_k = rho[2k] + rho[2k+1]
    # pair k >= 1 is visited while 2k - 1 < n - 3 and every earlier pair sum is > 0
    ks = np.arange(1, n_pairs)
    ok = (2 * ks - 1 < n - 3)[None, :] & (pair[:, :-1] > 0)
    visited = np.cumprod(ok, axis=1).sum(axis=1)  # P: pairs 1..P visited
    mono = np.minimum.accumulate(pair, axis=1)  # the monotone sequence's pair sums
    csum = np.concatenate([np.zeros((n_e, 1)), np.cumsum(mono, axis=1)], axis=1)
    rows = np.arange(n_e)
    even = rho[rows, 2 * visited]
    last = np.where((even > 0) | (pair[rows, visited] >= 0), even, 0.0)
    last = np.where(visited == 0, 1.0, last)
    tau = -1.0 + 2.0 * csum[rows, visited] + last
    tau = np.maximum(tau, 1.0 / np.log10(total))
    with np.errstate(all="ignore"):
        ess = total / tau
    ess = np.where(np.isnan(rho).any(axis=1), np.nan, ess)
    return np.where(const, float(total), ess)


def _chunk_convergence(x: np.ndarray, tail_prob: tuple[float, float], rhat: bool
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R-hat, bulk ESS, tail ESS) of E elements' draws x (E, chains, draws), no NaN.

    One argsort of each element's split chains gives its ranks (bulk R-hat and bulk ESS),
    its median, and, merged as two sorted runs, the ranks of its folded draws (tail R-hat):
    arviz_stats sorts three times and the folded draws twice.
    """
    n_e, n_c, n_d = x.shape
    half = n_d // 2
    sp = np.concatenate([x[:, :, :half], x[:, :, n_d - half:]], axis=1)  # (E, 2C, half)
    m = sp.shape[1] * half
    flat = sp.reshape(n_e, m)
    order = np.argsort(flat, axis=1)
    srt = np.take_along_axis(flat, order, axis=1)
    table = _z_table(m)
    z = np.empty((n_e, m), dtype=np.float32)
    np.put_along_axis(z, order, _scores(srt, table), axis=1)
    z = z.reshape(n_e, -1, half)
    out_rhat = np.full(n_e, np.nan)
    if rhat:
        bulk = _rhat_from_moments(z.mean(axis=2), z.var(axis=2, ddof=1), half)
        # folded draws |x - median|: the lower half reversed and the upper half are both
        # ascending, so a stable argsort only merges two runs (float arithmetic as NumPy's:
        # the median is the mean of the two middle values in the draws' dtype)
        k = m // 2
        med = (srt[:, k - 1] + srt[:, k]) / srt.dtype.type(2)
        folded = np.concatenate([(med[:, None] - srt[:, :k])[:, ::-1],
                                 srt[:, k:] - med[:, None]], axis=1)
        merge = np.argsort(folded, axis=1, kind="stable")
        scores = _scores(np.take_along_axis(folded, merge, axis=1), table)
        where = np.take_along_axis(order, np.where(merge < k, k - 1 - merge, merge), axis=1)
        zf = np.empty((n_e, m), dtype=np.float32)
        np.put_along_axis(zf, where, scores, axis=1)
        zf = zf.reshape(n_e, -1, half)
        tail = _rhat_from_moments(zf.mean(axis=2), zf.var(axis=2, ddof=1), half)
        out_rhat = np.where(tail > bulk, tail, bulk)  # Python's max(bulk, tail), as ArviZ
    if n_d % 2:  # the split dropped each chain's middle draw: quantiles of all draws
        q = np.quantile(x.reshape(n_e, -1), tail_prob, axis=1)
    else:
        q = [_lerp_quantile(srt, p) for p in tail_prob]
    ess_bulk = _ess_series(z)
    ess_tail = np.minimum(*[_ess_series(np.concatenate(
        [x[:, :, :half] <= qq[:, None, None], x[:, :, n_d - half:] <= qq[:, None, None]],
        axis=1)) for qq in q])
    return out_rhat, ess_bulk, ess_tail


def convergence_arrays(draws: np.ndarray, chunk: int | None = None,
                       threads: int | None = None) -> dict[str, np.ndarray]:
    """Rank-normalised split R-hat, bulk ESS and tail ESS per element of draws (chain, draw,
    ...): arviz_stats' ``rhat`` (method "rank") and ``ess`` ("bulk", and "tail" at its
    default probability), to ~1e-6 relative (float32 autocovariances), for many elements
    at once. Chunks of ``chunk`` elements (default: about a million values each) run in
    ``threads`` threads (default: one per CPU; NumPy's sorts and SciPy's FFTs release the
    GIL). Float32 draws stay float32 (ranks are exact in any dtype); other dtypes are
    ranked as float64. Returns float64 arrays of the trailing shape, NaN where arviz_stats
    gives NaN: fewer than 4 draws, any NaN draw of that element; R-hat also with one
    chain, or a constant element (whose ESS is chains x draws, as ArviZ's).
    """
    from concurrent.futures import ThreadPoolExecutor

    from arviz_stats.validate import validate_ci_prob

    p = float(validate_ci_prob(None))
    tail_prob = tuple(sorted((p, 1.0 - p)))
    draws = np.asarray(draws)
    if draws.dtype != np.float32:
        draws = draws.astype(np.float64)
    n_c, n_d = draws.shape[:2]
    shape = draws.shape[2:]
    flat = draws.reshape(n_c, n_d, -1)
    n_el = flat.shape[2]
    out = {k: np.full(n_el, np.nan) for k in ("rhat", "ess_bulk", "ess_tail")}
    if n_d < 4 or n_el == 0:
        return {k: v.reshape(shape) for k, v in out.items()}
    chunk = int(chunk or max(1, CHUNK_VALUES // (n_c * n_d)))

    def one(a: int) -> None:
        x = np.moveaxis(flat[:, :, a:a + chunk], 2, 0).copy(order="C")  # (E, C, N), owned
        x += x.dtype.type(0)  # -0.0 -> 0.0 (ranked as a tie with 0.0, as NumPy compares)
        bad = np.isnan(x).any(axis=(1, 2))
        if bad.any():
            x[bad] = 0
        rh, eb, et = _chunk_convergence(x, tail_prob, rhat=n_c >= 2)
        out["rhat"][a:a + chunk] = np.where(bad, np.nan, rh)
        out["ess_bulk"][a:a + chunk] = np.where(bad, np.nan, eb)
        out["ess_tail"][a:a + chunk] = np.where(bad, np.nan, et)

    starts = range(0, n_el, chunk)
    threads = min(threads or os.cpu_count() or 1, len(starts))
    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, starts))
    else:
        for a in starts:
            one(a)
    return {k: v.reshape(shape) for k, v in out.items()}


def convergence_datasets(posterior: xr.Dataset, threads: int | None = None
                         ) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
    """(R-hat, bulk ESS, tail ESS) Datasets of every posterior variable (its dims without
    chain and draw), as ``arviz_stats.rhat`` / ``ess(method="bulk"|"tail")`` give them."""
    res: dict[str, dict[str, xr.DataArray]] = {"rhat": {}, "ess_bulk": {}, "ess_tail": {}}
    for name, da in posterior.data_vars.items():
        rest = [d for d in da.dims if d not in ("chain", "draw")]
        da = da.transpose("chain", "draw", *rest)
        vals = convergence_arrays(np.asarray(da.values), threads=threads)
        template = da.isel(chain=0, draw=0, drop=True)
        for k, v in vals.items():
            res[k][name] = template.copy(data=v)
    return tuple(xr.Dataset(res[k], coords={c: v for c, v in posterior.coords.items()
                                            if c not in ("chain", "draw")
                                            and "chain" not in v.dims
                                            and "draw" not in v.dims})
                 for k in ("rhat", "ess_bulk", "ess_tail"))


def failing_elements(draws: Mapping[str, np.ndarray],
                     only: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The elements (flat indices per variable) whose R-hat is above RHAT_MAX or whose bulk
    or tail ESS is below ESS_MIN; empty when the draws meet the bar (NaN, e.g. a constant
    element, is not held against it). ``draws`` maps each variable to its (chain, draw,
    ...) array, the trailing axes flattened in C order. ``only`` checks just those
    elements: the cheap first look of sampling until converged (``fit``'s ``min_draws``)."""
    out: dict[str, np.ndarray] = {}
    for name, x in draws.items():
        if only is not None and name not in only:
            continue
        x = np.asarray(x)
        x = x.reshape(*x.shape[:2], -1)
        idx = np.arange(x.shape[2]) if only is None else np.asarray(only[name])
        c = convergence_arrays(x[:, :, idx])
        bad = (c["rhat"] > RHAT_MAX) | (c["ess_bulk"] < ESS_MIN) | (c["ess_tail"] < ESS_MIN)
        if bad.any():
            out[name] = idx[bad]
    return out


def chain_draw_arrays(posterior: xr.Dataset) -> dict[str, np.ndarray]:
    """Each variable of ``posterior`` as a (chain, draw, ...) array, its other dims in their
    order: what ``failing_elements`` reads."""
    out = {}
    for name, da in posterior.data_vars.items():
        rest = [d for d in da.dims if d not in ("chain", "draw")]
        out[name] = np.asarray(da.transpose("chain", "draw", *rest).values)
    return out


def compute_diagnostics(posterior: xr.Dataset, sample_stats: xr.Dataset,
                        timings: dict[str, float] | None = None,
                        warmup_stats: xr.Dataset | None = None) -> dict[str, Any]:
    """Diagnostics of one fit as a JSON-able dict (see module docstring for the keys)."""
    post = posterior[[v for v in posterior.data_vars]]
    rhat, ess_bulk, ess_tail = convergence_datasets(post)
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
            "n_cells", "chains", "draws", "compile_seconds", "tune_seconds", "draw_seconds",
            "sampling_seconds", "total_seconds", "grad_evals_per_second", "min_ess_bulk_per_second"]
    return [(k, d[k]) for k in keys if k in d]
