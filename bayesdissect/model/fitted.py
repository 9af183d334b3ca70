"""The fitted model and its file (model.md §4): class ``Fit``, ``Fit.save``, ``load_fit``.

A ``Fit`` holds the data actually fitted (``fit.data``, the contract Dataset with dims pair,
judge, property), the spec, the diagnostics, and ``fit.idata``, a standard ArviZ 1.x
DataTree with groups ``posterior``, ``sample_stats`` (``warmup_posterior`` /
``warmup_sample_stats`` with ``fit(keep_warmup=True)``), ``observed_data`` (the labels on one
observation dimension ``obs`` over the labelled (pair, judge) entries, with pair and judge
as its coordinates), ``constant_data`` (features, groups, cases, pair ids, judge and
property metadata, the data's attributes) and, when added, ``log_likelihood`` and
``posterior_predictive`` on the same ``obs`` dimension. ``fit.posterior`` is the posterior
group as a Dataset.

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
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesdissect._io import atomic_path
from bayesdissect.errors import BayesDissectError
from bayesdissect.model.build import OBS_DIM, label_index
from bayesdissect.model.diagnostics import standard_stats
from bayesdissect.model.specs import ModelSpec, spec_from_json

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

    def thin(self, k: int) -> Fit:
        """A new Fit keeping every ``k``-th draw (draws 0, k, 2k, ... of each chain, their
        ``draw`` coordinates kept) of every group with a ``draw`` dimension (posterior,
        sample_stats, log_likelihood, posterior_predictive, warm-up groups); ``self`` is
        unchanged. The diagnostics stay those of all draws (R-hat and ESS describe the
        run) and record the thinning in ``diagnostics["thinned"]`` (thin, draws kept, draws
        before); ``settings["thin"]`` is the total thinning (a thinned fit thinned again
        multiplies). ``k=1`` returns a copy."""
        k = _check_thin(k, int(self.posterior.sizes.get("draw", 1)))
        groups = {str(n): c.to_dataset() for n, c in self.idata.children.items()
                  if n not in DATA_GROUPS}
        groups = {n: ds.isel(draw=slice(None, None, k)) if "draw" in ds.dims else ds
                  for n, ds in groups.items()}
        settings = dict(self.settings)
        diagnostics = dict(self.diagnostics)
        if k > 1:
            total = int(settings.get("thin", 1) or 1) * k
            settings["thin"] = total
            before = dict(diagnostics.get("thinned") or {}).get(
                "from_draws", int(self.posterior.sizes.get("draw", 0)))
            diagnostics["thinned"] = {"thin": total,
                                      "draws": int(groups["posterior"].sizes.get("draw", 0)),
                                      "from_draws": int(before)}
        return Fit(self.data, self.spec, xr.DataTree.from_dict(groups), diagnostics, settings)

    def save(self, path: str | os.PathLike[str], *, thin: int = 1, dtype: str | None = None,
             compress: int = 0) -> Path:
        """Write the fit to one netCDF file, atomically (a failure leaves no file).

        ``thin=k`` saves ``self.thin(k)`` (every k-th draw). ``dtype="float32"`` stores the
        float variables of the draw groups (posterior, posterior_predictive,
        log_likelihood, warm-up posterior) in single precision: exact for the default
        float32 sampler, ~1e-7 relative otherwise; None keeps every dtype. ``compress``
        (0-9) is the zlib level, with byte shuffling, of every numeric variable of 256 kB
        or more (lossless; 0: none; ~16% smaller for float32 draws, level 1 as good as 4).
        The options are recorded in the file's root attribute ``storage`` (JSON); the
        loaded fit equals ``self.thin(thin)`` (its settings and diagnostics record the
        thinning), with the posterior in ``dtype``.
        """
        cast = _check_save_dtype(dtype)
        level = _check_compress(compress)
        thin = _check_thin(thin, int(self.posterior.sizes.get("draw", 1)))
        fit = self.thin(thin) if thin > 1 else self
        # encodings read from an earlier file (its compression, chunks) are not reused
        children = {str(n): netcdf_safe(c.to_dataset()).drop_encoding()
                    for n, c in fit.idata.children.items()}
        if cast is not None:
            children = {n: narrow_floats(ds, cast) if n in DRAW_GROUPS else ds
                        for n, ds in children.items()}
        tree = xr.DataTree.from_dict(children)
        storage = {"thin": thin, "dtype": None if cast is None else cast.name,
                   "compress": level}
        tree.attrs = {"format": FORMAT, "spec": fit.spec.to_json(),
                      "diagnostics": json.dumps(fit.diagnostics, default=_jsonable),
                      "settings": json.dumps(fit.settings, default=_jsonable),
                      "storage": json.dumps(storage)}
        encoding = {f"/{n}": _compression(ds, level) for n, ds in children.items()} if level \
            else None
        with atomic_path(path) as tmp:
            tree.to_netcdf(tmp, engine=_engine(), encoding=encoding)
        return Path(path)

    def __repr__(self) -> str:
        d = self.diagnostics
        return (f"Fit(model={self.spec.name!r}, judges={self.data.sizes['judge']}, "
                f"pairs={self.data.sizes['pair']}, groups={len(np.unique(self.data.group))}, "
                f"chains={d.get('chains')}, draws={d.get('draws')}, "
                f"max_rhat={d.get('max_rhat', float('nan')):.3f}, "
                f"min_ess_bulk={d.get('min_ess_bulk', float('nan')):.0f}, "
                f"divergences={d.get('divergences')})")


#: Groups of draws whose floats ``Fit.save(dtype=...)`` casts.
DRAW_GROUPS = ("posterior", "posterior_predictive", "log_likelihood", "warmup_posterior")
#: Storage dtypes ``Fit.save`` offers. float16 is not one: its 11-bit mantissa moves the
#: reported intervals (100 * sigmoid(w) quantiles) in the first decimal for ~2% of a demo
#: fit's cell effects and in the third decimal for most of them (posterior means barely).
SAVE_DTYPES = ("float32",)


def _check_thin(k: Any, draws: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= max(draws, 1):
        raise BayesDissectError(f"thin must be a whole number from 1 to the number of draws "
                                f"({draws}); got {k!r}")
    return int(k)


def _check_save_dtype(dtype: Any) -> np.dtype | None:
    if dtype is None:
        return None
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = repr(dtype)
    if name not in SAVE_DTYPES:
        why = " (float16 would change the reported intervals' digits)" if name == "float16" \
            else ""
        raise BayesDissectError(f"dtype must be {' or '.join(map(repr, SAVE_DTYPES))} or None "
                                f"(each variable's own); got {dtype!r}{why}")
    return np.dtype(name)


def _check_compress(level: Any) -> int:
    if isinstance(level, bool):
        return 1 if level else 0
    if not isinstance(level, int | np.integer) or not 0 <= level <= 9:
        raise BayesDissectError(f"compress must be a zlib level from 0 (none) to 9; got "
                                f"{level!r}")
    return int(level)


def narrow_floats(ds: xr.Dataset, dtype: Any) -> xr.Dataset:
    """``ds`` with its float data variables (not coordinates) wider than ``dtype`` cast to
    it, the others as they are.

    Cast one variable at a time: ``Dataset.astype`` with a dict needs every variable named,
    and a sampler's draws may already be partly or wholly float32 (PyMC's own NUTS under
    floatX float32 keeps the radial offsets float64; numpyro without JAX x64 gives all
    float32).
    """
    dtype = np.dtype(dtype)
    wide = [v for v, da in ds.data_vars.items()
            if da.dtype.kind == "f" and da.dtype.itemsize > dtype.itemsize]
    return ds.assign({v: ds[v].astype(dtype) for v in wide}) if wide else ds


#: Variables smaller than this are stored as they are by ``compress``: a chunked,
#: compressed variable costs a few kB of HDF5 index, more than small ones save.
COMPRESS_MIN_BYTES = 256 * 1024


def _compression(ds: xr.Dataset, level: int) -> dict[str, dict[str, Any]]:
    """netCDF4 encodings: zlib at ``level`` with shuffle for every numeric variable of at
    least COMPRESS_MIN_BYTES, in chunks of one chain (the whole variable without a chain
    dim)."""
    out: dict[str, dict[str, Any]] = {}
    for name, da in ds.variables.items():
        if da.dtype.kind not in "biuf" or da.nbytes < COMPRESS_MIN_BYTES or da.ndim == 0:
            continue
        chunks = tuple(1 if d == "chain" else int(n) for d, n in zip(da.dims, da.shape,
                                                                     strict=True))
        out[str(name)] = {"zlib": True, "complevel": level, "shuffle": True,
                          "chunksizes": chunks}
    return out


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


def netcdf_safe(ds: xr.Dataset) -> xr.Dataset:
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
