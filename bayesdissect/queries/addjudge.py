"""Add a new judge to a fitted model: the paper's "add your own model" feature.

A user collects a new judge's preferences on the same pairs (the paper's format: a JSON list
of "A"/"B" per pair in source row order) and wants its dissection and its place among the
fitted judges. ``add_judge(fit, labels, name)`` returns a new ``Fit`` whose posterior has the
new judge appended to the ``judge`` dim, so effects, contrasts, similarity and clusters answer
with it included.

Two paths:

``method="exact"``
    Refit the whole model on the data with the new judge's labels added, with FIT's sampler
    settings, warm-started at FIT's posterior means (``fit(..., initvals=FIT)``; the new
    judge's offsets and bias start at 0, every chain at the same point, no jitter). This is
    the full joint posterior. The warm start skips the walk from the prior's centre to the
    posterior, but FIT's ``tune`` is kept: nutpie adapts the step size and the mass matrix
    during tuning, starting from scratch whatever the start, and a shorter adaptation
    would give a worse-adapted sampler. So it costs about one full fit.

``method="fast"`` (default)
    Fit only the new judge's own parameters (``judge_offset``, ``cell_offset`` and ``bias``
    for the hierarchical family) given the population posterior of ``fit``. For every
    posterior draw d of the population terms (``mu``, ``group_offset``, ``sigma_judge``,
    ``sigma_cell``) the new judge's conditional posterior p(own parameters | its labels,
    population draw d) -- a logistic regression with a Gaussian prior -- is found by Newton's
    method and approximated by a Gaussian at its mode (a Laplace approximation in the
    non-centred coordinates z = offset / sigma); one draw is taken from it and paired with
    population draw d. So the returned draws keep the pairing with every other judge's draws
    (contrasts against fitted judges stay coherent). What this approximates:

    1. *Cut*: the new judge's labels do not update the population terms or the other judges
       (in the exact joint posterior they do, slightly: one judge among J shifts ``mu`` and
       the ``sigma`` terms by roughly 1/J of its own deviation).
    2. *Laplace*: each conditional posterior is replaced by a Gaussian at its mode. With a
       few hundred labelled pairs per group the logistic conditional is close to Gaussian;
       with very few labels per group it is less so (the prior keeps it proper).

    With a pair level (``hierarchical-pair``) the fit's pair effects u are population terms
    too: every label of the new judge is on a fitted pair, and draw d of the new judge's
    parameters is conditional on draw d of u (an offset in its logits), as the fitted
    judges' labels are. Leaving u out would attenuate the new judge's weights towards 0.

    With zero-sum levels (the default spec) ``mu`` is the fitted judges' average, so the new
    judge's offsets get prior variance sigma^2 (1 + 1/J) around it, and its cell offsets
    sum to zero over groups like every fitted judge's (see ``_zero_sum_scales``).

    For the ``paper`` spec (independent ``w_cell`` per judge x group, Laplace prior) the
    posterior factorises over judges, so the fast path fits only the new judge's cells with
    NUTS, which is exact.

Labels (``labels`` argument, or the CLI's LABELS file): a list of "A"/"B" per pair in source
row order, a dict {pair index: label}, or a .json / .csv file; ``queries.newjudge_labels``
reads them. The Laplace solver is ``queries.laplace``; this module prepares its arrays from
the posterior, writes the new judge's draws into a copy of it (posterior surgery) and
orchestrates both paths. Every problem raises ``BayesDissectError`` with one line.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesdissect.errors import BayesDissectError
from bayesdissect.model.build import TERM_NAMES
from bayesdissect.model.fitted import as_posterior
from bayesdissect.queries.laplace import laplace_new_judge
from bayesdissect.queries.newjudge_labels import parse_labels
from bayesdissect.queries.weights import blas_single_thread, flat_draws

#: The terms of w that belong to one judge (everything else is "population").
_JUDGE_TERMS = tuple(TERM_NAMES[level] for level in ("judge", "cell", "bias"))
#: The pair level's effects u (dim pair): a population term shared by every judge.
PAIR_TERM = TERM_NAMES["pair"]
METHODS = ("fast", "exact")


# --------------------------------------------------------------------------------------
# The data with the new judge
# --------------------------------------------------------------------------------------


def data_with_judge(data: xr.Dataset, y_new: xr.DataArray, name: str) -> xr.Dataset:
    """``data`` with one more judge ``name`` whose labels are ``y_new``, appended last."""
    from bayesdissect.data.catalogue import judge_info

    name = str(name).strip()
    if not name:
        raise BayesDissectError("--name: the new judge needs a non-empty name")
    existing = [str(j) for j in data["judge"].values]
    if name in existing:
        raise BayesDissectError(
            f"--name: judge {name!r} is already in the fit (choose another name)")
    info = judge_info(name)
    extra = {"judge_display": info.display, "judge_size": float(info.size),
             "judge_type": "added"}
    y_old = data["y"].transpose("pair", "judge").values
    y_add = y_new.reindex(pair=data["pair"]).values.astype(float)[:, None]
    out = data.drop_dims("judge")
    coords: dict[str, Any] = {"judge": existing + [name]}
    for coord in data.coords:
        if coord != "judge" and data[coord].dims == ("judge",):
            old = list(data[coord].values)
            value = extra.get(str(coord), info.display if data[coord].dtype.kind in "OU"
                              else np.nan)
            dtype = None if data[coord].dtype.kind in "OU" else data[coord].dtype
            coords[str(coord)] = ("judge", np.asarray(old + [value], dtype=dtype))
    out = out.assign_coords(coords)
    out["y"] = (("pair", "judge"), np.concatenate([y_old, y_add], axis=1))
    out.attrs = dict(data.attrs)
    return out


# --------------------------------------------------------------------------------------
# Spec helpers (tolerant of how specs.py represents levels)
# --------------------------------------------------------------------------------------


def _levels(spec: Any) -> dict[str, Any]:
    levels = getattr(spec, "levels", None)
    if levels is None and isinstance(spec, Mapping):
        levels = spec.get("levels")
    if isinstance(levels, Mapping):
        return {str(k): v for k, v in levels.items() if _get(v, "on", True) is not False}
    if isinstance(levels, Sequence):
        return {str(_get(v, "name", v)): v for v in levels}
    return {}


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _level_normal_scale(level: Any) -> float | None:
    """Fixed prior scale of a level with prior = "normal"; None when it is not a normal."""
    prior = str(_get(level, "prior", "normal") or "normal").lower()
    if prior != "normal":
        return None
    scale = _get(level, "scale", None)
    return None if scale is None else float(scale)


# --------------------------------------------------------------------------------------
# Posterior surgery: FIT's tree with the new judge's draws appended
# --------------------------------------------------------------------------------------


def _with_posterior(fit: Any, post: xr.Dataset) -> xr.DataTree:
    """FIT's DataTree with the posterior group replaced. Groups on the judge or observation
    dims (warm-up draws, log likelihood, predictive draws) cannot be extended to the new
    judge and are dropped; observed_data / constant_data are rebuilt from the new data by
    the Fit."""
    from bayesdissect.model.build import OBS_DIM
    from bayesdissect.model.fitted import DATA_GROUPS

    groups: dict[str, xr.Dataset] = {"posterior": post}
    tree = getattr(fit, "idata", None)
    if not isinstance(tree, xr.DataTree):
        tree = getattr(fit, "posterior", None)
    for name, child in getattr(tree, "children", {}).items():
        if name == "posterior" or name in DATA_GROUPS:
            continue
        ds = child.to_dataset()
        if "judge" in ds.dims or OBS_DIM in ds.dims:
            continue
        groups[name] = ds
    return xr.DataTree.from_dict(groups)


def _make_fit(fit: Any, data: xr.Dataset, idata: xr.DataTree, diagnostics: dict) -> Any:
    """A Fit like ``fit`` (same spec and settings) with new data, tree and diagnostics."""
    from bayesdissect.model.fitted import Fit

    if isinstance(fit, Fit):
        return Fit(data, fit.spec, idata, diagnostics, fit.settings)
    return type(fit)(data=data, spec=fit.spec, posterior=idata, diagnostics=diagnostics)


def _append_judge(post: xr.Dataset, name: str,
                  draws: dict[str, np.ndarray]) -> tuple[xr.Dataset, list[str]]:
    """Append the new judge's draws (flattened over chain x draw) to every judge variable."""
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    out = post.copy()
    dropped = [v for v in post.data_vars if "judge" in post[v].dims and v not in draws]
    out = out.drop_vars(dropped)
    new_vars = {}
    for var, arr in draws.items():
        old = post[var]
        other = [d for d in old.dims if d not in ("chain", "draw", "judge")]
        shape = (n_chain, n_draw, 1) + tuple(post.sizes[d] for d in other)
        da = xr.DataArray(np.asarray(arr).reshape(shape), dims=("chain", "draw", "judge", *other),
                          coords={"judge": [name]})
        old_t = old.transpose("chain", "draw", "judge", *other)
        new_vars[var] = xr.concat([old_t.drop_vars([c for c in old_t.coords if
                                                    c not in old_t.dims]), da], dim="judge",
                                  coords="minimal").astype(old.dtype)
    judge_coord = list(post["judge"].values) + [name]
    out = out.drop_vars([v for v in new_vars]).drop_dims("judge", errors="ignore")
    out = out.assign_coords(judge=judge_coord)
    for var, da in new_vars.items():
        out[var] = da.assign_coords(judge=judge_coord).transpose(*post[var].dims)
    out.attrs = dict(post.attrs)
    return out, dropped


