"""Posterior predictive checks, PSIS-LOO and model comparison (model.md §5).

Replications come straight from posterior draws of the weights (no
``pm.sample_posterior_predictive``): for each draw, P(y[i, j] = 1) = sigmoid(bias[j] +
u[i] + x[i] . w[j, g(i)]) (u the pair effect of a spec with a ``pair`` level, else 0) and
y_rep ~ Bernoulli(P), computed as one (pairs x K) @ (K x judges) product per group, in
chunks of draws, in float32. ``_draw_logits`` is the one place that assembles these logits
from a piece of the posterior; every query here and in ``whatif`` goes through it (or, for
one judge's rows in LOO, adds the same terms). Only labelled (pair, judge) entries
count; nothing is imputed.

Checks (``ppc``), each with the posterior predictive p-value (mid-p: P(T_rep > T_obs) +
P(T_rep = T_obs)/2; values near 0 or 1 flag misfit): the distribution over pairs of how
many judges chose response 1, observed vs replicated, with the variance of that count and
a chi-square of its histogram (judges who share what the properties miss agree within
pairs more than replicated: the variance is too large); observed vs replicated agreement
rate of every pair of judges (share of pairs both labelled on which they chose the same
response), with the worst-fitting pairs; calibration of the leave-one-out (PSIS-LOO)
probabilities, binned and by PAV (CORP) with a resampling p-value; accuracy, log score
and Brier score of the posterior predictive probability (mean over draws of P). ``flags``
sums them up as dependence / miscalibration with the spec that addresses each. The share
of "response 1" per judge and group is kept as a table; it can hardly fail (each judge's
bias fits its share).

``loo``: PSIS-LOO over all labelled entries, computed judge by judge and chunk by chunk of
pairs (all draws of one chunk at a time: never a draws x all-entries array). The PSIS is
a vectorised re-implementation of Vehtari et al. (2017/2024) as in ArviZ (Zhang-Stephens
generalized Pareto fit with its weak prior, tail of 3 sqrt(S) draws, r_eff = 1),
checked against ``arviz_stats`` in the tests; it is ~20x faster than calling it per entry.
``loo`` returns arviz_stats' ELPD data object (``elpd.LOOResult``), its pointwise values on
the observation dimension ``obs`` of a saved fit. ``compare_models`` ranks fits by elpd_loo
with standard errors of the differences, matching entries by (pair, judge name).

``add_log_likelihood`` / ``add_posterior_predictive`` put the pointwise log-likelihood
(float32) and replicated labels (int8) into a fit's DataTree on that ``obs`` dimension,
computed a piece of draws at a time (about 64 MB of logits at once), for ArviZ's own
``loo``, ``loo_pit``, ``plot_ppc_dist``, ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesdissect.errors import BayesDissectError
from bayesdissect.model.build import OBS_DIM, TERM_NAMES, label_index
from bayesdissect.model.fitted import as_posterior
from bayesdissect.model.specs import DEFAULT_MODEL
from bayesdissect.queries.weights import TERMS, blas_single_thread, draw_pieces

#: Mid-p values below this or above 1 - this are flagged.
FLAG_P = 0.025
#: Posterior variable of the pair effect u (dim pair), when the spec has a pair level.
PAIR_TERM = TERM_NAMES["pair"]


# ----------------------------------------------------------------------------- data layout
@dataclass
class PairLayout:
    """The fitted data laid out for fast prediction (pairs sorted by group), shared by the
    predictive checks, LOO and the what-if queries."""

    x: np.ndarray  # (N, K) float32, pairs sorted by group
    y: np.ndarray  # (N, J) float32 0/1 (0 where missing)
    mask: np.ndarray  # (N, J) bool, labelled
    yt: np.ndarray  # (J, N) float32, contiguous (the layout of the replication loop)
    maskt: np.ndarray  # (J, N) bool, contiguous
    slices: list[slice]  # pair rows of each group
    judges: list[str]
    groups: list[str]
    properties: list[str]
    pair_ids: np.ndarray  # (N,) pair coordinate in sorted order
    obs_row: np.ndarray  # (n_obs,) sorted row of each labelled entry, in obs order
    obs_judge: np.ndarray  # (n_obs,) judge position of each labelled entry, in obs order
    obs_coords: dict[str, Any]  # coordinates of the obs dim: obs, pair, judge

    def obs_position(self) -> np.ndarray:
        """(N, J) int64: the obs index of each labelled (sorted row, judge); -1 elsewhere."""
        pos = np.full(self.mask.shape, -1, dtype=np.int64)
        pos[self.obs_row, self.obs_judge] = np.arange(self.obs_row.size)
        return pos


def _problem(fit: Any, data: xr.Dataset | None = None) -> PairLayout:
    data = data if data is not None else getattr(fit, "data", None)
    if data is None:
        raise BayesDissectError("predictive checks need the fitted data (a Fit, or pass data=)")
    groups_all = np.asarray(data["group"].values).astype(str)
    groups = sorted(set(groups_all.tolist()))
    order = np.argsort(np.searchsorted(groups, groups_all), kind="stable")
    gsorted = np.searchsorted(groups, groups_all[order])
    bounds = np.searchsorted(gsorted, np.arange(len(groups) + 1))
    x = np.asarray(data["x"].transpose("pair", "property").values, dtype=np.float32)[order]
    yv = np.asarray(data["y"].transpose("pair", "judge").values, dtype=float)[order]
    mask = ~np.isnan(yv)
    y = np.where(mask, yv, 0.0).astype(np.float32)
    sorted_row = np.empty_like(order)
    sorted_row[order] = np.arange(order.size)
    pair_pos, judge_pos = label_index(data)
    pair_all = np.asarray(data["pair"].values)
    judge_all = np.asarray(data["judge"].values)
    obs_coords = {OBS_DIM: np.arange(pair_pos.size), "pair": (OBS_DIM, pair_all[pair_pos]),
                  "judge": (OBS_DIM, judge_all[judge_pos])}
    return PairLayout(
        x=np.ascontiguousarray(x), y=y, mask=mask, yt=np.ascontiguousarray(y.T),
        maskt=np.ascontiguousarray(mask.T),
        slices=[slice(int(bounds[i]), int(bounds[i + 1])) for i in range(len(groups))],
        judges=[str(v) for v in data["judge"].values], groups=groups,
        properties=[str(v) for v in data["property"].values],
        pair_ids=pair_all[order], obs_row=sorted_row[pair_pos], obs_judge=judge_pos,
        obs_coords=obs_coords,
    )


def _weights_np(post: xr.Dataset, prob: PairLayout, judges: list[str] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(w (S, J', G, K) float32, bias (S, J') float32) for the judges given (default all),
    summing whatever terms the posterior has and broadcasting the rest."""
    judges = prob.judges if judges is None else judges
    s = post.sizes["chain"] * post.sizes["draw"]
    w = np.zeros((s, len(judges), len(prob.groups), len(prob.properties)), dtype=np.float32)
    sel = {"judge": judges, "group": prob.groups, "property": prob.properties}
    found = False
    for term, dims in TERMS.items():
        if term not in post:
            continue
        found = True
        da = post[term]
        da = da.sel({d: sel[d] for d in dims}).transpose("chain", "draw", *dims)
        arr = da.values.reshape((s,) + da.shape[2:]).astype(np.float32)
        shape = [s] + [len(sel[d]) if d in dims else 1 for d in ("judge", "group", "property")]
        w += arr.reshape(shape)
    if not found:
        raise BayesDissectError("posterior has no weight terms (mu, judge_offset, ..., w_cell)")
    bias = np.zeros((s, len(judges)), dtype=np.float32)
    if "bias" in post:
        b = post["bias"].sel(judge=judges).transpose("chain", "draw", "judge")
        bias += b.values.reshape(s, len(judges)).astype(np.float32)
    return w, bias


