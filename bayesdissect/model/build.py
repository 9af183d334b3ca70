"""Build a PyMC model from a spec and a dataset (model.md §3).

    logit P(y[i, j] = 1) = bias[j] + u[i] + x[i] . w[j, g(i)]
    w[j, g, k] = mu[k] + judge_offset[j, k] + group_offset[g, k] + cell_offset[j, g, k]
                 (+ w_cell[j, g, k] for the paper's independent weights)
    u[i] = sigma_pair * z[i] (the spec's ``pair`` level; 0 without it)

Nothing about a particular spec is hard-coded: each level the spec turns on adds its term
with the prior the spec names. The likelihood scales: pairs are sorted by group and the
logits are one product per group, (pairs of the group x K) @ (K x judges); missing labels
are left out by indexing only the observed entries (never imputed). There is no
(pairs * judges) x parameters design matrix.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesdissect.errors import BayesDissectError
from bayesdissect.model.specs import RADIAL_PARAMETERIZATIONS, Level, ModelSpec, load_spec

#: Posterior variable of each level's term (the posterior contract).
TERM_NAMES = {"mu": "mu", "judge": "judge_offset", "group": "group_offset",
              "cell": "cell_offset", "w_cell": "w_cell", "bias": "bias",
              "pair": "pair_effect"}
#: Smallest offset dimension per property sampled "radial"; below it the norm of the
#: direction helper is often near 0 (chi(n) for small n), where the direction turns fast
#: and NUTS diverges, so smaller levels fall back to non-centered.
RADIAL_MIN_DIM = 8
#: Partial-centering weight a of each fixed parameterization (radial levels too small for
#: size x direction fall back to non-centered, a = 0); "auto" computes a per element.
CENTERING = {"centered": 1.0, "noncentered": 0.0, "radial": 0.0, "signed_radial": 0.0}
#: Prefix of sampled helper variables that are not part of the saved posterior.
INTERNAL_PREFIXES = ("z_",)
#: The observation dimension: one entry per labelled (pair, judge), in ``label_index`` order
#: (the model's observed ``y`` and a saved fit's observed_data / log_likelihood /
#: posterior_predictive groups).
OBS_DIM = "obs"


def label_index(data: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(pair positions, judge positions) in ``data`` of its labelled entries, in the order
    of the observation dimension: by pair id, then judge name.

    The order depends on the labels only, not on the order of pairs or judges in ``data``,
    so two fits of the same labels have their pointwise values in the same order.
    """
    y = np.asarray(data["y"].transpose("pair", "judge").values, dtype=np.float64)
    pair_order = np.argsort(np.asarray(data["pair"].values), kind="stable")
    judge_order = np.argsort(np.asarray(data["judge"].values).astype(str), kind="stable")
    rows, cols = np.nonzero(~np.isnan(y[np.ix_(pair_order, judge_order)]))
    return pair_order[rows], judge_order[cols]


@dataclass(frozen=True)
class ModelData:
    """The arrays the model needs, pairs sorted by group (stable, so order is reproducible).

    ``order`` maps sorted position -> row of the dataset; ``bounds[g]`` is the slice of
    sorted pairs in group ``groups[g]``; ``obs_flat`` indexes the labelled entries of the
    row-major (sorted pair, judge) matrix, in the order of the observation dimension
    (``label_index``).
    """

    judges: np.ndarray
    groups: np.ndarray
    properties: np.ndarray
    order: np.ndarray
    bounds: tuple[tuple[int, int], ...]
    x: np.ndarray  # (pairs sorted, K)
    y: np.ndarray  # (pairs sorted, J), NaN where missing
    obs_flat: np.ndarray

    @property
    def n_obs(self) -> int:
        return int(self.obs_flat.size)

    def observed_entries(self, pair_labels: np.ndarray) -> pd.DataFrame:
        """(pair, judge) of each entry of the model's observed ``y``, in its order."""
        rows, cols = np.divmod(self.obs_flat, self.y.shape[1])
        return pd.DataFrame({"pair": pair_labels[self.order][rows],
                             "judge": self.judges[cols]})


@dataclass(frozen=True)
class RadialLevel:
    """One "radial" level's constants: how its offsets map onto the sampled helpers.

    offset[k] = exp(psi[k]) * y[k] / ||y[k]|| with ``y = z_<level>`` (dims ``zs_dims``,
    ``n`` free dimensions per property), ``l = log r = l0 + step * z_<level>_lognorm`` and
    ``psi = psi0 + z_<level>_logsize``; ``signed``: offset[k] = exp(psi0) * v[k] * y[k] /
    ||y[k]|| with ``v = z_<level>_size`` instead. The warm start inverts this.
    """

    term: str
    zs_dims: tuple[str, ...]
    n: int
    l0: float
    psi0: float
    step: float
    signed: bool = False

    @property
    def size_axes(self) -> tuple[int, ...]:
        """Axes of ``zs_dims`` one size spans: all but property (one size per property), or
        all of them for a level with one sigma and no property axis (the pair level)."""
        return tuple(range(1 if "property" in self.zs_dims else 0, len(self.zs_dims)))


