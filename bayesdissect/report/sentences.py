"""The report's findings in words: functions that turn the query tables into sentences
(HTML fragments: names in bold or italics, every value from the tables escaped), and the
small number formats they share. Nothing here is fixed text about the data."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayesdissect.report.figures import display_name, similarity_to
from bayesdissect.report.findings import Findings

#: The usual bars the convergence sentences compare against.
THRESHOLDS = {"rhat": 1.01, "ess": 400}


# ----------------------------------------------------------------------------- formatting


def _pct(x: float) -> str:
    return f"{x:.1f}%"


def _num(x: float, digits: int = 2) -> str:
    return f"{x:+.{digits}f}" if x < 0 else f"{x:.{digits}f}"


def _interval(lo: float, hi: float, digits: int = 2, pct: bool = False) -> str:
    if pct:
        return f"{lo:.1f}&ndash;{hi:.1f}%"
    return f"{_num(lo, digits)} to {_num(hi, digits)}"


def _names(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _j(judge: str) -> str:
    """A judge's display name, HTML-escaped, in bold."""
    return f"<b>{html.escape(display_name(judge))}</b>"


def _p(prop: str) -> str:
    return f"<i>{html.escape(prop)}</i>"


def _pp(m: float, lo: float, hi: float) -> str:
    """'+9.1 points [7.8, 10.4]'."""
    return f"{m:+.1f} points [{lo:+.1f}, {hi:+.1f}]"


# ----------------------------------------------------------------------------- tables


def _effect_phrase(row: pd.Series, prob: float) -> str:
    return (f"{_p(row['property'])} ({_pct(row['pref_mean'])}, {prob:.0%} interval "
            f"{_interval(row['pref_lower'], row['pref_upper'], pct=True)})")


def effect_sentences(effects: pd.DataFrame, judge: str, prob: float, n: int = 3) -> list[str]:
    """Which properties ``judge`` rewards and penalises most (judge level: averaged over
    groups), counting only effects whose interval excludes zero."""
    eff = effects[(effects["level"] == "judge") & (effects["judge"] == judge)]
    if eff.empty:
        return []
    eff = eff.sort_values("mean", ascending=False)
    pos = eff[eff["lower"] > 0].head(n)
    neg = eff[eff["upper"] < 0].sort_values("mean").head(n)
    n_pos, n_neg = int((eff["lower"] > 0).sum()), int((eff["upper"] < 0).sum())
    out = []
    if len(pos):
        out.append(f"{_j(judge)} rewards most: "
                   + "; ".join(_effect_phrase(r, prob) for _, r in pos.iterrows())
                   + f". In all, {n_pos} of {len(eff)} properties make a response credibly "
                   "more likely to be preferred.")
    else:
        out.append(f"{_j(judge)} rewards no property credibly (every {prob:.0%} interval of "
                   "a positive effect includes 50%).")
    if len(neg):
        out.append(f"{_j(judge)} penalises most: "
                   + "; ".join(_effect_phrase(r, prob) for _, r in neg.iterrows())
                   + f". In all, {n_neg} properties credibly lower the chance of being "
                   "preferred.")
    else:
        out.append(f"{_j(judge)} penalises no property credibly.")
    return out


def contrast_sentences(contrasts: pd.DataFrame, reference: str, judges: Sequence[str],
                       prob: float, n: int = 3) -> list[str]:
    """Which judges differ credibly from ``reference`` and on what: one sentence per
    chosen judge, and one naming the judges with the most and fewest differences."""
    out = []
    counts = contrasts.groupby("judge_a", sort=False)["credible"].agg(["sum", "size"])
    for judge in judges:
        if judge == reference or judge not in counts.index:
            continue
        c = contrasts[(contrasts["judge_a"] == judge) & contrasts["credible"]].head(n)
        k, total = int(counts.loc[judge, "sum"]), int(counts.loc[judge, "size"])
        if k == 0:
            out.append(f"{_j(judge)} does not differ credibly from {_j(reference)} on any of "
                       f"the {total} properties at {prob:.0%}.")
            continue
        parts = []
        for _, r in c.iterrows():
            more = "more" if r["mean"] > 0 else "less"
            parts.append(f"{_p(r['property'])} {more} (difference in weight "
                         f"{_num(r['mean'])}, {prob:.0%} interval "
                         f"{_interval(r['lower'], r['upper'])}; "
                         f"P(larger) = {r['prob_a_greater']:.2f})")
        out.append(f"{_j(judge)} differs credibly from {_j(reference)} on {k} of {total} "
                   f"properties; the largest: it rewards " + "; ".join(parts) + ".")
    others = counts.drop(index=[reference], errors="ignore")
    if len(others) >= 3:
        srt = others.sort_values("sum", ascending=False)
        most, fewest = srt.index[0], srt.index[-1]
        out.append(f"Across all {len(others)} other judges, {_j(most)} differs from "
                   f"{_j(reference)} on the most properties ({int(srt.iloc[0]['sum'])}) and "
                   f"{_j(fewest)} on the fewest ({int(srt.iloc[-1]['sum'])}).")
    return out