def _pair_np(post: xr.Dataset, prob: PairLayout) -> np.ndarray | None:
    """(S, N) float32 pair effects u in ``prob``'s (sorted) pair order, matched by pair id;
    None when the posterior has no pair term."""
    if PAIR_TERM not in post:
        return None
    da = post[PAIR_TERM].transpose("chain", "draw", "pair")
    idx = pd.Index(np.asarray(da["pair"].values)).get_indexer(prob.pair_ids)
    if (idx < 0).any():
        raise BayesDissectError(
            f"posterior has no {PAIR_TERM} for {int((idx < 0).sum())} of the "
            f"{idx.size} pairs asked (first: {prob.pair_ids[idx < 0][0]!r}); pair effects "
            "exist only for the fitted pairs")
    s = post.sizes["chain"] * post.sizes["draw"]
    return np.ascontiguousarray(da.values.reshape(s, -1)[:, idx], dtype=np.float32)


def _logits(prob: PairLayout, w: np.ndarray, bias: np.ndarray,
            u: np.ndarray | None = None) -> np.ndarray:
    """(S, J, N) logits from weights (S, J, G, K), bias (S, J) and pair effects u (S, N)
    or None: per group one GEMM (S*J, K) @ (K, pairs of the group)."""
    s, j = bias.shape
    out = np.empty((s, j, prob.x.shape[0]), dtype=np.float32)
    for g, sl in enumerate(prob.slices):
        wg = np.ascontiguousarray(w[:, :, g, :]).reshape(s * j, -1)
        out[:, :, sl] = (wg @ prob.x[sl].T).reshape(s, j, -1)
    out += bias[:, :, None]
    if u is not None:
        out += u[:, None, :]
    return out