# --------------------------------------------------------------------------------------
# Fast path (hierarchical family): the arrays for queries.laplace, and back
# --------------------------------------------------------------------------------------


def _zero_sum_scales(levels: Mapping[str, Any], post: xr.Dataset, sj: np.ndarray | None,
                     sc: np.ndarray | None, n_groups: int):
    """Prior scales of a NEW judge's offsets when the spec's levels are zero-sum.

    With zero-sum offsets (``zero_sum = true``; model.py builds them as iid normal offsets
    minus their mean) ``mu`` is the average of the J fitted judges, not the population
    mean, so a new judge's offset from it has variance sigma^2 (1 + 1/J) (the fitted
    judges' mean deviation is unidentified, and stays at its prior sigma^2 / J); the same
    holds for its cell offsets when they sum to zero over judges. When cell offsets sum to
    zero over groups, the new judge's cells c[g] are zero-sum over groups too: the judge's
    per-group deviations v[g] = a + c[g] then have covariance
    sa^2 11' + sc^2 (I - 11'/G), which is the iid form (a ~ N(0, sa_iid^2),
    c[g] ~ N(0, sc^2) independent) with sa_iid^2 = sa^2 - sc^2 / G, followed by moving the
    group mean of c into a. Returns (sa_iid, sc_eff, recentre, n_clamped): where
    sa^2 - sc^2 / G is not positive it is clamped to 1% of sa^2 (a slightly wider prior on
    the judge's mean; counted)."""
    n_judges = int(post.sizes["judge"])
    judge_lv, cell_lv = levels.get("judge"), levels.get("cell")
    has_mu, has_group = "mu" in post, "group_offset" in post
    judge_zs = bool(_get(judge_lv, "zero_sum", False)) and has_mu and sj is not None
    cell_zs = bool(_get(cell_lv, "zero_sum", False)) and sc is not None
    over_judges = cell_zs and has_group
    over_groups = cell_zs and sj is not None
    factor = 1.0 + 1.0 / n_judges
    if judge_zs:
        sj = sj * np.sqrt(factor)
    if over_judges:
        sc = sc * np.sqrt(factor)
    clamped = 0
    if over_groups and n_groups > 1:
        var = sj**2 - sc**2 / n_groups
        floor = 0.01 * sj**2
        clamped = int((var < floor).any(axis=1).sum())
        sj = np.sqrt(np.maximum(var, floor))
    return sj, sc, over_groups and n_groups > 1, clamped


