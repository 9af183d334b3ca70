"""Property weights from posterior draws, at every level of the model.

The builder (model.py) names its random variables; this module is the one place that
adds them up, so every query reads weights the same way whatever the spec turned on:

    w[j, g, k] = mu[k] + judge_offset[j, k] + group_offset[g, k] + cell_offset[j, g, k]

The ``paper`` spec has ``w_cell`` (judge, group, property) directly and no shared terms;
its judge, group and global levels are averages of ``w_cell`` (as the paper averages).
The ``pooled`` spec has only ``mu``: it answers the global level and nothing else.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from .errors import BayesDissectError

#: Terms of w by name, and the dims each carries besides (chain, draw).
TERMS = {
    "mu": ("property",),
    "judge_offset": ("judge", "property"),
    "group_offset": ("group", "property"),
    "cell_offset": ("judge", "group", "property"),
    "w_cell": ("judge", "group", "property"),
}
LEVELS = ("global", "judge", "group", "cell")
_LEVEL_TERMS = {
    "global": ("mu",),
    "judge": ("mu", "judge_offset"),
    "group": ("mu", "group_offset"),
    "cell": tuple(TERMS),
}
#: Terms that make a judge differ from what all judges share (the ``deviation`` kind).
DEVIATION_TERMS = ("judge_offset", "cell_offset")


def as_posterior(obj: Any) -> xr.Dataset:
    """The posterior draws as an ``xr.Dataset`` (chain, draw, ...) from a Fit, a DataTree
    with a ``posterior`` group, or a Dataset (returned as is)."""
    post = getattr(obj, "posterior", obj)
    if isinstance(post, xr.Dataset):
        return post
    if isinstance(post, xr.DataTree):
        node = post["posterior"] if "posterior" in post.children else post
        return node.to_dataset()
    raise TypeError(f"expected a Fit, DataTree or Dataset, got {type(obj).__name__}")


def posterior_mean(posterior: xr.Dataset) -> xr.Dataset:
    """The posterior mean of the weight terms and bias, kept as one (chain, draw) = (1, 1)
    "draw" so every weight function applies to it. Plain numpy means over the two leading
    axes: xarray's reduction copied whole arrays (200 MB at paper size)."""
    out = {}
    for name in (*TERMS, "bias"):
        if name in posterior:
            da = posterior[name].transpose("chain", "draw", ...)
            out[name] = (da.dims, da.values.mean(axis=(0, 1), keepdims=True))
    coords = {d: posterior[d] for d in ("judge", "group", "property") if d in posterior.coords}
    return xr.Dataset(out, coords=coords)


def _varies(posterior: xr.Dataset, dim: str) -> bool:
    return any(t in posterior and dim in posterior[t].dims for t in TERMS)


def available_levels(posterior: xr.Dataset) -> tuple[str, ...]:
    """The levels this posterior can answer: global always; judge (group) only when some
    term varies by judge (group); cell when any term varies by judge or group."""
    if not any(t in posterior for t in TERMS):
        raise BayesDissectError("posterior has no weight terms (mu, judge_offset, ..., w_cell)")
    by_judge, by_group = _varies(posterior, "judge"), _varies(posterior, "group")
    out = ["global"]
    if by_judge:
        out.append("judge")
    if by_group:
        out.append("group")
    if by_judge or by_group:
        out.append("cell")
    return tuple(out)


def check_level(posterior: xr.Dataset, level: str) -> None:
    """Raise a one-line BayesDissectError when ``level`` is unknown or not in this fit."""
    if level not in LEVELS:
        raise BayesDissectError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
    have = available_levels(posterior)
    if level not in have:
        raise BayesDissectError(
            f"this fit has no {level!r} level (its spec has no term varying by {level}); "
            f"available levels: {', '.join(have)}"
        )