@dataclass(frozen=True)
class ModelInfo:
    """What ``build_model`` knows about a model it built: the data layout (``ModelData``)
    and the constants of its radial levels (by level name)."""

    data: ModelData
    radial: dict[str, RadialLevel]


#: ModelInfo of each live model ``build_model`` made (``model_info``); entries go with them.
_MODEL_INFO: weakref.WeakKeyDictionary[Any, ModelInfo] = weakref.WeakKeyDictionary()


def model_info(model: Any) -> ModelInfo | None:
    """The ``ModelInfo`` of a ``pm.Model`` made by ``build_model``; None for any other."""
    return _MODEL_INFO.get(model)


def prepare_data(data: xr.Dataset) -> ModelData:
    """Check ``data`` against the data contract and lay it out for the likelihood."""
    for var, dims in (("x", ("pair", "property")), ("y", ("pair", "judge")), ("group", ("pair",))):
        if var not in data:
            raise BayesDissectError(f"dataset: missing variable {var!r}; expected the data "
                                    "contract (x, y, group)")
        if set(data[var].dims) != set(dims):
            raise BayesDissectError(f"dataset: variable {var!r} has dims {data[var].dims}; "
                                    f"expected {dims}")
    if data.sizes.get("pair", 0) == 0:
        raise BayesDissectError("dataset: no pairs to fit")
    if data.sizes.get("judge", 0) == 0:
        raise BayesDissectError("dataset: no judges to fit")
    x = np.asarray(data["x"].transpose("pair", "property").values, dtype=np.float64)
    y = np.asarray(data["y"].transpose("pair", "judge").values, dtype=np.float64)
    if not np.isfinite(x).all():
        raise BayesDissectError("dataset: variable 'x' has NaN or infinite features; "
                                "expected finite numbers")
    obs = ~np.isnan(y)
    if not np.isin(y[obs], (0.0, 1.0)).all():
        raise BayesDissectError("dataset: variable 'y' has values other than 0, 1 or NaN")
    if not obs.any():
        raise BayesDissectError("dataset: no observed labels (y is all NaN)")
    group = np.asarray(data["group"].values).astype(str)
    groups = np.unique(group)
    codes = np.searchsorted(groups, group)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(groups))
    stops = np.cumsum(counts)
    bounds = tuple((int(a - c), int(a)) for a, c in zip(stops, counts, strict=True))
    y_sorted = y[order]
    sorted_row = np.empty_like(order)
    sorted_row[order] = np.arange(order.size)
    pair_pos, judge_pos = label_index(data)
    obs_flat = sorted_row[pair_pos] * y.shape[1] + judge_pos
    return ModelData(
        judges=np.asarray(data["judge"].values).astype(str),
        groups=groups,
        properties=np.asarray(data["property"].values).astype(str),
        order=order, bounds=bounds, x=x[order], y=y_sorted, obs_flat=obs_flat,
    )


def _prior(name: str, family: str, loc, scale, nu: float, dims):  # noqa: ANN001, ANN202
    import pymc as pm

    if family == "normal":
        return pm.Normal(name, mu=loc, sigma=scale, dims=dims)
    if family == "laplace":
        return pm.Laplace(name, mu=loc, b=scale, dims=dims)
    if family == "student_t":
        return pm.StudentT(name, nu=nu, mu=loc, sigma=scale, dims=dims)
    if family == "cauchy":
        return pm.Cauchy(name, alpha=loc, beta=scale, dims=dims)
    raise BayesDissectError(f"unknown prior family {family!r}")  # specs.py validates first


def _sigma_family(level: Level):  # noqa: ANN202
    """(PyMC distribution class, its parameters) of a level's sigma prior."""
    import pymc as pm

    s = level.sigma_scale
    families = {"halfnormal": (pm.HalfNormal, {"sigma": s}),
                "exponential": (pm.Exponential, {"scale": s}),
                "halfcauchy": (pm.HalfCauchy, {"beta": s}),
                "halfstudent_t": (pm.HalfStudentT, {"nu": level.nu, "sigma": s})}
    if level.sigma_prior not in families:  # specs.py validates first
        raise BayesDissectError(f"unknown sigma prior {level.sigma_prior!r}")
    return families[level.sigma_prior]


def _sigma(name: str, level: Level, dims):  # noqa: ANN001, ANN202
    cls, kw = _sigma_family(level)
    return cls(name, **kw, dims=dims)


def _zs_dims(dims: tuple[str, ...], axes: tuple[str, ...]) -> tuple[str, ...]:
    """``dims`` with property first (where there is one) and the zero-sum ``axes`` last, as
    ZeroSumNormal wants."""
    lead = ("property",) if "property" in dims else ()
    return (*lead, *[d for d in dims if d != "property" and d not in axes], *axes)


