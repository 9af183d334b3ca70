"""Fit a model spec to a dataset with NUTS, and save / load the result (model.md §4).

``fit(data, model="hierarchical", ...)`` returns a ``Fit``: the data actually fitted
(``fit.data``, the contract Dataset with dims pair, judge, property), the spec, the
diagnostics, and ``fit.idata``, a standard ArviZ 1.x DataTree with groups ``posterior``,
``sample_stats`` (``warmup_posterior`` / ``warmup_sample_stats`` with ``keep_warmup=True``),
``observed_data`` (the labels on one observation dimension ``obs`` over the labelled
(pair, judge) entries, with pair and judge as its coordinates), ``constant_data``
(features, groups, cases, pair ids, judge and property metadata, the data's attributes)
and, when added, ``log_likelihood`` and ``posterior_predictive`` on the same ``obs``
dimension. ``fit.posterior`` is the posterior group as a Dataset.

``Fit.save(path)`` writes that tree as ONE netCDF file, with the spec, diagnostics and
settings as JSON attributes of the root; ``load_fit(path)`` reads it back and rebuilds
``fit.data`` exactly from observed_data and constant_data, so a loaded fit answers queries
without refitting. Files of the previous format (``bayesdissect-fit/1``, with a custom
``data`` group) still load.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesdissect._io import atomic_path
from bayesdissect.errors import BayesDissectError
from bayesdissect.model.build import INTERNAL_PREFIXES, OBS_DIM, build_model, label_index
from bayesdissect.model.diagnostics import compute_diagnostics, standard_stats, warn_if_unconverged
from bayesdissect.model.specs import SAMPLERS, ModelSpec, load_spec, spec_from_json

FORMAT = "bayesdissect-fit/2"
#: The format before the standard ArviZ layout (a custom ``data`` group); still read.
FORMAT_1 = "bayesdissect-fit/1"
#: Groups built from ``Fit.data`` (the data's one source of truth in memory).
DATA_GROUPS = ("observed_data", "constant_data")


def data_groups(data: xr.Dataset) -> dict[str, xr.Dataset]:
    """``observed_data`` and ``constant_data`` of a contract dataset.

    observed_data: ``y`` (int8 0/1) over the labelled entries on dim ``obs`` (order:
    ``model.label_index``), with coordinates ``pair`` and ``judge`` on that dim; no NaN
    padding. constant_data: everything else of ``data`` (x, group, case flags, the pair,
    judge and property coordinates with their metadata, the attributes).
    """
    pair_pos, judge_pos = label_index(data)
    y = data["y"]
    vals = np.asarray(y.transpose("pair", "judge").values)[pair_pos, judge_pos]
    observed = xr.Dataset(
        {"y": (OBS_DIM, vals.astype(np.int8), dict(y.attrs))},
        coords={OBS_DIM: np.arange(pair_pos.size),
                "pair": (OBS_DIM, np.asarray(data["pair"].values)[pair_pos]),
                "judge": (OBS_DIM, np.asarray(data["judge"].values)[judge_pos])},
        attrs={"y_dtype": str(y.dtype), "y_dims": [str(d) for d in y.dims]})
    return {"observed_data": observed, "constant_data": data.drop_vars("y")}


def data_from_groups(observed: xr.Dataset, constant: xr.Dataset) -> xr.Dataset:
    """The contract dataset back from ``data_groups``' two groups (NaN where unlabelled)."""
    pairs = pd.Index(np.asarray(constant["pair"].values))
    judges = pd.Index(np.asarray(constant["judge"].values).astype(str))
    pi = pairs.get_indexer(np.asarray(observed["pair"].values))
    ji = judges.get_indexer(np.asarray(observed["judge"].values).astype(str))
    if (pi < 0).any() or (ji < 0).any():
        raise BayesDissectError("observed_data: some (pair, judge) entries are not among "
                                "constant_data's pairs and judges")
    y = np.full((len(pairs), len(judges)), np.nan,
                dtype=np.dtype(observed.attrs.get("y_dtype", "float64")))
    y[pi, ji] = np.asarray(observed["y"].values)
    da = xr.DataArray(y, dims=("pair", "judge"), attrs=dict(observed["y"].attrs))
    dims = tuple(observed.attrs.get("y_dims", ("pair", "judge")))
    return constant.assign(y=da.transpose(*dims))


