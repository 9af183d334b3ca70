"""``simulate(...)``: GAIR-schema data with labels drawn from known weights.

The rows are written in the canonical GAIR schema (dataset.md §2.2b) with *raw* per-response
annotations (0-3 ratings, error lists with severities, query-specific items and labels, word
counts), so that loading them exercises every feature rule of dataset.md §5. The simulator
decides the clean raw values first and computes the features it intends with its own small
reference implementation (independent of ``features.py``), then draws the labels from the
hierarchical model of model.md §3:

    w[j, g, k] = mu[k] + judge[j, k] + group[g, k] + cell[j, g, k]
    P(judge j prefers response 1 on pair i) = sigmoid(bias[j] + x[i] . w[j, g(i)])

The returned ``Simulation`` carries the rows, the truth (``w``, ``mu``, offsets, ``bias``,
sigmas, the true judge similarities) and ``data``: exactly what ``bayesdissect.load`` must
return for the written file. The truth is written beside the data file as ``<out>.truth.nc``.

Regimes (issue 14): where the true weights come from, and what each is for.

* ``regime="prior"`` (the default): the truth is drawn from the model's own prior (model.md
  §3, normal offsets). On such data any correct sampler looks calibrated by construction, so
  it checks the code, not whether the model suits real preferences.
* ``regime="sparse"``: a heavy-tailed, sparse truth shaped like the paper's published
  per-(judge, scenario) weights (``PAPER_WEIGHT_SHAPE``: 23% of |w| < 0.02, 45% < 0.05, a
  few up to ~1.7; sd ~0.08 across judges within a scenario and ~0.10 across scenarios within
  a judge), with judges of similar size resembling each other. The model does not assume
  this shape, so it tests calibration against truth the model was not built from. The
  recipe (``SparseShape``), all Student-t draws with ``df`` degrees of freedom:

      slab[k]     a random round(slab_share * K) of the properties matter ("slab"),
                  the rest are near zero ("spike")
      mu[k]       slab: mu_scale * t;  spike: spike_scale * N(0, 1)
      d[k]        a property's deviation scale: slab: dev_scale * exp(dev_spread * N(0, 1));
                  spike: spike_dev_scale
      cluster[c, k] = d[k] * cluster * t    judges clustered by size (``size_clusters``)
      own[j, k]     = d[k] * judge * t
      group[g, k]   = d[k] * group * t
      cell[j, g, k] = d[k] * cell * t
      w[j, g, k]  = mu[k] + (cluster[c(j), k] + own[j, k]) + group[g, k] + cell[j, g, k]

  The truth stores ``judge_offset`` = cluster + own, so w = mu + judge_offset +
  group_offset + cell_offset holds in both regimes, and ``cluster_offset`` beside it.
* ``pair_sd > 0`` (either regime): a latent quality of each pair that the 29 properties
  miss, shared by every judge: logit += u[i], u[i] ~ N(0, pair_sd) (model.md §7). Left out
  of a fit, it attenuates the weights and makes judges agree more than the model predicts.
  Drawn from its own random stream, so the features, weights and label noise stay those of
  the same seed without it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from bayesdissect._io import atomic_path
from bayesdissect.data.catalogue import (
    BASIC_KEYS,
    CASE_SIZES,
    CASES,
    JUDGE_KEYS,
    PROPERTIES,
    PROPERTY_NAMES,
    SCENARIO_SIZES,
    judge_info,
)
from bayesdissect.errors import BayesDissectError

DEMO_SEED = 20240217
DEMO_TITLE = ("SIMULATED demo data: paper-sized (5,240 pairs, 33 judges, 11 scenarios) in the "
              "GAIR schema, labels drawn from known weights; NOT the real "
              "GAIR/preference-dissection data")
LEVELS = ("judge", "group", "cell", "bias")
#: The demo's weight scales: smaller than the model.md prior defaults so that labels are
#: about as predictable as real judges' (truth accuracy ~70%, not ~85%).
DEMO_SCALES: dict[str, float] = {"mu_scale": 0.4, "s_judge": 0.25, "s_group": 0.2,
                                 "s_cell": 0.15, "bias_scale": 0.3}

#: Pairs per (scenario, case) in the paper (dataset.md §4.2 cross-tab), case order = CASES.
PAPER_CROSSTAB: dict[str, tuple[int, int, int, int, int]] = {
    "Advice": (29, 24, 41, 52, 24), "Code": (18, 1, 135, 5, 16),
    "Communication": (106, 17, 13, 36, 29), "Creative Writing": (10, 4, 195, 32, 20),
    "Daily Tasks": (31, 10, 185, 78, 12), "Exam Questions": (16, 0, 73, 1, 31),
    "Functional Writing": (11, 4, 156, 34, 11), "Knowledge-aware": (33, 6, 49, 34, 66),
    "NLP Tasks": (27, 10, 199, 21, 17), "Others": (136, 33, 260, 48, 42),
    "Unsafe Queries": (42, 12, 112, 47, 133),
}
# Rating distributions over 0..3 per basic key (realistic skews: harmless mostly 3, funny 0).
_RATING_P: dict[str, tuple[float, float, float, float]] = dict(zip(BASIC_KEYS, [
    (0.02, 0.03, 0.10, 0.85), (0.02, 0.05, 0.18, 0.75), (0.15, 0.35, 0.35, 0.15),
    (0.05, 0.15, 0.40, 0.40), (0.70, 0.15, 0.10, 0.05), (0.10, 0.25, 0.40, 0.25),
    (0.85, 0.08, 0.05, 0.02), (0.70, 0.15, 0.10, 0.05), (0.15, 0.35, 0.35, 0.15),
    (0.60, 0.20, 0.12, 0.08), (0.30, 0.20, 0.25, 0.25), (0.75, 0.10, 0.08, 0.07),
    (0.50, 0.25, 0.15, 0.10), (0.55, 0.15, 0.15, 0.15), (0.80, 0.12, 0.06, 0.02),
    (0.75, 0.15, 0.07, 0.03), (0.03, 0.10, 0.37, 0.50), (0.06, 0.08, 0.16, 0.70),
    (0.40, 0.30, 0.20, 0.10), (0.10, 0.25, 0.35, 0.30),
], strict=True))
_SAME_RATING = 0.35          # chance response 2 copies response 1's rating (ties are common)
_ERROR_RATES = (0.45, 0.30, 0.20)   # Poisson rates of minor / moderate / severe errors
_SEVERITY_SPELLINGS = (("minor", "Minor", " minor ", "MINOR"),
                       ("moderate", "Moderate", "moderate "),
                       ("severe", "Severe", " SEVERE"))
_ERROR_TYPES = ("factual error", "information contradiction to the query",
                "math operation error", "code generation error")
_STANCES = ("strongly opposed", "weakly opposed", "neutral", "weakly supported",
            "strongly supported")                       # values -2..2
_MISTAKES = ("neither", "pointed out but not corrected", "corrected without being pointed out",
             "pointed out and corrected")               # values 0..3
_ARENA_MODELS = ("vicuna-13b", "koala-13b", "alpaca-13b", "chatglm-6b", "oasst-pythia-12b",
                 "gpt-3.5-turbo", "claude-v1", "gpt-4", "llama-13b", "dolly-v2-12b",
                 "stablelm-tuned-alpha-7b", "fastchat-t5-3b", "mpt-7b-chat", "palm-2",
                 "RWKV-4-Raven-14B", "claude-instant-v1", "guanaco-33b", "wizardlm-13b")
_QS_KEYS = tuple(p.key for p in PROPERTIES if p.case is not None)   # order = CASES
_LEN_TABLE = (1, 3, 5, 7, 8, 10, 11, 13, 14, 16, 17, 19)


@dataclass
class Simulation:
    """A simulated dataset: raw GAIR ``rows``, the ``truth``, and the contract ``data``
    (what ``load`` returns for the written file: intended features, labels, drops)."""

    rows: list[dict[str, Any]]
    truth: xr.Dataset
    data: xr.Dataset
    path: Path | None = None
    truth_path: Path | None = None


def truth_path_for(path: str | Path) -> Path:
    """Where the truth of a simulated file lives: ``<file>.truth.nc`` beside it."""
    p = Path(path)
    return p.with_name(p.name + ".truth.nc")


def load_truth(source: str | Path) -> xr.Dataset:
    """The truth of a simulated file (or of ``"demo"``), as an ``xarray.Dataset``: weights
    at every level, bias, pair effects (when simulated), the true judge similarities (added
    here for files that lack them) and the regime's settings in ``attrs``."""
    if str(source) == "demo":
        from importlib import resources

        from bayesdissect.data.loaders import DEMO_TRUTH_FILE
        with resources.as_file(resources.files("bayesdissect.data") / DEMO_TRUTH_FILE) as p:
            return _with_similarity(_open_nc(Path(p), "demo"))
    return _with_similarity(_open_nc(truth_path_for(source) if not str(source).endswith(".nc")
                                     else Path(source), str(source)))