def _offset(level: Level, loc=None, centering=None,  # noqa: ANN001, ANN202
            zero_sum_axes: tuple[str, ...] = (),
            radial: dict[str, RadialLevel] | None = None):
    """The term of one level with its prior; returns (term, weight) tensors.

    Hierarchical levels use partial centering (Papaspiliopoulos et al. 2007; Gorinova et
    al. 2020): the sampled variable is ``u ~ Normal(a * loc, sigma**a)`` and the weight
    ``loc + sigma**(1 - a) * (u - a * loc)``, which is ``Normal(loc, sigma)`` for every
    ``a`` in [0, 1]. ``a = 0`` is non-centered, ``a = 1`` centered; ``centering`` gives
    ``a`` per element (``parameterization = "auto"``: from how much data informs each
    element). ``loc`` (the sum of the levels above) is only given for the cell level, whose
    weight is then the cell's full w[j, g, :]; the offset is ``weight - loc``.
    A fixed-scale prior is sampled directly: re-centering it would only rescale it.
    A level sampled "radial" puts its constants in ``radial`` (by level name).
    """
    import pymc as pm
    import pytensor

    term = TERM_NAMES[level.name]
    dims = level.dims
    if not level.hierarchical:
        value = _prior(term, level.prior, 0.0, level.scale, level.nu, dims)
        return value, value if loc is None else loc + value
    axes = tuple(zero_sum_axes) if level.zero_sum else ()
    if level.heavy_tailed:
        offset = _t_offset(level, term, dims, axes)
        return offset, offset if loc is None else loc + offset
    # size x direction needs one size per sigma: per property, or one sigma without a
    # property axis (the pair level)
    one_size_per_sigma = level.sigma_per_property or "property" not in dims
    if level.parameterization in RADIAL_PARAMETERIZATIONS and one_size_per_sigma:
        n = _free_dim(dims, axes)
        if n >= RADIAL_MIN_DIM:
            offset, weight, constants = _radial_offset(level, term, dims, axes, n, loc)
            if radial is not None:
                radial[level.name] = constants
            return offset, weight
    sdims = ("property",) if level.sigma_per_property else None
    sigma = _sigma(f"sigma_{level.name}", level, sdims)
    if level.zero_sum and zero_sum_axes:
        zs_dims = _zs_dims(dims, zero_sum_axes)
        # partial centering with one a per property: u ~ ZSN(sigma^a), offset =
        # sigma^(1-a) u ~ ZSN(sigma) (a = 0 non-centered, 1 centered)
        a = CENTERING.get(level.parameterization)
        if a is None:
            a = np.zeros(1) if centering is None else np.median(
                centering.reshape(-1, centering.shape[-1]), axis=0)
            a = np.round(a, 2)
        pad = (1,) * (len(zs_dims) - 1)
        scale = sigma.reshape((-1, *pad)) if level.sigma_per_property else sigma
        a_b = np.reshape(np.asarray(a, dtype=pytensor.config.floatX), (-1, *pad))
        if np.all(a_b == 0):
            u_sigma, rest = 1.0, scale
        elif np.all(a_b == 1):
            u_sigma, rest = scale, 1.0
        else:
            u_sigma, rest = scale**a_b, scale ** (1.0 - a_b)
        z = pm.ZeroSumNormal(f"z_{level.name}", sigma=u_sigma, dims=zs_dims,
                             n_zerosum_axes=len(zero_sum_axes))
        value = (rest * z).transpose(*[zs_dims.index(d) for d in dims])
        offset = pm.Deterministic(term, value, dims=dims)
        return offset, offset if loc is None else loc + offset
    a = CENTERING.get(level.parameterization, centering)
    if a is None:
        a = 0.0
    loc0 = 0.0 if loc is None else loc
    if np.ndim(a) == 0 and a in (0.0, 1.0):
        mean = loc0 * a if a else 0.0
        u = pm.Normal(f"z_{level.name}", mu=mean, sigma=sigma if a else 1.0, dims=dims)
        weight = u if a else loc0 + sigma * u
    else:
        u = pm.Normal(f"z_{level.name}", mu=a * loc0, sigma=sigma ** a, dims=dims)
        weight = loc0 + sigma ** (1.0 - a) * (u - a * loc0)
    offset = pm.Deterministic(term, weight - loc0 if loc is not None else weight, dims=dims)
    return offset, weight


