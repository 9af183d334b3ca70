"""Judge similarity with uncertainty (dataset.md §7.2, model.md §5).

The paper's similarity of judges a and b: in each group, the Pearson correlation of their
two K-dim weight vectors; overall, the mean of those correlations over the groups. We
compute it draw by draw, so every pair gets a posterior mean and interval, and also the
same similarity of the posterior-mean weights (``of_means``, what the paper reported).
The two differ: the correlation of means is not the mean of correlations (posterior noise
shrinks per-draw correlations towards 0, while averaging draws first removes that noise).

``kind="paper"`` uses the cell weights w[j, g, :] (inflated by what all judges share:
mu and the group terms make every pair look alike); ``kind="deviation"`` uses each
judge's deviation from the shared weights, judge_offset + cell_offset.

Deviation similarity is corrected for centring. Zero-sum offsets (the default spec), and
the paper spec's w_cell minus its judge mean, are deviations from the *fitted judges'
average*: they sum to zero over the J judges, so two judges whose deviations are
independent correlate at -1/(J-1) on average, not 0 (-0.5 at 3 judges, -0.14 at 8), and
twins stay at 1. Per draw (and for ``of_means``) we report the chance-corrected value

    s = ((J - 1) r + 1) / J,   i.e. r minus its baseline -1/(J-1), rescaled so 1 stays 1,

which is 0 in expectation for independent deviations, 1 for identical ones, and to first
order the correlation of the deviations from the population mean (centring J exchangeable
vectors of correlation matrix I + D gives r = (D_ab - 1/J) J/(J-1) + O(D/J)). It is one
affine map per fit, so intervals map onto intervals and clusters (average linkage on
1 - s, a rescaling) and their silhouettes do not change. With two judges the centred
deviations are exact negatives and s = 0: their deviations carry no similarity. Chosen
over the alternative of adding back the judges' unidentified mean deviation, drawn from
its prior (Normal(0, sigma^2 / J)), which is also unbiased at 0 but needs a learned sigma
(the paper spec has none) and a seed, and adds noise. Offsets that do not sum to zero over
judges (iid offsets from mu, such as a simulated truth's) are left as they are
(``weights.judge_centred``).

Core: ``similarity_draws(w)`` on a numpy array (S, J, G, K), chunked over draws in
float32, so 528 pairs x thousands of draws take seconds and memory stays bounded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesdissect.errors import BayesDissectError
from bayesdissect.model.fitted import as_posterior
from bayesdissect.queries.weights import (
    blas_single_thread,
    cell_weights,
    deviation_weights,
    draw_pieces,
    flat_draws,
    judge_centred,
    posterior_mean,
    select_labels,
)

SIMILARITY_COLUMNS = ["judge_a", "judge_b", "mean", "lower", "upper", "of_means"]
KINDS = ("paper", "deviation")


def _standardise(w: np.ndarray) -> np.ndarray:
    """Centre and scale along the last axis so a dot product / K is a Pearson correlation.
    A constant vector (zero variance) gives NaN, as Pearson's r is undefined for it."""
    w = w - w.mean(-1, keepdims=True)
    sd = np.sqrt((w * w).mean(-1, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        return w / sd


def similarity_draws(w: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Per-draw similarity matrices (S, J, J) from weights (S, J, G, K): Pearson
    correlation over K within each group, averaged over the G groups. float32."""
    if w.ndim != 4:
        raise ValueError(f"expected weights (samples, judge, group, property), got {w.shape}")
    s, j, g, k = w.shape
    out = np.empty((s, j, j), dtype=np.float32)
    for start in range(0, s, chunk):
        z = _standardise(np.asarray(w[start:start + chunk], dtype=np.float32))
        z = np.ascontiguousarray(z.transpose(0, 2, 1, 3))  # (c, G, J, K)
        zt = np.ascontiguousarray(z.transpose(0, 1, 3, 2))  # contiguous: BLAS per batch
        with blas_single_thread():
            corr = np.matmul(z, zt) / np.float32(k)  # (c, G, J, J)
        out[start:start + chunk] = corr.mean(1)
    idx = np.arange(j)
    out[:, idx, idx] = np.where(np.isnan(out[:, idx, idx]), np.nan, 1.0)
    return out


def centring_correction(s: np.ndarray, n_judges: int) -> np.ndarray:
    """The chance-corrected similarity ((J - 1) s + 1) / J of a correlation ``s`` of
    deviations centred over ``n_judges`` judges (module note): baseline -1/(J-1) -> 0,
    1 -> 1. NaN stays NaN."""
    j = int(n_judges)
    return (s * (j - 1) + 1) / j if j > 0 else s


def _check_kind(post: xr.Dataset, kind: str) -> None:
    if kind not in KINDS:
        raise BayesDissectError(f"unknown similarity kind {kind!r}; expected one of "
                                f"{', '.join(KINDS)}")
    if not any(t in post for t in ("judge_offset", "cell_offset", "w_cell")):
        raise BayesDissectError("this fit has no judge-level terms (a pooled model): all judges "
                                "share one weight vector, so similarity is undefined")


def _weights(post: xr.Dataset, kind: str, group: str | None,
             centred: bool | None = None) -> xr.DataArray:
    _check_kind(post, kind)
    w = cell_weights(post) if kind == "paper" else deviation_weights(post, centred)
    if group is not None:
        select_labels(w["group"], [group], "group")
        w = w.sel(group=[group])
    return w


def similarity_matrices(fit: Any, kind: str = "paper", group: str | None = None,
                        chunk: int = 256) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(per-draw similarity (S, J, J) float32, similarity of posterior means (J, J),
    judge labels). Weights are built chunk by chunk of draws. Used by the table below
    and by clustering. ``kind="deviation"`` of a fit whose deviations are centred over
    judges is corrected for the centring (module note; ``centring_correction``)."""
    post = as_posterior(fit)
    _check_kind(post, kind)
    centred = kind == "deviation" and judge_centred(post)
    wmean = _weights(posterior_mean(post), kind, group, centred)
    judges = [str(v) for v in wmean["judge"].values]
    s = post.sizes["chain"] * post.sizes["draw"]
    out = np.empty((s, len(judges), len(judges)), dtype=np.float32)
    pos = 0
    for piece in draw_pieces(post, chunk):
        arr = flat_draws(_weights(piece, kind, group, centred)).astype(np.float32)
        out[pos:pos + arr.shape[0]] = similarity_draws(arr, chunk)
        pos += arr.shape[0]
    of_means = similarity_draws(flat_draws(wmean), 1)[0].astype(float)
    if centred:
        out = centring_correction(out, len(judges)).astype(np.float32, copy=False)
        of_means = centring_correction(of_means, len(judges))
    return out, of_means, judges


def pair_table(draws: np.ndarray, of_means: np.ndarray, judges: list[str],
               prob: float = 0.9) -> pd.DataFrame:
    """One row per unordered pair a < b (dataset order): posterior mean, equal-tailed
    interval at ``prob`` and the similarity of posterior means."""
    if not 0.0 < prob < 1.0:
        raise BayesDissectError(f"--prob must lie strictly between 0 and 1, got {prob}")
    ia, ib = np.triu_indices(len(judges), k=1)
    vals = draws[:, ia, ib]  # (S, P)
    a = (1.0 - prob) / 2.0
    lo, hi = np.quantile(vals, [a, 1.0 - a], axis=0)
    jl = np.asarray(judges, dtype=object)
    return pd.DataFrame({
        "judge_a": jl[ia], "judge_b": jl[ib], "mean": vals.mean(0, dtype=np.float64),
        "lower": lo.astype(float), "upper": hi.astype(float), "of_means": of_means[ia, ib],
    }, columns=SIMILARITY_COLUMNS)


def similarity(fit: Any, kind: str = "paper", group: str | None = None,
               prob: float = 0.9, chunk: int = 256) -> pd.DataFrame:
    """Similarity of every pair of judges with columns ``SIMILARITY_COLUMNS``: posterior
    mean and equal-tailed interval of the per-draw similarity, and ``of_means`` (the paper's
    number). ``kind``: "paper" (cell weights) or "deviation" (judge_offset + cell_offset,
    corrected for centring over judges where the fit's deviations sum to zero: module
    note). ``group``: one group instead of the average over all groups."""
    draws, of_means, judges = similarity_matrices(fit, kind, group, chunk)
    return pair_table(draws, of_means, judges, prob)


def similarity_matrix(fit: Any, kind: str = "paper", group: str | None = None,
                      statistic: str = "mean") -> xr.DataArray:
    """Square (judge, judge2) matrix of the posterior mean similarity (``statistic="mean"``)
    or of the similarity of posterior means (``"of_means"``), for heat maps."""
    draws, of_means, judges = similarity_matrices(fit, kind, group)
    if statistic not in ("mean", "of_means"):
        raise BayesDissectError(f"unknown statistic {statistic!r}; expected mean or of_means")
    mat = draws.mean(0, dtype=np.float64) if statistic == "mean" else of_means
    return xr.DataArray(mat, dims=("judge", "judge2"),
                        coords={"judge": judges, "judge2": judges}, name=f"similarity_{kind}")