def _open_nc(path: Path, name: str) -> xr.Dataset:
    if not path.exists():
        raise BayesDissectError(f"{name}: no truth file {path}; expected the .truth.nc file "
                                "that simulate wrote beside the data")
    with xr.open_dataset(path) as t:
        return t.load()


# ---------------------------------------------------------------------------
# Layout: judges, groups, cases
# ---------------------------------------------------------------------------

def _judge_list(judges: int | Sequence[str] | None) -> list[str]:
    if judges is None:
        return list(JUDGE_KEYS)
    if isinstance(judges, (int, np.integer)):
        if judges < 1:
            raise BayesDissectError(f"judges={judges}: expected at least 1 judge")
        extra = [f"judge-{k + 1}" for k in range(len(JUDGE_KEYS), int(judges))]
        return list(JUDGE_KEYS[:judges]) + extra
    names = [str(j) for j in judges]
    if not names or len(set(names)) != len(names):
        raise BayesDissectError(f"judges={names!r}: expected non-empty, unique judge names")
    return names


def _group_sizes(groups: int | Sequence[str] | Mapping[str, int] | None,
                 n_pairs: int | None) -> dict[str, int]:
    if isinstance(groups, Mapping):
        sizes = {str(g): int(s) for g, s in groups.items()}
        if n_pairs is not None and n_pairs != sum(sizes.values()):
            raise BayesDissectError(f"n_pairs={n_pairs} differs from the sum of group sizes "
                                    f"({sum(sizes.values())})")
    else:
        if groups is None:
            names, weights = list(SCENARIO_SIZES), np.array(list(SCENARIO_SIZES.values()), float)
        elif isinstance(groups, (int, np.integer)):
            if groups < 1:
                raise BayesDissectError(f"groups={groups}: expected at least 1 group")
            scen = list(SCENARIO_SIZES)
            names = scen[:groups] + [f"group-{k + 1}" for k in range(len(scen), int(groups))]
            weights = np.ones(len(names))
        else:
            names = [str(g) for g in groups]
            weights = np.ones(len(names))
        total = sum(SCENARIO_SIZES.values()) if n_pairs is None else int(n_pairs)
        raw = weights / weights.sum() * total
        base = np.floor(raw).astype(int)
        order = np.argsort(-(raw - base), kind="stable")
        base[order[: total - base.sum()]] += 1
        sizes = dict(zip(names, base.tolist(), strict=True))
    if len(set(sizes)) != len(sizes) or any(s < 0 for s in sizes.values()):
        raise BayesDissectError("groups: expected unique names and non-negative sizes")
    if sum(sizes.values()) < 1:
        raise BayesDissectError("n_pairs: expected at least one pair")
    return sizes