@dataclass(init=False, repr=False, eq=False)
class Fit:
    """A fitted model: ``data``, ``spec``, ``idata`` (the ArviZ DataTree), ``diagnostics``,
    ``settings``; a dataclass, so ``dataclasses.replace(fit, spec=...)`` works.

    ``idata`` holds the sampler's groups and the two groups built from ``data``
    (observed_data, constant_data: rebuilt whenever ``data`` is set, so they always match
    it). Build one from a tree (``idata=``) or from a posterior Dataset (``posterior=``;
    a DataTree there is taken as a tree of groups). ``data=None`` rebuilds the data from
    the tree's observed_data and constant_data.
    """

    data: xr.Dataset  # a property (below): setting it rebuilds the data groups
    spec: ModelSpec
    idata: xr.DataTree
    diagnostics: dict[str, Any]
    settings: dict[str, Any]

    def __init__(self, data: xr.Dataset | None, spec: ModelSpec,
                 idata: xr.DataTree | None = None, diagnostics: dict[str, Any] | None = None,
                 settings: dict[str, Any] | None = None, *,
                 posterior: xr.Dataset | xr.DataTree | None = None) -> None:
        groups: dict[str, xr.Dataset] = {}
        for tree in (idata, posterior if isinstance(posterior, xr.DataTree) else None):
            if tree is not None:
                groups.update({str(n): c.to_dataset() for n, c in tree.children.items()})
        if isinstance(posterior, xr.Dataset):
            groups["posterior"] = posterior
        if "posterior" not in groups:
            raise BayesDissectError("Fit: no posterior (give idata= with a posterior group "
                                    "or posterior=)")
        if data is None:
            if not set(DATA_GROUPS) <= set(groups):
                raise BayesDissectError("Fit: no data (give data= or a tree with "
                                        "observed_data and constant_data)")
            data = data_from_groups(groups["observed_data"], groups["constant_data"])
        self.spec = spec
        self.diagnostics: dict[str, Any] = dict(diagnostics or {})
        self.settings: dict[str, Any] = dict(settings or {})
        self.idata = xr.DataTree.from_dict({n: ds for n, ds in groups.items()
                                            if n not in DATA_GROUPS})
        self.data = data

    @property
    def data(self) -> xr.Dataset:
        """The fitted data (contract Dataset: dims pair, judge, property)."""
        return self._data

    @data.setter
    def data(self, value: xr.Dataset) -> None:
        self._data = value
        for name, ds in data_groups(value).items():
            self.idata[name] = xr.DataTree(ds)

    @property
    def posterior(self) -> xr.Dataset:
        """The posterior draws (chain, draw, ...): the tree's ``posterior`` group."""
        return self.idata["posterior"].to_dataset()

    @posterior.setter
    def posterior(self, value: xr.Dataset) -> None:
        self.idata["posterior"] = xr.DataTree(value)

    @property
    def sample_stats(self) -> xr.Dataset:
        """The sampler statistics (chain, draw) after warm-up."""
        if "sample_stats" not in self.idata.children:
            return xr.Dataset()
        return self.idata["sample_stats"].to_dataset()

    @property
    def draws(self) -> xr.Dataset:
        """Deprecated name of ``posterior``."""
        warnings.warn("Fit.draws is deprecated: use Fit.posterior (the posterior group as a "
                      "Dataset); the whole DataTree is Fit.idata", DeprecationWarning,
                      stacklevel=2)
        return self.posterior

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fit to one netCDF file, atomically (a failure leaves no file)."""
        tree = xr.DataTree.from_dict({str(n): _clean(c.to_dataset())
                                      for n, c in self.idata.children.items()})
        tree.attrs = {"format": FORMAT, "spec": self.spec.to_json(),
                      "diagnostics": json.dumps(self.diagnostics, default=_jsonable),
                      "settings": json.dumps(self.settings, default=_jsonable)}
        with atomic_path(path) as tmp:
            tree.to_netcdf(tmp, engine=_engine())
        return Path(path)

    def __repr__(self) -> str:
        d = self.diagnostics
        return (f"Fit(model={self.spec.name!r}, judges={self.data.sizes['judge']}, "
                f"pairs={self.data.sizes['pair']}, groups={len(np.unique(self.data.group))}, "
                f"chains={d.get('chains')}, draws={d.get('draws')}, "
                f"max_rhat={d.get('max_rhat', float('nan')):.3f}, "
                f"min_ess_bulk={d.get('min_ess_bulk', float('nan')):.0f}, "
                f"divergences={d.get('divergences')})")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _engine() -> str:
    """netCDF engine: netCDF4 when installed, else h5netcdf (which needs h5py)."""
    return "netcdf4" if importlib.util.find_spec("netCDF4") is not None else "h5netcdf"


def _restore_attrs(ds: xr.Dataset) -> xr.Dataset:
    """ArviZ's ``sample_dims`` attribute as a list (format 1 stored it as JSON text)."""
    sd = ds.attrs.get("sample_dims")
    if isinstance(sd, str) and sd.startswith("["):
        ds.attrs["sample_dims"] = json.loads(sd)
    elif isinstance(sd, str):
        ds.attrs["sample_dims"] = [sd]
    return ds


