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

    With zero-sum levels (the default spec) ``mu`` is the fitted judges' average, so the new
    judge's offsets get prior variance sigma^2 (1 + 1/J) around it, and its cell offsets
    sum to zero over groups like every fitted judge's (see ``_zero_sum_scales``).

    For the ``paper`` spec (independent ``w_cell`` per judge x group, Laplace prior) the
    posterior factorises over judges, so the fast path fits only the new judge's cells with
    NUTS, which is exact.

Labels (``labels`` argument, or the CLI's LABELS file): a list of "A"/"B" per pair in source
row order (``None`` / "" = not labelled; pairs dropped from the fit are skipped by index), a
dict {pair index: label}, or a path to a ``.json`` file holding either, or to a ``.csv`` with
columns ``pair`` and ``label``. "A" (also "response_1", "1") means the judge preferred
response 1. Every problem raises ``BayesDissectError`` with one line.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from bayesdissect.errors import BayesDissectError

if TYPE_CHECKING:  # pragma: no cover
    pass

#: Label spellings accepted for "judge preferred response 1" / "response 2".
_LABEL_A = {"a", "response_1", "response 1", "1"}
_LABEL_B = {"b", "response_2", "response 2", "2"}
#: The terms of w that belong to one judge (everything else is "population").
_JUDGE_TERMS = ("judge_offset", "cell_offset", "bias")
#: Population terms that enter the new judge's weight in group g.
_POP_TERMS = ("mu", "group_offset")
METHODS = ("fast", "exact")


# --------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------


def _label_value(value: Any, where: str) -> float:
    """1.0 for response 1, 0.0 for response 2, NaN for missing; anything else is an error."""
    if value is None:
        return math.nan
    if isinstance(value, bool):
        raise BayesDissectError(f"{where}: label {value!r} is not one of A/B")
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            return math.nan
        value = str(int(value)) if float(value).is_integer() else str(value)
    if not isinstance(value, str):
        raise BayesDissectError(f"{where}: label {value!r} is not one of A/B")
    text = value.strip().lower()
    if text == "":
        return math.nan
    if text in _LABEL_A:
        return 1.0
    if text in _LABEL_B:
        return 0.0
    raise BayesDissectError(
        f"{where}: label {value!r} is not one of A/B (or response_1/response_2, 1/2)")


def _pair_index(key: Any, where: str) -> int:
    """A pair index from a dict key or CSV cell: a non-negative integer."""
    text = str(key).strip()
    try:
        idx = int(text)
    except ValueError:
        raise BayesDissectError(
            f"{where}: pair index {key!r} is not an integer (0-based source row)") from None
    if idx < 0:
        raise BayesDissectError(f"{where}: pair index {idx} is negative")
    return idx


def _source_rows(data: xr.Dataset, settings: Mapping[str, Any] | None = None) -> int | None:
    """Rows in the source the fit's pairs came from, when that is known: an explicit
    ``n_source_rows`` attribute, else kept + dropped pairs when the fit used every pair
    (no group or case selection in ``settings``)."""
    for key in ("n_source_rows", "n_rows"):
        if key in data.attrs:
            return int(data.attrs[key])
    settings = settings or {}
    if settings.get("groups") or settings.get("subset"):
        return None
    if "n_dropped" in data.attrs:
        return int(data.sizes["pair"]) + int(data.attrs["n_dropped"])
    return None


def _read_labels_file(path: Path) -> Any:
    """Parse a labels file (.json list/dict or .csv with pair,label) into a list or dict."""
    if not path.is_file():
        raise BayesDissectError(f"{path}: labels file not found")
    if path.suffix.lower() == ".csv":
        try:
            with path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                fields = {(f or "").strip().lower(): f for f in (reader.fieldnames or [])}
                if "pair" not in fields or "label" not in fields:
                    raise BayesDissectError(
                        f"{path}: CSV needs columns 'pair' and 'label'; "
                        f"found {list(reader.fieldnames or [])}")
                out: dict[int, Any] = {}
                for row_no, row in enumerate(reader, start=2):
                    where = f"{path} line {row_no}"
                    idx = _pair_index(row[fields["pair"]], f"{where} field pair")
                    if idx in out:
                        raise BayesDissectError(f"{where}: pair {idx} labelled twice")
                    out[idx] = row[fields["label"]]
                return out, "csv"
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise BayesDissectError(f"{path}: cannot read CSV labels ({exc})") from None
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise BayesDissectError(f"{path}: cannot read labels ({exc})") from None
    except json.JSONDecodeError as exc:
        raise BayesDissectError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno} "
            "(expected a list of \"A\"/\"B\" or an object {pair: label})") from None
    return obj, "json"