def _case_rates(cases: Sequence[str] | Mapping[str, float] | None) -> dict[str, float | None]:
    """Case -> rate (None = paper rate from the cross-tab)."""
    if cases is None:
        return {c: None for c in CASES}
    items = cases.items() if isinstance(cases, Mapping) else ((c, None) for c in cases)
    out: dict[str, float | None] = {}
    for c, rate in items:
        if c not in CASES:
            raise BayesDissectError(f"cases: unknown case {c!r}; expected some of {CASES}")
        if rate is not None and not 0.0 <= float(rate) <= 1.0:
            raise BayesDissectError(f"cases[{c!r}]={rate}: expected a rate in [0, 1]")
        out[c] = None if rate is None else float(rate)
    return out


# ---------------------------------------------------------------------------
# The simulator's own reference rules (independent of features.py)
# ---------------------------------------------------------------------------

def _ref_length(w1: int, w2: int) -> float:
    s, big = min(w1, w2), max(w1, w2)
    if s <= 11:
        fires = big >= _LEN_TABLE[s]
    else:
        d = big - s
        fires = ((Fraction(s) <= Fraction(7, 10) * big and d >= 10)
                 or (Fraction(s) <= Fraction(8, 10) * big and d >= 20)
                 or (Fraction(s) <= Fraction(9, 10) * big and d >= 40))
    return float(np.sign(w1 - w2)) if fires else 0.0


# ---------------------------------------------------------------------------
# Regimes: where the true weights come from (issue 14)
# ---------------------------------------------------------------------------

REGIMES = ("prior", "sparse")
#: The shape of the paper's published weights (dataset.md §6, issue 14), as ``weight_shape``
#: measures it: share of |w| below 0.02 and 0.05, largest and mean |w|, mean sd across
#: judges within a (scenario, property) and across scenarios within a (judge, property).
PAPER_WEIGHT_SHAPE: dict[str, float] = {
    "share_below_0.02": 0.23, "share_below_0.05": 0.45, "max_abs": 1.72, "mean_abs": 0.14,
    "sd_across_judges": 0.08, "sd_across_groups": 0.10}


@dataclass(frozen=True)
class SparseShape:
    """Settings of the ``sparse`` regime (logit scale; recipe in the module docstring).
    The defaults give weights shaped like ``PAPER_WEIGHT_SHAPE`` at the paper's size
    (over 40 seeds: 24% / 46% below 0.02 / 0.05, mean |w| 0.15, sd 0.082 across judges and
    0.103 across scenarios, largest |w| 1.1-3.4)."""

    slab_share: float = 0.6      # share of properties that matter
    mu_scale: float = 0.15       # t scale of a slab property's average weight
    spike_scale: float = 0.015   # normal sd of a spike property's average weight
    dev_scale: float = 0.095     # typical deviation scale of a slab property
    dev_spread: float = 0.5      # log-normal spread of that scale over slab properties
    spike_dev_scale: float = 0.015
    cluster: float = 0.6         # level multipliers of a property's deviation scale
    judge: float = 0.5
    group: float = 1.0
    cell: float = 0.5
    df: float = 4.0              # Student-t degrees of freedom of every draw

    def check(self) -> None:
        """One-line error for a setting out of range."""
        for name, val in asdict(self).items():
            if not math.isfinite(val) or val < 0:
                raise BayesDissectError(f"sparse.{name}={val}: expected a finite value >= 0")
        if self.slab_share > 1:
            raise BayesDissectError(f"sparse.slab_share={self.slab_share}: expected a share "
                                    "in [0, 1]")
        if self.df <= 2:
            raise BayesDissectError(f"sparse.df={self.df}: expected more than 2 degrees of "
                                    "freedom (a finite variance)")


def size_clusters(judges: Sequence[str]) -> list[str]:
    """The sparse regime's judge clusters, by the judge catalogue: ``human``,
    ``proprietary``, and open models by parameter size (``open <10B``, ``open 10-30B``,
    ``open >=30B``). A judge the catalogue does not know is a cluster of its own."""
    out = []
    for name in judges:
        info = judge_info(name)
        if info.type in ("human", "proprietary"):
            out.append(info.type)
        elif not math.isfinite(info.size):
            out.append(f"{name} (size unknown)")
        else:
            out.append("open <10B" if info.size < 10 else
                       "open 10-30B" if info.size < 30 else "open >=30B")
    return out


