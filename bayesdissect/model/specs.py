"""Model specs: which levels of the model are on, their priors, and the sampler defaults.

A spec is a small TOML file (see ``models/hierarchical.toml``). The built-in specs ship
inside the package as ``bayesdissect.models``; ``load_spec`` takes a built-in name or the
path of a user's own ``.toml``. Priors are data here, never code in the builder.

Levels (each optional; at least one weight level must be on):

* ``mu`` (property), ``bias`` (judge), ``w_cell`` (judge, group, property): fixed prior,
  ``prior`` + ``scale`` (+ ``nu`` for student_t).
* ``judge`` (judge, property), ``group`` (group, property), ``cell`` (judge, group,
  property): hierarchical with ``sigma_prior`` + ``sigma_scale`` (one sigma per property,
  or one shared sigma with ``sigma_per_property = false``), or fixed with ``prior`` +
  ``scale``. ``zero_sum = true`` makes a hierarchical level's offsets sum to zero over the
  axes whose constant part another level that is on already carries (judge and group
  offsets over judges / groups when mu is on; cell offsets over groups when the judge level
  is on and over judges when the group level is on): a ZeroSumNormal, i.e. iid normal
  offsets minus their mean. This removes the ridges of the additive decomposition
  (mu + c, offsets - c) that the data cannot see, and makes mu the average over judges and
  groups and mu + judge the judge's weights averaged over groups, exactly. Otherwise
  ``scale``; ``parameterization`` is ``"radial"`` (each property's offsets as a size
  times a direction, the size sampled on the log scale: the per-property sigma mixes
  fast whether the data are informative or not; the default spec's judge and group
  levels), ``"signed_radial"`` (the same with the size a signed coordinate instead of its
  log: a sigma whose posterior reaches 0 then has no long tail on the log scale to
  explore; the default spec's cell level),
  ``"noncentered"``, ``"centered"`` or ``"auto"`` (partial centering chosen per element
  from how much data informs it). All are the same model. ``offsets = "student_t"``
  (with ``offset_nu``, default 4) gives a hierarchical level heavy-tailed offsets,
  ``sigma * t(offset_nu)`` instead of ``Normal(0, sigma)`` (centred over the zero-sum axes
  when ``zero_sum``), sampled ``"noncentered"`` (the default then) or ``"centered"``: many
  near-zero offsets and a few large ones are then both likely, so large weights are not
  shrunk as hard (issue 14).
* ``pair`` (pair): a latent quality of each pair shared by every judge, ``u[i] = tau *
  z[i]``, ``z[i] ~ N(0, 1)``, ``tau ~ sigma_prior(sigma_scale)`` (one tau), added to every
  judge's logit on pair i (model.md §7). Only ``sigma_prior`` + ``sigma_scale`` (+ ``nu``)
  and ``parameterization``: ``"noncentered"`` (the default), ``"radial"`` or
  ``"signed_radial"`` (u as a size x direction, which the data pin when the pairs carry
  many labels), or ``"conditional"`` (u non-centred on a Gaussian approximation of its
  conditional posterior, from a pilot fit's residual score per pair, with a signed tau:
  tau mixes as if u were integrated out; the default spec's); not a weight level.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayesdissect.errors import BayesDissectError

#: Levels a spec may name, with the dims of the term each adds.
LEVEL_DIMS: dict[str, tuple[str, ...]] = {
    "mu": ("property",),
    "judge": ("judge", "property"),
    "group": ("group", "property"),
    "cell": ("judge", "group", "property"),
    "w_cell": ("judge", "group", "property"),
    "bias": ("judge",),
    "pair": ("pair",),
}
#: Levels that may have a learned scale (sigma) shared across their members.
HIERARCHICAL_LEVELS = ("judge", "group", "cell")
WEIGHT_LEVELS = ("mu", "judge", "group", "cell", "w_cell")
#: The pair-effect level: one learned scale for all pairs.
PAIR_LEVEL = "pair"
#: The settings every pair level has (the only values its table may give them).
PAIR_FIXED: dict[str, Any] = {"sigma_per_property": False, "zero_sum": False}
#: How a pair level's effects may be sampled: ``noncentered`` (u = sigma * z), ``radial``
#: or ``signed_radial`` (u = size x direction, as the weight levels), ``conditional`` (u
#: non-centred on its conditional posterior's Gaussian approximation; model/build.py). The
#: first is the default of a table that names none, so older specs stay the same.
PAIR_PARAMETERIZATIONS = ("noncentered", "radial", "signed_radial", "conditional")
PRIORS = ("normal", "laplace", "student_t", "cauchy")
SIGMA_PRIORS = ("halfnormal", "exponential", "halfcauchy", "halfstudent_t")
PARAMETERIZATIONS = ("auto", "noncentered", "centered", "radial", "signed_radial")
#: The parameterizations that sample a level as size x direction (model/build.py).
RADIAL_PARAMETERIZATIONS = ("radial", "signed_radial")
#: Families of a hierarchical level's offsets given its sigma.
OFFSET_FAMILIES = ("normal", "student_t")
#: The parameterizations a heavy-tailed (student_t) level can be sampled in.
T_PARAMETERIZATIONS = ("noncentered", "centered")
#: The spec ``fit`` and ``bayesdissect fit`` use when none is named (chosen by calibration
#: against simulated truth of several shapes and PSIS-LOO: benchmarks/RESULTS.md, issue 14).
DEFAULT_MODEL = "hierarchical-pair"
#: NUTS samplers; ``percell`` (model/percell.py) fits a spec whose posterior factorises over
#: (judge, group) cells, like ``paper``, as one vectorised NUTS run per cell.
SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax", "percell")

_LEVEL_KEYS = {"on", "prior", "scale", "nu", "sigma_prior", "sigma_scale", "sigma_per_property",
               "parameterization", "zero_sum", "offsets", "offset_nu"}
_SAMPLER_KEYS = {"name", "chains", "draws", "tune", "target_accept", "backend", "adaptation",
                 "float32", "min_draws"}


@dataclass(frozen=True)
class Level:
    """One level of the model: its prior, or its hierarchical scale prior."""

    name: str
    prior: str | None = None
    scale: float | None = None
    nu: float = 3.0
    sigma_prior: str | None = None
    sigma_scale: float | None = None
    sigma_per_property: bool = True
    parameterization: str = "auto"
    zero_sum: bool = False
    offsets: str = "normal"
    offset_nu: float = 4.0

    @property
    def heavy_tailed(self) -> bool:
        """True when the level's offsets are Student-t given sigma (``offsets``)."""
        return self.offsets == "student_t"

    @property
    def hierarchical(self) -> bool:
        """True when the level's scale is learned (sigma_prior set)."""
        return self.sigma_prior is not None

    @property
    def dims(self) -> tuple[str, ...]:
        return LEVEL_DIMS[self.name]