def _pair_offsets(post: xr.Dataset, pairs: np.ndarray) -> np.ndarray | None:
    """(S, n) float32: each posterior draw's pair effect u of the new judge's labelled pairs
    (a spec with a pair level; None without one). Every label is on a fitted pair, so u is
    known for each: under the cut, draw s of the new judge's parameters is conditional on
    draw s of every population term, u included, as the logits of the fitted judges are."""
    if PAIR_TERM not in post:
        return None
    da = post[PAIR_TERM].transpose("chain", "draw", "pair")
    idx = pd.Index(np.asarray(da["pair"].values)).get_indexer(np.asarray(pairs))
    if (idx < 0).any():
        raise BayesDissectError(
            f"add-judge: the fit has no {PAIR_TERM} for {int((idx < 0).sum())} labelled "
            "pair(s); use --exact")
    return flat_draws(da)[:, idx].astype(np.float32)


def _fast_hierarchical(fit: Any, data2: xr.Dataset, name: str, seed: int | None):
    """The fast path for the hierarchical family (Normal offsets, Normal bias)."""
    post = as_posterior(fit)
    levels = _levels(fit.spec)
    judge_vars = [v for v in post.data_vars if "judge" in post[v].dims]
    unknown = [v for v in judge_vars if v not in _JUDGE_TERMS and not v.startswith("z_")]
    if unknown:
        raise BayesDissectError(
            f"add-judge: the fast path cannot extend posterior variable(s) {unknown} of "
            f"spec {getattr(fit.spec, 'name', '?')!r}; use --exact")
    heavy = [n for n in ("judge", "cell") if _get(levels.get(n), "offsets", "normal")
             == "student_t"]
    if heavy:
        raise BayesDissectError(
            f"add-judge: the fast path assumes normal offsets, but the {'/'.join(heavy)} "
            f"level of spec {getattr(fit.spec, 'name', '?')!r} has student_t offsets; use "
            "--exact")
    groups = [str(g) for g in post["group"].values] if "group" in post.coords else None
    props = [str(p) for p in post["property"].values]
    k = len(props)
    s_total = post.sizes["chain"] * post.sizes["draw"]
    n_groups = len(groups) if groups else 1
    m = np.zeros((s_total, n_groups, k))
    if "mu" in post:
        m += flat_draws(post["mu"].transpose("chain", "draw", "property"))[:, None, :]
    if "group_offset" in post:
        m += flat_draws(post["group_offset"].transpose("chain", "draw", "group", "property"))

    def sigma(level: str, var: str) -> np.ndarray | None:
        offset = {"judge": "judge_offset", "cell": "cell_offset"}[level]
        if offset not in post:
            return None
        if var in post:
            sig = post[var]
            if "property" not in sig.dims:
                sig = sig.expand_dims(property=props)
            return flat_draws(sig.transpose("chain", "draw", "property")).astype(float)
        spec_level = levels.get(level)
        scale = _level_normal_scale(spec_level) if spec_level is not None else None
        if scale is None:
            raise BayesDissectError(
                f"add-judge: the fast path needs a Normal prior for the {level} level "
                f"(no {var} in the posterior, no fixed normal scale in the spec); use --exact")
        return np.full((s_total, k), scale)

    sj = sigma("judge", "sigma_judge")
    sc = sigma("cell", "sigma_cell")
    sj, sc, recentre, clamped = _zero_sum_scales(levels, post, sj, sc, n_groups)
    bias_scale = None
    if "bias" in post:
        bias_level = levels.get("bias")
        bias_scale = _level_normal_scale(bias_level) if bias_level is not None else None
        if bias_scale is None:
            raise BayesDissectError(
                "add-judge: the fast path needs a Normal prior with a fixed scale on bias; "
                "use --exact")
    y = data2["y"].sel(judge=name).values
    keep = np.isfinite(y)
    x = data2["x"].transpose("pair", "property").sel(property=props).values[keep]
    if groups:
        pos = {g: i for i, g in enumerate(groups)}
        gvals = [str(g) for g in data2["group"].values[keep]]
        missing = sorted(set(gvals) - set(pos))
        if missing:
            raise BayesDissectError(f"add-judge: labelled pairs in group(s) {missing} that "
                                    "the fit does not have")
        gidx = np.asarray([pos[g] for g in gvals])
    else:
        gidx = np.zeros(int(keep.sum()), dtype=int)
    u = _pair_offsets(post, data2["pair"].values[keep])
    rng = np.random.default_rng(seed)
    with blas_single_thread():  # small products: one BLAS thread is faster on a busy box
        res = laplace_new_judge(x, gidx, y[keep], m, sj, sc, bias_scale, rng, offset=u)
    if recentre and "cell_offset" in res and "judge_offset" in res:
        # zero-sum cells over groups: the judge offset carries the new judge's group mean
        shift = res["cell_offset"].mean(axis=1)
        res["judge_offset"] = res["judge_offset"] + shift
        res["cell_offset"] = res["cell_offset"] - shift[:, None, :]
    draws = {v: res[v] for v in _JUDGE_TERMS if v in res and v in post}
    # keep raw non-centred draws consistent where the posterior carries them
    if "z_judge" in post and "judge_offset" in draws and sj is not None:
        draws["z_judge"] = draws["judge_offset"] / sj
    if "z_cell" in post and "cell_offset" in draws and sc is not None:
        draws["z_cell"] = draws["cell_offset"] / sc[:, None, :]
    new_post, dropped = _append_judge(post, name, draws)
    info = {"method": "fast", "approximation": "cut + per-draw Laplace",
            "labelled_pairs": int(keep.sum()), "zero_sum_cells_recentred": bool(recentre),
            "judge_scale_clamped_draws": int(clamped),
            "pair_effect": "paired draws of the fit's pair effects" if u is not None
            else "none (no pair level)",
            "chord_iters": int(res["chord_iters"]), "newton_iters": int(res["newton_iters"]),
            "max_grad_at_mode": float(res["max_grad"]), "dropped_variables": dropped}
    return new_post, info