def parse_labels(labels: Any, data: xr.Dataset,
                 settings: Mapping[str, Any] | None = None) -> xr.DataArray:
    """The new judge's labels as ``y (pair)`` aligned to ``data.pair`` (1.0/0.0/NaN).

    ``labels``: a list (one per source row, source row order), a dict {pair index: label},
    a pandas Series indexed by pair, or a path to a .json / .csv file (see module doc).
    ``settings``: the fit's settings, to know whether every source row was fitted (then a
    list must have exactly one label per source row).
    """
    source = "labels"
    if isinstance(labels, str | os.PathLike):
        path = Path(labels)
        labels, kind = _read_labels_file(path)
        source = str(path)
    elif hasattr(labels, "to_dict") and hasattr(labels, "index"):  # pandas Series
        labels = labels.to_dict()
    pairs = np.asarray(data["pair"].values, dtype=np.int64)
    position = {int(p): i for i, p in enumerate(pairs)}
    y = np.full(pairs.shape[0], np.nan)
    if isinstance(labels, Mapping):
        for key, value in labels.items():
            idx = _pair_index(key, f"{source}: key {key!r}")
            if idx not in position:
                raise BayesDissectError(
                    f"{source}: pair {idx} is not among the fit's pairs (0..{int(pairs.max())}, "
                    f"{pairs.size} pairs; dropped pairs cannot be labelled)")
            y[position[idx]] = _label_value(value, f"{source} pair {idx}")
    elif isinstance(labels, Sequence) and not isinstance(labels, str | bytes):
        n = len(labels)
        expected = _source_rows(data, settings)
        if expected is not None and n != expected:
            raise BayesDissectError(
                f"{source}: {n} labels but the data has {expected} source rows "
                "(expected one \"A\"/\"B\" per pair in source row order)")
        if n <= int(pairs.max()):
            raise BayesDissectError(
                f"{source}: {n} labels but the fit has pair index {int(pairs.max())} "
                "(expected one \"A\"/\"B\" per pair in source row order)")
        values = [_label_value(v, f"{source} item {i}") for i, v in enumerate(labels)]
        y = np.asarray([values[p] for p in pairs], dtype=float)
    else:
        raise BayesDissectError(
            f"{source}: expected a list of \"A\"/\"B\" per pair, an object {{pair: label}} "
            f"or a CSV with pair,label columns; got {type(labels).__name__}")
    if not np.isfinite(y).any():
        raise BayesDissectError(f"{source}: no fitted pair is labelled")
    return xr.DataArray(y, dims=("pair",), coords={"pair": data["pair"].values})


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
# Fast path: per-draw Laplace approximation of the new judge's conditional posterior
# --------------------------------------------------------------------------------------


def _flat_draws(da: xr.DataArray, dims: tuple[str, ...]) -> np.ndarray:
    """(chain, draw, *dims) -> (S, *dims) float64."""
    return np.asarray(da.transpose("chain", "draw", *dims).values, dtype=float).reshape(
        (-1,) + tuple(da.sizes[d] for d in dims))