def _t_offset(level: Level, term: str, dims: tuple[str, ...],  # noqa: ANN202
              axes: tuple[str, ...]):
    """Heavy-tailed offsets: iid ``StudentT(offset_nu, 0, sigma)``, conditioned to sum to
    zero over the zero-sum ``axes`` (as a ZeroSumNormal is iid normals so conditioned).

    ``"noncentered"`` samples ``t`` of scale 1 (offset = sigma * t); ``"centered"`` samples
    the offsets themselves (scale sigma), for levels the data inform well. With ``axes`` the
    sampled value lives on the zero-sum subspace itself (PyMC's ``ZeroSumTransform``, as
    ZeroSumNormal's): centring free draws instead would leave the removed directions to
    the prior, a funnel with sigma that NUTS cannot cross (R-hat 1.5 on sigma_judge).
    """
    import pymc as pm

    sdims = ("property",) if level.sigma_per_property else None
    sigma = _sigma(f"sigma_{level.name}", level, sdims)
    centered = level.parameterization == "centered"
    name = f"z_{level.name}"
    if not axes:
        z = pm.StudentT(name, nu=level.offset_nu, mu=0.0, sigma=sigma if centered else 1.0,
                        dims=dims)
        return pm.Deterministic(term, z if centered else sigma * z, dims=dims)
    zs_dims = _zs_dims(dims, axes)
    pad = (1,) * (len(zs_dims) - 1)
    scale = sigma.reshape((-1, *pad)) if level.sigma_per_property else sigma
    z = _zero_sum_t(name, level.offset_nu, scale if centered else 1.0, zs_dims, axes)
    value = (z if centered else scale * z).transpose(*[zs_dims.index(d) for d in dims])
    return pm.Deterministic(term, value, dims=dims)


def _zero_sum_t(name: str, nu: float, scale, zs_dims: tuple[str, ...],  # noqa: ANN001, ANN202
                zero_sum_axes: tuple[str, ...]):
    """iid StudentT(nu, 0, scale) conditioned on summing to zero over ``zero_sum_axes``,
    the last dims of ``zs_dims`` (property first, as ``_zs_dims`` orders them).

    The density on the zero-sum subspace is the product of t densities there, normalised:
    each property's block has ``n_free`` free dimensions, so the scale enters as
    ``scale**-n_free`` (not ``scale**-n``, the product density's), which the logp adds back
    spread over the block's elements. Forward draws (prior predictive) centre iid t draws
    over the axes: the same support, and the exact law for normals, close to it for t.
    """
    import pymc as pm
    import pytensor.tensor as pt
    from pymc.distributions.transforms import ZeroSumTransform

    block = _free_dim(zs_dims, ())
    n_free = _free_dim(zs_dims, zero_sum_axes)
    extra = np.float64((block - n_free) / block)  # log scale per element, added back
    axes = tuple(range(-len(zero_sum_axes), 0))

    def logp(value, scale):  # noqa: ANN001, ANN202
        lp = pm.logp(pm.StudentT.dist(nu=nu, mu=0.0, sigma=scale), value)
        return lp + extra * pt.log(pt.broadcast_to(scale, value.shape))

    def dist(scale, size):  # noqa: ANN001, ANN202
        draw = pm.StudentT.dist(nu=nu, mu=0.0, sigma=scale, size=size)
        for ax in axes:
            if draw.ndim >= -ax:  # CustomDist also calls this without a size
                draw = draw - draw.mean(axis=ax, keepdims=True)
        return draw

    return pm.CustomDist(name, scale, dist=dist, logp=logp, dims=zs_dims,
                         transform=ZeroSumTransform(axes),
                         support_point=_zeros_support_point)


def _free_dim(dims: tuple[str, ...], axes: tuple[str, ...]) -> int:
    """Dimension of one property's offsets: the zero-sum subspace when ``axes`` are summed."""
    import pymc as pm

    coords = pm.modelcontext(None).coords
    return int(np.prod([len(coords[d]) - (d in axes) for d in dims if d != "property"]))


