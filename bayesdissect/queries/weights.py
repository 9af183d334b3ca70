"""Property weights from posterior draws, at every level of the model.

The builder (model.py) names its random variables; this module is the one place that
adds them up, so every query reads weights the same way whatever the spec turned on:

    w[j, g, k] = mu[k] + judge_offset[j, k] + group_offset[g, k] + cell_offset[j, g, k]

The ``paper`` spec has ``w_cell`` (judge, group, property) directly and no shared terms;
its judge, group and global levels are averages of ``w_cell`` (as the paper averages).
The ``pooled`` spec has only ``mu``: it answers the global level and nothing else.

``population=True`` answers for a *new* judge instead of the fitted ones: its weights
drawn, per posterior draw, from the fitted model (``new_judge_weights``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import xarray as xr

from bayesdissect.errors import BayesDissectError
from bayesdissect.model.build import TERM_NAMES

#: Terms of w by name, and the dims each carries besides (chain, draw).
TERMS = {
    TERM_NAMES["mu"]: ("property",),
    TERM_NAMES["judge"]: ("judge", "property"),
    TERM_NAMES["group"]: ("group", "property"),
    TERM_NAMES["cell"]: ("judge", "group", "property"),
    TERM_NAMES["w_cell"]: ("judge", "group", "property"),
}
LEVELS = ("global", "judge", "group", "cell")
_MU, _JUDGE, _GROUP, _CELL = (TERM_NAMES[k] for k in ("mu", "judge", "group", "cell"))
_LEVEL_TERMS = {
    "global": (_MU,),
    "judge": (_MU, _JUDGE),
    "group": (_MU, _GROUP),
    "cell": tuple(TERMS),
}
#: Terms that make a judge differ from what all judges share (the ``deviation`` kind).
DEVIATION_TERMS = (_JUDGE, _CELL)
#: Judge label of the new-judge predictive (``population=True``).
NEW_JUDGE = "new judge"
#: A term sums to zero over a dim when |its mean there| <= this x its rms: far above
#: float32 rounding (~1e-7), far below the mean of J iid offsets (rms / sqrt(J)).
ZERO_SUM_RTOL = 1e-4


def draw_pieces(post: xr.Dataset, chunk: int) -> Iterator[xr.Dataset]:
    """The posterior in pieces of at most ``chunk`` draws (each within one chain), in
    (chain, draw) order, so derived arrays (weights, logits, predictions) are never built
    for all draws at once."""
    for c in range(post.sizes["chain"]):
        for start in range(0, post.sizes["draw"], chunk):
            yield post.isel(chain=slice(c, c + 1), draw=slice(start, start + chunk))


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


def level_weights(posterior: xr.Dataset, level: str, population: bool = False, *,
                  spec: Any = None, seed: int | None = 0) -> xr.DataArray:
    """Weights at ``level`` with dims (chain, draw, [judge], [group], property).

    Default (``population=False``): the cell weights w[j, g, :] averaged, draw by draw,
    over the fitted groups and/or judges -- what the paper reports ("the judge averaged
    over scenarios"):

    * judge:  mean over groups of w[j, g]   = mu + judge[j] + mean_g group + mean_g cell[j]
    * group:  mean over judges of w[j, g]   = mu + group[g] + mean_j judge + mean_j cell[g]
    * global: mean over judges and groups of w
    * cell:   the full w[judge, group, :], broadcasting the terms the spec lacks

    ``population=True``: the same levels for one *new* judge in place of the fitted ones,
    its weights drawn per posterior draw from the fitted model (``new_judge_weights``;
    ``spec`` and ``seed`` are passed on): judge and global give the new judge's weights
    averaged over the fitted groups (judge label ``NEW_JUDGE`` at the judge level), group
    and cell its weights in each fitted group. The intervals are the predictive ones, wider
    than any fitted judge's by the spread of judges the fit has learned.

    Averages are taken term by term (the sum is linear), so no draws x judges x groups x
    properties array is built for the judge, group and global levels.
    """
    check_level(posterior, level)
    if population:
        total = new_judge_weights(posterior, spec=spec, seed=seed)
        if level in ("judge", "global"):
            total = _mean_over(total, ("group",))
        if level in ("judge", "cell"):
            total = total.expand_dims(judge=[NEW_JUDGE], axis=2)
    elif level == "cell":
        return cell_weights(posterior)
    else:
        reduce = {"global": ("judge", "group"), "judge": ("group",), "group": ("judge",)}[level]
        total = sum(_mean_over(posterior[t], reduce) for t in TERMS if t in posterior)
    order = [d for d in ("chain", "draw", "judge", "group", "property") if d in total.dims]
    return total.transpose(*order).rename("w")


def sums_to_zero(da: xr.DataArray, dim: str) -> bool:
    """True when ``da`` sums to zero over ``dim`` (a zero-sum level), judged on its first
    draw: |mean over dim| <= ``ZERO_SUM_RTOL`` x rms. A term that is all zero, or has fewer
    than two entries along ``dim``, does not count."""
    if dim not in da.dims or da.sizes[dim] < 2:
        return False
    first = da.isel({d: 0 for d in ("chain", "draw") if d in da.dims})
    v = np.asarray(first.transpose(dim, ...).values, dtype=np.float64)
    rms = float(np.sqrt(np.mean(v * v)))
    return rms > 0 and float(np.abs(v.mean(0)).max()) <= ZERO_SUM_RTOL * rms


def _zero_sum_axes(posterior: xr.Dataset, spec: Any) -> dict[str, bool]:
    """Which offsets of the fit sum to zero over which axis: from the spec's ``zero_sum``
    flags and the levels model.py then centres (judge offsets over judges when ``mu`` is
    on; cell offsets over judges when the group level is on, over groups when the judge
    level is on), or, without a spec, read off the draws (``sums_to_zero``)."""
    levels = getattr(spec, "levels", None)
    if levels is None:
        jo, co = posterior.get("judge_offset"), posterior.get("cell_offset")
        return {"judge": jo is not None and sums_to_zero(jo, "judge"),
                "cell_judge": co is not None and sums_to_zero(co, "judge"),
                "cell_group": co is not None and sums_to_zero(co, "group")}

    def zs(name: str) -> bool:
        lv = levels.get(name)
        return bool(lv is not None and getattr(lv, "zero_sum", False)
                    and getattr(lv, "sigma_prior", None) is not None)

    return {"judge": zs("judge") and "mu" in levels,
            "cell_judge": zs("cell") and "group" in levels,
            "cell_group": zs("cell") and "judge" in levels}


def _fixed_prior_draws(level: Any, size: tuple[int, ...], rng: np.random.Generator
                       ) -> np.ndarray:
    """Draws from a fixed-scale level prior (model.py ``_prior``: location 0)."""
    family, scale, nu = level.prior, float(level.scale), float(getattr(level, "nu", 3.0))
    if family == "normal":
        return scale * rng.standard_normal(size)
    if family == "laplace":
        return rng.laplace(0.0, scale, size)
    if family == "student_t":
        return scale * rng.standard_t(nu, size)
    if family == "cauchy":
        return scale * rng.standard_cauchy(size)
    raise BayesDissectError(f"population=True: unknown prior family {family!r} of the "
                            f"{level.name} level")


def _new_term(posterior: xr.Dataset, level: str, extra: tuple[int, ...], spec: Any,
              rng: np.random.Generator) -> np.ndarray:
    """(S, *extra, K) draws of a new judge's ``level`` term (judge or cell) before any
    zero-sum adjustment: Normal(0, sigma_<level>) (sigma_<level> x StudentT(offset_nu) for a
    heavy-tailed level) with each posterior draw's fitted sigma, or the spec's fixed prior
    where the level has no learned scale."""
    s = posterior.sizes["chain"] * posterior.sizes["draw"]
    k = posterior.sizes["property"]
    size = (s, *extra, k)
    name = f"sigma_{level}"
    lv = getattr(spec, "levels", {}).get(level)
    if name in posterior:
        sig = posterior[name]
        if "property" not in sig.dims:  # one shared sigma (sigma_per_property = false)
            sig = sig.expand_dims(property=posterior["property"].values)
        sig = flat_draws(sig.transpose("chain", "draw", "property")).astype(np.float64)
        noise = (rng.standard_t(lv.offset_nu, size) if getattr(lv, "heavy_tailed", False)
                 else rng.standard_normal(size))
        return noise * sig.reshape((s,) + (1,) * len(extra) + (k,))
    if lv is None or getattr(lv, "prior", None) is None:
        term = "judge_offset" if level == "judge" else "cell_offset"
        raise BayesDissectError(
            f"population=True: the fit has {term} but no {name} and no spec with a fixed "
            f"prior for the {level} level, so a new judge's offsets cannot be drawn (pass "
            "the Fit, not its posterior)")
    return _fixed_prior_draws(lv, size, rng)


def new_judge_weights(posterior: xr.Dataset, spec: Any = None,
                      seed: int | None = 0) -> xr.DataArray:
    """A new judge's weights in every fitted group, one predictive draw per posterior draw:
    dims (chain, draw, group, property)
    ``w_new[g] = mu + group_offset[g] + d + c[g]``, with the fitted draws of ``mu`` and
    ``group_offset`` and the new judge's own terms drawn from the fitted prior:

    * ``d`` (judge level, hierarchical): Normal(0, sigma_judge[k]^2 (1 + 1/J)) under a
      zero-sum judge level, Normal(0, sigma_judge[k]^2) under iid offsets. Why 1 + 1/J: a
      ZeroSumNormal(sigma) over J judges is J iid Normal(0, sigma) offsets e_j minus their
      mean, so ``mu`` is the population mean plus that mean, and a new judge's offset from
      ``mu`` is e_new - mean(e) -- its own Normal(0, sigma) deviation plus the fitted
      judges' mean deviation, which the data cannot see and which keeps its prior
      Normal(0, sigma^2 / J) (the population mean's own Normal(0, 1) prior informs it by a
      relative O(sigma^2 / J), neglected). The radial parameterisation is the same
      distribution (offset = size x direction with sigma = size / chi(n), saved as
      ``sigma_judge``), so the same predictive holds; only the sampler's view differs.
    * ``c`` (cell level): Normal(0, sigma_cell[k]^2) per group, times (1 + 1/J) in
      variance where cells sum to zero over judges (the fitted judges' mean cell, as for
      ``d``), and centred over groups where they sum to zero over groups (the new judge's
      cells then sum to zero over groups like every fitted judge's: a ZeroSumNormal). With
      both this is a ZeroSumNormal over groups of scale sigma_cell (1 + 1/J)^(1/2).
    * a level with a fixed prior (``prior`` + ``scale``, no learned sigma) draws from that
      prior (from ``spec``: pass the Fit, or its spec).

    This is the prior that add-judge's fast path puts on a new judge
    (``queries.addjudge._zero_sum_scales``), here without labels. Zero-sum flags come from
    ``spec`` (a Fit's ``spec``), or without one from the draws (``sums_to_zero``).
    ``seed`` makes the draws reproducible. A spec with judge-varying weights but no
    population of judges to draw from (the ``paper`` spec's independent ``w_cell``) raises
    BayesDissectError; one with no judge terms at all (``pooled``) gives ``mu`` (+ group
    offsets): its model says every judge, a new one too, has those weights.
    """
    if "w_cell" in posterior:
        raise BayesDissectError(
            "population=True: this fit (the paper spec's independent w_cell per judge x group) "
            "has no population of judges to draw a new judge from; use the default averages")
    if "mu" not in posterior:
        raise BayesDissectError("population=True needs the global weights mu; this fit has none")
    rng = np.random.default_rng(seed)
    props = posterior["property"]
    has_group = "group" in posterior.coords
    n_g = posterior.sizes["group"] if has_group else 1
    s = posterior.sizes["chain"] * posterior.sizes["draw"]
    k = posterior.sizes["property"]
    total = np.broadcast_to(flat_draws(posterior["mu"].transpose("chain", "draw", "property"))
                            [:, None, :], (s, n_g, k)).astype(np.float64)
    if "group_offset" in posterior:
        total = total + flat_draws(posterior["group_offset"].transpose(
            "chain", "draw", "group", "property"))
    zero_sum = _zero_sum_axes(posterior, spec)
    n_j = posterior.sizes.get("judge", 0)
    factor = np.sqrt(1.0 + 1.0 / n_j) if n_j else 1.0
    if "judge_offset" in posterior:
        d = _new_term(posterior, "judge", (), spec, rng)
        total = total + (d * factor if zero_sum["judge"] else d)[:, None, :]
    if "cell_offset" in posterior:
        c = _new_term(posterior, "cell", (n_g,), spec, rng)
        if zero_sum["cell_group"]:
            c = c - c.mean(1, keepdims=True)
        total = total + (c * factor if zero_sum["cell_judge"] else c)
    shape = (posterior.sizes["chain"], posterior.sizes["draw"])
    if not has_group:
        return xr.DataArray(total[:, 0].reshape(shape + (k,)), dims=("chain", "draw", "property"),
                            coords={"property": props}, name="w")
    return xr.DataArray(total.reshape(shape + (n_g, k)),
                        dims=("chain", "draw", "group", "property"),
                        coords={"group": posterior["group"], "property": props}, name="w")


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


def judge_centred(posterior: xr.Dataset) -> bool:
    """True when the fit sees judges' deviations only relative to the fitted judges'
    average: a deviation term (judge_offset, cell_offset) sums to zero over judges (a
    zero-sum level; ``sums_to_zero``), or the ``paper`` spec (w_cell only), whose
    deviation is w_cell minus its judge mean. False for iid offsets measured from ``mu``
    (as in a simulated truth)."""
    present = [t for t in DEVIATION_TERMS if t in posterior]
    if present:
        return any(sums_to_zero(posterior[t], "judge") for t in present)
    return "w_cell" in posterior


def deviation_weights(posterior: xr.Dataset, centred: bool | None = None) -> xr.DataArray:
    """Each judge's deviation from what all judges share, per group, per draw:
    judge_offset + cell_offset. Where the fit sees deviations only relative to the judges'
    average (``centred``, default ``judge_centred(posterior)``) they are taken from that
    average, draw by draw (a no-op where every term is zero-sum over judges; it completes a
    partly zero-sum fit). For the ``paper`` spec (w_cell only) it is w_cell minus its mean
    over judges in each group, the closest analogue."""
    if centred is None:
        centred = judge_centred(posterior)
    if any(t in posterior for t in DEVIATION_TERMS):
        dev = cell_weights(posterior, DEVIATION_TERMS)
    elif "w_cell" in posterior:
        dev, centred = posterior["w_cell"], True
    else:
        raise BayesDissectError("this fit has no judge-level terms (judge_offset, cell_offset "
                                "or w_cell): judges do not differ in it")
    if centred:
        dev = dev - dev.mean("judge")
    return dev.transpose("chain", "draw", "judge", "group", "property").rename("w_dev")


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