class _Problem:
    """The new judge's conditional log posterior in z coordinates, for a chunk of draws.

    logit_i = bias_scale * zb + x_i . (m[s, g(i)] + sj[s] * za + sc[s] * zc[g(i)]),
    z ~ N(0, 1). Holds the pieces that do not change while the mode is searched.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, groups: list[slice],
                 xx: np.ndarray, m: np.ndarray, sj: np.ndarray | None,
                 sc: np.ndarray | None, bias_scale: float | None) -> None:
        self.x, self.y, self.groups, self.xx, self.m = x, y, groups, xx, m
        self.xt = [np.ascontiguousarray(x[idx].T) for idx in groups]  # (K, pairs of g)
        self.sj, self.sc, self.bs = sj, sc, bias_scale
        self.d, self.k, self.g = m.shape[0], x.shape[1], len(groups)
        self.pg = (1 if bias_scale is not None else 0) + (self.k if sj is not None else 0)

    def eta(self, z: dict[str, np.ndarray]) -> np.ndarray:
        """Logits (d, N): one (draws x K) @ (K x pairs of g) product per group."""
        v = self.m.copy()  # (d, G, K): the judge's full weight in every group
        if self.sj is not None:
            v += (z["a"] * self.sj)[:, None, :]
        if self.sc is not None:
            v += z["c"] * self.sc[:, None, :]
        val = np.empty((self.d, self.x.shape[0]))
        for g, idx in enumerate(self.groups):
            val[:, idx] = np.ascontiguousarray(v[:, g, :]) @ self.xt[g]
        if self.bs is not None:
            val += (self.bs * z["b"])[:, None]
        return val

    def logpost(self, e: np.ndarray, z: dict[str, np.ndarray]) -> np.ndarray:
        ll = (self.y * e - np.logaddexp(0.0, e)).sum(axis=1)
        return ll - 0.5 * sum((v.reshape(self.d, -1) ** 2).sum(1) for v in z.values())

    def gradient(self, e: np.ndarray, z: dict[str, np.ndarray]):
        """(grad of the global block (d, pg), grad of the cell blocks (d, G, K) or None)."""
        r = self.y - 1.0 / (1.0 + np.exp(-e))
        parts = []
        if self.bs is not None:
            parts.append((self.bs * r.sum(1) - z["b"])[:, None])
        if self.sj is not None:
            parts.append(self.sj * (r @ self.x) - z["a"])
        grad_u = np.concatenate(parts, axis=1) if parts else np.zeros((self.d, 0))
        grad_c = None
        if self.sc is not None:
            qg = np.stack([r[:, idx] @ self.x[idx] for idx in self.groups], axis=1)
            grad_c = self.sc[:, None, :] * qg - z["c"]
        return grad_u, grad_c

    def curvature(self, e: np.ndarray | None, w_ref: np.ndarray | None = None):
        """Per-group sums S_g = X'WX, t_g = X'W1, r_g = sum W at logits e (d, N), or
        shared ones from reference weights w_ref (N,) broadcast to every draw."""
        k = self.k
        if w_ref is not None:
            sg = np.stack([(w_ref[idx] @ self.xx[idx]).reshape(k, k) for idx in self.groups])
            tg = np.stack([w_ref[idx] @ self.x[idx] for idx in self.groups])
            rg = np.asarray([w_ref[idx].sum() for idx in self.groups])
            return (np.broadcast_to(sg, (self.d,) + sg.shape),
                    np.broadcast_to(tg, (self.d,) + tg.shape),
                    np.broadcast_to(rg, (self.d,) + rg.shape))
        p = 1.0 / (1.0 + np.exp(-e))
        w = p * (1.0 - p)
        d = self.d
        sg = np.stack([(w[:, idx] @ self.xx[idx]).reshape(d, k, k) for idx in self.groups], 1)
        tg = np.stack([w[:, idx] @ self.x[idx] for idx in self.groups], axis=1)
        rg = np.stack([w[:, idx].sum(1) for idx in self.groups], axis=1)
        return sg, tg, rg

    def factor(self, sg: np.ndarray, tg: np.ndarray, rg: np.ndarray) -> dict[str, np.ndarray]:
        """Precision in z coordinates, with the cell blocks eliminated (Schur complement)."""
        d, k, gc, pg, bs, sj, sc = self.d, self.k, self.g, self.pg, self.bs, self.sj, self.sc
        h_uu = np.zeros((d, pg, pg))
        c_gu = np.zeros((d, gc, pg, k))
        pos = 0
        if bs is not None:
            h_uu[:, 0, 0] = bs**2 * rg.sum(1) + 1.0
            if sj is not None:
                h_uu[:, 0, 1:] = bs * sj * tg.sum(1)
                h_uu[:, 1:, 0] = h_uu[:, 0, 1:]
            if sc is not None:
                c_gu[:, :, 0, :] = bs * sc[:, None, :] * tg
            pos = 1
        if sj is not None:
            h_uu[:, pos:, pos:] = sj[:, :, None] * sg.sum(1) * sj[:, None, :] + np.eye(k)
            if sc is not None:
                c_gu[:, :, pos:, :] = sj[:, None, :, None] * sg * sc[:, None, None, :]
        parts: dict[str, np.ndarray] = {}
        if sc is not None:
            l_g = sc[:, None, :, None] * sg * sc[:, None, None, :] + np.eye(k)
            l_inv = np.linalg.inv(l_g)
            linv_ct = l_inv @ np.swapaxes(c_gu, -1, -2)  # (d, G, K, pg)
            schur = h_uu - np.einsum("dgpk,dgkq->dpq", c_gu, linv_ct)
            parts.update(l_g=l_g, l_inv=l_inv, linv_ct=linv_ct, c_gu=c_gu)
        else:
            schur = h_uu
        parts["schur"] = schur
        parts["schur_inv"] = np.linalg.inv(schur) if pg else np.zeros((d, 0, 0))
        return parts

    def direction(self, parts: dict[str, np.ndarray], grad_u: np.ndarray,
                  grad_c: np.ndarray | None):
        """Newton direction H^{-1} grad, using the Schur factors."""
        if grad_c is not None:
            linv_gc = np.einsum("dgkl,dgl->dgk", parts["l_inv"], grad_c)
            rhs = grad_u - np.einsum("dgpk,dgk->dp", parts["c_gu"], linv_gc)
        else:
            rhs = grad_u
        du = np.einsum("dpq,dq->dp", parts["schur_inv"], rhs)
        dc = None
        if grad_c is not None:
            dc = linv_gc - np.einsum("dgkp,dp->dgk", parts["linv_ct"], du)
        return du, dc

    def step(self, z: dict[str, np.ndarray], du: np.ndarray, dc: np.ndarray | None,
             alpha: np.ndarray) -> dict[str, np.ndarray]:
        out = dict(z)
        pos = 0
        if self.bs is not None:
            out["b"] = z["b"] + alpha * du[:, 0]
            pos = 1
        if self.sj is not None:
            out["a"] = z["a"] + alpha[:, None] * du[:, pos:]
        if dc is not None:
            out["c"] = z["c"] + alpha[:, None, None] * dc
        return out

    def mode(self, z: dict[str, np.ndarray], parts: dict[str, np.ndarray] | None,
             *, max_iter: int, tol: float) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
        """Maximise the log posterior from z. With ``parts`` given, that fixed precision is
        the preconditioner (chord method: cheap steps, linear convergence); without, a full
        Newton step each iteration. Step halving keeps every step uphill."""
        e = self.eta(z)
        lp = self.logpost(e, z)
        for it in range(max_iter):
            grad_u, grad_c = self.gradient(e, z)
            fac = parts if parts is not None else self.factor(*self.curvature(e))
            du, dc = self.direction(fac, grad_u, grad_c)
            size = np.abs(du).max(axis=1) if self.pg else np.zeros(self.d)
            if dc is not None:
                size = np.maximum(size, np.abs(dc).max(axis=(1, 2)))
            if size.max() < tol:
                return z, e, it
            alpha = np.ones(self.d)
            for _ in range(40):
                z_new = self.step(z, du, dc, alpha)
                e_new = self.eta(z_new)
                lp_new = self.logpost(e_new, z_new)
                ok = lp_new >= lp - 1e-9 * np.abs(lp)
                if ok.all():
                    break
                alpha = np.where(ok, alpha, 0.5 * alpha)
            z, e, lp = z_new, e_new, lp_new
        return z, e, max_iter


def laplace_new_judge(
    x: np.ndarray,
    gidx: np.ndarray,
    y: np.ndarray,
    m: np.ndarray,
    sigma_judge: np.ndarray | None,
    sigma_cell: np.ndarray | None,
    bias_scale: float | None,
    rng: np.random.Generator,
    *,
    chunk: int = 500,
    max_iter: int = 100,
    tol: float = 1e-7,
) -> dict[str, np.ndarray]:
    """Draw the new judge's own parameters, one draw per population draw (the fast path).

    Model for labelled pairs i (group g(i)) and population draw s:
        logit_i = bias + x_i . (m[s, g(i)] + a + c[g(i)]),
        a = sigma_judge[s] * za, c[g] = sigma_cell[s] * zc[g], bias = bias_scale * zb,
        za, zc, zb ~ N(0, 1).
    For each s: the mode of the conditional posterior in z (chord iterations preconditioned
    by the curvature at a reference mode -- the one for the posterior-mean population --
    then, only if those stall, full Newton steps), and one draw from the Gaussian whose
    precision is the exact Hessian at that mode. The cell blocks are eliminated by a Schur
    complement, so a draw
    costs K x K work per group plus one (1 + K) system, and the curvature sums are matrix
    products over the labelled pairs.

    Shapes: x (N, K); gidx (N,) int in [0, G); y (N,) 0/1; m (S, G, K); sigma_* (S, K) or
    None when the level is off. Returns judge_offset (S, K), cell_offset (S, G, K) and
    bias (S,) for the levels that are on, and diagnostics ``chord_iters``, ``newton_iters``
    (max over draws), ``max_grad`` (largest |gradient| left at a mode, z units).
    """
    order = np.argsort(np.asarray(gidx), kind="stable")  # groups become contiguous slices
    x = np.ascontiguousarray(np.asarray(x, dtype=float)[order])
    y = np.asarray(y, dtype=float)[order]
    gidx = np.asarray(gidx)[order]
    n, k = x.shape
    s_total, g_count, _ = m.shape
    bounds = np.searchsorted(gidx, np.arange(g_count + 1))
    groups = [slice(int(bounds[g]), int(bounds[g + 1])) for g in range(g_count)]
    xx = (x[:, :, None] * x[:, None, :]).reshape(n, k * k)
    has_a, has_c, has_b = sigma_judge is not None, sigma_cell is not None, bias_scale is not None

    def problem(m_: np.ndarray, sj_: np.ndarray | None, sc_: np.ndarray | None) -> _Problem:
        return _Problem(x, y, groups, xx, np.asarray(m_, dtype=float), sj_, sc_, bias_scale)

    def zeros(d: int) -> dict[str, np.ndarray]:
        z: dict[str, np.ndarray] = {}
        if has_b:
            z["b"] = np.zeros(d)
        if has_a:
            z["a"] = np.zeros((d, k))
        if has_c:
            z["c"] = np.zeros((d, g_count, k))
        return z

    # Reference: the mode for the posterior-mean population, by full Newton.
    sj_all = None if sigma_judge is None else np.asarray(sigma_judge, dtype=float)
    sc_all = None if sigma_cell is None else np.asarray(sigma_cell, dtype=float)
    ref = problem(m.mean(0, keepdims=True),
                  None if sj_all is None else sj_all.mean(0, keepdims=True),
                  None if sc_all is None else sc_all.mean(0, keepdims=True))
    z_ref, e_ref, _ = ref.mode(zeros(1), None, max_iter=max_iter, tol=tol)
    p_ref = 1.0 / (1.0 + np.exp(-e_ref[0]))
    w_ref = p_ref * (1.0 - p_ref)
    # the reference mode on the natural scale, to start every draw from
    a_ref = z_ref["a"][0] * ref.sj[0] if has_a else None  # type: ignore[index]
    c_ref = z_ref["c"][0] * ref.sc[0] if has_c else None  # type: ignore[index]

    out = {"judge_offset": np.zeros((s_total, k)), "cell_offset": np.zeros((s_total, g_count, k)),
           "bias": np.zeros(s_total)}
    chord_iters = newton_iters = 0
    max_grad = 0.0
    for start in range(0, s_total, chunk):
        sl = slice(start, min(start + chunk, s_total))
        prob = problem(m[sl], None if sj_all is None else sj_all[sl],
                       None if sc_all is None else sc_all[sl])
        d = prob.d
        z = zeros(d)
        if has_b:
            z["b"] = np.full(d, z_ref["b"][0])
        if has_a:
            z["a"] = a_ref / prob.sj  # type: ignore[operator]
        if has_c:
            z["c"] = c_ref / prob.sc[:, None, :]  # type: ignore[index]
        fixed = prob.factor(*prob.curvature(None, w_ref=w_ref))
        z, e, it1 = prob.mode(z, fixed, max_iter=max_iter, tol=tol)
        it2 = 0
        if it1 >= max_iter:  # the chord method stalled: finish with full Newton steps
            z, e, it2 = prob.mode(z, None, max_iter=max_iter, tol=tol)
        chord_iters, newton_iters = max(chord_iters, it1), max(newton_iters, it2)
        grad_u, grad_c = prob.gradient(e, z)
        max_grad = max(max_grad, float(np.abs(grad_u).max(initial=0.0)),
                       float(np.abs(grad_c).max(initial=0.0)) if grad_c is not None else 0.0)
        parts = prob.factor(*prob.curvature(e))
        # one draw from N(mode, H^{-1}): global block from its Schur marginal, then the
        # cell blocks from their conditional given the global block
        pos = 0
        if prob.pg:
            u_dev = _chol_solve_t(np.linalg.cholesky(parts["schur"]),
                                  rng.standard_normal((d, prob.pg)))
        if has_b:
            out["bias"][sl] = bias_scale * (z["b"] + u_dev[:, 0])
            pos = 1
        if has_a:
            out["judge_offset"][sl] = prob.sj * (z["a"] + u_dev[:, pos:])
        if has_c:
            c_dev = _chol_solve_t(np.linalg.cholesky(parts["l_g"]),
                                  rng.standard_normal((d, g_count, k)))
            if prob.pg:
                c_dev -= np.einsum("dgkp,dp->dgk", parts["linv_ct"], u_dev)
            out["cell_offset"][sl] = prob.sc[:, None, :] * (z["c"] + c_dev)
    result = {name: arr for name, arr, on in (("judge_offset", out["judge_offset"], has_a),
                                              ("cell_offset", out["cell_offset"], has_c),
                                              ("bias", out["bias"], has_b)) if on}
    result.update(chord_iters=np.asarray(chord_iters), newton_iters=np.asarray(newton_iters),
                  max_grad=np.asarray(max_grad))
    return result


def _chol_solve_t(chol: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """L^{-T} eps for batched lower-triangular L (precision L L^T), eps (..., n): a draw
    with covariance (L L^T)^{-1}."""
    return np.linalg.solve(np.swapaxes(chol, -1, -2), eps[..., None])[..., 0]


# --------------------------------------------------------------------------------------
# add_judge
# --------------------------------------------------------------------------------------


def _posterior_dataset(fit: Any) -> xr.Dataset:
    from bayesdissect.model.fitted import as_posterior

    return as_posterior(fit)


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


def _append_judge(post: xr.Dataset, name: str, draws: dict[str, np.ndarray]) -> xr.Dataset:
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


def _fast_hierarchical(fit: Any, data2: xr.Dataset, name: str, seed: int | None):
    """The fast path for the hierarchical family (Normal offsets, Normal bias)."""
    post = _posterior_dataset(fit)
    levels = _levels(fit.spec)
    judge_vars = [v for v in post.data_vars if "judge" in post[v].dims]
    unknown = [v for v in judge_vars if v not in _JUDGE_TERMS and not v.startswith("z_")]
    if unknown:
        raise BayesDissectError(
            f"add-judge: the fast path cannot extend posterior variable(s) {unknown} of "
            f"spec {getattr(fit.spec, 'name', '?')!r}; use --exact")
    groups = [str(g) for g in post["group"].values] if "group" in post.coords else None
    props = [str(p) for p in post["property"].values]
    k = len(props)
    s_total = post.sizes["chain"] * post.sizes["draw"]
    n_groups = len(groups) if groups else 1
    m = np.zeros((s_total, n_groups, k))
    if "mu" in post:
        m += _flat_draws(post["mu"], ("property",))[:, None, :]
    if "group_offset" in post:
        m += _flat_draws(post["group_offset"], ("group", "property"))

    def sigma(level: str, var: str) -> np.ndarray | None:
        offset = {"judge": "judge_offset", "cell": "cell_offset"}[level]
        if offset not in post:
            return None
        if var in post:
            sig = post[var]
            if "property" not in sig.dims:
                sig = sig.expand_dims(property=props)
            return _flat_draws(sig, ("property",))
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
    rng = np.random.default_rng(seed)
    from bayesdissect.queries.weights import blas_single_thread

    with blas_single_thread():  # small products: one BLAS thread is faster on a busy box
        res = laplace_new_judge(x, gidx, y[keep], m, sj, sc, bias_scale, rng)
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
            "chord_iters": int(res["chord_iters"]), "newton_iters": int(res["newton_iters"]),
            "max_grad_at_mode": float(res["max_grad"]), "dropped_variables": dropped}
    return new_post, info


def _fit_kwargs(fit: Any, chains: int | None, draws: int | None, tune: int | None) -> dict:
    """Sampler settings for a refit: the caller's, else FIT's own (``fit.settings``).

    FIT's judge/group/case selection is not passed again: ``fit.data`` is already the
    selected data."""
    post = _posterior_dataset(fit)
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
    post = _posterior_dataset(fit)
    if "w_cell" in post:
        # paper spec: the posterior factorises over judges, so fitting only the new judge's
        # cells is exact; its draws are appended (pairing with other judges is irrelevant).
        kw = _fit_kwargs(fit, chains, draws, tune)
        kw.update(seed=seed, progressbar=progressbar, judges=[name])
        sub = _call_fit(data2, fit, kw)
        sub_post = _posterior_dataset(sub)
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