def similarity_sentences(sim: pd.DataFrame, reference: str | None, prob: float,
                         paper: pd.DataFrame | None = None) -> list[str]:
    """What the similarity is, the most/least similar pair overall, the judges most/least
    similar to the reference, and the paper's number beside it (``paper``: the paper
    kind's table, where ``sim`` is another kind)."""
    out = []
    if sim.empty:
        return out
    if sim.attrs.get("kind") == "agreement":
        out.append("Similarity here is predicted agreement: the probability that two judges, "
                   "each labelling these pairs as the model predicts it, choose the same "
                   "response (bias and pair effects included); its intervals covered "
                   "simulated truth of every shape tried, the paper's correlation's did not "
                   "where true weights are sparse.")
    best, worst = sim.loc[sim["mean"].idxmax()], sim.loc[sim["mean"].idxmin()]
    out.append(f"The most similar pair of judges is {_j(best['judge_a'])} and "
               f"{_j(best['judge_b'])} (similarity {best['mean']:.2f}, {prob:.0%} interval "
               f"{_interval(best['lower'], best['upper'])}); the least similar is "
               f"{_j(worst['judge_a'])} and {_j(worst['judge_b'])} ({worst['mean']:.2f}, "
               f"{_interval(worst['lower'], worst['upper'])}).")
    if reference:
        to = similarity_to(sim, reference).sort_values("mean", ascending=False)
        if len(to) >= 2:
            hi, lo = to.iloc[0], to.iloc[-1]
            # does the top judge's interval overlap the runner-up's? then the order is open
            runner = to.iloc[1]
            tie = (" Its lead over the runner-up, "
                   f"{_j(runner['judge'])} ({runner['mean']:.2f}), is within the intervals."
                   if runner["upper"] >= hi["lower"] else "")
            out.append(f"Closest to {_j(reference)}: {_j(hi['judge'])} ({hi['mean']:.2f}, "
                       f"{_interval(hi['lower'], hi['upper'])}); farthest: {_j(lo['judge'])} "
                       f"({lo['mean']:.2f}, {_interval(lo['lower'], lo['upper'])})." + tie)
    pap = sim if sim.attrs.get("kind", "paper") == "paper" else paper
    if pap is not None and not pap.empty:
        gap = float((pap["of_means"] - pap["mean"]).mean())
        where = "similarity.csv" if pap is sim else "similarity_paper.csv"
        out.append(f"The paper's number (the correlation of posterior-mean weight vectors) is "
                   f"on average {gap:+.2f} away from the posterior mean of that correlation: "
                   "noise in each draw pulls per-draw correlations towards zero, so both are "
                   f"reported in {where}.")
    return out


def _stability_words(p: float) -> str:
    if p >= 0.9:
        return "stable"
    if p >= 0.5:
        return "fairly stable"
    return "unstable: its membership is uncertain"


def cluster_sentences(cr: Any) -> list[str]:
    """The reported clusters with how often each appears exactly in the posterior draws."""
    if cr is None or cr.clusters.empty:
        return []
    out = [f"The judges fall into {cr.k} clusters (average linkage on 1 - similarity; "
           f"K: {html.escape(cr.rule)})."]
    for _, row in cr.clusters.sort_values("size", ascending=False).iterrows():
        members = [m.strip() for m in str(row["members"]).split(",")]
        shown = _names([_j(m) for m in members[:8]]) + (
            f" and {len(members) - 8} more" if len(members) > 8 else "")
        if row["size"] == 1:
            out.append(f"{shown} stands alone; it is a cluster of its own in "
                       f"{row['stability']:.0%} of the draws.")
        else:
            out.append(f"Cluster {int(row['cluster'])} ({int(row['size'])} judges: {shown}) "
                       f"appears as exactly this set in {row['stability']:.0%} of the "
                       f"{cr.n_draws} posterior draws ({_stability_words(row['stability'])}); "
                       f"on average two of its members share a cluster in "
                       f"{row['within_prob']:.0%} of the draws.")
    return out