def level_weights(posterior: xr.Dataset, level: str, population: bool = False) -> xr.DataArray:
    """Weights at ``level`` with dims (chain, draw, [judge], [group], property).

    Default (``population=False``): the cell weights w[j, g, :] averaged, draw by draw,
    over the fitted groups and/or judges -- what the paper reports ("the judge averaged
    over scenarios"):

    * judge:  mean over groups of w[j, g]   = mu + judge[j] + mean_g group + mean_g cell[j]
    * group:  mean over judges of w[j, g]   = mu + group[g] + mean_j judge + mean_j cell[g]
    * global: mean over judges and groups of w
    * cell:   the full w[judge, group, :], broadcasting the terms the spec lacks

    ``population=True``: the spec's population-level terms, mu + judge_offset (judge),
    mu + group_offset (group), mu (global) -- the weights for a *new* group (judge).
    model.md §3 names these as the judge level, assuming the other offsets average to zero;
    they do not in a finite sample, and with a handful of groups the split between mu and
    the group offsets is set largely by the prior, so these intervals are wider and do not
    centre on the data's average (on simulated data with 3 groups the 90% intervals of
    mu + judge covered the fitted judges' group-averaged truth 52% of the time, the default
    76%). Without the level's own term (``paper`` spec) both are the average.

    Averages are taken term by term (the sum is linear), so no draws x judges x groups x
    properties array is built for the judge, group and global levels.
    """
    check_level(posterior, level)
    if level == "cell":
        return cell_weights(posterior)
    own = {"global": "mu", "judge": "judge_offset", "group": "group_offset"}[level]
    if population and own in posterior:
        total = sum(posterior[t] for t in _LEVEL_TERMS[level] if t in posterior)
    else:
        reduce = {"global": ("judge", "group"), "judge": ("group",), "group": ("judge",)}[level]
        total = sum(_mean_over(posterior[t], reduce) for t in TERMS if t in posterior)
    order = [d for d in ("chain", "draw", "judge", "group", "property") if d in total.dims]
    return total.transpose(*order).rename("w")


def _mean_over(da: xr.DataArray, dims: tuple[str, ...]) -> xr.DataArray:
    """Mean over those of ``dims`` that ``da`` has, with plain numpy (xarray's reduction
    copied the whole array first: 170 MB for cell_offset at paper size)."""
    axes = tuple(da.dims.index(d) for d in dims if d in da.dims)
    if not axes:
        return da
    keep = [d for d in da.dims if d not in dims]
    return xr.DataArray(da.values.mean(axis=axes), dims=keep,
                        coords={d: da[d] for d in keep if d in da.coords})


def _coord(posterior: xr.Dataset, dim: str) -> xr.DataArray | None:
    return posterior[dim] if dim in posterior.coords else None


def cell_weights(posterior: xr.Dataset, terms: tuple[str, ...] | None = None) -> xr.DataArray:
    """w[chain, draw, judge, group, property]: the sum of ``terms`` (default: all present),
    broadcast over judge and group coordinates the spec lacks (a ``pooled`` fit still gives
    one, identical, vector per judge and group when its coords carry judge and group)."""
    names = [t for t in (terms or tuple(TERMS)) if t in posterior]
    if not names:
        wanted = ", ".join(terms or TERMS)
        raise BayesDissectError(f"posterior has none of the weight terms {wanted}")
    total = sum(posterior[t] for t in names)
    extra = [c for c in (_coord(posterior, "judge"), _coord(posterior, "group")) if c is not None]
    if extra:
        total = xr.broadcast(total, *extra)[0]
    missing = [d for d in ("judge", "group") if d not in total.dims]
    if missing:
        raise BayesDissectError(f"cell weights need the {' and '.join(missing)} coordinate(s)")
    return total.transpose("chain", "draw", "judge", "group", "property").rename("w")


def deviation_weights(posterior: xr.Dataset) -> xr.DataArray:
    """Each judge's deviation from what all judges share, per group, per draw:
    judge_offset + cell_offset. For the ``paper`` spec (w_cell only) it is w_cell minus its
    mean over judges in each group, the closest analogue."""
    if any(t in posterior for t in DEVIATION_TERMS):
        dev = cell_weights(posterior, DEVIATION_TERMS)
    elif "w_cell" in posterior:
        w = posterior["w_cell"]
        dev = (w - w.mean("judge")).transpose("chain", "draw", "judge", "group", "property")
    else:
        raise BayesDissectError("this fit has no judge-level terms (judge_offset, cell_offset "
                                "or w_cell): judges do not differ in it")
    return dev.rename("w_dev")


def flat_draws(arr: xr.DataArray) -> np.ndarray:
    """Values with (chain, draw) flattened into one leading sample axis."""
    return arr.values.reshape((-1,) + arr.shape[2:])


def select_labels(coord: xr.DataArray, wanted: list[str] | None, what: str) -> list[str]:
    """Check user-given labels against a coordinate; one-line error naming the first unknown."""
    have = [str(v) for v in coord.values]
    if not wanted:
        return have
    for w in wanted:
        if w not in have:
            shown = ", ".join(have[:12]) + (", ..." if len(have) > 12 else "")
            raise BayesDissectError(f"unknown {what} {w!r}; this fit has: {shown}")
    return list(wanted)


def blas_single_thread() -> Any:
    """Context manager limiting BLAS to one thread in the query loops: their products are
    small (inner dimension K, or a few thousand pairs) and a multi-threaded OpenBLAS on a
    busy 2-core machine was measured up to 100x slower than one thread. No-op without
    threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
        return threadpool_limits(1, user_api="blas")
    except ImportError:  # pragma: no cover - optional
        import contextlib
        return contextlib.nullcontext()
