"""Warm start: a starting point for every free variable of a model from a previous fit.

``initial_point_from(model, values)`` maps posterior-contract values (a ``Fit``'s posterior
means, or a dict) onto the sampled variables of ``model``, matching judges, groups and
properties by name, whatever the parameterization (``fit(initvals=...)`` uses it).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr

from bayesdissect.errors import BayesDissectError
from bayesdissect.model.build import INTERNAL_PREFIXES, model_info
from bayesdissect.model.fitted import Fit, as_posterior

#: Smallest starting value of a log-transformed (positive) variable such as a sigma.
_MIN_POSITIVE = 1e-6


def _given_values(values: Any) -> tuple[dict[str, Any], bool]:
    """{name: DataArray | ndarray} from a Fit (posterior means) or a dict; strict for dicts."""
    if isinstance(values, Fit) or isinstance(getattr(values, "posterior", None),
                                             xr.DataTree | xr.Dataset):
        post = as_posterior(values)
        return {str(n): da.mean([d for d in ("chain", "draw") if d in da.dims])
                for n, da in post.data_vars.items()}, False
    if isinstance(values, xr.Dataset):
        values = dict(values.data_vars)
    if not isinstance(values, dict):
        raise BayesDissectError(f"initvals: expected a Fit or a dict {{variable: array}}, got "
                                f"{type(values).__name__}")
    return {str(n): v for n, v in values.items()}, True


def _align(name: str, value: Any, dims: tuple[str, ...], coords: dict[str, Any],
           shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as an array of ``shape`` in ``dims`` order; NaN where a label is missing.

    A DataArray is matched by dim names and coordinate labels (extra labels are dropped,
    missing ones are NaN); chain/draw dims are averaged over. An array must have ``shape``.
    """
    if isinstance(value, xr.DataArray):
        da = value
        extra = [d for d in ("chain", "draw") if d in da.dims]
        if extra:
            da = da.mean(extra)
        if set(da.dims) != set(dims):
            raise BayesDissectError(f"initvals: variable {name!r} has dims {tuple(da.dims)}; "
                                    f"expected {dims}")
        da = da.transpose(*dims)
        for dim, size in zip(dims, shape, strict=True):
            if dim in da.coords and coords.get(dim) is not None:
                src = [str(v) for v in np.asarray(da[dim].values)]
                if len(set(src)) != len(src):
                    raise BayesDissectError(f"initvals: variable {name!r} has repeated "
                                            f"{dim} labels")
                want = [str(v) for v in coords[dim]]
                if not set(src) & set(want):
                    warnings.warn(f"initvals: variable {name!r} shares no {dim} labels with "
                                  f"the model (given {src[:5]}, model {want[:5]}); it starts "
                                  "at the default", UserWarning, stacklevel=3)
                da = da.assign_coords({dim: src}).reindex({dim: want})
            elif da.sizes[dim] != size:
                raise BayesDissectError(f"initvals: variable {name!r} has {da.sizes[dim]} "
                                        f"unlabelled {dim} entries; expected {size}")
        arr = np.asarray(da.values, dtype=np.float64)
    else:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise BayesDissectError(f"initvals: variable {name!r} is not numeric") from None
        if arr.shape != tuple(shape):
            raise BayesDissectError(f"initvals: variable {name!r} has shape {arr.shape}; "
                                    f"expected {tuple(shape)} (dims {dims})")
    if np.isinf(arr).any():
        raise BayesDissectError(f"initvals: variable {name!r} has infinite values")
    return arr


def _free_value_fn(model: Any, outputs: list[Any]) -> Any:
    """f(point) -> [output values]: ``outputs`` evaluated at given free-RV values.

    Every free random variable of ``model`` is replaced by an input of its type, so the
    values are in the constrained space (as in the saved posterior)."""
    import pytensor
    from pytensor.graph.replace import clone_replace

    rvs = list(model.free_RVs)
    inputs = [rv.type(name=rv.name) for rv in rvs]
    outs = clone_replace(outputs, replace=dict(zip(rvs, inputs, strict=True)))
    fn = pytensor.function(inputs, outs, on_unused_input="ignore", allow_input_downcast=True,
                           mode="FAST_COMPILE")
    names = [rv.name for rv in rvs]

    def call(point: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(v, dtype=np.float64) for v in fn(*[point[n] for n in names])]

    return call


