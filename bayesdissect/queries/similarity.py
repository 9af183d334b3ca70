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

Predicted agreement (issue 14): ``kind="agreement"`` and ``kind="kappa"``.

Per draw, each judge's probability of choosing response 1 on every pair of the data,
p[j, i] = sigmoid(bias[j] + u[i] + x[i] . w[j, g(i)]) (u the pair effects of a fit with a
pair level, else 0), and for two judges a, b

    agreement = mean_i [p_a p_b + (1 - p_a)(1 - p_b)]
              = chance_ab + 2 cov_i(p_a, p_b),  chance_ab = q_a q_b + (1 - q_a)(1 - q_b)
    kappa     = (agreement - chance_ab) / (1 - chance_ab) = 2 cov_i(p_a, p_b) / (1 - chance_ab)

with q_j = mean_i p[j, i] each judge's own predicted rate of "response 1". ``agreement``
is the probability that the two judges, labelling these pairs independently given the
model, choose the same response (comparable with ``ppc``'s observed agreement rates);
``kappa`` is Cohen's kappa of that expected agreement against the agreement two judges
with the same rates would reach by chance (0: no more than chance; 1 at most; two
judges predicted to prefer opposite responses go towards -1). Both are in range by
construction: agreement in [0, 1], kappa in [-1, 1] (|2 cov| <= 2 sqrt(q_a (1-q_a) q_b
(1-q_b)) <= 1 - chance_ab). On the diagonal (``similarity_matrix``): a judge's agreement
with an independent rerun of itself, mean_i [p^2 + (1-p)^2], and its kappa var_i(p) /
(q (1-q)); a twin (the same weights and bias) reaches exactly these, the most any judge
can agree with it (Cauchy-Schwarz), which is why neither is 1 for twins unless the
labels are deterministic.

Why these are beside the paper's number: the paper's correlation of weight vectors
divides by each judge's spread of weights over the 29 properties, and in every posterior
draw the poorly identified weights (rare properties, the case-only ones, weights the data
hardly constrain) add noise to that spread but not to the covariance, so per-draw
correlations are biased towards 0. Under a prior that fits the truth that is right (the
truth has that spread too: 90% intervals cover 0.90 on prior-drawn data); where the true
weights are sparse and heavy-tailed it is not, and the intervals miss (0.19 coverage at 8
judges, 0.38 at full size, issue 14), while the correlation of posterior means
(``of_means``) sits above the truth. No estimator of the same correlation fixes this
without a prior of the right shape. Agreement and kappa are bilinear in the two judges'
predictions (covariances, no per-judge normalisation by a noisy spread), and predictions
average the weights over the pairs where they matter, so a weight the data cannot see
barely moves them: 90% coverage 0.92 / 0.82 / 0.88 (agreement) and 0.93 / 0.80 / 0.91
(kappa) on prior / sparse / sparse + pair-effect truth, r 0.98 (agreement) with the truth
(benchmarks/similarity_coverage.py, RESULTS.md). What remains on sparse truth is the
prior's shape again (some judges' predictions a little too confident), much weakened.
The paper kind answers "do two judges weigh the properties alike?" (every property
counts the same, however rarely it applies); agreement and kappa answer "do two judges
choose alike on these pairs?" (properties count by how often and how strongly they
decide a pair). ``of_means`` of these kinds is the same quantity of the posterior-mean
weights, bias and pair effects (a plug-in value, for comparison).