def weight_shape(w: Any) -> dict[str, float]:
    """Summary of weights (judge, group, property) comparable with ``PAPER_WEIGHT_SHAPE``:
    shares of |w| below 0.02 and 0.05, max and mean |w|, and the sd across judges (over
    groups x properties, averaged) and across groups (over judges x properties, averaged)."""
    w = np.asarray(getattr(w, "values", w), dtype=np.float64)
    if w.ndim != 3 or w.shape[0] < 2 or w.shape[1] < 2:
        raise BayesDissectError(f"weight_shape: expected (judge, group, property) with at "
                                f"least 2 judges and 2 groups, got shape {w.shape}")
    a = np.abs(w)
    return {"share_below_0.02": float((a < 0.02).mean()),
            "share_below_0.05": float((a < 0.05).mean()),
            "max_abs": float(a.max()), "mean_abs": float(a.mean()),
            "sd_across_judges": float(w.std(0, ddof=1).mean()),
            "sd_across_groups": float(w.std(1, ddof=1).mean())}


def _sparse_truth(rng: np.random.Generator, judges: list[str], G: int, K: int,
                  levels: Sequence[str], shape: SparseShape
                  ) -> tuple[dict[str, Any], list[str]]:
    """Truth variables of the sparse regime (recipe in the module docstring) and the
    cluster names in order of first appearance."""
    J = len(judges)
    cl = size_clusters(judges)
    names = list(dict.fromkeys(cl))
    ci = np.array([names.index(c) for c in cl], dtype=np.int64)

    def t(*size: int) -> np.ndarray:
        return rng.standard_t(shape.df, size=size)

    slab = np.zeros(K, dtype=bool)
    slab[rng.choice(K, size=int(round(shape.slab_share * K)), replace=False)] = True
    mu = np.where(slab, shape.mu_scale * t(K), shape.spike_scale * rng.normal(size=K))
    d = np.where(slab, shape.dev_scale * np.exp(shape.dev_spread * rng.normal(size=K)),
                 shape.spike_dev_scale)
    on = {lv: float(lv in levels) for lv in ("judge", "group", "cell")}
    cluster_off = on["judge"] * shape.cluster * d * t(len(names), K)
    own = on["judge"] * shape.judge * d * t(J, K)
    group_off = on["group"] * shape.group * d * t(G, K)
    cell_off = on["cell"] * shape.cell * d * t(J, G, K)
    judge_off = cluster_off[ci] + own
    return {
        "mu": (("property",), mu), "judge_offset": (("judge", "property"), judge_off),
        "group_offset": (("group", "property"), group_off),
        "cell_offset": (("judge", "group", "property"), cell_off),
        "cluster_offset": (("cluster", "property"), cluster_off),
        "judge_cluster": (("judge",), np.array(cl, dtype=str)),
        "slab": (("property",), slab.astype(np.int8)),
        "dev_scale": (("property",), d),
        "w": (("judge", "group", "property"),
              mu + judge_off[:, None, :] + group_off[None, :, :] + cell_off),
    }, names


def true_similarity(truth: xr.Dataset) -> xr.Dataset:
    """The true similarity of every pair of judges, computed by ``bayesdissect.queries.similarity``
    on the true weights as on one posterior draw: ``similarity`` (the paper's: per-group
    Pearson correlation of the cell weights, averaged over groups) and
    ``similarity_deviation`` (of judge_offset + cell_offset), dims (judge, judge2).
    ``simulate`` adds ``similarity_agreement`` and ``similarity_kappa`` beside them: the
    judges' true predicted agreement on the data's pairs (from the true weights, bias and
    pair effects; ``bayesdissect.queries.similarity.true_agreement``)."""
    from bayesdissect.queries.similarity import similarity_matrix
    from bayesdissect.queries.weights import TERMS

    terms = {t: truth[t] for t in TERMS if t in truth and t != "w_cell"}
    if not terms:
        terms = {"w_cell": truth["w"]}
    post = xr.Dataset(terms).expand_dims(chain=1, draw=1)
    out = {}
    for kind, name in (("paper", "similarity"), ("deviation", "similarity_deviation")):
        out[name] = similarity_matrix(post, kind, statistic="of_means").rename(name)
    return xr.Dataset(out)


def _with_similarity(truth: xr.Dataset) -> xr.Dataset:
    """The truth with ``true_similarity`` added where it lacks it (files written before
    issue 14, such as the bundled demo's)."""
    if "similarity" in truth or truth.sizes.get("judge", 0) < 1:
        return truth
    return truth.merge(true_similarity(truth))


# ---------------------------------------------------------------------------
# The simulator
# ---------------------------------------------------------------------------