def size_sentences(sim: pd.DataFrame, reference: str, sizes: dict[str, float],
                   types: dict[str, str]) -> list[str]:
    """Rank correlation of size and similarity to the reference over the open models."""
    to = similarity_to(sim, reference)
    to["size"] = to["judge"].map(sizes)
    to["type"] = to["judge"].map(types)
    open_models = to[to["size"].notna() & to["type"].isin(["base", "aligned"])]
    if len(open_models) < 4 or open_models["size"].nunique() < 2:
        return []
    from scipy.stats import spearmanr

    rho = float(spearmanr(open_models["size"], open_models["mean"]).statistic)
    out = [f"Across the {len(open_models)} open models, the rank correlation between size and "
           f"similarity to {_j(reference)} is {rho:+.2f} (Spearman, on posterior means)."]
    by_type = open_models.groupby("type")["mean"].mean()
    if {"base", "aligned"} <= set(by_type.index):
        out.append(f"Aligned models average {by_type['aligned']:.2f}, base models "
                   f"{by_type['base']:.2f}.")
    return out


def ppc_sentences(res: Any, prob: float) -> list[str]:
    """Accuracy, calibration error and what the checks flag, in words."""
    out = []
    scores = res.scores.set_index("judge")
    if "all" in scores.index:
        s = scores.loc["all"]
        out.append(f"The posterior predictive probability picks the judge's choice for "
                   f"{s['accuracy']:.1%} of the {int(s['n'])} labels (log score "
                   f"{s['log_score']:.3f}; a coin scores -0.693).")
    ece = res.calibration.attrs.get("ece")
    if ece is not None:
        out.append(f"Calibration: predicted and observed shares differ by {ece:.3f} on "
                   "average over the bins (0 = perfectly calibrated).")
    f = res.flagged()
    out.append(
        f"Posterior predictive p-values flag {f['judges']} judge(s), {f['groups']} group(s) "
        f"and {f['agreement_pairs']} of {f['agreement_pairs_total']} judge pairs' agreement "
        "rates as not reproduced by the model."
        + ("" if f["agreement_pairs"] == 0 else " The worst pairs are listed below."))
    flags = res.flags.set_index("check") if not res.flags.empty else None
    if flags is not None and "dependence" in flags.index:
        row = flags.loc["dependence"]
        out.append("How many judges chose response 1 on each pair: its spread over pairs is "
                   + ("<b>larger than the model replicates</b>" if row.flagged else
                      "reproduced by the model")
                   + f" (dependence {_pw(row.p_value)}; flagged at p &le; "
                   f"{row.threshold:g}).")
    if flags is not None and "miscalibration" in flags.index:
        row = flags.loc["miscalibration"]
        out.append("The leave-one-out probabilities are "
                   + ("<b>miscalibrated</b>" if row.flagged else "calibrated")
                   + f" (PAV miscalibration {_pw(row.p_value)}; flagged at p &le; "
                   f"{row.threshold:g}).")
    return out


def _pw(p: float) -> str:
    from bayesdissect.queries.predictive import p_words

    return html.escape(p_words(float(p)))


def loo_sentence(lr: Any) -> str:
    """PSIS-LOO in words: elpd_loo with its standard error and the Pareto k count."""
    bad = int(getattr(lr, "n_bad_k", 0) or 0)
    return (f"Leave-one-out (PSIS-LOO): elpd_loo {lr.elpd_loo:.1f} (se {lr.se:.1f}), p_loo "
            f"{lr.p_loo:.1f} over {lr.n_obs:,} labels; "
            + ("every Pareto k is below its threshold." if bad == 0 else
               f"{bad} label(s) with Pareto k above {lr.k_threshold:.2f} (their leave-one-out "
               "values are unreliable)."))


# ----------------------------------------------------------------------------- convergence


def _worst_names(diag: dict[str, Any], key: str, n: int = 4) -> str:
    """'name (value), ...' from a diagnostics list of [name, value] pairs."""
    items = diag.get(key) or []
    parts = []
    for item in list(items)[:n]:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            parts.append(f"{item[0]} ({float(item[1]):.3g})")
        else:
            parts.append(str(item))
    return html.escape(", ".join(parts))