@dataclass(frozen=True)
class SamplerDefaults:
    """Sampler settings a spec proposes; ``fit`` arguments override them."""

    name: str = "nutpie"
    chains: int = 4
    draws: int = 500
    tune: int = 500
    target_accept: float = 0.8
    backend: str = "numba"  # nutpie compile backend: numba or jax
    adaptation: str = "diag"  # nutpie mass-matrix adaptation: diag, draw_diag, low_rank
    float32: bool = True  # single-precision log density (float64 sums)
    min_draws: int | None = None  # sample until converged from this many draws (nutpie)


@dataclass(frozen=True)
class ModelSpec:
    """A model: its name, the levels that are on, and sampler defaults."""

    name: str
    levels: dict[str, Level]
    sampler: SamplerDefaults = field(default_factory=SamplerDefaults)
    description: str = ""
    source: str = ""

    def has(self, level: str) -> bool:
        """True when ``level`` is on."""
        return level in self.levels

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, the same shape as the TOML file (None values omitted)."""
        levels = {
            name: {k: v for k, v in dataclasses.asdict(lv).items() if k != "name" and v is not None}
            for name, lv in self.levels.items()
        }
        return {"name": self.name, "description": self.description, "source": self.source,
                "levels": levels, "sampler": dataclasses.asdict(self.sampler)}

    def to_json(self) -> str:
        """JSON text that ``spec_from_json`` turns back into an equal spec."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace_level(self, level: str, **changes: Any) -> ModelSpec:
        """A copy with one level changed (``None`` for ``changes`` switches it off)."""
        levels = dict(self.levels)
        if not changes:
            levels.pop(level, None)
        else:
            fixed = ({**PAIR_FIXED, "parameterization": PAIR_PARAMETERIZATIONS[0]}
                     if level == PAIR_LEVEL else {})
            base = levels.get(level, Level(name=level, **fixed))
            levels[level] = dataclasses.replace(base, **changes)
        return parse_spec({**self.to_dict(), "levels": {
            n: {k: v for k, v in dataclasses.asdict(lv).items() if k != "name" and v is not None}
            for n, lv in levels.items()}}, where=f"spec {self.name!r}")