def _radial_offset(level: Level, term: str, dims: tuple[str, ...],  # noqa: ANN202
                   axes: tuple[str, ...], n: int, loc):  # noqa: ANN001
    """Offsets as size x direction: offset[k] = exp(psi[k]) * y[k] / ||y[k]||.

    ``y ~ ZeroSumNormal(1)`` over ``axes`` (Normal(1) without them) gives a uniform
    direction in the n-dimensional space of one property's offsets; their norm is
    ``sigma * r`` with ``r ~ chi(n)``, sampled as ``psi = log(sigma * r)`` and
    ``l = log r`` (so ``log sigma = psi - l``). This is exactly ``offset ~
    ZeroSumNormal(sigma)`` (or Normal), but where the data are informative they pin psi,
    the size of the offsets, directly, and sigma follows from psi and the prior-pinned r
    instead of having to move with hundreds of non-centered offsets at once (the slow
    mixing of sigma_* in benchmarks/RESULTS.md). ``n < RADIAL_MIN_DIM`` falls back to
    non-centered offsets (the direction of a 1-d offset is a sign). The two helpers are
    ``CustomDist``s with that density and forward draws, so the prior can be sampled
    (``pm.sample_prior_predictive``). A level with one sigma (the pair level, dims
    ``pair``) has one size and one direction over all its elements. Returns (offset,
    weight, the level's RadialLevel).
    """
    import pymc as pm
    import pytensor.tensor as pt

    zs_dims = _zs_dims(dims, axes)
    sdims = "property" if "property" in dims else None
    if axes:
        y = pm.ZeroSumNormal(f"z_{level.name}", sigma=1.0, dims=zs_dims,
                             n_zerosum_axes=len(axes))
    else:
        y = pm.Normal(f"z_{level.name}", 0.0, 1.0, dims=zs_dims)
    # centred and scaled so that 0 is a typical point (r ~ sqrt(n), sigma ~ sigma_scale).
    # numpy float64 constants: l, psi, sigma and the offsets are computed in float64 even
    # when floatX is float32 (as the sampled density always was); the helpers themselves
    # are floatX.
    l0 = np.float64(0.5 * np.log(n - 0.5))
    psi0 = np.float64(np.log(level.sigma_scale)) + l0
    step = np.float64(0.1)  # sd of log r is ~ 1 / sqrt(2 n): a unit-ish scale for its helper
    a = _radial_lognorm(f"z_{level.name}_lognorm", n, l0, step, sdims)
    ell = l0 + step * a
    signed = level.parameterization == "signed_radial"
    if signed:
        v = _radial_signed_size(f"z_{level.name}_size", level, a, l0, step, psi0, sdims)
        length = np.exp(psi0) * v  # signed: -size along -y is the same offset
        pm.Deterministic(f"sigma_{level.name}", pt.abs(length) * pt.exp(-ell), dims=sdims)
    else:
        b = _radial_logsize(f"z_{level.name}_logsize", level, a, l0, step, psi0, sdims)
        length = pt.exp(psi0 + b)
        pm.Deterministic(f"sigma_{level.name}", pt.exp(psi0 + b - ell), dims=sdims)
    # how to map (offset, sigma) back onto the sampled helpers (the warm start)
    constants = RadialLevel(term=term, zs_dims=zs_dims, n=n, l0=l0, psi0=psi0, step=step,
                            signed=signed)
    norm = pt.sqrt(pt.sum(y**2, axis=constants.size_axes, keepdims=True))
    size = length.reshape((-1, *(1,) * (len(zs_dims) - 1)) if sdims else ())
    value = (size * y / norm).transpose(*[zs_dims.index(d) for d in dims])
    offset = pm.Deterministic(term, value, dims=dims)
    return offset, offset if loc is None else loc + offset, constants


def _zeros_support_point(rv, size, *params):  # noqa: ANN001, ANN202, ARG001
    """Initial value 0 of a radial helper: its typical point (r ~ sqrt(n), sigma ~ s)."""
    import pytensor.tensor as pt

    return pt.zeros_like(rv)


def _radial_lognorm(name: str, n: int, l0: np.float64, step: np.float64,  # noqa: ANN202
                    dims: str | None = "property"):
    """The helper a of ``l = log r = l0 + step * a`` with ``r ~ chi(n)``, per property
    (``dims``; None: one for the level).

    Its density is that of log chi(n) times the Jacobian ``step``; draws are
    ``(log sqrt(ChiSquared(n)) - l0) / step``, so the prior can be sampled forward.
    """
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt
    from scipy.special import gammaln

    const = np.float64(-(0.5 * n - 1.0) * np.log(2.0) - gammaln(0.5 * n)) + np.log(step)

    def logp(value):  # noqa: ANN001, ANN202
        ell = l0 + step * value
        return n * ell - 0.5 * pt.exp(2.0 * ell) + const

    def dist(size):  # noqa: ANN001, ANN202
        draw = (0.5 * pt.log(pm.ChiSquared.dist(nu=n, size=size)) - l0) / step
        return pt.cast(draw, pytensor.config.floatX)

    return pm.CustomDist(name, dist=dist, logp=logp, support_point=_zeros_support_point,
                         dims=dims)


def _radial_signed_size(name: str, level: Level, a, l0: np.float64,  # noqa: ANN001, ANN202
                        step: np.float64, psi0: np.float64, dims: str | None = "property"):
    """The helper v of a ``signed_radial`` level: the offsets' norm is ``exp(psi0) |v|``
    and ``sigma = exp(psi0) |v| / r`` (``l = log r = l0 + step * a``).

    Its density is the sigma prior reflected onto both signs, p(sigma) / 2 times the
    Jacobian exp(psi0) / r, so v = 0 (sigma = 0) is an interior point: where the data
    allow sigma near 0, v is a smooth bump around 0 instead of the long left tail that
    log sigma has there (density ~ sigma on the log scale), which NUTS explores slowly.
    The two signs are the same offsets (v y and -v (-y)). Draws: a sigma from the prior,
    times r / exp(psi0), with a random sign.
    """
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt

    cls, kw = _sigma_family(level)
    scale = np.float64(np.exp(psi0))

    def logp(value, a):  # noqa: ANN001, ANN202
        log_r = l0 + step * a
        sigma = scale * pt.abs(value) * pt.exp(-log_r)
        return pm.logp(cls.dist(**kw), sigma) + np.log(0.5 * scale) - log_r

    def dist(a, size):  # noqa: ANN001, ANN202
        sign = pt.sign(pm.Normal.dist(size=size))
        draw = sign * cls.dist(**kw, size=size) * pt.exp(l0 + step * a) / scale
        return pt.cast(draw, pytensor.config.floatX)

    return pm.CustomDist(name, a, dist=dist, logp=logp, support_point=_zeros_support_point,
                         dims=dims)