def simulate(out: str | Path | None = None, *, n_pairs: int | None = None,
             judges: int | Sequence[str] | None = None,
             groups: int | Sequence[str] | Mapping[str, int] | None = None,
             cases: Sequence[str] | Mapping[str, float] | None = None, seed: int = 0,
             weights: Any = None, levels: Sequence[str] = LEVELS, mu_scale: float = 1.0,
             s_judge: float = 0.5, s_group: float = 0.5, s_cell: float = 0.25,
             bias_scale: float = 0.5, drop_rate: float = 0.04, label_rate: float = 1.0,
             messy: bool | None = None, title: str | None = None, regime: str = "prior",
             pair_sd: float = 0.0, sparse: SparseShape | None = None) -> Simulation:
    """Simulate GAIR-schema pairs with labels from known weights; write them if ``out``.

    * ``judges``: None = the paper's 33, an int N (paper keys first, then ``judge-N``),
      or names. ``groups``: None = the 11 scenarios (paper proportions), an int, names, or
      {name: size}. ``n_pairs``: total (default 5,240). ``cases``: the GAIR cases to use
      (default all five at the paper's per-scenario rates), or {case: rate}.
    * ``regime="prior"``: weights drawn from model.md §3 (``mu ~ N(0, mu_scale)``,
      ``sigma_* ~ HalfNormal(s_*)``); ``regime="sparse"``: the paper-shaped heavy-tailed
      recipe of the module docstring with settings ``sparse`` (default ``SparseShape()``; the
      ``mu_scale`` and ``s_*`` scales are the prior regime's and unused). In both,
      ``bias ~ N(0, bias_scale)`` and ``levels`` switches judge (with its clusters) / group /
      cell / bias off. Or pass ``weights``: an array broadcastable to (judge, group,
      property) (or a DataArray with those dims), used as is (prior regime only).
    * ``pair_sd``: sd of a latent per-pair quality added to every judge's logit on that pair
      (default 0: none); the truth keeps it as ``pair_effect``.
    * ``drop_rate``: share of pairs whose accuracy check is "not applicable" (dropped by
      load). ``label_rate``: share of (pair, judge) labels present (rest null).
    * ``messy``: encode raw values in the alternative spellings the loader must accept
      ("2", 2.0, "N/A", "A"/"B", missing keys); default True for JSON lines, False for parquet.
    * ``out``: ``.parquet`` or ``.jsonl`` path; the truth goes to ``<out>.truth.nc``, with
      the regime and its settings in its attributes and the true judge similarities
      (``true_similarity``; agreement and kappa on the data's pairs: ``true_agreement``).
    """
    fmt = None
    if out is not None:
        suffix = Path(out).suffix.lower()
        fmt = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
               ".ndjson": "jsonl"}.get(suffix)
        if fmt is None:
            raise BayesDissectError(f"{out}: unknown output type {suffix or '(none)'!r}; "
                                    "expected .parquet or .jsonl")
    if messy is None:
        messy = fmt == "jsonl"
    bad_levels = set(levels) - set(LEVELS)
    if bad_levels:
        raise BayesDissectError(f"levels: unknown {sorted(bad_levels)}; expected some of {LEVELS}")
    for name, val in (("drop_rate", drop_rate), ("label_rate", label_rate)):
        if not 0.0 <= val <= 1.0:
            raise BayesDissectError(f"{name}={val}: expected a value in [0, 1]")
    if regime not in REGIMES:
        raise BayesDissectError(f"regime={regime!r}: unknown; expected one of "
                                f"{', '.join(REGIMES)}")
    if regime != "prior" and weights is not None:
        raise BayesDissectError(f"regime={regime!r} draws its own weights; pass weights only "
                                "with the prior regime")
    try:
        pair_sd = float(pair_sd)
    except (TypeError, ValueError):
        pair_sd = math.nan
    if not (math.isfinite(pair_sd) and pair_sd >= 0):
        raise BayesDissectError(f"pair_sd={pair_sd}: expected a finite sd >= 0 (0 = no pair "
                                "effects)")
    shape = sparse if sparse is not None else SparseShape()
    shape.check()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BayesDissectError(f"seed={seed!r}: expected a whole number >= 0")

    rng = np.random.default_rng(seed)
    judge_names = _judge_list(judges)
    sizes = _group_sizes(groups, n_pairs)
    rates = _case_rates(cases)
    n = sum(sizes.values())
    K, J = len(PROPERTIES), len(judge_names)

    # --- groups (shuffled order) and exact-count case membership per group -------------
    group = np.repeat(np.array(list(sizes), dtype=object), list(sizes.values()))
    group = group[rng.permutation(n)]
    case_flags = {c: np.zeros(n, dtype=bool) for c in CASES}
    paper_n = sum(SCENARIO_SIZES.values())
    for g, size in sizes.items():
        members = np.flatnonzero(group == g)
        for ci, c in enumerate(CASES):
            if c not in rates:
                continue
            if rates[c] is not None:
                rate = rates[c]
            elif g in PAPER_CROSSTAB:
                rate = PAPER_CROSSTAB[g][ci] / SCENARIO_SIZES[g]
            else:
                rate = CASE_SIZES[c] / paper_n
            k = int(round(rate * size))
            case_flags[c][rng.choice(members, size=k, replace=False)] = True

    # --- clean raw annotations ---------------------------------------------------------
    ratings = np.empty((2, n, len(BASIC_KEYS)), dtype=np.int64)
    for k, key in enumerate(BASIC_KEYS):
        p = _RATING_P[key]
        r1 = rng.choice(4, size=n, p=p)
        r2 = np.where(rng.random(n) < _SAME_RATING, r1, rng.choice(4, size=n, p=p))
        ratings[0, :, k], ratings[1, :, k] = r1, r2
    err_counts = rng.poisson(_ERROR_RATES, size=(2, n, 3))
    drop = rng.random(n) < drop_rate
    drop_side = rng.integers(0, 3, size=n)  # 0: response 1, 1: response 2, 2: both
    tiny = rng.random((2, n)) < 0.04
    log_w1 = rng.normal(np.log(150), 0.9, size=n)   # response lengths are correlated
    log_w = np.stack([log_w1, log_w1 + rng.normal(0.0, 0.6, size=n)])
    words = np.where(tiny, rng.integers(0, 15, size=(2, n)), np.round(np.exp(log_w))).astype(int)
    n_items = {c: rng.integers(1, 4, size=n) for c in ("w_constraints", "w_stances",
                                                       "w_mistakes")}

    # --- intended features (the simulator's own rules) -------------------------------
    x = np.zeros((n, K), dtype=np.float64)
    idx = {key: PROPERTY_NAMES.index(next(p.name for p in PROPERTIES if p.key == key))
           for key in BASIC_KEYS}
    for k, key in enumerate(BASIC_KEYS):
        a, b = ratings[0, :, k], ratings[1, :, k]
        if key == "repetitive":
            x[:, idx[key]] = np.sign(b - a)
        elif key == "relevance without considering inaccuracy":
            x[:, idx[key]] = (a > 0).astype(int) - (b > 0).astype(int)
        else:
            x[:, idx[key]] = np.sign(a - b)
    x[:, 20:23] = np.sign(err_counts[1] - err_counts[0])
    x[:, 28] = [_ref_length(int(a), int(b)) for a, b in zip(words[0], words[1], strict=True)]

    qs: list[list[dict[str, Any] | None]] = [[None] * n, [None] * n]
    for i in range(n):
        if not any(case_flags[c][i] for c in CASES):
            continue
        s1: dict[str, Any] = dict.fromkeys(_QS_KEYS)
        s2: dict[str, Any] = dict.fromkeys(_QS_KEYS)
        for ci, c in enumerate(CASES):
            if not case_flags[c][i]:
                continue
            key = _QS_KEYS[ci]
            if c in ("intent_unclear", "express_feeling"):
                v1, v2 = (int(v) for v in rng.choice(4, size=2, p=(0.15, 0.25, 0.35, 0.25)))
                s1[key], s2[key] = v1, v2
                x[i, 23 + ci] = np.sign(v1 - v2)
            else:
                m = int(n_items[c][i])
                if c == "w_constraints":
                    v1s, v2s = rng.integers(0, 4, size=(2, m))
                    s1[key], s2[key] = [int(v) for v in v1s], [int(v) for v in v2s]
                elif c == "w_stances":
                    v1s, v2s = rng.integers(-2, 3, size=(2, m))
                    s1[key] = [_STANCES[v + 2] for v in v1s]
                    s2[key] = [_STANCES[v + 2] for v in v2s]
                else:
                    v1s, v2s = rng.integers(0, 4, size=(2, m))
                    s1[key] = [_MISTAKES[v] for v in v1s]
                    s2[key] = [_MISTAKES[v] for v in v2s]
                x[i, 23 + ci] = np.sign(int(v1s.sum()) - int(v2s.sum()))
        qs[0][i], qs[1][i] = s1, s2

    # --- weights and labels ----------------------------------------------------------
    group_names = sorted(sizes)
    G = len(group_names)
    truth_vars: dict[str, Any] = {}
    clusters: list[str] = []
    if regime == "sparse":
        truth_vars, clusters = _sparse_truth(rng, judge_names, G, K, levels, shape)
        w = truth_vars["w"][1]
    elif weights is None:
        mu = rng.normal(0.0, mu_scale, size=K)
        sig = {lv: np.abs(rng.normal(0.0, s, size=K)) if lv in levels else np.zeros(K)
               for lv, s in (("judge", s_judge), ("group", s_group), ("cell", s_cell))}
        judge_off = sig["judge"] * rng.normal(size=(J, K))
        group_off = sig["group"] * rng.normal(size=(G, K))
        cell_off = sig["cell"] * rng.normal(size=(J, G, K))
        w = mu + judge_off[:, None, :] + group_off[None, :, :] + cell_off
        truth_vars.update(
            mu=(("property",), mu), judge_offset=(("judge", "property"), judge_off),
            group_offset=(("group", "property"), group_off),
            cell_offset=(("judge", "group", "property"), cell_off),
            sigma_judge=(("property",), sig["judge"]),
            sigma_group=(("property",), sig["group"]),
            sigma_cell=(("property",), sig["cell"]))
    else:
        if isinstance(weights, xr.DataArray):
            weights = weights.transpose(*[d for d in ("judge", "group", "property")
                                          if d in weights.dims]).values
        try:
            w = np.broadcast_to(np.asarray(weights, dtype=np.float64), (J, G, K)).copy()
        except ValueError:
            raise BayesDissectError(f"weights: shape {np.shape(weights)} does not broadcast to "
                                    f"(judge, group, property) = ({J}, {G}, {K})") from None
    bias = rng.normal(0.0, bias_scale, size=J) if "bias" in levels else np.zeros(J)
    truth_vars["w"] = (("judge", "group", "property"), w)
    truth_vars["bias"] = (("judge",), bias)

    gidx = np.searchsorted(np.array(group_names, dtype=object), group)
    logits = bias[None, :] + np.einsum("ik,jik->ij", x, w[:, gidx, :])
    if pair_sd > 0:   # own stream: the same seed keeps its features and label noise
        u = pair_sd * np.random.default_rng([int(seed), 14]).standard_normal(n)
        logits += u[:, None]
        truth_vars["pair_effect"] = (("pair",), u)
    y = (rng.random((n, J)) < 1.0 / (1.0 + np.exp(-logits))).astype(np.float64)
    y[rng.random((n, J)) >= label_rate] = np.nan

    # --- raw rows -----------------------------------------------------------------------
    rows = _rows(rng, n, group, case_flags, ratings, err_counts, drop, drop_side, words, qs,
                 n_items, y, judge_names, messy)
    # a query-specific key omitted from a response means "annotation lacks the key" -> 0
    if messy:
        for i in np.flatnonzero(rng.random(n) < 0.05):
            for ci, c in enumerate(CASES):
                if case_flags[c][i]:
                    rows[i]["query-specific_response_2"].pop(_QS_KEYS[ci])
                    x[i, 23 + ci] = 0.0
                    break

    sim_title = title or ("Simulated GAIR-schema data (seed "
                          f"{seed}, {n} pairs, {J} judges, {G} groups)")
    keep = np.flatnonzero(~drop)
    from bayesdissect.data.loaders import build_dataset

    source = str(out) if out is not None else "<simulated>"
    data = build_dataset(x[keep], y[keep], pair=keep, properties=PROPERTY_NAMES,
                         judges=judge_names, group=group[keep],
                         cases={c: case_flags[c][keep] for c in CASES}, source=source,
                         n_dropped=int(drop.sum()), simulated=True, title=sim_title)
    coords: dict[str, Any] = {"judge": judge_names, "group": group_names,
                              "property": list(PROPERTY_NAMES)}
    if clusters:
        coords["cluster"] = clusters
    if pair_sd > 0:
        coords["pair"] = np.arange(n, dtype=np.int64)   # = the data's pair ids (row numbers)
    truth = xr.Dataset(truth_vars, coords=coords)
    truth = truth.merge(true_similarity(truth))
    from bayesdissect.queries.similarity import true_agreement
    truth = truth.merge(true_agreement(truth, data))   # on the data's (kept) pairs
    truth.attrs = {"simulated": 1, "seed": int(seed), "mu_scale": float(mu_scale),
                   "s_judge": float(s_judge), "s_group": float(s_group),
                   "s_cell": float(s_cell), "bias_scale": float(bias_scale),
                   "levels": ",".join(levels), "weights_given": int(weights is not None),
                   "regime": regime if weights is None else "given",
                   "pair_sd": float(pair_sd),
                   "data_title": sim_title,
                   "title": f"True weights of: {sim_title}"}
    if regime == "sparse":   # the prior regime's scales played no part
        for k in ("mu_scale", "s_judge", "s_group", "s_cell"):
            del truth.attrs[k]
        truth.attrs.update({f"sparse_{k}": float(v) for k, v in asdict(shape).items()})
    sim = Simulation(rows=rows, truth=truth, data=data)
    if out is not None:
        sim.path, sim.truth_path = Path(out), truth_path_for(out)
        _write(sim, fmt or "parquet", sim_title, seed)
    return sim