def _num(value: Any, where: str, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BayesDissectError(f"{where}: expected a number, got {value!r}")
    if positive and not value > 0:
        raise BayesDissectError(f"{where}: expected a positive number, got {value!r}")
    return float(value)


def _choice(value: Any, options: tuple[str, ...], where: str) -> str:
    if value not in options:
        raise BayesDissectError(f"{where}: unknown value {value!r}; expected one of {options}")
    return str(value)


def _check_keys(table: dict, allowed: set[str] | frozenset[str], where: str) -> None:
    """One clear line for keys a spec table does not know (typos would be ignored)."""
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise BayesDissectError(f"{where}: unknown key(s) {unknown}; expected some of "
                                f"{sorted(allowed)}")


def _parse_level(name: str, raw: Any, where: str) -> Level | None:
    where = f"{where}, levels.{name}"
    if not isinstance(raw, dict):
        raise BayesDissectError(f"{where}: expected a table, got {raw!r}")
    _check_keys(raw, _LEVEL_KEYS, where)
    on = raw.get("on", True)
    if not isinstance(on, bool):
        raise BayesDissectError(f"{where}.on: expected true or false, got {on!r}")
    if not on:
        return None
    if name == PAIR_LEVEL:
        return _parse_pair_level(raw, where)
    kw: dict[str, Any] = {"name": name}
    if "sigma_prior" in raw or "sigma_scale" in raw:
        if name not in HIERARCHICAL_LEVELS:
            raise BayesDissectError(f"{where}: sigma_prior is only allowed for levels "
                                    f"{HIERARCHICAL_LEVELS}")
        if "prior" in raw or "scale" in raw:
            raise BayesDissectError(f"{where}: give either prior+scale or "
                                    "sigma_prior+sigma_scale, not both")
        kw["sigma_prior"] = _choice(raw.get("sigma_prior"), SIGMA_PRIORS, f"{where}.sigma_prior")
        kw["sigma_scale"] = _num(raw.get("sigma_scale"), f"{where}.sigma_scale")
        per = raw.get("sigma_per_property", True)
        if not isinstance(per, bool):
            raise BayesDissectError(f"{where}.sigma_per_property: expected true or false")
        kw["sigma_per_property"] = per
    else:
        kw["prior"] = _choice(raw.get("prior"), PRIORS, f"{where}.prior")
        kw["scale"] = _num(raw.get("scale"), f"{where}.scale")
    if "zero_sum" in raw:
        if not isinstance(raw["zero_sum"], bool):
            raise BayesDissectError(f"{where}.zero_sum: expected true or false")
        if raw["zero_sum"] and name not in HIERARCHICAL_LEVELS:
            raise BayesDissectError(f"{where}.zero_sum: only levels {HIERARCHICAL_LEVELS} can "
                                    "sum to zero")
        if raw["zero_sum"] and "sigma_prior" not in raw:
            raise BayesDissectError(f"{where}.zero_sum: needs sigma_prior (a normal offset)")
        kw["zero_sum"] = raw["zero_sum"]
    if "nu" in raw:
        kw["nu"] = _num(raw["nu"], f"{where}.nu")
    if "parameterization" in raw:
        kw["parameterization"] = _choice(raw["parameterization"], PARAMETERIZATIONS,
                                         f"{where}.parameterization")
        if (kw["parameterization"] in RADIAL_PARAMETERIZATIONS
                and not kw.get("sigma_per_property", True)):
            # size x direction needs one size per sigma; one sigma over all properties
            # would be sampled non-centered instead, which the spec did not ask for
            raise BayesDissectError(f"{where}.parameterization: "
                                    f"{kw['parameterization']!r} samples one size per sigma, "
                                    "so it needs sigma_per_property = true; with one shared "
                                    "sigma use 'noncentered' or 'centered'")
    _parse_offsets(raw, kw, where)
    return Level(**kw)


def _parse_offsets(raw: dict[str, Any], kw: dict[str, Any], where: str) -> None:
    """``offsets`` / ``offset_nu`` of a weight level into ``kw``: only for a hierarchical
    level; student_t offsets are sampled noncentered (the default) or centered."""
    if raw.get("offsets", "normal") == "normal" and "sigma_prior" not in kw:
        return  # a fixed prior's family is its 'prior' (to_dict writes the defaults)
    if "sigma_prior" not in kw:
        raise BayesDissectError(f"{where}.offsets: only a hierarchical level (sigma_prior + "
                                "sigma_scale) has offsets of a family; a fixed prior names "
                                "its family in 'prior'")
    kw["offsets"] = _choice(raw.get("offsets", "normal"), OFFSET_FAMILIES, f"{where}.offsets")
    if "offset_nu" in raw:
        nu = _num(raw["offset_nu"], f"{where}.offset_nu")
        if nu <= 2:
            raise BayesDissectError(f"{where}.offset_nu: expected more than 2 degrees of "
                                    f"freedom (a finite variance), got {nu}")
        kw["offset_nu"] = nu
    if kw["offsets"] == "student_t":
        par = kw.setdefault("parameterization", "noncentered")
        if par not in T_PARAMETERIZATIONS:
            raise BayesDissectError(f"{where}.parameterization: student_t offsets are sampled "
                                    f"one of {T_PARAMETERIZATIONS}, got {par!r}")


def _parse_pair_level(raw: dict[str, Any], where: str) -> Level:
    """The pair level: ``sigma_prior`` + ``sigma_scale`` (+ ``nu``), one sigma, and
    ``parameterization`` (``noncentered`` unless named). The other keys are accepted only
    with the one value they can have (as ``to_dict`` writes them)."""
    if "prior" in raw or "scale" in raw or "sigma_prior" not in raw:
        raise BayesDissectError(f"{where}: the pair level needs sigma_prior + sigma_scale "
                                "(u[i] = sigma_pair * z[i]); prior/scale are not allowed")
    for key, only in PAIR_FIXED.items():
        if key in raw and raw[key] != only:
            raise BayesDissectError(f"{where}.{key}: the pair level has one sigma and "
                                    f"no zero-sum axes; expected {only!r} or no {key}, "
                                    f"got {raw[key]!r}")
    kw: dict[str, Any] = {
        "name": PAIR_LEVEL,
        "sigma_prior": _choice(raw.get("sigma_prior"), SIGMA_PRIORS, f"{where}.sigma_prior"),
        "sigma_scale": _num(raw.get("sigma_scale"), f"{where}.sigma_scale"), **PAIR_FIXED,
        "parameterization": _choice(raw.get("parameterization", PAIR_PARAMETERIZATIONS[0]),
                                    PAIR_PARAMETERIZATIONS, f"{where}.parameterization")}
    if "nu" in raw:
        kw["nu"] = _num(raw["nu"], f"{where}.nu")
    return Level(**kw)


def parse_spec(raw: dict[str, Any], where: str = "spec") -> ModelSpec:
    """Validate a spec given as a dict (parsed TOML); raise one clear line on error."""
    if not isinstance(raw, dict):
        raise BayesDissectError(f"{where}: expected a table")
    unknown = sorted(set(raw) - {"name", "description", "levels", "sampler", "source"})
    if unknown:
        raise BayesDissectError(f"{where}: unknown key(s) {unknown}; expected name, "
                                "description, levels, sampler")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise BayesDissectError(f"{where}: missing 'name' (a non-empty string)")
    raw_levels = raw.get("levels", {})
    if not isinstance(raw_levels, dict):
        raise BayesDissectError(f"{where}: 'levels' must be a table")
    levels: dict[str, Level] = {}
    for lname, lraw in raw_levels.items():
        if lname not in LEVEL_DIMS:
            raise BayesDissectError(f"{where}: unknown level {lname!r}; expected one of "
                                    f"{tuple(LEVEL_DIMS)}")
        level = _parse_level(lname, lraw, where)
        if level is not None:
            levels[lname] = level
    if not any(lv in levels for lv in WEIGHT_LEVELS):
        raise BayesDissectError(f"{where}: no weight level is on; turn on at least one of "
                                f"{WEIGHT_LEVELS}")
    s_raw = raw.get("sampler", {})
    if not isinstance(s_raw, dict):
        raise BayesDissectError(f"{where}: 'sampler' must be a table")
    _check_keys(s_raw, _SAMPLER_KEYS, f"{where}, sampler")
    skw: dict[str, Any] = {}
    if "name" in s_raw:
        skw["name"] = _choice(s_raw["name"], SAMPLERS, f"{where}, sampler.name")
    for key in ("chains", "draws", "tune", "min_draws"):
        if key in s_raw and not (key == "min_draws" and s_raw[key] is None):
            v = s_raw[key]
            lo = 1 if key in ("chains", "draws") else 0
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise BayesDissectError(f"{where}, sampler.{key}: expected an integer >= {lo}, "
                                        f"got {v!r}")
            skw[key] = v
    if "target_accept" in s_raw:
        ta = _num(s_raw["target_accept"], f"{where}, sampler.target_accept")
        if not 0 < ta < 1:
            raise BayesDissectError(f"{where}, sampler.target_accept: expected a number in "
                                    f"(0, 1), got {ta}")
        skw["target_accept"] = ta
    if "backend" in s_raw:
        skw["backend"] = _choice(s_raw["backend"], ("numba", "jax"), f"{where}, sampler.backend")
    if "adaptation" in s_raw:
        skw["adaptation"] = _choice(s_raw["adaptation"], ("diag", "draw_diag", "low_rank"),
                                    f"{where}, sampler.adaptation")
    if "float32" in s_raw:
        if not isinstance(s_raw["float32"], bool):
            raise BayesDissectError(f"{where}, sampler.float32: expected true or false")
        skw["float32"] = s_raw["float32"]
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise BayesDissectError(f"{where}: 'description' must be a string")
    return ModelSpec(name=name, levels=levels, sampler=SamplerDefaults(**skw),
                     description=description, source=str(raw.get("source", "")))


def builtin_specs() -> list[str]:
    """Names of the specs shipped with the package."""
    root = importlib.resources.files("bayesdissect.models")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def load_spec(name_or_path: str | Path | ModelSpec) -> ModelSpec:
    """A built-in spec by name (``hierarchical``, ``paper``, ``pooled``) or a user's TOML."""
    if isinstance(name_or_path, ModelSpec):
        return name_or_path
    text_name = str(name_or_path)
    path = Path(text_name)
    if text_name.endswith(".toml") or path.exists():
        if not path.is_file():
            raise BayesDissectError(f"model spec {text_name}: file not found")
        try:
            raw = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise BayesDissectError(f"model spec {text_name}: not valid TOML ({exc})") from None
        source = str(path)
    else:
        resource = importlib.resources.files("bayesdissect.models") / f"{text_name}.toml"
        if not resource.is_file():
            raise BayesDissectError(f"unknown model {text_name!r}; expected one of "
                                    f"{builtin_specs()} or the path of a .toml spec")
        raw = tomllib.loads(resource.read_text())
        source = f"builtin:{text_name}"
    raw = {**raw, "source": source}
    return parse_spec(raw, where=f"model spec {text_name}")


def spec_from_json(text: str) -> ModelSpec:
    """Inverse of ``ModelSpec.to_json`` (used when a saved fit is loaded)."""
    return parse_spec(json.loads(text), where="saved spec")