def _groups_from_format_1(tree: xr.DataTree) -> dict[str, xr.Dataset]:
    """Format 1's groups in today's layout: ``data`` -> observed_data / constant_data; a
    (pair, judge) NaN-padded log_likelihood -> the labelled entries on ``obs``."""
    groups = {str(n): _restore_attrs(c.to_dataset()) for n, c in tree.children.items()}
    data = groups.pop("data")
    if "sample_stats" in groups:
        groups["sample_stats"] = standard_stats(groups["sample_stats"])
    groups.update(data_groups(data))
    ll = groups.pop("log_likelihood", None)
    if ll is not None and "y" in ll and {"pair", "judge"} <= set(ll["y"].dims):
        obs = groups["observed_data"]
        sel = {d: xr.DataArray(np.asarray(obs[d].values), dims=OBS_DIM) for d in ("pair", "judge")}
        y = ll["y"].sel(sel).transpose("chain", "draw", OBS_DIM).astype(np.float32)
        groups["log_likelihood"] = xr.Dataset({"y": y.reset_coords(drop=True)},
                                              attrs={"sample_dims": ["chain", "draw"]}
                                              ).assign_coords(obs.coords)
    return groups


def load_fit(path: str | os.PathLike[str]) -> Fit:
    """Read a fit written by ``Fit.save`` (this format or the previous one)."""
    p = Path(path)
    if not p.is_file():
        raise BayesDissectError(f"fit file {p}: not found")
    try:
        with xr.open_datatree(p, engine=_engine()) as tree:
            tree = tree.load()
    except (OSError, ValueError) as exc:
        raise BayesDissectError(f"fit file {p}: not a readable netCDF fit ({exc})") from None
    attrs = tree.attrs
    fmt = attrs.get("format")
    children = set(tree.children)
    if fmt == FORMAT and {"posterior", *DATA_GROUPS} <= children:
        groups = {str(n): c.to_dataset() for n, c in tree.children.items()}
    elif fmt == FORMAT_1 and {"posterior", "sample_stats", "data"} <= children:
        try:
            groups = _groups_from_format_1(tree)
        except (KeyError, ValueError, IndexError, BayesDissectError) as exc:
            raise BayesDissectError(f"fit file {p}: written by an older bayesdissect "
                                    f"({FORMAT_1}) and could not be converted ({exc}); refit "
                                    "it with 'bayesdissect fit'") from None
    else:
        raise BayesDissectError(f"fit file {p}: not a bayesdissect fit (expected format "
                                f"{FORMAT!r} with groups posterior, observed_data, "
                                f"constant_data; found format {fmt!r}, groups "
                                f"{sorted(children)})")
    try:
        spec = spec_from_json(attrs["spec"])
        diagnostics = json.loads(attrs["diagnostics"])
        settings = json.loads(attrs.get("settings", "{}"))
        data = data_from_groups(groups["observed_data"], groups["constant_data"])
    except (KeyError, ValueError) as exc:
        raise BayesDissectError(f"fit file {p}: damaged metadata ({exc}); refit it with "
                                "'bayesdissect fit'") from None
    return Fit(data, spec, xr.DataTree.from_dict(groups), diagnostics, settings)