def _messy_rating(rng: np.random.Generator, v: int) -> Any:
    """An alternative spelling of a 0-3 rating that parses to the same value (§5.2)."""
    u = rng.random()
    if v == 0 and u < 0.3:
        return [None, "N/A", 2.5, "3/3", "none"][int(rng.integers(0, 5))]
    if u < 0.15:
        return str(v)
    if u < 0.25:
        return float(v)
    return v


def _rows(rng: np.random.Generator, n: int, group: np.ndarray,
          case_flags: dict[str, np.ndarray], ratings: np.ndarray, err_counts: np.ndarray,
          drop: np.ndarray, drop_side: np.ndarray, words: np.ndarray,
          qs: list[list[dict[str, Any] | None]], n_items: dict[str, np.ndarray],
          y: np.ndarray, judges: list[str], messy: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    models = rng.integers(0, len(_ARENA_MODELS), size=(2, n))
    for i in range(n):
        row: dict[str, Any] = {
            "query": f"Simulated query {i} ({group[i]}).",
            "scenario_auto-j": "default" if group[i] == "Others" else
            str(group[i]).lower().replace(" ", "_"),
            "scenario_group": str(group[i]),
        }
        for side in (0, 1):
            row[f"response_{side + 1}"] = {
                "content": f"Simulated response {side + 1} to query {i}.",
                "model": _ARENA_MODELS[models[side, i]],
                "num_words": int(words[side, i]) if not messy or rng.random() > 0.1
                else float(words[side, i]),
            }
        row["gpt-4-turbo_reference"] = f"Simulated reference answer to query {i}."
        row["clear intent"] = "No" if case_flags["intent_unclear"][i] else "Yes"
        row["explicitly express feelings"] = "Yes" if case_flags["express_feeling"][i] else "No"
        for c, fname, what in (("w_constraints", "explicit constraints", "constraint"),
                               ("w_stances", "explicit subjective stances", "stance"),
                               ("w_mistakes", "explicit mistakes or biases", "mistake")):
            m = int(n_items[c][i]) if case_flags[c][i] else 0
            row[fname] = [f"simulated {what} {t + 1}" for t in range(m)]
        labels = {}
        for k, j in enumerate(judges):
            v = y[i, k]
            if math.isnan(v):
                labels[j] = None
            elif messy and rng.random() < 0.1:
                labels[j] = ("A", 1, "a")[int(rng.integers(0, 3))] if v == 1.0 else \
                    ("B", 2, "b")[int(rng.integers(0, 3))]
            else:
                labels[j] = "response_1" if v == 1.0 else "response_2"
        row["preference_labels"] = labels
        for side in (0, 1):
            basic = {}
            for k, key in enumerate(BASIC_KEYS):
                v = int(ratings[side, i, k])
                if messy:
                    basic[key] = _messy_rating(rng, v)
                else:
                    basic[key] = None if v == 0 and rng.random() < 0.05 else v
            row[f"basic_response_{side + 1}"] = basic
        for side in (0, 1):
            errs = []
            for s in range(3):
                for _ in range(int(err_counts[side, i, s])):
                    spell = _SEVERITY_SPELLINGS[s]
                    errs.append({"brief description": f"simulated error {len(errs) + 1}",
                                 "type": _ERROR_TYPES[int(rng.integers(0, 4))],
                                 "severity": spell[int(rng.integers(0, len(spell)))]})
            if rng.random() < 0.05:  # severities other than the three are ignored
                errs.append({"brief description": "simulated odd error",
                             "type": _ERROR_TYPES[0], "severity": "critical"})
            rng.shuffle(errs)
            dropped_here = drop[i] and (drop_side[i] == side or drop_side[i] == 2)
            row[f"errors_response_{side + 1}"] = {
                "accuracy check": ("not applicable", "Not Applicable", "applicable ")[
                    int(rng.integers(0, 3))] if dropped_here else "applicable",
                "errors": errs,
            }
        for side in (0, 1):
            s = qs[side][i]
            if s is not None:
                s = dict(s)
                for key, v in s.items():
                    if v is None:
                        continue
                    if isinstance(v, list):
                        s[key] = [_vary_item(rng, t, messy) for t in v]
                    elif messy:
                        s[key] = _messy_rating(rng, v)
            row[f"query-specific_response_{side + 1}"] = s
        rows.append(row)
    return rows


def _vary_item(rng: np.random.Generator, item: Any, messy: bool) -> Any:
    """Label case/space variants (lower-cased and trimmed by the loader); unknown labels
    stand in for zero-valued items (unknown labels count 0)."""
    if isinstance(item, str):
        if item in ("neutral", "neither") and rng.random() < 0.25:
            return "unclear"
        u = rng.random()
        return item.title() if u < 0.2 else (f" {item} " if u < 0.3 else item)
    return _messy_rating(rng, int(item)) if messy else item


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------

def _arrow_schema(judges: list[str]) -> Any:
    import pyarrow as pa

    resp = pa.struct([("content", pa.string()), ("model", pa.string()),
                      ("num_words", pa.int64())])
    err = pa.struct([("accuracy check", pa.string()), ("errors", pa.list_(pa.struct([
        ("brief description", pa.string()), ("type", pa.string()),
        ("severity", pa.string())])))])
    qs = pa.struct([("clarify user intent", pa.int64()), ("showing empathetic", pa.int64()),
                    ("satisfying explicit constraints", pa.list_(pa.int64())),
                    ("supporting explicit subjective stances", pa.list_(pa.string())),
                    ("correcting explicit mistakes or biases", pa.list_(pa.string()))])
    basic = pa.struct([(k, pa.int64()) for k in sorted(BASIC_KEYS)])
    return pa.schema([
        ("query", pa.string()), ("scenario_auto-j", pa.string()),
        ("scenario_group", pa.string()), ("response_1", resp), ("response_2", resp),
        ("gpt-4-turbo_reference", pa.string()), ("clear intent", pa.string()),
        ("explicitly express feelings", pa.string()),
        ("explicit constraints", pa.list_(pa.string())),
        ("explicit subjective stances", pa.list_(pa.string())),
        ("explicit mistakes or biases", pa.list_(pa.string())),
        ("preference_labels", pa.struct([(j, pa.string()) for j in judges])),
        ("basic_response_1", basic), ("basic_response_2", basic),
        ("errors_response_1", err), ("errors_response_2", err),
        ("query-specific_response_1", qs), ("query-specific_response_2", qs),
    ])


def _write(sim: Simulation, fmt: str, title: str, seed: int) -> None:
    assert sim.path is not None and sim.truth_path is not None
    meta = json.dumps({"simulated": 1, "title": title, "seed": int(seed),
                       "generator": "bayesdissect.data.simulate"})
    with atomic_path(sim.path) as tmp:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            judges = [str(j) for j in sim.data["judge"].values]
            schema = _arrow_schema(judges).with_metadata({b"bayesdissect": meta.encode()})
            table = pa.Table.from_pylist(sim.rows, schema=schema)
            pq.write_table(table, tmp, compression="zstd")
        else:
            with open(tmp, "w", encoding="utf-8") as fh:
                for row in sim.rows:
                    fh.write(json.dumps(row) + "\n")
    with atomic_path(sim.truth_path) as tmp:
        sim.truth.to_netcdf(tmp)


def make_demo(out_dir: str | Path) -> Simulation:
    """The bundled demo: paper-sized, the paper's 33 judges, fixed seed (run once)."""
    out_dir = Path(out_dir)
    sim = simulate(out_dir / "demo.parquet", seed=DEMO_SEED, title=DEMO_TITLE, **DEMO_SCALES)
    truth_file = out_dir / "demo_truth.nc"
    assert sim.truth_path is not None
    sim.truth_path.replace(truth_file)
    sim.truth_path = truth_file
    return sim