def diagnostics_sentences(diag: dict[str, Any]) -> tuple[bool, list[str]]:
    """(all fine?, sentences in plain words) from ``fit.diagnostics``."""
    out = []
    ok = True
    rhat = diag.get("max_rhat")
    if rhat is not None and np.isfinite(rhat):
        if rhat <= THRESHOLDS["rhat"]:
            out.append(f"The chains agree: the largest R-hat is {rhat:.3f} (at most "
                       f"{THRESHOLDS['rhat']} is the usual bar).")
        else:
            ok = False
            worst = _worst_names(diag, "worst_rhat")
            out.append(f"The chains do not fully agree: the largest R-hat is {rhat:.3f}, above "
                       f"{THRESHOLDS['rhat']}" + (f" (worst: {worst})" if worst else "")
                       + ". Run longer (more draws and tuning) before trusting the intervals.")
    ess = [diag.get("min_ess_bulk"), diag.get("min_ess_tail")]
    if all(e is not None and np.isfinite(e) for e in ess):
        low = min(ess)
        if low >= THRESHOLDS["ess"]:
            out.append(f"Every parameter has at least {low:.0f} effective draws (bulk "
                       f"{ess[0]:.0f}, tail {ess[1]:.0f}): enough for stable intervals.")
        else:
            ok = False
            worst = _worst_names(diag, "worst_ess_bulk" if ess[0] <= ess[1]
                                 else "worst_ess_tail")
            out.append(f"Some parameters have few effective draws (fewest: bulk {ess[0]:.0f}, "
                       f"tail {ess[1]:.0f}; {THRESHOLDS['ess']} is the usual bar"
                       + (f"; worst: {worst}" if worst else "")
                       + "), so the ends of their intervals are rough. More draws (or a model "
                       "parameterisation that mixes better) help.")
    div = diag.get("divergences")
    if div is not None:
        if int(div) == 0:
            out.append("The sampler reported no divergent transitions.")
        else:
            ok = False
            out.append(f"The sampler reported {int(div)} divergent transitions: parts of the "
                       "posterior may be missed; raise target_accept.")
    hits = diag.get("max_treedepth_hits")
    if hits:
        out.append(f"{int(hits)} draws hit the maximum tree depth (slow mixing, not an error "
                   "by itself).")
    secs = diag.get("sampling_seconds")
    total = diag.get("total_seconds")
    if secs is not None:
        extra = f" ({total:.0f} s with model building and compiling)" if total else ""
        out.append(f"Sampling took {secs:.0f} s{extra}.")
    if not out:
        out.append("This fit carries no convergence diagnostics.")
    return ok, out


# ----------------------------------------------------------------------------- what-if


_NOT_CAUSAL_HTML = ("These are the fitted model's counterfactuals of an observational "
                    "regression, not causal experiments: they say what the weights predict "
                    "if only the named comparison changed, everything else about each pair "
                    "kept as it is.")


def whatif_sentences(f: Findings) -> list[str]:
    """The featured judges' win rate before and after equalising one property."""
    df = f.whatif
    if df is None or df.empty:
        return []
    prop = df.attrs["property"]
    allp = df[df["group"] == "all"]
    out = [f"{_NOT_CAUSAL_HTML} Intervention: {_p(prop)} set to 0 (the two responses "
           f"compared as equal on it) on {df.attrs['n_intervened']:,} of "
           f"{int(allp['n_pairs'].iloc[0]):,} pairs; win rate = the share of pairs "
           "response 1 wins, averaged over the model's predictions."]
    for _, r in allp.iterrows():
        groups = df[(df["judge"] == r["judge"]) & (df["group"] != "all")]
        big = (groups.loc[groups["change"].abs().idxmax()] if len(groups) else None)
        where = (f"; the largest move is in {html.escape(str(big['group']))} "
                 f"({_pp(big['change'], big['change_lower'], big['change_upper'])})"
                 if big is not None and len(groups) > 1 else "")
        out.append(f"{_j(r['judge'])}: response 1's predicted win rate goes from "
                   f"{r['before']:.1f}% to {r['after']:.1f}%, a change of "
                   f"{_pp(r['change'], r['change_lower'], r['change_upper'])} "
                   f"({f.prob:.0%} interval){where}.")
    return out