def _draw_logits(piece: xr.Dataset, prob: PairLayout, judges: list[str] | None = None,
                 scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(scale * logits (d, J', N), scale * w (d, J', G, K)) of a piece of the posterior for
    the judges given (default all): weights, bias and, when the posterior has them, the
    pair effects, which every judge shares (a what-if keeps each pair's u as it is)."""
    w, bias = _weights_np(piece, prob, judges)
    u = _pair_np(piece, prob)
    if scale != 1.0:
        w *= scale
        bias *= scale
        if u is not None:
            u *= scale
    return _logits(prob, w, bias, u), w


def _chunk_size(n_entries: int, target_bytes: float = 64e6) -> int:
    return max(1, int(target_bytes // (4 * max(n_entries, 1))))


def _entry_logits(post: xr.Dataset, pb: PairLayout, chunk: int | None = None):  # noqa: ANN202
    """Logits of the labelled entries in obs order, (d, n_obs) float32, a piece of at most
    ``chunk`` draws at a time (default: about 64 MB of (d, J, N) logits), in (chain,
    draw) order."""
    chunk = chunk or _chunk_size(pb.mask.size)
    for piece in draw_pieces(post, chunk):
        yield _draw_logits(piece, pb)[0][:, pb.obs_judge, pb.obs_row]


def _obs_dataset(post: xr.Dataset, pb: PairLayout, values: np.ndarray,
                 attrs: dict[str, Any]) -> xr.Dataset:
    """``y`` (chain, draw, obs) from (chain * draw, n_obs) values."""
    shape = (post.sizes["chain"], post.sizes["draw"], values.shape[-1])
    return xr.Dataset({"y": (("chain", "draw", OBS_DIM), values.reshape(shape))},
                      coords={"chain": post["chain"].values, "draw": post["draw"].values,
                              **pb.obs_coords}, attrs=attrs)


def pointwise_log_likelihood(fit: Any, data: xr.Dataset | None = None,
                             chunk: int | None = None) -> xr.Dataset:
    """log P(y | draw) of every labelled entry: ``y`` (chain, draw, obs) float32, the
    ``log_likelihood`` group of ArviZ (obs as in the fit's observed_data; no NaN padding).

    ``fit`` is a Fit or a posterior (then pass ``data=``). Memory: the result (4 bytes per
    draw and label) plus one piece of logits (``chunk`` draws, default ~64 MB)."""
    post = as_posterior(fit)
    pb = _problem(fit, data)
    sign = np.where(pb.y[pb.obs_row, pb.obs_judge] > 0.5, 1.0, -1.0).astype(np.float32)
    out = np.empty((post.sizes["chain"] * post.sizes["draw"], sign.size), dtype=np.float32)
    pos = 0
    with blas_single_thread():
        for z in _entry_logits(post, pb, chunk):
            z *= sign
            out[pos:pos + z.shape[0]] = _log_sigmoid(z)
            pos += z.shape[0]
    return _obs_dataset(post, pb, out, {"sample_dims": ["chain", "draw"]})


def posterior_predictive(fit: Any, data: xr.Dataset | None = None, seed: int = 0,
                         chunk: int | None = None) -> xr.Dataset:
    """Replicated labels of every labelled entry, one per draw: ``y`` (chain, draw, obs)
    int8, the ``posterior_predictive`` group of ArviZ (y_rep ~ Bernoulli(sigmoid(logit)))."""
    post = as_posterior(fit)
    pb = _problem(fit, data)
    rng = np.random.default_rng(seed)
    out = np.empty((post.sizes["chain"] * post.sizes["draw"], pb.obs_row.size), dtype=np.int8)
    pos = 0
    with blas_single_thread():
        for z in _entry_logits(post, pb, chunk):
            with np.errstate(over="ignore"):
                p = 1.0 / (1.0 + np.exp(-z))
            out[pos:pos + z.shape[0]] = rng.random(z.shape, dtype=np.float32) < p
            pos += z.shape[0]
    return _obs_dataset(post, pb, out, {"sample_dims": ["chain", "draw"], "seed": int(seed)})


def add_log_likelihood(fit: Any, chunk: int | None = None) -> Any:
    """``fit`` with the ``log_likelihood`` group (``pointwise_log_likelihood``) set in
    ``fit.idata`` (in place, as ArviZ's ``extend_inferencedata``); returns ``fit``."""
    _tree_of(fit)["log_likelihood"] = xr.DataTree(pointwise_log_likelihood(fit, chunk=chunk))
    return fit


def add_posterior_predictive(fit: Any, seed: int = 0, chunk: int | None = None) -> Any:
    """``fit`` with the ``posterior_predictive`` group (``posterior_predictive``) set in
    ``fit.idata`` (in place); returns ``fit``."""
    _tree_of(fit)["posterior_predictive"] = xr.DataTree(
        posterior_predictive(fit, seed=seed, chunk=chunk))
    return fit


def _tree_of(fit: Any) -> xr.DataTree:
    tree = getattr(fit, "idata", None)
    if not isinstance(tree, xr.DataTree):
        raise BayesDissectError(f"expected a Fit (with .idata), got {type(fit).__name__}")
    return tree


def _mid_p(rep: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Mid posterior predictive p-value over axis 0: P(rep > obs) + P(rep == obs) / 2."""
    return (rep > obs).mean(0) + 0.5 * (rep == obs).mean(0)


def _interval(rep: np.ndarray, prob: float) -> tuple[np.ndarray, np.ndarray]:
    a = (1.0 - prob) / 2.0
    lo, hi = np.nanquantile(rep, [a, 1.0 - a], axis=0)
    return lo, hi


# ------------------------------------------------------------------------------ PPC
#: One-sided posterior predictive p-value (mid-p) of the count's excess variance (see
#: ``_count_tables``), at or below which ``ppc`` flags dependence (labels more alike
#: within a pair than the model replicates). Any posterior predictive p-value has
#: P(p <= a) <= 2a when the data come from the model (Meng 1994, Ann. Statist. 22,
#: Theorem 1), so a correctly specified model is flagged at most 1% of the time.
DEPENDENCE_P = 0.005
#: p-value of the PAV miscalibration of the leave-one-out probabilities against labels
#: resampled from those probabilities, at or below which ``ppc`` flags miscalibration;
#: uniform under calibration, so a calibrated model is flagged 1% of the time.
MISCALIBRATION_P = 0.01
#: Resamples of the labels for the miscalibration p-value (smallest p: 1 / 201).
N_RESAMPLES = 200
#: The built-in spec that addresses each flag (model.md §7), when the fit lacks it.
REMEDY = {"dependence": "hierarchical-pair", "miscalibration": DEFAULT_MODEL}
FLAG_COLUMNS = ["check", "flagged", "statistic", "observed", "expected", "p_value",
                "threshold", "remedy", "note"]


@dataclass
class PPCResult:
    """Tables of the posterior predictive checks (see module docstring).

    ``pair_counts`` (how many pairs had c judges choose response 1, observed vs
    replicated), ``dispersion`` (its variance and chi-square with p-values), the
    leave-one-out ``calibration`` bins and PAV ``reliability`` steps, and ``flags``: one
    row per problem the checks can name (dependence, miscalibration), with the spec that
    addresses it. ``by_judge`` shares are kept as a table but flag nothing of note: each
    judge's bias fits its share."""

    by_judge: pd.DataFrame
    by_group: pd.DataFrame
    agreement: pd.DataFrame
    calibration: pd.DataFrame
    scores: pd.DataFrame
    n_draws: int
    seed: int
    pair_counts: pd.DataFrame = field(default_factory=pd.DataFrame)
    dispersion: pd.DataFrame = field(default_factory=pd.DataFrame)
    reliability: pd.DataFrame = field(default_factory=pd.DataFrame)
    flags: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FLAG_COLUMNS))
    n_properties: int = 0

    def warnings(self, below: bool = True) -> list[str]:
        """One plain-text warning per flagged check (``flags``), in words, naming what it
        weakens and the spec that addresses it (in backticks); empty when nothing is
        flagged. ``check``, ``ppc`` and the report put these at the top (``below``: they
        speak of "the weights below"; else of "this fit's weights")."""
        return flag_warnings(self.flags, self.n_properties, below=below)

    def worst_agreement(self, n: int = 10) -> pd.DataFrame:
        """The ``n`` judge pairs whose observed agreement the model reproduces worst
        (most extreme p-value, then largest gap)."""
        df = self.agreement.assign(_e=np.minimum(self.agreement.ppp, 1 - self.agreement.ppp),
                                   _g=-(self.agreement.observed - self.agreement.rep_mean).abs())
        return df.sort_values(["_e", "_g"]).drop(columns=["_e", "_g"]).head(n).reset_index(
            drop=True)

    def summary(self, n_worst: int = 10) -> pd.DataFrame:
        """One tidy table: every judge's and group's share check, and the worst agreement
        pairs. Columns: check, subject, n, observed, rep_mean, rep_lower, rep_upper, ppp,
        flag."""
        cols = ["check", "subject", "n", "observed", "rep_mean", "rep_lower", "rep_upper",
                "ppp", "flag"]
        j = self.by_judge.assign(check="share_1", subject=self.by_judge.judge)
        g = self.by_group.assign(check="share_1", subject=self.by_group.group)
        w = self.worst_agreement(n_worst)
        w = w.assign(check="agreement", subject=w.judge_a + " ~ " + w.judge_b)
        return pd.concat([j[cols], g[cols], w[cols]], ignore_index=True)

    def flagged(self) -> dict[str, int]:
        """How many judges, groups and judge pairs have an extreme p-value; ``dependence``
        and ``miscalibration``: 1 when flagged (``flags``)."""
        out = {"judges": int(self.by_judge.flag.sum()), "groups": int(self.by_group.flag.sum()),
               "agreement_pairs": int(self.agreement.flag.sum()),
               "agreement_pairs_total": len(self.agreement)}
        for row in self.flags.itertuples():
            out[str(row.check)] = int(bool(row.flagged))
        return out

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"judges": self.by_judge, "groups": self.by_group, "agreement": self.agreement,
                "worst": self.worst_agreement(), "calibration": self.calibration,
                "scores": self.scores, "summary": self.summary(), "counts": self.pair_counts,
                "dispersion": self.dispersion, "reliability": self.reliability,
                "flags": self.flags}


def _share_table(obs: np.ndarray, rep: np.ndarray, n: np.ndarray, prob: float) -> dict:
    lo, hi = _interval(rep, prob)
    ppp = _mid_p(rep, obs[None])
    return {"n": n.astype(int), "observed": obs, "rep_mean": np.nanmean(rep, 0),
            "rep_lower": lo, "rep_upper": hi, "ppp": ppp,
            "flag": (ppp < FLAG_P) | (ppp > 1 - FLAG_P)}


def _count_hist(counts: np.ndarray, n_max: int) -> np.ndarray:
    """(d, n_max + 1) histograms of integer counts (d, N): how many pairs have each count."""
    d = counts.shape[0]
    flat = counts.astype(np.int64) + (n_max + 1) * np.arange(d)[:, None]
    return np.bincount(flat.ravel(), minlength=d * (n_max + 1)).reshape(d, n_max + 1)


def ppc(fit: Any, data: xr.Dataset | None = None, seed: int = 0, n_bins: int = 10,
        prob: float = 0.9, chunk: int | None = None, loo_result: Any = None,
        n_resamples: int = N_RESAMPLES) -> PPCResult:
    """Posterior predictive checks of a fit (or of a posterior with ``data=``). Draws are
    processed ``chunk`` at a time (default: about 64 MB of float32 per array).

    Calibration uses leave-one-out predictive probabilities (PSIS-LOO; pass ``loo_result``
    from ``loo`` of the same fit to reuse it): in-sample probabilities have seen the label
    they predict. ``flags`` names dependence (pairs on which the judges agree more than
    replicated) and miscalibration, and the spec that addresses each."""
    post = as_posterior(fit)
    pb = _problem(fit, data)
    n, j = pb.mask.shape
    g = len(pb.groups)
    s = post.sizes["chain"] * post.sizes["draw"]
    chunk = chunk or _chunk_size(n * j)
    rng = np.random.default_rng(seed)
    maskf = pb.mask.astype(np.float32)
    yobs = pb.y
    share_j = np.empty((s, j))
    share_g = np.empty((s, g))
    agree = np.empty((s, j, j), dtype=np.float32)
    rep_hist = np.empty((s, j + 1))
    rep_var = np.empty(s)
    excess = np.empty((2, s))  # the count's excess variance per draw: observed, replicated
    psum = np.zeros((n, j))
    pos = 0
    maskt = pb.maskt
    with blas_single_thread():
        for piece in draw_pieces(post, chunk):
            p = _draw_logits(piece, pb)[0]  # (d, J, N)
            np.negative(p, out=p)
            with np.errstate(over="ignore"):  # exp overflow -> inf -> p = 0, as it should
                np.exp(p, out=p)
            p += 1.0
            np.reciprocal(p, out=p)  # p = sigmoid(logit)
            d = p.shape[0]
            psum += p.sum(0, dtype=np.float64).T
            yrep = rng.random(p.shape, dtype=np.float32) < p
            excess[:, pos:pos + d] = _excess_variance(p, pb.yt, yrep, maskt)
            del p
            yes = (yrep & maskt).astype(np.float32)  # replicated "response 1", labelled only
            no = (~yrep & maskt).astype(np.float32)
            del yrep
            share_j[pos:pos + d] = yes.sum(2)
            counts = yes.sum(1)  # (d, N) judges choosing response 1 on each pair, exact
            rep_hist[pos:pos + d] = _count_hist(counts, j)
            rep_var[pos:pos + d] = counts.var(1, dtype=np.float64)
            for gi, sl in enumerate(pb.slices):
                share_g[pos:pos + d, gi] = yes[:, :, sl].sum((1, 2))
            for i in range(d):
                agree[pos + i] = yes[i] @ yes[i].T + no[i] @ no[i].T
            pos += d
    n_j = pb.mask.sum(0)
    n_g = np.array([pb.mask[sl].sum() for sl in pb.slices])
    share_j /= np.maximum(n_j, 1)
    share_g /= np.maximum(n_g, 1)
    both = (maskf.T @ maskf).astype(np.float64)  # exact integer counts
    obs_agree = (yobs.T @ yobs + (maskf - yobs).T @ (maskf - yobs)).astype(np.float64)

    by_judge = pd.DataFrame({"judge": pb.judges, **_share_table(
        yobs.sum(0, dtype=np.float64) / np.maximum(n_j, 1), share_j, n_j, prob)})
    by_group = pd.DataFrame({"group": pb.groups, **_share_table(
        np.array([yobs[sl].sum(dtype=np.float64) for sl in pb.slices]) / np.maximum(n_g, 1),
        share_g, n_g,
        prob)})
    ia, ib = np.triu_indices(j, k=1)
    jl = np.asarray(pb.judges, dtype=object)
    # rates from exact counts, both in float64, so equal counts tie exactly in the mid-p
    denom = np.where(both[ia, ib] > 0, both[ia, ib], np.nan)
    with np.errstate(invalid="ignore"):
        rep_pairs = agree[:, ia, ib].astype(np.float64) / denom
        obs_pairs = obs_agree[ia, ib] / denom
    t = _share_table(obs_pairs, rep_pairs, both[ia, ib], prob)
    t["flag"] = t["flag"] & (t["n"] > 0)
    agreement = pd.DataFrame({"judge_a": jl[ia], "judge_b": jl[ib], **t})

    obs_counts = yobs.sum(1, dtype=np.float64)
    pair_counts, dispersion = _count_tables(obs_counts, rep_hist, rep_var, excess, j, prob)

    pbar = psum / s
    scores = _scores(pbar, yobs, pb.mask, pb.judges)
    lr = loo_result if loo_result is not None else loo(fit, data=data)
    p_loo, y_loo = _loo_probabilities(lr, pb)
    calibration = _calibration(p_loo, y_loo, n_bins)
    calibration.attrs["source"] = "psis-loo"
    calibration.attrs["in_sample_ece"] = _calibration(pbar[pb.mask], yobs[pb.mask],
                                                      n_bins).attrs["ece"]
    reliability = _reliability(p_loo, y_loo, rng, n_resamples)
    flags = _flags(post, dispersion, agreement, reliability)
    return PPCResult(by_judge=by_judge, by_group=by_group, agreement=agreement,
                     calibration=calibration, scores=scores, n_draws=s, seed=seed,
                     pair_counts=pair_counts, dispersion=dispersion,
                     reliability=reliability, flags=flags, n_properties=len(pb.properties))


def p_words(p: float) -> str:
    """'p < 0.001' or 'p = 0.004'."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def flag_warnings(flags: pd.DataFrame, n_properties: int = 0, below: bool = True
                  ) -> list[str]:
    """The flagged rows of a ``flags`` table as warnings in words (see
    ``PPCResult.warnings``)."""
    out = []
    props = f"the {n_properties} properties" if n_properties else "the properties"
    weights, intervals = (("the weights below", "the intervals below") if below else
                          ("this fit's weights", "this fit's intervals"))
    flagged = flags[flags["flagged"].astype(bool)]
    dep_fix = bool(((flagged["check"] == "dependence") & (flagged["remedy"] != "")).any())
    for row in flagged.itertuples():
        p = p_words(float(row.p_value))
        spec = f" Refit with the spec `{row.remedy}`." if row.remedy else ""
        if row.check == "dependence" and row.remedy:
            out.append(
                "Warning: the judges' labels agree more often than the model replicates "
                f"(dependence {p}): the pairs differ in quality {props} miss, so "
                f"{weights} are attenuated towards 0 and their intervals too narrow."
                + spec)
        elif row.check == "dependence":
            out.append(
                "Warning: the judges' labels agree more often than the model replicates "
                f"(dependence {p}) although the fit has a pair term: something {props} "
                f"and the pair term miss is shared by the judges, so {intervals} may be "
                "too narrow.")
        elif row.check == "miscalibration":
            out.append(
                "Warning: the model's leave-one-out probabilities are miscalibrated "
                f"(PAV miscalibration {p}): its predicted win rates, and the intervals "
                "built on them, should not be taken at face value."
                + (spec if row.remedy else
                   " The dependence above can cause it: refit first." if dep_fix else
                   " See the calibration and reliability tables."))
        else:  # a check added later: its note says what it means
            out.append(f"Warning: {row.check} ({p}): {row.note}.{spec}")
    return out


def _excess_variance(p: np.ndarray, yt: np.ndarray, yrep: np.ndarray, maskt: np.ndarray
                     ) -> np.ndarray:
    """(2, d): per draw, the excess variance of the count c[i] = sum_j y[i, j] around its
    mean m[i] = sum_j p[i, j] over the binomial part, for the observed and the replicated
    labels: sum_i ((c[i] - m[i])^2 - sum_j (y[i, j] - p[i, j])^2) / 2 = sum_i sum_{j<k}
    e[i, j] e[i, k] (e = y - p), standardised by its sd under the draw, sqrt(sum_i
    sum_{j<k} v[i, j] v[i, k]) (v = p (1 - p)). Mean 0 when labels are independent given
    the draw; positive when the judges agree within pairs beyond the properties."""
    m = maskt[None]
    v = p * (1.0 - p) * m
    vs = v.sum(1)
    sd = np.sqrt(np.maximum(0.5 * (vs * vs - (v * v).sum(1)).sum(1, dtype=np.float64), 1e-30))
    out = np.empty((2, p.shape[0]))
    for row, y in enumerate((yt[None], yrep)):
        e = (y - p) * m
        es = e.sum(1)
        out[row] = 0.5 * (es * es - (e * e).sum(1)).sum(1, dtype=np.float64) / sd
    return out


def _count_tables(obs_counts: np.ndarray, rep_hist: np.ndarray, rep_var: np.ndarray,
                  excess: np.ndarray, n_judges: int, prob: float
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pair_counts, dispersion) of the distribution over pairs of how many judges chose
    response 1: per count the observed and replicated number of pairs (mid-p per count);
    the count's excess variance per draw (``_excess_variance``, observed vs replicated
    under the same draw: the discrepancy that ``flags`` tests, one-sided: small when the
    judges agree more within pairs than replicated); the plain variance of the count over
    pairs (it mixes in the spread that the properties explain, so it sees less); and a
    chi-square of the histogram against the mean replicated one (small when its shape is
    not reproduced; expected counts below 1 count as 1)."""
    obs_hist = _count_hist(obs_counts[None], n_judges)[0].astype(np.float64)
    n_pairs = np.full(n_judges + 1, obs_counts.size)
    pair_counts = pd.DataFrame({"n_chose_1": np.arange(n_judges + 1),
                                **_share_table(obs_hist, rep_hist, n_pairs, prob)})
    expected = np.maximum(rep_hist.mean(0), 1.0)
    chi_rep = ((rep_hist - rep_hist.mean(0)) ** 2 / expected).sum(1)
    chi_obs = float(((obs_hist - rep_hist.mean(0)) ** 2 / expected).sum())
    rows = []
    for stat, obs, rep in (("count_excess_variance", excess[0], excess[1]),
                           ("count_variance", np.float64(obs_counts.var()), rep_var),
                           ("count_chi2", np.float64(chi_obs), chi_rep)):
        lo, hi = _interval(rep, prob)
        rows.append({"statistic": stat, "observed": float(np.mean(obs)),
                     "rep_mean": float(rep.mean()), "rep_lower": float(lo),
                     "rep_upper": float(hi), "ppp": float(_mid_p(rep, obs))})
    return pair_counts, pd.DataFrame(rows)


def _loo_probabilities(lr: Any, pb: PairLayout) -> tuple[np.ndarray, np.ndarray]:
    """(P(y = 1 | the other labels), y) of every labelled entry in obs order, from a LOO
    result: for a 0/1 label, exp(elpd_loo_i) is the leave-one-out probability of the
    label it has, so that of response 1 is it or its complement."""
    y = pb.y[pb.obs_row, pb.obs_judge].astype(np.float64)
    da = getattr(lr, "elpd_i", None)
    elpd_i = np.asarray(da if da is not None else np.zeros(0), dtype=np.float64).ravel()
    if elpd_i.size != y.size:
        raise BayesDissectError(f"ppc: loo_result has {elpd_i.size} pointwise values, the "
                                f"data {y.size} labels; pass loo() of the same fit")
    if isinstance(da, xr.DataArray) and {"pair", "judge"} <= set(da.coords):
        same = (np.array_equal(np.asarray(da["pair"].values).astype(str),
                               np.asarray(pb.obs_coords["pair"][1]).astype(str))
                and np.array_equal(np.asarray(da["judge"].values).astype(str),
                                   np.asarray(pb.obs_coords["judge"][1]).astype(str)))
        observed = getattr(lr, "observed", None)
        if same and observed is not None:
            same = np.array_equal(np.asarray(observed).astype(np.int8), y.astype(np.int8))
        if not same:
            raise BayesDissectError("ppc: loo_result is of other data (its (pair, judge) "
                                    "entries or labels differ); pass loo() of the same fit")
    p_own = np.clip(np.exp(elpd_i), 0.0, 1.0)
    return np.where(y > 0.5, p_own, 1.0 - p_own), y


def _reliability(p: np.ndarray, y: np.ndarray, rng: np.random.Generator, n_resamples: int
                 ) -> pd.DataFrame:
    """PAV (isotonic) recalibration of the probabilities ``p`` of labels ``y``, the CORP
    reliability diagram (Dimitriadis, Gneiting & Jordan 2021): one row per PAV block
    (p_lower, p_upper, n, predicted = mean p, calibrated = share of 1s). attrs: the Brier
    score and its decomposition ``mcb`` (miscalibration) - ``dsc`` (discrimination) +
    ``unc``, and ``p_value``: the share of ``n_resamples`` label sets drawn from ``p``
    itself whose mcb is at least the observed one ((1 + count) / (1 + n_resamples))."""
    from scipy.optimize import isotonic_regression

    order = np.argsort(p, kind="stable")
    ps = p[order]

    def mcb_of(ys: np.ndarray) -> tuple[float, Any]:
        res = isotonic_regression(ys)
        return float(np.mean((ps - ys) ** 2) - np.mean((res.x - ys) ** 2)), res

    ys = y[order]
    mcb, res = mcb_of(ys)
    null = np.array([mcb_of((rng.random(ps.size) < ps).astype(np.float64))[0]
                     for _ in range(n_resamples)])
    starts = np.asarray(res.blocks)
    lo, hi = starts[:-1], starts[1:]
    cs = np.concatenate([[0.0], np.cumsum(ps)])
    df = pd.DataFrame({"p_lower": ps[lo], "p_upper": ps[hi - 1], "n": hi - lo,
                       "predicted": (cs[hi] - cs[lo]) / (hi - lo), "calibrated": res.x[lo]})
    unc = float(np.mean((ys.mean() - ys) ** 2))
    df.attrs.update(brier=float(np.mean((ps - ys) ** 2)), mcb=mcb,
                    dsc=unc - float(np.mean((res.x - ys) ** 2)), unc=unc,
                    mcb_null_mean=float(null.mean()) if null.size else float("nan"),
                    p_value=float((1 + (null >= mcb).sum()) / (1 + null.size)),
                    n_resamples=int(n_resamples))
    return df


def _flags(post: xr.Dataset, dispersion: pd.DataFrame, agreement: pd.DataFrame,
           reliability: pd.DataFrame) -> pd.DataFrame:
    """One row per problem the checks can name: dependence (from the variance of the
    count, with how many judge pairs agree more than replicated) and miscalibration (from
    the PAV reliability), each with the built-in spec that addresses it when the fit does
    not have what it adds."""
    var = dispersion.set_index("statistic").loc["count_excess_variance"]
    has_pair = PAIR_TERM in post
    more = int(((agreement.ppp < FLAG_P) & (agreement.n > 0)).sum())
    dep = bool(var.ppp <= DEPENDENCE_P)
    if not dep:
        note = "the spread over pairs of how many judges chose response 1 is reproduced"
    elif has_pair:
        note = ("judges agree within pairs more than replicated although the fit has a pair "
                "term; look for structure the properties and the pair term miss")
    else:
        note = (f"judges agree within pairs more than replicated ({more} of {len(agreement)} "
                "judge pairs agree more often): response quality the properties miss is "
                "shared by the judges, so weights are attenuated towards 0 and their "
                f"intervals too narrow; refit with the {REMEDY['dependence']} spec")
    hier = any(t in post for t in (TERM_NAMES["judge"], TERM_NAMES["cell"]))
    mis = bool(reliability.attrs["p_value"] <= MISCALIBRATION_P)
    if not mis:
        mnote = "leave-one-out probabilities are calibrated (PAV)"
    elif hier:
        mnote = ("leave-one-out probabilities are miscalibrated although the fit is "
                 "hierarchical; see the calibration and reliability tables")
    else:
        mnote = ("leave-one-out probabilities are miscalibrated; the "
                 f"{REMEDY['miscalibration']} spec pools judges' weights")
    rows = [
        {"check": "dependence", "flagged": dep,
         "statistic": "excess variance over pairs of the number of judges choosing "
                      "response 1 (standardised; 0 when independent given the draw)",
         "observed": float(var.observed), "expected": float(var.rep_mean),
         "p_value": float(var.ppp), "threshold": DEPENDENCE_P,
         "remedy": REMEDY["dependence"] if dep and not has_pair else "", "note": note},
        {"check": "miscalibration", "flagged": mis,
         "statistic": "PAV miscalibration (Brier) of the leave-one-out probabilities",
         "observed": float(reliability.attrs["mcb"]),
         "expected": float(reliability.attrs["mcb_null_mean"]),
         "p_value": float(reliability.attrs["p_value"]), "threshold": MISCALIBRATION_P,
         "remedy": REMEDY["miscalibration"] if mis and not hier else "", "note": mnote},
    ]
    return pd.DataFrame(rows, columns=FLAG_COLUMNS)


def _scores(pbar: np.ndarray, y: np.ndarray, mask: np.ndarray, judges: list[str]
            ) -> pd.DataFrame:
    """Accuracy (ties at 0.5 count half), mean log score and Brier score of the posterior
    predictive probability, per judge and overall ("all"); log score of a coin: -0.693."""
    eps = 1e-12
    correct = np.where(pbar == 0.5, 0.5, ((pbar > 0.5) == (y > 0.5)).astype(float))
    logs = np.where(y > 0.5, np.log(np.maximum(pbar, eps)), np.log(np.maximum(1 - pbar, eps)))
    brier = (pbar - y) ** 2
    rows = []
    for name, m in [*((jn, mask[:, i]) for i, jn in enumerate(judges))]:
        i = judges.index(name)
        rows.append({"judge": name, "n": int(m.sum()), "accuracy": correct[m, i].mean(),
                     "log_score": logs[m, i].mean(), "brier": brier[m, i].mean()})
    rows.append({"judge": "all", "n": int(mask.sum()), "accuracy": correct[mask].mean(),
                 "log_score": logs[mask].mean(), "brier": brier[mask].mean()})
    return pd.DataFrame(rows)


def _calibration(p: np.ndarray, y: np.ndarray, n_bins: int) -> pd.DataFrame:
    """Equal-width bins of the predicted probability: count, mean predicted, observed share
    (the reliability-diagram data) and the gap; ``ece`` attr = count-weighted mean |gap|."""
    if n_bins < 1:
        raise BayesDissectError(f"n_bins must be at least 1, got {n_bins}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    cnt = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        pred = np.bincount(idx, weights=p, minlength=n_bins) / cnt
        obs = np.bincount(idx, weights=y, minlength=n_bins) / cnt
    df = pd.DataFrame({"bin_lower": edges[:-1], "bin_upper": edges[1:], "n": cnt,
                       "predicted": pred, "observed": obs, "gap": obs - pred})
    df.attrs["ece"] = float(np.nansum(np.abs(df.gap) * cnt) / max(cnt.sum(), 1))
    return df


# ------------------------------------------------------------------------------ PSIS-LOO
def psis_loo_rows(ll: np.ndarray, r_eff: float = 1.0, chunk: int = 256
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PSIS-LOO for a block of entries: ``ll`` (R, S) log-likelihood of each entry under
    each of S draws. Returns (elpd_loo (R,), p_loo (R,), pareto k (R,); k is NaN where the
    tail is too degenerate to fit, then plain importance sampling is used, as ArviZ does).

    Vectorised over rows (in cache-sized chunks of ``chunk`` rows, float32 for the
    full-width steps, float64 for the tail fit); only the top M = floor(3 sqrt(S / r_eff))
    (S / 5 when S <= 225) log ratios of each row are sorted (np.partition), the rest enter
    through sums, using that a raw importance weight times the likelihood is the same
    constant for every draw."""
    ll = np.asarray(ll)
    r, s = ll.shape
    m = int(np.floor(3 * np.sqrt(s / r_eff))) if s * r_eff > 225 else s // 5
    elpd, p_loo, khat = np.empty(r), np.empty(r), np.full(r, np.nan)
    probs = (np.arange(m) + 0.5) / m if m else np.zeros(0)
    for a in range(0, r, chunk):
        blk = np.asarray(ll[a:a + chunk], dtype=np.float32)
        llmax = blk.max(1, keepdims=True)
        lpd = (np.log(np.exp(blk - llmax).sum(1, dtype=np.float64) / s)
               + llmax[:, 0].astype(np.float64))
        llmin = blk.min(1, keepdims=True)
        x = llmin - blk  # log ratios -ll shifted so their max is 0
        del blk
        lrmax = -llmin[:, 0].astype(np.float64)
        sum_all = np.exp(x).sum(1, dtype=np.float64)
        if m < 5:  # too few draws to fit a tail: plain importance sampling
            e = -lrmax + np.log(s) - np.log(sum_all)
            elpd[a:a + chunk], p_loo[a:a + chunk] = e, lpd - e
            continue
        part = np.partition(x, s - m - 1, axis=1)
        cutoff = part[:, s - m - 1].astype(np.float64)
        tail = np.sort(part[:, s - m:], axis=1).astype(np.float64)  # (R, M) ascending
        del part, x
        expcut = np.exp(cutoff)
        k, sigma = _gpdfit_rows(np.exp(tail) - expcut[:, None])
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            small = np.abs(k) < np.finfo(float).eps
            q = np.where(small[:, None], -np.log1p(-probs)[None],
                         np.expm1(-k[:, None] * np.log1p(-probs)[None])
                         / np.where(small, 1.0, k)[:, None])
            smoothed = np.minimum(np.log(q * sigma[:, None] + expcut[:, None]), 0.0)
        ok = np.isfinite(k) & np.isfinite(sigma) & (sigma > 0) & np.isfinite(smoothed).all(1)
        smoothed = np.where(ok[:, None], smoothed, tail)
        denom = sum_all - np.exp(tail).sum(1) + np.exp(smoothed).sum(1)
        numer = (s - m) + np.exp(smoothed - tail).sum(1)
        e = -lrmax + np.log(numer) - np.log(denom)
        elpd[a:a + chunk], p_loo[a:a + chunk], khat[a:a + chunk] = e, lpd - e, k
    return elpd, p_loo, khat


def _gpdfit_rows(ary: np.ndarray, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Zhang & Stephens (2009) generalized Pareto fit with the weak prior used by PSIS
    (as ArviZ's ``_gpdfit``), one fit per row of ``ary`` (R, n), rows ascending."""
    prior_bs, prior_k = 3.0, 10.0
    r, n = ary.shape
    m_est = 30 + int(np.sqrt(n))
    base = 1.0 - np.sqrt(m_est / (np.arange(1, m_est + 1) - 0.5))
    k_out = np.empty(r)
    s_out = np.empty(r)
    q_idx = int(n / 4 + 0.5) - 1
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for a in range(0, r, chunk):
            x = ary[a:a + chunk]
            xstar = x[:, q_idx]
            b = base[None] / (prior_bs * xstar[:, None]) + 1.0 / x[:, -1][:, None]
            # the (rows, candidates, tail) matrix in float32: the one big step (~3x faster);
            # its mean over the tail is accumulated in float64
            prod = b[:, :, None].astype(np.float32) * x[:, None, :].astype(np.float32)
            np.negative(prod, out=prod)
            np.log1p(prod, out=prod)
            k_ary = prod.mean(2, dtype=np.float64)
            len_scale = n * (np.log(-(b / k_ary)) - k_ary - 1.0)
            len_scale -= np.nanmax(len_scale, 1, keepdims=True)
            wts = np.exp(len_scale)
            wts /= np.nansum(wts, 1, keepdims=True)
            wts = np.where(wts >= 10 * np.finfo(float).eps, wts, 0.0)
            wts /= wts.sum(1, keepdims=True)
            b_post = np.nansum(b * wts, 1)
            k_post = np.log1p(-b_post[:, None] * x).mean(1)
            far = xstar <= x[:, 0]  # not GPD-like at all: no fit (as ArviZ)
            s_out[a:a + chunk] = np.where(far, np.nan, -k_post / b_post)
            k_post = (n * k_post + prior_k * 0.5) / (n + prior_k)
            k_out[a:a + chunk] = np.where(far, np.nan, np.where(np.isnan(k_post), np.inf, k_post))
    return k_out, s_out


def _fit_name(fit: Any, default: str) -> str:
    spec = getattr(fit, "spec", None)
    return str(getattr(spec, "name", None) or default)


def _log_sigmoid(z: np.ndarray) -> np.ndarray:
    """log sigmoid(z) = min(z, 0) - log1p(exp(-|z|)), stable, in place on a copy."""
    out = np.abs(z)
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.log1p(out, out=out)
    np.subtract(np.minimum(z, 0), out, out=out)
    return out


def _loo_judge(post: xr.Dataset, pb: PairLayout, ji: int, gid: np.ndarray, rows_per_chunk: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PSIS-LOO of judge ``ji``'s labelled entries: (rows, elpd_i, p_loo_i, k_i)."""
    w, bias = _weights_np(post, pb, [pb.judges[ji]])  # (S, 1, G, K), (S, 1)
    u = _pair_np(post, pb)  # (S, N) or None: the terms of _draw_logits, by rows
    rows = np.flatnonzero(pb.mask[:, ji])
    s = bias.shape[0]
    out = [np.zeros(0)] * 3
    parts: list[tuple[np.ndarray, ...]] = []
    for a in range(0, rows.size, rows_per_chunk):
        rr = rows[a:a + rows_per_chunk]
        z = np.empty((rr.size, s), dtype=np.float32)
        g_rr = gid[rr]  # ascending: pairs are sorted by group
        cuts = np.flatnonzero(np.diff(g_rr)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, rr.size], strict=True):
            z[lo:hi] = pb.x[rr[lo:hi]] @ w[:, 0, g_rr[lo], :].T
        z += bias[:, 0][None, :]
        if u is not None:
            z += u[:, rr].T
        z *= np.where(pb.y[rr, ji] > 0.5, 1.0, -1.0).astype(np.float32)[:, None]
        parts.append(psis_loo_rows(_log_sigmoid(z)))
    if parts:
        out = [np.concatenate([p[i] for p in parts]) for i in range(3)]
    return rows, out[0], out[1], out[2]


def loo(fit: Any, data: xr.Dataset | None = None, name: str | None = None,
        chunk_bytes: float = 64e6) -> Any:
    """PSIS-LOO over every labelled (pair, judge) entry, judge by judge and in chunks of
    pairs so at most ~``chunk_bytes`` of log-likelihood is held at once.

    Returns an ``elpd.LOOResult``: arviz_stats' ``ELPDDataLOO`` (``arviz_stats.compare``,
    ``arviz_plots.plot_khat`` take it) with ``elpd_i`` and ``pareto_k`` on the obs dim of
    the fit's observed_data, plus ``by_judge``, ``n_bad_k`` and ``name``."""
    from bayesdissect.queries.elpd import LOOResult

    post = as_posterior(fit)
    pb = _problem(fit, data)
    s = post.sizes["chain"] * post.sizes["draw"]
    rows_per_chunk = max(1, int(chunk_bytes // (8 * s)))
    gid = np.empty(pb.x.shape[0], dtype=np.int64)
    for gi, sl in enumerate(pb.slices):
        gid[sl] = gi
    thresh = min(1 - 1 / np.log10(s), 0.7) if s > 10 else 0.7
    n_obs = int(pb.obs_row.size)
    elpd, p_loo, kk = np.empty(n_obs), np.empty(n_obs), np.empty(n_obs)
    where = pb.obs_position()
    per_judge = []
    with blas_single_thread():
        for ji, judge in enumerate(pb.judges):
            rows, e, p, k = _loo_judge(post, pb, ji, gid, rows_per_chunk)
            at = where[rows, ji]
            elpd[at], p_loo[at], kk[at] = e, p, k
            per_judge.append({
                "judge": judge, "n": int(rows.size), "elpd_loo": float(e.sum()),
                "se": float(np.sqrt(rows.size * e.var())) if rows.size else 0.0,
                "p_loo": float(p.sum()), "k_max": float(np.nanmax(k)) if k.size else 0.0,
                "n_bad_k": int((~(k <= thresh)).sum())})
    n_bad = int((~(kk <= thresh)).sum())
    coords = pb.obs_coords
    return LOOResult(
        elpd=float(elpd.sum()), se=float(np.sqrt(n_obs * elpd.var())), p=float(p_loo.sum()),
        n_samples=s, n_data_points=n_obs, scale="log", warning=n_bad > 0,
        good_k=float(thresh), elpd_i=xr.DataArray(elpd, dims=OBS_DIM, coords=coords),
        pareto_k=xr.DataArray(kk, dims=OBS_DIM, coords=coords),
        p_loo_i=xr.DataArray(p_loo, dims=OBS_DIM, coords=coords),
        name=name or _fit_name(fit, "model"), by_judge=pd.DataFrame(per_judge), n_bad_k=n_bad,
        observed=pb.y[pb.obs_row, pb.obs_judge].astype(np.int8))


COMPARE_COLUMNS = ["rank", "model", "elpd_loo", "se", "elpd_diff", "se_diff", "p_loo",
                   "n_obs", "n_bad_k"]


def _entry_keys(res: Any, name: str) -> pd.MultiIndex:
    """(pair, judge name) of each pointwise value of an ELPD result."""
    da = getattr(res, "elpd_i", None)
    if da is None or not {"pair", "judge"} <= set(da.coords):
        raise BayesDissectError(f"compare-models: {name!r} has no pointwise values with pair "
                                "and judge coordinates (use bayesdissect.loo)")
    keys = pd.MultiIndex.from_arrays([np.asarray(da["pair"].values).astype(str),
                                      np.asarray(da["judge"].values).astype(str)])
    if keys.has_duplicates:
        raise BayesDissectError(f"compare-models: {name!r} has repeated (pair, judge) entries")
    return keys


def compare_models(fits: list[Any], names: list[str] | None = None) -> pd.DataFrame:
    """Rank fits (or their ``loo`` results) of the same labels by elpd_loo, best first.

    Pointwise values are matched by (pair, judge name), never by position, so the order of
    judges or pairs in each fit does not matter. ``elpd_diff`` follows ArviZ: this model's
    elpd_loo minus the best one's (0 for the best, negative for the rest); ``se_diff`` is
    the standard error of that difference from the paired pointwise values
    (sqrt(n var(diff_i))). Fits whose labelled (pair, judge) entries or labels differ are
    refused (``BayesDissectError``): LOO compares models of the same data."""
    if len(fits) < 2:
        raise BayesDissectError("compare-models needs at least two fits")
    from arviz_stats import ELPDData

    results, labels = [], []
    for i, f in enumerate(fits):
        given = names[i] if names else None
        r = f if isinstance(f, ELPDData) else loo(f, name=given or _fit_name(
            f, f"model{i + 1}"))
        results.append(r)
        labels.append(given or str(getattr(r, "name", None) or f"model{i + 1}"))
    seen: dict[str, int] = {}
    for i, nm in enumerate(labels):  # unique names
        seen[nm] = seen.get(nm, 0) + 1
        if seen[nm] > 1:
            labels[i] = f"{nm}_{seen[nm]}"
    ref, ref_name = results[0], labels[0]
    ref_keys = _entry_keys(ref, ref_name)
    ref_y = getattr(ref, "observed", None)
    aligned = []
    for r, nm in zip(results, labels, strict=True):
        keys = _entry_keys(r, nm)
        idx = keys.get_indexer(ref_keys)
        shared = int((idx >= 0).sum())
        if len(keys) != len(ref_keys) or shared != len(ref_keys):
            raise BayesDissectError(
                f"compare-models: fits of different data: {ref_name!r} has {len(ref_keys)} "
                f"labelled (pair, judge) entries, {nm!r} has {len(keys)}, {shared} in common; "
                "compare fits of the same labels")
        y = getattr(r, "observed", None)
        if ref_y is not None and y is not None:
            differ = int((np.asarray(y)[idx] != np.asarray(ref_y)).sum())
            if differ:
                raise BayesDissectError(
                    f"compare-models: fits of different data: {ref_name!r} and {nm!r} "
                    f"disagree on {differ} of {len(ref_keys)} labels of the same (pair, "
                    "judge) entries; compare fits of the same labels")
        aligned.append(np.asarray(r.elpd_i.values, dtype=float)[idx])
    elpds = [float(r.elpd) for r in results]
    best = int(np.argmax(elpds))
    rows = []
    for r, nm, pw, e in zip(results, labels, aligned, elpds, strict=True):
        diff = pw - aligned[best]
        k = getattr(r, "pareto_k", None)
        n_bad = getattr(r, "n_bad_k", None)
        if n_bad is None and k is not None:
            n_bad = int((~(np.asarray(k.values) <= r.good_k)).sum())
        rows.append({"model": nm, "elpd_loo": e, "se": float(r.se),
                     "elpd_diff": float(diff.sum()) + 0.0,
                     "se_diff": float(np.sqrt(diff.size * diff.var())),
                     "p_loo": float(r.p), "n_obs": int(r.n_data_points),
                     "n_bad_k": int(n_bad or 0)})
    df = pd.DataFrame(rows).sort_values("elpd_loo", ascending=False).reset_index(drop=True)
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df[COMPARE_COLUMNS]