def _radial_logsize(name: str, level: Level, a, l0: np.float64,  # noqa: ANN001, ANN202
                    step: np.float64, psi0: np.float64, dims: str | None = "property"):
    """The helper b of ``psi = log(sigma * r) = psi0 + b`` given the lognorm helper ``a``
    (``l = log r = l0 + step * a``).

    ``log sigma = psi - l`` has the level's sigma prior (density p(sigma) * sigma, the
    Jacobian of the log; b -> log sigma has Jacobian 1); draws are ``log sigma + l - psi0``
    with sigma from that prior.
    """
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt

    cls, kw = _sigma_family(level)

    def logp(value, a):  # noqa: ANN001, ANN202
        log_sigma = psi0 + value - (l0 + step * a)
        return pm.logp(cls.dist(**kw), pt.exp(log_sigma)) + log_sigma

    def dist(a, size):  # noqa: ANN001, ANN202
        draw = pt.log(cls.dist(**kw, size=size)) + (l0 + step * a) - psi0
        return pt.cast(draw, pytensor.config.floatX)

    return pm.CustomDist(name, a, dist=dist, logp=logp, support_point=_zeros_support_point,
                         dims=dims)


def _pair_term(level: Level, md: ModelData,  # noqa: ANN202
               radial: dict[str, RadialLevel] | None = None):
    """u[i] = sigma_pair * z[i] (dims ``pair``, in the dataset's pair order): the level's
    offsets (``_offset``), sampled non-centered, ``radial`` or ``signed_radial`` (u = size
    x direction: where every judge labels each pair the data pin ||u||, and sigma follows
    it instead of moving against thousands of z at once), or ``conditional``
    (``_conditional_pair_term``). Returns u in the sorted order of ``md``."""
    if level.parameterization == "conditional":
        return _conditional_pair_term(level, md)[md.order]
    u, _ = _offset(level, radial=radial)
    return u[md.order]


def pair_score(md: ModelData, ridge: float = 1.0, iters: int = 8
               ) -> tuple[np.ndarray, np.ndarray]:
    """Residual score ``c`` and information ``tau`` of each pair (sorted order): ``c[i] =
    sum_j (y[i, j] - p[i, j])`` and ``tau[i] = sum_j p (1 - p)`` over the pair's labels,
    with ``p`` from a pilot fit, one ridge logistic regression per (judge, group) cell on
    an intercept and the properties (``iters`` Newton steps from 0, ``ridge`` the prior
    precision of each weight). Constants of the ``conditional`` pair parameterization: any
    finite values give the same model, and the closer they are to the posterior's residual
    score the faster sigma_pair mixes."""
    n, n_j = md.y.shape
    c, tau = np.zeros(n), np.zeros(n)
    for a, b in md.bounds:
        x = np.column_stack([np.ones(b - a), md.x[a:b]])
        seen = ~np.isnan(md.y[a:b])
        y = np.nan_to_num(md.y[a:b])
        lam = np.full(x.shape[1], ridge)
        lam[0] = 0.1 * ridge  # the intercept (a judge's bias) is looser
        w = np.zeros((n_j, x.shape[1]))
        for _ in range(iters):
            p = 1.0 / (1.0 + np.exp(-np.clip(x @ w.T, -30.0, 30.0)))
            grad = (seen * (y - p)).T @ x - lam * w
            info = seen * p * (1.0 - p)  # (pairs, judges)
            hess = (x.T[None] * info.T[:, None, :]) @ x + np.diag(lam)
            w = w + np.linalg.solve(hess, grad[..., None])[..., 0]
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w.T, -30.0, 30.0)))
        c[a:b] = (seen * (y - p)).sum(axis=1)
        tau[a:b] = (seen * p * (1.0 - p)).sum(axis=1)
    return c, tau