def exploit_sentences(f: Findings) -> list[str]:
    """Each featured judge's most exploitable property, the first one's compared across
    the featured judges, the costliest property to lose, and the most exploitable judge."""
    ex = f.exploit
    if ex is None or ex.empty:
        return []
    from bayesdissect.queries.whatif import most_exploitable

    top = most_exploitable(ex).set_index("judge")
    out = [f"{_NOT_CAUSAL_HTML} Gain: the change in the share of pairs response 1 wins when "
           "it wins a property on every pair where it does not today; loss: when it loses "
           f"it everywhere ({ex.attrs['n_draws']:,} posterior draws)."]
    featured = [j for j in f.judges if j in top.index]
    for judge in featured:
        r = top.loc[judge]
        worst = ex[ex["judge"] == judge].sort_values("loss").iloc[0]
        out.append(f"{_j(judge)} is most exploitable on {_p(r['property'])}: always winning "
                   f"it gains {_pp(r['gain'], r['gain_lower'], r['gain_upper'])}; always "
                   f"losing {_p(worst['property'])} costs the most, "
                   f"{_pp(worst['loss'], worst['loss_lower'], worst['loss_upper'])}.")
    if len(featured) >= 2:
        prop = top.loc[featured[0], "property"]
        rows = ex[ex["property"] == prop].set_index("judge")
        parts = [f"{r['gain']:.1f} points [{r['gain_lower']:.1f}, {r['gain_upper']:.1f}] "
                 f"with {_j(j)}" for j, r in rows.loc[featured].iterrows()]
        out.append(f"A response that always wins {_p(prop)} gains " + _names(parts) + ".")
    if len(top) >= 3:
        best = top.sort_values("gain", ascending=False)
        j0, r0 = best.index[0], best.iloc[0]
        out.append(f"Of all {len(top)} judges, {_j(j0)} is the most exploitable: always "
                   f"winning {_p(r0['property'])} gains "
                   f"{_pp(r0['gain'], r0['gain_lower'], r0['gain_upper'])}.")
    return out


def departs_sentences(f: Findings, n: int = 3) -> list[str]:
    """How much each featured judge disagrees with the reference and which properties
    explain most of it."""
    dp = f.departs
    if dp is None or dp.empty:
        return []
    out = [f"Disagreement = the mean over the {dp.attrs['n_pairs']:,} pairs of |P(judge "
           "picks response 1) - P(reference does)|, split exactly into one part per "
           "property and the position bias; the model's account, not a causal one."]
    for judge, rows in dp.groupby("judge", sort=False):
        tot = rows[rows["term"] == "total"].iloc[0]
        props = rows[~rows["term"].isin(["bias", "total"])].head(n)
        parts = [f"{_p(r['term'])} ({r['share']:.0%}; {r['mean']:.1f} points "
                 f"[{r['lower']:.1f}, {r['upper']:.1f}])" for _, r in props.iterrows()]
        out.append(f"{_j(judge)} and {_j(tot['reference'])} differ by {tot['mean']:.1f} "
                   f"points [{tot['lower']:.1f}, {tot['upper']:.1f}] of predicted "
                   f"probability per pair; most of it comes from " + _names(parts) + ".")
    return out


def counterfactual_sentences(f: Findings) -> None:
    """Put the three what-if sections' sentences into ``f.sentences``."""
    f.sentences["whatif"] = whatif_sentences(f)
    f.sentences["exploit"] = exploit_sentences(f)
    f.sentences["departs"] = departs_sentences(f)


def fill_sentences(fit: Any, f: Findings) -> None:
    """Put every section's sentences into ``f.sentences`` (convergence aside: see
    :func:`diagnostics_sentences`); a fit without judge-level terms says so instead."""
    if f.judges and "judge" in f.levels:
        f.sentences["effects"] = [s for j in f.judges for s in effect_sentences(
            f.effects, j, f.prob)]
    else:
        spec_name = html.escape(str(getattr(getattr(fit, "spec", None), "name", "this")))
        f.sentences["effects"] = [
            f"The {spec_name} model has no judge-level terms: every judge shares one weight "
            "vector, so it has no judge differences, similarities or clusters to report; "
            "effects.csv holds its shared (global) effects."]
    if f.contrasts is not None and f.reference:
        f.sentences["contrasts"] = contrast_sentences(f.contrasts, f.reference, f.judges,
                                                      f.prob)
    if f.similarity is not None:
        f.sentences["similarity"] = similarity_sentences(f.similarity, f.reference, f.prob,
                                                         f.similarity_paper)
        data = getattr(fit, "data", None)
        if f.reference == "human" and data is not None and "judge_size" in data.coords:
            keys = list(map(str, data["judge"].values))
            f.sentences["size"] = size_sentences(
                f.similarity, f.reference,
                dict(zip(keys, data["judge_size"].values.astype(float), strict=True)),
                dict(zip(keys, map(str, data["judge_type"].values), strict=True))
                if "judge_type" in data.coords else {})
    f.sentences["clusters"] = cluster_sentences(f.clusters)
    if f.ppc is not None:
        f.sentences["checks"] = ppc_sentences(f.ppc, f.prob)
    if f.loo is not None:
        f.sentences.setdefault("checks", []).append(loo_sentence(f.loo))
    counterfactual_sentences(f)