def initial_point_from(model: Any, values: Fit | dict[str, Any]) -> dict[str, np.ndarray]:
    """A starting value for every free variable of ``model`` from posterior-contract values.

    ``values`` is a ``Fit`` (its posterior means over chain/draw are used) or a dict
    {contract variable name: array or DataArray}: ``mu``, ``judge_offset``, ``group_offset``,
    ``cell_offset``, ``w_cell``, ``bias``, ``sigma_*`` as saved in a fit. DataArrays are
    matched to the model by dim names and coordinate labels (judge, group and property
    names), never by position; plain arrays must have the model's shape. Labels the model
    has and the values lack (a new judge, say) start at 0 for offsets and ``bias`` and at
    the model's default for the rest; labels only the values have are dropped. A dict with
    a name that is not a contract variable of ``model``, the wrong dims or the wrong shape
    raises ``BayesDissectError``; a Fit's variables that ``model`` lacks (another spec) are
    skipped.

    Contract variables that are free variables of the model take the given value (positive
    ones -- log-transformed, e.g. ``sigma_*`` -- clipped to at least 1e-6). Each sampled
    helper ``z_*`` is mapped through the first contract Deterministic that depends on it
    (its level's offset), without assuming the parameterization: the offset is evaluated at
    the starting values of everything else with z = 0, z = 1 and a random z, which must show
    an elementwise affine map ``offset = c + rest * z`` (after the dims are transposed); then
    ``z = (offset - c) / rest`` (0 where rest = 0), centred over the zero-sum axes of a
    ``ZeroSumNormal``. Helpers whose map is not elementwise affine, and variables with no
    given value, keep the model's default start (a warning names them). Returns
    {free variable name: array} in the constrained space (what ``pm.sample(initvals=)`` and
    ``nutpie.compile_pymc_model(initial_points=)`` take).
    """
    point, unset = warm_start(model, values)
    if unset:
        warnings.warn(f"initvals: could not set {unset} from the given values; they start "
                      "at the model's default", UserWarning, stacklevel=2)
    return point