def _conditional_pair_term(level: Level, md: ModelData):  # noqa: ANN202
    """Pair effects non-centred on a Gaussian approximation of their conditional posterior.

        u[i] = t^2 c[i] / q[i] + t e[i] / sqrt(q[i]),   q[i] = 1 + tau[i] t^2,
        sigma_pair = |t|

    with ``c``, ``tau`` from ``pair_score``. Given sigma and the labels, u[i] is about
    Normal(sigma^2 c / q, sigma^2 / q): e is then about N(0, 1) whatever sigma is, and
    sigma no longer has to move with the direction of thousands of z at once (with u =
    sigma z, a larger sigma needs z aligned with the residual score first: a ridge NUTS
    crosses slowly; sigma_pair had ESS 0.04 per draw on the bundled data). The same model,
    exactly: ``t`` (``z_pair_sigma``) has the sigma prior reflected onto both signs (t and
    -t with -e are the same u), and ``e`` (``z_pair``) the density that makes u | sigma ~
    Normal(0, sigma): log p(e | t) = sum_i -(t c / q + e / sqrt(q))^2 / 2 - log(q) / 2 -
    log(2 pi) / 2 (the Jacobian of e -> u is |t| / sqrt(q))."""
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt

    c_sorted, tau_sorted = pair_score(md)
    c, tau = np.empty_like(c_sorted), np.empty_like(tau_sorted)
    c[md.order], tau[md.order] = c_sorted, tau_sorted  # dataset order, as dims "pair"
    t = _signed_sigma("z_pair_sigma", level)
    pm.Deterministic("sigma_pair", pt.abs(t))

    def q_of(t):  # noqa: ANN001, ANN202
        return 1.0 + tau * t**2

    def logp(e, t):  # noqa: ANN001, ANN202
        q = q_of(t)
        z = t * c / q + e / pt.sqrt(q)
        return -0.5 * z**2 - 0.5 * pt.log(q) - 0.5 * np.log(2.0 * np.pi)

    def dist(t, size):  # noqa: ANN001, ANN202  (prior draws: u ~ Normal(0, |t|), inverted)
        q = q_of(t)
        u = pt.abs(t) * pm.Normal.dist(size=size)
        return pt.cast((u - t**2 * c / q) * pt.sqrt(q) / t, pytensor.config.floatX)

    e = pm.CustomDist("z_pair", t, dist=dist, logp=logp, support_point=_zeros_support_point,
                      dims="pair")
    q = q_of(t)
    return pm.Deterministic("pair_effect", t**2 * c / q + t * e / pt.sqrt(q), dims="pair")


def _signed_sigma(name: str, level: Level):  # noqa: ANN202
    """A signed scale t with ``|t| ~`` the level's sigma prior: density p(|t|) / 2, so
    sigma = 0 is an interior point (no long left tail on the log scale)."""
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt

    cls, kw = _sigma_family(level)

    def logp(value):  # noqa: ANN001, ANN202
        return pm.logp(cls.dist(**kw), pt.abs(value)) - np.log(2.0)

    def dist(size):  # noqa: ANN001, ANN202
        sign = pt.sign(pm.Normal.dist(size=size))
        return pt.cast(sign * cls.dist(**kw, size=size), pytensor.config.floatX)

    def start(rv, size):  # noqa: ANN001, ANN202, ARG001  (t = 0 would start u at 0 exactly)
        return pt.full_like(rv, level.sigma_scale)

    return pm.CustomDist(name, dist=dist, logp=logp, support_point=start)


