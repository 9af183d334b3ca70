"""Property effects with credible intervals, and judge-vs-judge contrasts.

Every number is a summary of posterior draws: mean, sd, an equal-tailed interval at
``prob``, P(w > 0), and the paper's display scale 100*sigmoid(w) summarised over the same
draws. pref_mean is closer to 50 than the paper's number, 100*sigmoid of the
posterior-mean weight, which lies farther from 50: sigmoid is concave for w > 0 and convex
for w < 0, so by Jensen's inequality averaging sigmoid(w) over a posterior on one side of
0 pulls it towards 1/2, and since sigmoid(w) - 1/2 is odd the same holds for any posterior
symmetric about its mean (a weight's usual shape). Only a skewed posterior straddling 0
can reverse it. The interval is the same either way, because sigmoid is monotone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesdissect.errors import BayesDissectError
from bayesdissect.model.fitted import as_posterior
from bayesdissect.queries.weights import (
    check_level,
    flat_draws,
    level_weights,
    select_labels,
)

EFFECT_COLUMNS = ["level", "judge", "group", "property", "mean", "sd", "lower", "upper",
                  "prob_positive", "pref_mean", "pref_lower", "pref_upper"]
CONTRAST_COLUMNS = ["judge_a", "judge_b", "group", "property", "mean", "sd", "lower", "upper",
                    "prob_a_greater", "credible"]


def _check_prob(prob: float) -> float:
    prob = float(prob)
    if not 0.0 < prob < 1.0:
        raise BayesDissectError(f"--prob must lie strictly between 0 and 1, got {prob}")
    return prob


def summarise_draws(draws: np.ndarray, prob: float = 0.9) -> dict[str, np.ndarray]:
    """Summaries over axis 0 (samples) of an array (S, ...): mean, sd, lower, upper,
    prob_positive, and pref_* on the 100*sigmoid scale."""
    prob = _check_prob(prob)
    a = (1.0 - prob) / 2.0
    lo, hi = np.quantile(draws, [a, 1.0 - a], axis=0)
    pref = 100.0 / (1.0 + np.exp(-draws))
    return {
        "mean": draws.mean(0), "sd": draws.std(0, ddof=1) if draws.shape[0] > 1 else
        np.zeros(draws.shape[1:]), "lower": lo, "upper": hi,
        "prob_positive": (draws > 0).mean(0), "pref_mean": pref.mean(0),
        "pref_lower": 100.0 / (1.0 + np.exp(-lo)), "pref_upper": 100.0 / (1.0 + np.exp(-hi)),
    }


def _table(w: xr.DataArray, level: str, prob: float) -> pd.DataFrame:
    stats = summarise_draws(flat_draws(w), prob)
    index_dims = [d for d in ("judge", "group", "property") if d in w.dims]
    grids = np.meshgrid(*[w[d].values.astype(str) for d in index_dims], indexing="ij")
    n = grids[0].size
    frame: dict[str, Any] = {"level": np.full(n, level, dtype=object)}
    for d in ("judge", "group", "property"):
        frame[d] = grids[index_dims.index(d)].ravel() if d in index_dims else np.full(n, "")
    for key, val in stats.items():
        frame[key] = np.asarray(val, dtype=float).ravel()
    return pd.DataFrame(frame, columns=EFFECT_COLUMNS)


def effects(fit: Any, level: str = "judge", judges: list[str] | None = None,
            groups: list[str] | None = None, prob: float = 0.9,
            population: bool = False, seed: int | None = 0) -> pd.DataFrame:
    """Property effects at ``level`` (global, judge, group, cell) as a tidy table with
    columns ``EFFECT_COLUMNS``; ``judges`` / ``groups`` filter the rows (an unknown name is a
    BayesDissectError); judge / group are empty strings where the level has none.
    judge / group / global are the cell weights averaged over the fitted groups / judges
    (the paper's averages). ``population=True`` answers for one new judge instead (judge
    label ``weights.NEW_JUDGE``): its predictive weights, mu + a new judge offset (+ the
    group and new cell terms at the group and cell levels) drawn per posterior draw from
    the fitted prior with ``seed`` (see ``weights.new_judge_weights``). Judge-varying
    levels are computed one judge at a time (memory: draws x groups x K)."""
    post = as_posterior(fit)
    check_level(post, level)
    _check_prob(prob)
    by_judge = level in ("judge", "cell")
    by_group = level in ("group", "cell")
    if judges and population:
        raise BayesDissectError("--judge does not apply with --population: it describes one "
                                "new judge, not the fitted ones")
    if judges and not by_judge:
        raise BayesDissectError(f"--judge does not apply at level {level!r} (it has no judges); "
                                "use --level judge or cell")
    if groups and not by_group:
        raise BayesDissectError(f"--group does not apply at level {level!r} (it has no groups); "
                                "use --level group or cell")
    gsel = select_labels(post["group"], groups, "group") if by_group else None
    if population:
        w = level_weights(post, level, True, spec=getattr(fit, "spec", None), seed=seed)
        return _table(w.sel(group=gsel) if gsel is not None else w, level, prob)
    if not by_judge:
        w = level_weights(post, level)
        return _table(w.sel(group=gsel) if gsel is not None else w, level, prob)
    parts = []
    for j in select_labels(post["judge"], judges, "judge"):
        w = level_weights(post.sel(judge=[j]), level)
        parts.append(_table(w.sel(group=gsel) if gsel is not None else w, level, prob))
    return pd.concat(parts, ignore_index=True)


def all_effects(fit: Any, prob: float = 0.9, population: bool = False,
                seed: int | None = 0) -> pd.DataFrame:
    """Effects at every level the fit has, stacked (global, judge, group, cell); with
    ``population=True`` those of one new judge (``effects``), the same draws at every
    level for a given ``seed``."""
    from bayesdissect.queries.weights import available_levels
    return pd.concat([effects(fit, lv, prob=prob, population=population, seed=seed)
                      for lv in available_levels(as_posterior(fit))], ignore_index=True)


def contrast(fit: Any, judge_a: str, judge_b: str, group: str | None = None,
             prob: float = 0.9) -> pd.DataFrame:
    """Posterior of w_A - w_B per property: judge level (averaged over the fitted groups)
    or, with ``group``, the cell weights in that group. Columns ``CONTRAST_COLUMNS``;
    ``prob_a_greater`` = P(w_A > w_B); ``credible`` = the interval excludes 0. Sorted so
    the biggest credible differences come first: by the interval's distance from zero
    (the bound nearest zero when it excludes zero, else 0), then by |mean|."""
    post = as_posterior(fit)
    level = "cell" if group is not None else "judge"
    check_level(post, level)
    w = level_weights(post, level)
    for j in (judge_a, judge_b):
        select_labels(w["judge"], [j], "judge")
    if judge_a == judge_b:
        raise BayesDissectError(f"compare needs two different judges, got {judge_a!r} twice")
    if group is not None:
        select_labels(w["group"], [group], "group")
        w = w.sel(group=group)
    diff = flat_draws(w.sel(judge=judge_a) - w.sel(judge=judge_b))
    stats = summarise_draws(diff, prob)
    lo, hi = stats["lower"], stats["upper"]
    credible = (lo > 0) | (hi < 0)
    df = pd.DataFrame({
        "judge_a": judge_a, "judge_b": judge_b, "group": group or "",
        "property": w["property"].values.astype(str), "mean": stats["mean"], "sd": stats["sd"],
        "lower": lo, "upper": hi, "prob_a_greater": stats["prob_positive"],
        "credible": credible,
    }, columns=CONTRAST_COLUMNS)
    distance = np.where(lo > 0, lo, np.where(hi < 0, -hi, 0.0))
    order = np.lexsort((-np.abs(stats["mean"]), -distance))
    return df.iloc[order].reset_index(drop=True)