# ----------------------------------------------------------------------------- subsetting

def _as_list(value: str | list[str] | tuple[str, ...] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    out = [str(v) for v in value if str(v) != ""]
    return out


def subset_data(data: xr.Dataset, judges: Any = None, groups: Any = None,
                subset: str | None = None) -> xr.Dataset:
    """Keep only some judges, groups, or the pairs of one case (as one group named after it)."""
    judge_list = _as_list(judges)
    if judge_list is not None:
        known = [str(j) for j in data.judge.values]
        bad = [j for j in judge_list if j not in known]
        if bad or not judge_list:
            raise BayesDissectError(f"--judges: unknown judge(s) {bad or judge_list}; expected "
                                    f"some of {known}")
        data = data.sel(judge=judge_list)
    group_list = _as_list(groups)
    if group_list is not None:
        known = sorted(set(np.asarray(data.group.values).astype(str)))
        bad = [g for g in group_list if g not in known]
        if bad or not group_list:
            raise BayesDissectError(f"--groups: unknown group(s) {bad or group_list}; expected "
                                    f"some of {known}")
        data = data.isel(pair=np.isin(np.asarray(data.group.values).astype(str), group_list))
    if subset is not None:
        var = f"case_{subset}"
        cases = [str(v)[5:] for v in data.data_vars if str(v).startswith("case_")]
        if var not in data:
            raise BayesDissectError(f"--subset: unknown case {subset!r}; expected one of {cases}")
        keep = np.asarray(data[var].values).astype(bool)
        if not keep.any():
            raise BayesDissectError(f"--subset: case {subset!r} has no pairs in this data")
        data = data.isel(pair=keep)
        data = data.assign(group=("pair", np.full(data.sizes["pair"], subset, dtype=object)
                                  .astype(str)))
    return data


# ----------------------------------------------------------------------------- warm start

#: Smallest starting value of a log-transformed (positive) variable such as a sigma.
_MIN_POSITIVE = 1e-6


def _given_values(values: Any) -> tuple[dict[str, Any], bool]:
    """{name: DataArray | ndarray} from a Fit (posterior means) or a dict; strict for dicts."""
    if isinstance(values, Fit) or isinstance(getattr(values, "posterior", None),
                                             xr.DataTree | xr.Dataset):
        from bayesdissect.queries.weights import as_posterior

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
    point, unset = _initial_point(model, values)
    if unset:
        warnings.warn(f"initvals: could not set {unset} from the given values; they start "
                      "at the model's default", UserWarning, stacklevel=2)
    return point


def _initial_point(model: Any, values: Any) -> tuple[dict[str, np.ndarray], list[str]]:
    """``initial_point_from`` and the names of the free variables left at the default."""
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
    """Set the helpers of "radial" levels (model._radial_offset) from offset and sigma.

    offset = exp(psi) * y / ||y|| with log sigma = psi - l: psi = log ||offset||,
    l = log(||offset|| / sigma), y = the offset's direction at radius sqrt(n).
    """
    handled: set[str] = set()
    for lv, meta in getattr(model, "_bd_radial", {}).items():
        names = [f"z_{lv}", f"z_{lv}_lognorm", f"z_{lv}_logsize"]
        handled.update(names)
        off, sig = targets.get(meta["term"]), targets.get(f"sigma_{lv}")
        if off is None or sig is None:
            unset.extend(names)
            continue
        off = np.nan_to_num(off).transpose([dims_of(meta["term"]).index(d)
                                            for d in meta["zs_dims"]])
        axes = tuple(range(1, off.ndim))
        norm = np.sqrt((off**2).sum(axis=axes))
        ok = norm > _MIN_POSITIVE
        norm = np.where(ok, norm, _MIN_POSITIVE)
        sig = np.maximum(np.nan_to_num(sig, nan=_MIN_POSITIVE), _MIN_POSITIVE)
        pad = (slice(None), *(None,) * len(axes))
        y = np.where(ok[pad], off / norm[pad] * np.sqrt(meta["n"]), point[f"z_{lv}"])
        point[f"z_{lv}"] = y
        point[f"z_{lv}_lognorm"] = (np.log(norm / sig) - meta["l0"]) / meta["step"]
        point[f"z_{lv}_logsize"] = np.log(norm) - meta["psi0"]
    return handled


# ----------------------------------------------------------------------------- sampling

def _check_sampler(name: str) -> None:
    if name not in SAMPLERS:
        raise BayesDissectError(f"--sampler: unknown sampler {name!r}; expected one of "
                                f"{SAMPLERS}")
    module = {"nutpie": "nutpie", "pymc": "pymc", "numpyro": "numpyro",
              "blackjax": "blackjax"}[name]
    if importlib.util.find_spec(module) is None or (
            name in ("numpyro", "blackjax") and importlib.util.find_spec("jax") is None):
        raise BayesDissectError(f"--sampler: sampler {name!r} is not installed; install it "
                                "(e.g. pip install 'bayesdissect[jax]') or pick another of "
                                f"{SAMPLERS}")


def _keep_vars(model: Any) -> list[str]:
    names = [v.name for v in model.free_RVs + model.deterministics]
    return [n for n in names if not n.startswith(INTERNAL_PREFIXES)]


def _clean(ds: xr.Dataset) -> xr.Dataset:
    """netCDF-safe copy: object variables as str, attrs as str/int/float."""
    ds = ds.copy()
    for name, da in ds.data_vars.items():
        if da.dtype == object:
            vals = np.asarray(da.values)
            ds[name] = da.copy(data=np.where(
                [v is None or (isinstance(v, float) and np.isnan(v)) for v in vals.ravel()],
                "", vals.ravel().astype(str)).reshape(vals.shape))
    for name in ds.coords:
        if ds[name].dtype == object:
            ds = ds.assign_coords({name: ds[name].astype(str)})
    ds.attrs = {k: _attr(v) for k, v in ds.attrs.items()}
    return ds


def _attr(value: Any) -> Any:
    """A netCDF-storable attribute: numbers and text as they are, a list of text as a list
    (ArviZ's ``sample_dims``), a bool as 0/1, anything else as JSON text."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, str | int | float | np.integer | np.floating):
        return value
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return [str(v) for v in value]
    return json.dumps(value, default=_jsonable)


def _sample_nutpie(model: Any, *, draws: int, tune: int, chains: int, seed: int,
                   target_accept: float, progressbar: bool, backend: str, adaptation: str,
                   cores: int | None, start: tuple[dict[str, np.ndarray], list[str]] | None = None
                   ) -> tuple[xr.DataTree, dict[str, float]]:
    import nutpie

    t0 = time.perf_counter()
    kw: dict[str, Any] = {}
    if backend == "jax":
        import jax
        import pytensor.link.jax.dispatch  # noqa: F401  (its import sets x64 from floatX)

        # float64 sums of float32 terms need x64 (PyTensor only turns it on for float64)
        jax.config.update("jax_enable_x64", True)
        kw = {"backend": "jax", "gradient_backend": "jax"}
    if start is not None:
        # start at the given point: no jitter, except for variables left at the default
        point, unset = start
        if unset and backend == "jax":  # freeze here, so jitter_rvs are the model's RVs
            from pymc.model.transform.optimization import freeze_dims_and_data

            model = freeze_dims_and_data(model)
            kw["freeze_model"] = False
        kw.update(initial_points=point,
                  jitter_rvs={rv for rv in model.free_RVs if rv.name in unset})
    compiled = nutpie.compile_pymc_model(model, var_names=_keep_vars(model), **kw)
    t1 = time.perf_counter()
    tree = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed,
                         cores=cores, target_accept=target_accept, progress_bar=progressbar,
                         adaptation=adaptation, save_warmup=True)
    t2 = time.perf_counter()
    return tree, {"compile_seconds": t1 - t0, "sampling_seconds": t2 - t1}


def _jax_x64_enabled() -> bool:
    """Whether JAX (if already imported) runs with 64-bit floats."""
    import sys

    jax = sys.modules.get("jax")
    return bool(jax is not None and jax.config.read("jax_enable_x64"))


def _sample_pymc(model: Any, sampler: str, *, draws: int, tune: int, chains: int, seed: int,
                 target_accept: float, progressbar: bool, cores: int | None,
                 start: tuple[dict[str, np.ndarray], list[str]] | None = None,
                 ) -> tuple[xr.DataTree, dict[str, float]]:
    import pymc as pm

    t0 = time.perf_counter()
    kw: dict[str, Any] = {}
    if start is not None:
        point, unset = start
        kw["initvals"] = point
        if not unset:  # start exactly there (with defaults left, keep the sampler's jitter)
            kw.update({"init": "adapt_diag"} if sampler == "pymc" else {"nuts": {"jitter": False}})
    with model:
        tree = pm.sample(draws=draws, tune=tune, chains=chains, random_seed=seed,
                         nuts_sampler=sampler, target_accept=target_accept,
                         progressbar=progressbar, cores=cores or min(chains, os.cpu_count() or 1),
                         var_names=_keep_vars(model), compute_convergence_checks=False,
                         discard_tuned_samples=False, **kw)
    t1 = time.perf_counter()
    post = tree["posterior"].to_dataset()
    sampling = float(post.attrs.get("sampling_time", t1 - t0))
    return tree, {"compile_seconds": max(0.0, (t1 - t0) - sampling), "sampling_seconds": sampling}


def fit(
    data: xr.Dataset | str | os.PathLike[str],
    model: str | os.PathLike[str] | ModelSpec = "hierarchical",
    sampler: str | None = None,
    chains: int | None = None,
    draws: int | None = None,
    tune: int | None = None,
    seed: int | None = None,
    target_accept: float | None = None,
    judges: Any = None,
    groups: Any = None,
    subset: str | None = None,
    progressbar: bool = True,
    *,
    backend: str | None = None,
    adaptation: str | None = None,
    cores: int | None = None,
    log_likelihood: bool = False,
    keep_warmup: bool = False,
    float32: bool | None = None,
    likelihood: str = "potential",
    warn: bool = True,
    initvals: Fit | dict[str, Any] | str | os.PathLike[str] | None = None,
) -> Fit:
    """Fit ``model`` (a spec name, a spec TOML path or a ModelSpec) to ``data``.

    ``data`` is a contract dataset or anything ``bayesdissect.load`` reads. Unset sampler
    settings come from the spec's ``[sampler]`` table. ``judges`` / ``groups`` (lists or
    comma-separated strings) and ``subset`` (a case name) select what is fitted. The same
    ``seed`` gives the same draws; without one a seed is drawn and recorded in
    ``fit.settings``. ``backend`` (``numba``/``jax``) and ``adaptation``
    (``diag``/``draw_diag``/``low_rank``) tune nutpie. ``log_likelihood=True`` adds the
    pointwise log-likelihood group (``ppc.add_log_likelihood``: draws x labelled entries
    float32, large at full size). ``keep_warmup=True`` keeps the warm-up draws and
    statistics (groups ``warmup_posterior``, ``warmup_sample_stats``). ``float32``
    (default: the spec's ``sampler.float32``) evaluates the log density in single precision
    with float64 sums (about 2.5x faster gradients in JAX). ``likelihood``: ``"potential"``
    (one masked log-sigmoid sum per group, fastest) or ``"observed"`` (an observed ``y``
    variable over the observed labels, for PyMC's own predictive tools).

    ``initvals`` (a previous ``Fit``, the path of a saved one, or a dict {posterior
    variable: array or DataArray}) warm-starts every chain at that point (a Fit: its
    posterior means), without jitter; see ``initial_point_from``. Judges, groups and
    properties are matched by name; new ones start at offset 0. ``tune`` is not shortened:
    the step size and mass matrix must still be adapted. ``fit.settings["warm_start"]``
    records whether a start was given.
    """
    t_start = time.perf_counter()
    spec = load_spec(model)
    if isinstance(initvals, str | os.PathLike):
        initvals = load_fit(initvals)
    if not isinstance(data, xr.Dataset):
        from bayesdissect.data.loaders import load

        data = load(data)
    sampler = sampler or spec.sampler.name
    _check_sampler(sampler)
    chains = int(chains if chains is not None else spec.sampler.chains)
    draws = int(draws if draws is not None else spec.sampler.draws)
    tune = int(tune if tune is not None else spec.sampler.tune)
    target_accept = float(target_accept if target_accept is not None
                          else spec.sampler.target_accept)
    for name, val, lo in (("chains", chains, 1), ("draws", draws, 1), ("tune", tune, 0)):
        if val < lo:
            raise BayesDissectError(f"--{name}: expected an integer >= {lo}, got {val}")
    if not 0 < target_accept < 1:
        raise BayesDissectError(f"--target-accept: expected a number in (0, 1), got "
                                f"{target_accept}")
    backend = backend or spec.sampler.backend
    adaptation = adaptation or spec.sampler.adaptation
    if backend not in ("numba", "jax"):
        raise BayesDissectError(f"backend: expected 'numba' or 'jax', got {backend!r}")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
    seed = int(seed)
    data = subset_data(data, judges=judges, groups=groups, subset=subset)
    if likelihood not in ("potential", "observed"):
        raise BayesDissectError(f"likelihood: expected 'potential' or 'observed', got "
                                f"{likelihood!r}")
    float32 = spec.sampler.float32 if float32 is None else bool(float32)
    if float32 and sampler in ("numpyro", "blackjax") and _jax_x64_enabled():
        # Under JAX x64 (switched on by any earlier nutpie-JAX fit in this process) the
        # JAX samplers' NUTS state is float64 while float32 parameters stay float32, and
        # their tree building fails on the mixed dtypes: sample in float64 instead.
        float32 = False
    import pytensor

    with pytensor.config.change_flags(floatX="float32" if float32 else "float64"):
        pm_model = build_model(spec, data, pointwise=log_likelihood, likelihood=likelihood)
        start = None
        if initvals is not None:
            start = _initial_point(pm_model, initvals)
            if start[1]:
                warnings.warn(f"initvals: could not set {start[1]} from the given values; "
                              "they start at the model's default (jittered)", UserWarning,
                              stacklevel=2)
        t_built = time.perf_counter()
        if sampler == "nutpie":
            tree, timings = _sample_nutpie(pm_model, draws=draws, tune=tune, chains=chains,
                                           seed=seed, target_accept=target_accept,
                                           progressbar=progressbar, backend=backend,
                                           adaptation=adaptation, cores=cores, start=start)
        else:
            tree, timings = _sample_pymc(pm_model, sampler, draws=draws, tune=tune,
                                         chains=chains, seed=seed,
                                         target_accept=target_accept,
                                         progressbar=progressbar, cores=cores, start=start)
    timings["build_seconds"] = t_built - t_start
    keep = _keep_vars(pm_model)

    def draws_of(group: str) -> xr.Dataset:
        ds = tree[group].to_dataset()
        ds = _clean(ds[[v for v in keep if v in ds]])
        if float32:
            # the log density was single precision: float32 draws lose nothing and halve
            # the file (a full-size default fit: ~0.3 instead of ~0.6 GB)
            wide = {v: np.float32 for v in ds.data_vars if ds[v].dtype == np.float64}
            ds = ds.astype(wide) if wide else ds
        return ds

    post = draws_of("posterior")
    stats = standard_stats(_clean(tree["sample_stats"].to_dataset()))
    warm = (standard_stats(_clean(tree["warmup_sample_stats"].to_dataset()))
            if "warmup_sample_stats" in tree.children else None)
    t_diag = time.perf_counter()
    timings["total_seconds"] = t_diag - t_start  # fit wall time, before diagnostics
    diag = compute_diagnostics(post, stats, timings, warmup_stats=warm)
    diag["diagnostics_seconds"] = time.perf_counter() - t_diag
    out = {"posterior": post, "sample_stats": stats}
    if keep_warmup and warm is not None and "warmup_posterior" in tree.children:
        out.update(warmup_posterior=draws_of("warmup_posterior"), warmup_sample_stats=warm)
    settings = {"sampler": sampler, "chains": chains, "draws": draws, "tune": tune,
                "seed": seed, "target_accept": target_accept, "backend": backend,
                "float32": float32, "likelihood": likelihood,
                "adaptation": adaptation, "judges": _as_list(judges),
                "groups": _as_list(groups), "subset": subset,
                "warm_start": start is not None, "keep_warmup": bool(keep_warmup)}
    result = Fit(_clean(data), spec, xr.DataTree.from_dict(out), diag, settings)
    if log_likelihood:
        from bayesdissect.queries.predictive import add_log_likelihood

        add_log_likelihood(result)
    if warn:
        warn_if_unconverged(diag)
    return result