# --------------------------------------------------------------------------------------
# add_judge
# --------------------------------------------------------------------------------------


def _fit_kwargs(fit: Any, chains: int | None, draws: int | None, tune: int | None) -> dict:
    """Sampler settings for a refit: the caller's, else FIT's own (``fit.settings``).

    FIT's judge/group/case selection is not passed again: ``fit.data`` is already the
    selected data."""
    post = as_posterior(fit)
    settings = dict(getattr(fit, "settings", {}) or {})
    kw: dict[str, Any] = {"chains": chains or int(post.sizes["chain"]),
                          "draws": draws or int(post.sizes["draw"])}
    if tune or settings.get("tune") is not None:
        kw["tune"] = int(tune or settings["tune"])
    for key in ("sampler", "target_accept", "backend", "adaptation"):
        if settings.get(key) is not None:
            kw[key] = settings[key]
    return kw


def _call_fit(data: xr.Dataset, fit: Any, kwargs: dict) -> Any:
    """``bayesdissect.fit`` of FIT's spec on ``data`` with the given (non-None) settings."""
    from bayesdissect.model import sample as fitting

    return fitting.fit(data, model=fit.spec, **{k: v for k, v in kwargs.items()
                                                if v is not None})


def add_judge(
    fit: Any,
    labels: Any,
    name: str,
    *,
    method: str = "fast",
    seed: int | None = 0,
    chains: int | None = None,
    draws: int | None = None,
    tune: int | None = None,
    progressbar: bool = False,
) -> Any:
    """Add a judge with labels on the fit's pairs; return a new Fit that includes it.

    ``labels``: a list of "A"/"B" per source row (pairs dropped from the fit are skipped by
    index; None or "" = not labelled), a dict {pair index: label}, or a path to a .json or
    .csv (columns pair, label) file; see the module doc. ``name`` must be new. The new judge
    is appended last on the ``judge`` dim of the data and of every judge variable of the
    posterior; every other variable is unchanged (fast) or refitted (exact).

    ``method="fast"``: only the new judge's own parameters are fitted, one draw per posterior
    draw of FIT, conditioning on that draw's population terms (``mu``, ``group_offset``,
    ``sigma_judge``, ``sigma_cell``) with a Laplace approximation of the new judge's
    conditional posterior. It approximates the joint posterior by (1) a cut: the new labels
    do not update the population or the other judges, and (2) a Gaussian conditional. For
    the ``paper`` spec it fits only the new judge's cells with NUTS, which is exact there.
    ``method="exact"``: refit everything on the extended data with FIT's sampler settings
    (``chains``/``draws``/``tune`` override; ``tune`` defaults to FIT's own, since the mass
    matrix must be adapted afresh), warm-started at FIT's posterior means (the new judge
    at 0).
    Errors in the labels or the name raise ``BayesDissectError`` (one line).
    """
    if method not in METHODS:
        raise BayesDissectError(f"method: {method!r} is not one of {list(METHODS)}")
    existing = [str(j) for j in fit.data["judge"].values]
    if str(name).strip() in existing:
        raise BayesDissectError(
            f"--name: judge {str(name).strip()!r} is already in the fit (choose another name)")
    y_new = parse_labels(labels, fit.data, getattr(fit, "settings", None))
    name = str(name).strip()
    data2 = data_with_judge(fit.data, y_new, name)
    t0 = time.perf_counter()
    base_diag = dict(getattr(fit, "diagnostics", {}) or {})
    if method == "exact":
        kw = _fit_kwargs(fit, chains, draws, tune)
        kw.update(seed=seed, progressbar=progressbar, initvals=fit)
        new_fit = _call_fit(data2, fit, kw)
        diag = dict(getattr(new_fit, "diagnostics", {}) or {})
        warm = bool((getattr(new_fit, "settings", {}) or {}).get("warm_start", False))
        diag["add_judge"] = {"method": "exact", "judge": name, "warm_start": warm,
                             "labelled_pairs": int(np.isfinite(y_new.values).sum()),
                             "seconds": time.perf_counter() - t0}
        return _make_fit(new_fit, new_fit.data, new_fit.idata, diag)
    post = as_posterior(fit)
    if "w_cell" in post:
        # paper spec: the posterior factorises over judges, so fitting only the new judge's
        # cells is exact; its draws are appended (pairing with other judges is irrelevant).
        kw = _fit_kwargs(fit, chains, draws, tune)
        kw.update(seed=seed, progressbar=progressbar, judges=[name])
        sub = _call_fit(data2, fit, kw)
        sub_post = as_posterior(sub)
        new_draws = {"w_cell": sub_post["w_cell"].sel(judge=name).transpose(
            "chain", "draw", *[d for d in post["w_cell"].dims if d not in
                               ("chain", "draw", "judge")]).values}
        if sub_post.sizes["chain"] * sub_post.sizes["draw"] != post.sizes["chain"] * \
                post.sizes["draw"]:
            raise BayesDissectError("add-judge: the new judge's sub-fit returned a different "
                                    "number of draws than FIT; pass chains/draws matching FIT")
        new_post, dropped = _append_judge(post, name, new_draws)
        info = {"method": "fast", "approximation": "none (paper spec factorises)",
                "labelled_pairs": int(np.isfinite(y_new.values).sum()),
                "dropped_variables": dropped}
    else:
        new_post, info = _fast_hierarchical(fit, data2, name, seed)
    info.update(judge=name, seconds=time.perf_counter() - t0)
    base_diag["add_judge"] = info
    return _make_fit(fit, data2, _with_posterior(fit, new_post), base_diag)