def warm_start(model: Any, values: Any) -> tuple[dict[str, np.ndarray], list[str]]:
    """``initial_point_from``'s point and the names of the free variables left at the default
    (``fit`` warns about those itself)."""
    from pymc.initial_point import make_initial_point_fn
    from pymc.logprob.transforms import LogTransform
    from pytensor.graph.traversal import ancestors

    given, strict = _given_values(values)
    free = list(model.free_RVs)
    contract_free = [rv for rv in free if not rv.name.startswith(INTERNAL_PREFIXES)]
    contract_det = [d for d in model.deterministics if not d.name.startswith(INTERNAL_PREFIXES)]
    contract = {v.name for v in contract_free + contract_det}
    unknown = [n for n in given if n not in contract]
    if strict and unknown:
        raise BayesDissectError(f"initvals: unknown variable(s) {unknown}; this model's "
                                f"posterior variables are {sorted(contract)}")
    default = make_initial_point_fn(model=model, return_transformed=False,
                                    jitter_rvs=set())(0)
    point = {rv.name: np.asarray(default[rv.name], dtype=np.float64) for rv in free}
    det_fn = _free_value_fn(model, contract_det)
    det_names = [d.name for d in contract_det]
    shapes = {**{n: v.shape for n, v in point.items()},
              **{n: v.shape for n, v in zip(det_names, det_fn(point), strict=True)}}
    coords = {k: (None if v is None else list(v)) for k, v in model.coords.items()}

    def dims_of(name: str) -> tuple[str, ...]:
        return tuple(model.named_vars_to_dims.get(name) or ())

    targets = {n: _align(n, v, dims_of(n), coords, shapes[n]) for n, v in given.items()
               if n in contract}
    unset = []
    for rv in contract_free:
        if rv.name not in targets:
            unset.append(rv.name)
            continue
        val = np.where(np.isnan(targets[rv.name]), point[rv.name], targets[rv.name])
        if isinstance(model.rvs_to_transforms.get(rv), LogTransform):
            val = np.maximum(val, _MIN_POSITIVE)
        point[rv.name] = val
    handled = _radial_initial_point(model, targets, point, dims_of, unset)
    rng = np.random.default_rng(0)
    for rv in free:
        if not rv.name.startswith(INTERNAL_PREFIXES) or rv.name in handled:
            continue
        det = next((d for d in contract_det if rv in set(ancestors([d]))), None)
        if det is None or det.name not in targets:
            unset.append(rv.name)
            continue
        zdims, ddims = dims_of(rv.name), dims_of(det.name)
        if sorted(zdims) != sorted(ddims) or len(zdims) != point[rv.name].ndim:
            unset.append(rv.name)
            continue
        i = det_names.index(det.name)
        probe = rng.uniform(0.5, 1.5, point[rv.name].shape)
        f0, f1, fp = (det_fn({**point, rv.name: z})[i] for z in (
            np.zeros_like(probe), np.ones_like(probe), probe))
        order = [zdims.index(d) for d in ddims]  # z dims -> offset dims
        c, r = f0, f1 - f0
        eps = np.finfo(np.dtype(rv.dtype)).eps
        scale = 1.0 + max(np.abs(f0).max(initial=0), np.abs(f1).max(initial=0))
        if not (np.isfinite(fp).all() and np.isfinite(scale) and np.allclose(
                fp, c + r * probe.transpose(order), rtol=0, atol=1e4 * eps * scale)):
            unset.append(rv.name)  # not an elementwise affine map of z: keep the default
            continue
        target = np.where(np.isnan(targets[det.name]), 0.0, targets[det.name])
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(np.abs(r) > eps * scale, (target - c) / r, 0.0)
        z = z.transpose(np.argsort(order))  # offset dims -> z dims
        for ax in getattr(model.rvs_to_transforms.get(rv), "zerosum_axes", ()) or ():
            z = z - z.mean(axis=ax, keepdims=True)
        point[rv.name] = z
    return point, unset


def _radial_initial_point(model: Any, targets: dict[str, np.ndarray], point: dict[str, Any],
                          dims_of: Any, unset: list[str]) -> set[str]:
    """Set the helpers of "radial" levels (``model_info(model).radial``) from offset and
    sigma.

    offset = exp(psi) * y / ||y|| with log sigma = psi - l: psi = log ||offset||,
    l = log(||offset|| / sigma), y = the offset's direction at radius sqrt(n).
    """
    handled: set[str] = set()
    info = model_info(model)
    for lv, meta in (info.radial if info is not None else {}).items():
        names = [f"z_{lv}", f"z_{lv}_lognorm", f"z_{lv}_size" if meta.signed
                 else f"z_{lv}_logsize"]
        handled.update(names)
        off, sig = targets.get(meta.term), targets.get(f"sigma_{lv}")
        if off is None or sig is None:
            unset.extend(names)
            continue
        off = np.nan_to_num(off).transpose([dims_of(meta.term).index(d)
                                            for d in meta.zs_dims])
        axes = meta.size_axes
        lead = off.ndim - len(axes)  # 1: one size per property; 0: one for the level
        norm = np.sqrt((off**2).sum(axis=axes))
        ok = norm > _MIN_POSITIVE
        norm = np.where(ok, norm, _MIN_POSITIVE)
        sig = np.maximum(np.nan_to_num(sig, nan=_MIN_POSITIVE), _MIN_POSITIVE)
        pad = (slice(None), *(None,) * len(axes)) if lead else ()
        y = np.where(ok[pad], off / norm[pad] * np.sqrt(meta.n), point[f"z_{lv}"])
        point[f"z_{lv}"] = y
        point[f"z_{lv}_lognorm"] = (np.log(norm / sig) - meta.l0) / meta.step
        if meta.signed:
            point[f"z_{lv}_size"] = norm / np.exp(meta.psi0)
        else:
            point[f"z_{lv}_logsize"] = np.log(norm) - meta.psi0
    return handled