Cost: logits come a piece of draws at a time through ``predictive._draw_logits`` (about
64 MB of (draws, judges, pairs) float32 at once), so memory is bounded whatever the number
of draws; per draw one (J x N) @ (N x J) product. ``true_agreement`` computes the same
from a simulated truth (weights, bias, pair effects) on a dataset's pairs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesdissect.errors import BayesDissectError
from bayesdissect.model.fitted import as_posterior
from bayesdissect.queries.weights import (
    TERMS,
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
KINDS = ("paper", "deviation", "agreement", "kappa")
#: Kinds computed from predicted probabilities on the data's pairs (module note).
PREDICTIVE_KINDS = ("agreement", "kappa")
#: The kind of ``similarity()``, ``clusters()``, their commands and the report by default:
#: ``agreement``, the one whose 90% intervals covered simulated truth in every regime measured
#: at full size (0.93-0.96, r >= 0.99; the paper kind 0.77 on sparse truth: issue 14,
#: benchmarks/RESULTS.md). ``kind="paper"`` gives the paper's number as ``of_means``.
DEFAULT_KIND = "agreement"


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


# ------------------------------------------------------------------ predicted agreement
def agreement_from_sums(n: int, s1: np.ndarray, s2: np.ndarray, kind: str) -> np.ndarray:
    """Agreement or kappa matrices (d, J, J) from the sums over n pairs of the shifted
    probabilities h = p - 1/2: ``s1`` (d, J) = sum_i h and ``s2`` (d, J, J) = sum_i h h'
    (module note). The shift keeps the covariance free of cancellation in float32."""
    m = s1 / n  # q - 1/2
    cov = s2 / n - m[:, :, None] * m[:, None, :]
    q = m + 0.5
    qa, qb = q[:, :, None], q[:, None, :]
    chance = qa * qb + (1.0 - qa) * (1.0 - qb)
    if kind == "agreement":
        return np.clip(chance + 2.0 * cov, 0.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip(2.0 * cov / (1.0 - chance), -1.0, 1.0)


def agreement_draws(logits: np.ndarray, kind: str = "agreement") -> np.ndarray:
    """Per-draw agreement / kappa matrices (d, J, J) float64 from logits (d, J, N) of the
    same N pairs (module note)."""
    if logits.ndim != 3:
        raise ValueError(f"expected logits (draws, judge, pair), got {logits.shape}")
    h = (0.5 * np.tanh(0.5 * np.asarray(logits, dtype=np.float32))).astype(np.float32)
    with blas_single_thread():
        s2 = np.matmul(h, np.ascontiguousarray(h.transpose(0, 2, 1))).astype(np.float64)
    s1 = h.sum(-1, dtype=np.float64)
    return agreement_from_sums(logits.shape[-1], s1, s2, kind)


def _fit_data(fit: Any, data: xr.Dataset | None) -> xr.Dataset:
    data = data if data is not None else getattr(fit, "data", None)
    if data is None:
        raise BayesDissectError("similarity kinds agreement (the default) and kappa predict "
                                "the judges' choices on the fitted pairs, which this posterior "
                                "does not carry: pass the Fit, data=, or kind='paper'")
    return data


def _mean_draw(post: xr.Dataset) -> xr.Dataset:
    """The posterior mean of the weight terms, bias and pair effects as one draw."""
    from bayesdissect.queries.predictive import PAIR_TERM

    out = {}
    for name in (*TERMS, "bias", PAIR_TERM):
        if name in post:
            da = post[name].transpose("chain", "draw", ...)
            out[name] = (da.dims, da.values.mean(axis=(0, 1), keepdims=True))
    keep = {d: post[d] for d in post.coords if d not in ("chain", "draw")}
    return xr.Dataset(out, coords=keep)


def _agreement_matrices(post: xr.Dataset, data: xr.Dataset, kind: str, group: str | None,
                        chunk: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from bayesdissect.queries.predictive import _chunk_size, _draw_logits, _problem

    pb = _problem(None, data)
    if group is not None:
        select_labels(xr.DataArray(pb.groups, dims="group"), [group], "group")
        cols = pb.slices[pb.groups.index(group)]
    else:
        cols = slice(None)
    n = pb.x[cols].shape[0]
    if n == 0:
        raise BayesDissectError("no pairs to predict agreement on")
    chunk = chunk or _chunk_size(pb.mask.size)
    j = len(pb.judges)
    s = post.sizes["chain"] * post.sizes["draw"]
    out = np.empty((s, j, j), dtype=np.float32)
    pos = 0
    for piece in draw_pieces(post, chunk):
        logits = _draw_logits(piece, pb)[0][:, :, cols]
        out[pos:pos + logits.shape[0]] = agreement_draws(logits, kind)
        pos += logits.shape[0]
    of_means = agreement_draws(_draw_logits(_mean_draw(post), pb)[0][:, :, cols], kind)[0]
    return out, of_means.astype(float), list(pb.judges)


def true_agreement(truth: xr.Dataset, data: xr.Dataset,
                   kinds: tuple[str, ...] = PREDICTIVE_KINDS) -> xr.Dataset:
    """The true agreement and kappa of every pair of judges on ``data``'s pairs, from a
    simulated truth (``w`` or its terms, ``bias``, ``pair_effect`` when simulated): one
    "draw" of the module note's formulas, as variables ``similarity_<kind>`` (judge,
    judge2). Judges and pairs are matched by label, so ``data`` may be a subset."""
    from bayesdissect.queries.predictive import PAIR_TERM

    terms = {"w_cell": truth["w"]}
    for name in ("bias", PAIR_TERM):
        if name in truth:
            terms[name] = truth[name]
    post = xr.Dataset(terms).expand_dims(chain=1, draw=1)
    judges = [str(v) for v in data["judge"].values]
    out = {}
    for kind in kinds:
        _, mat, _ = _agreement_matrices(post, data, kind, None)
        out[f"similarity_{kind}"] = xr.DataArray(
            mat, dims=("judge", "judge2"), coords={"judge": judges, "judge2": judges})
    return xr.Dataset(out)


def similarity_matrices(fit: Any, kind: str = "paper", group: str | None = None,
                        chunk: int = 256, data: xr.Dataset | None = None
                        ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(per-draw similarity (S, J, J) float32, similarity of posterior means (J, J),
    judge labels). Weights are built chunk by chunk of draws. Used by the table below
    and by clustering. ``kind="deviation"`` of a fit whose deviations are centred over
    judges is corrected for the centring (module note; ``centring_correction``). The
    predictive kinds (agreement, kappa) need the fitted data: the Fit's, or ``data``."""
    post = as_posterior(fit)
    _check_kind(post, kind)
    if kind in PREDICTIVE_KINDS:
        return _agreement_matrices(post, _fit_data(fit, data), kind, group)
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
               prob: float = 0.9, kind: str = DEFAULT_KIND) -> pd.DataFrame:
    """One row per unordered pair a < b (dataset order): posterior mean, equal-tailed
    interval at ``prob`` and the similarity of posterior means; the similarity ``kind`` of
    the matrices in ``attrs["kind"]`` (figures and the report name it)."""
    if not 0.0 < prob < 1.0:
        raise BayesDissectError(f"--prob must lie strictly between 0 and 1, got {prob}")
    ia, ib = np.triu_indices(len(judges), k=1)
    vals = draws[:, ia, ib]  # (S, P)
    a = (1.0 - prob) / 2.0
    lo, hi = np.quantile(vals, [a, 1.0 - a], axis=0)
    jl = np.asarray(judges, dtype=object)
    out = pd.DataFrame({
        "judge_a": jl[ia], "judge_b": jl[ib], "mean": vals.mean(0, dtype=np.float64),
        "lower": lo.astype(float), "upper": hi.astype(float), "of_means": of_means[ia, ib],
    }, columns=SIMILARITY_COLUMNS)
    out.attrs["kind"] = kind
    return out


def similarity(fit: Any, kind: str = DEFAULT_KIND, group: str | None = None,
               prob: float = 0.9, chunk: int = 256, data: xr.Dataset | None = None
               ) -> pd.DataFrame:
    """Similarity of every pair of judges with columns ``SIMILARITY_COLUMNS``: posterior
    mean and equal-tailed interval of the per-draw similarity, and ``of_means`` (the same
    quantity of the posterior means; for ``kind="paper"`` the paper's number). ``kind``:
    "paper" (cell weights), "deviation" (judge_offset + cell_offset, corrected for
    centring over judges where the fit's deviations sum to zero: module note),
    "agreement" (the default: the probability that the two judges choose the same
    response, predicted on the data's pairs) or "kappa" (that agreement chance-corrected
    against each judge's own rate of "response 1"). The paper kind's intervals are too
    narrow where the true weights are sparse; agreement and kappa are well identified
    (module note). The kind is in the table's ``attrs["kind"]``.
    ``group``: one group instead of the average over all groups (the pairs of that group
    for agreement and kappa). ``data``: the fitted data, for agreement and kappa of a bare
    posterior (a Fit carries its own)."""
    draws, of_means, judges = similarity_matrices(fit, kind, group, chunk, data)
    return pair_table(draws, of_means, judges, prob, kind)


def similarity_matrix(fit: Any, kind: str = DEFAULT_KIND, group: str | None = None,
                      statistic: str = "mean", data: xr.Dataset | None = None
                      ) -> xr.DataArray:
    """Square (judge, judge2) matrix of the posterior mean similarity (``statistic="mean"``)
    or of the similarity of posterior means (``"of_means"``), for heat maps. The diagonal
    is 1 for the correlation kinds, and a judge's agreement (kappa) with an independent
    rerun of itself for agreement (kappa)."""
    if statistic not in ("mean", "of_means"):
        raise BayesDissectError(f"unknown statistic {statistic!r}; expected mean or of_means")
    draws, of_means, judges = similarity_matrices(fit, kind, group, data=data)
    mat = draws.mean(0, dtype=np.float64) if statistic == "mean" else of_means
    return xr.DataArray(mat, dims=("judge", "judge2"),
                        coords={"judge": judges, "judge2": judges}, name=f"similarity_{kind}")