def centering_weights(md: ModelData, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Per-element centering ``a`` in [0, 1] for the ``auto`` parameterization.

    a = I s^2 / (1 + I s^2): I is the Fisher information the labels carry about the
    element (0.25 * sum of x^2 over its observed labels, p = 0.5), s the level's prior
    sigma scale. Well-informed elements are sampled centered, weakly informed ones
    non-centered. Judge and group offsets see the data through the cells, so with a cell
    level their information is capped at (number of cells) / s_cell^2.
    """
    obs = ~np.isnan(md.y)  # (N, J)
    x2 = md.x**2
    info = np.stack([0.25 * obs[a:b].T.astype(float) @ x2[a:b] for a, b in md.bounds],
                    axis=1)  # (J, G, K)
    cell = spec.levels.get("cell")
    s_cell = cell.sigma_scale if cell is not None and cell.hierarchical else None
    out: dict[str, np.ndarray] = {}
    for name, i in (("cell", info), ("judge", info.sum(1)), ("group", info.sum(0))):
        lv = spec.levels.get(name)
        if lv is None or not lv.hierarchical:
            continue
        if name != "cell" and s_cell is not None:
            n_cells = info.shape[1] if name == "judge" else info.shape[0]
            i = 1.0 / (1.0 / np.maximum(i, 1e-12) + s_cell**2 / n_cells)
        s2 = lv.sigma_scale**2
        out[name] = i * s2 / (1.0 + i * s2)
    return out


def _bernoulli_logit_logp(value, logit):  # noqa: ANN001, ANN202
    """log P(y | logit) = log_sigmoid((2y - 1) * logit): one softplus per label.

    PyMC's Bernoulli(logit_p=...) evaluates both branches of a switch plus a parameter
    check (three transcendental passes over every label); with y an observed constant the
    sign folds away and this is the whole cost of the likelihood.
    """
    import pytensor.tensor as pt

    return -pt.softplus(-(2.0 * value - 1.0) * logit)


def _bernoulli_logit_random(logit, rng=None, size=None):  # noqa: ANN001, ANN202
    """Draws for posterior predictive sampling."""
    rng = np.random.default_rng() if rng is None else rng
    logit = np.asarray(logit)
    return (rng.random(size or logit.shape) < 1.0 / (1.0 + np.exp(-logit))).astype(float)


def build_model(spec: ModelSpec | str, data: xr.Dataset, *,
                likelihood: str = "observed"):  # noqa: ANN201
    """A ``pm.Model`` for ``spec`` (a ModelSpec or a name/path) on ``data``.

    Named dims: ``judge``, ``group``, ``property`` (and ``obs`` for the observed labels, in
    ``label_index`` order; ``ModelData.observed_entries`` maps each back to (pair, judge)).
    ``model_info(model)`` gives the data layout and the radial levels' constants.
    """
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt

    floatx = pytensor.config.floatX  # float32 where the caller asks for it (JAX speed)
    spec = load_spec(spec)
    md = prepare_data(data)
    n_j, n_g, n_k = len(md.judges), len(md.groups), len(md.properties)
    coords = {"judge": md.judges, "group": md.groups, "property": md.properties,
              OBS_DIM: np.arange(md.n_obs)}
    if spec.has("pair"):
        coords["pair"] = np.asarray(data["pair"].values)
    radial: dict[str, RadialLevel] = {}
    with pm.Model(coords=coords) as model:
        auto = {k: v.astype(floatx) for k, v in centering_weights(md, spec).items()}
        base = pt.zeros((1, 1, n_k), dtype=floatx)
        mu = None
        if spec.has("mu"):
            lv = spec.levels["mu"]
            mu = _prior("mu", lv.prior, 0.0, lv.scale, lv.nu, ("property",))
            base = base + mu[None, None, :]
        if spec.has("judge"):
            # centered judge weights are mu + judge_offset (hierarchical centering: then the
            # data inform them directly and mu is their mean, without a mu-vs-judges ridge)
            loc = None if mu is None else pt.broadcast_to(mu[None, :], (n_j, n_k))
            judge, jw = _offset(spec.levels["judge"], loc=loc, centering=auto.get("judge"),
                                zero_sum_axes=("judge",) if mu is not None else (),
                                radial=radial)
            base = jw[:, None, :] if mu is not None else base + judge[:, None, :]
        if spec.has("group"):
            group, _ = _offset(spec.levels["group"], centering=auto.get("group"),
                               zero_sum_axes=("group",) if mu is not None else (),
                               radial=radial)
            base = base + group[None, :, :]
        w = base
        if spec.has("cell"):
            loc = pt.broadcast_to(base, (n_j, n_g, n_k))
            # a zero-sum axis only where a main-effect level carries what it removes: over
            # groups if the judge level is on, over judges if the group level is on
            axes = tuple(ax for ax, main in (("judge", "group"), ("group", "judge"))
                         if spec.has(main))
            _, w = _offset(spec.levels["cell"], loc=loc, centering=auto.get("cell"),
                           zero_sum_axes=axes, radial=radial)
        if spec.has("w_cell"):
            wc, _ = _offset(spec.levels["w_cell"])
            w = w + wc
        # the likelihood in floatX: radial levels compute their offsets in float64, which
        # would otherwise carry every product and log-sigmoid over the labels to float64
        w = pt.cast(pt.broadcast_to(w, (n_j, n_g, n_k)), floatx)
        bias = None
        if spec.has("bias"):
            lv = spec.levels["bias"]
            bias = _prior("bias", lv.prior, 0.0, lv.scale, lv.nu, ("judge",))
        # (pairs sorted,) pair effects, shared by every judge's logit on the pair
        u = (pt.cast(_pair_term(spec.levels["pair"], md, radial), floatx)
             if spec.has("pair") else None)
        if likelihood == "potential":
            # one product and one masked log-sigmoid sum per group; no concatenation
            total = 0.0
            for g, (a, b) in enumerate(md.bounds):
                xg = pt.constant(md.x[a:b].astype(floatx), name=f"x_g{g}")
                lg = pt.dot(xg, w[:, g, :].T)  # (pairs of g, K) @ (K, J)
                if bias is not None:
                    lg = lg + bias[None, :]
                if u is not None:
                    lg = lg + u[a:b, None]
                yg = md.y[a:b]
                sign = np.where(np.isnan(yg), 0.0, 2.0 * np.nan_to_num(yg) - 1.0)
                ll = -pt.softplus(-pt.constant(sign.astype(floatx)) * lg)
                if np.isnan(yg).any():
                    ll = ll * pt.constant((~np.isnan(yg)).astype(floatx))
                total = total + pt.sum(ll, dtype="float64")
            pm.Potential("loglik", total)
        else:
            blocks = []
            for g, (a, b) in enumerate(md.bounds):
                xg = pt.constant(md.x[a:b].astype(floatx), name=f"x_g{g}")
                blocks.append(pt.dot(xg, w[:, g, :].T))  # (pairs of g, K) @ (K, J)
            logits = pt.concatenate(blocks, axis=0) if len(blocks) > 1 else blocks[0]
            if bias is not None:
                logits = logits + bias[None, :]
            if u is not None:
                logits = logits + u[:, None]
            flat = logits.ravel()[md.obs_flat]
            y_flat = md.y.ravel()[md.obs_flat]
            pm.CustomDist("y", flat, logp=_bernoulli_logit_logp,
                          random=_bernoulli_logit_random, observed=y_flat.astype(floatx),
                          dims=OBS_DIM)
    _MODEL_INFO[model] = ModelInfo(data=md, radial=radial)
    return model
