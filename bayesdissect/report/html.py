"""One self-contained HTML report of a fit: data and model, convergence in plain words,
headline findings computed as sentences with their credible intervals, the figures, and
the tables as CSV files beside it.

``write_report(fit, out_dir)`` builds everything in a temporary folder next to ``out_dir``
and renames it into place only when all of it was written, so a failed run never leaves a
half-written report or clobbers an earlier one. Every sentence is computed from the fit;
nothing in the findings is fixed text.
"""

from __future__ import annotations

import html
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesdissect import __version__
from bayesdissect.errors import BayesDissectError
from bayesdissect.report.figures import DEFAULT_JUDGES, display_name, similarity_to

REPORT_FILE = "report.html"
#: How to run the same analysis on the real data (shown when the data are simulated).
REAL_DATA_HOWTO = (
    "bayesdissect fit hf:GAIR/preference-dissection --out gair-fit.nc\n"
    "bayesdissect report gair-fit.nc --out gair-report"
)
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


# ----------------------------------------------------------------------------- findings


@dataclass
class Findings:
    """Everything the report states, computed once; ``summary`` is the short table the
    CLI prints."""

    judges: list[str]
    reference: str | None
    prob: float
    effects: pd.DataFrame
    similarity: pd.DataFrame | None = None
    clusters: Any = None
    contrasts: pd.DataFrame | None = None
    ppc: Any = None
    levels: tuple[str, ...] = ()
    sentences: dict[str, list[str]] = field(default_factory=dict)
    whatif: pd.DataFrame | None = None
    exploit: pd.DataFrame | None = None
    departs: pd.DataFrame | None = None

    def summary(self, max_rows: int = 12) -> pd.DataFrame:
        """One row per judge (chosen judges first): similarity to the reference, the
        properties it rewards and penalises most, and its credible differences from the
        reference."""
        judge_rows = self.effects[self.effects["level"] == "judge"]
        if judge_rows.empty:
            return pd.DataFrame()
        all_judges = list(dict.fromkeys(judge_rows["judge"]))
        order = [j for j in self.judges if j in all_judges]
        order += [j for j in all_judges if j not in order]
        sim = (similarity_to(self.similarity, self.reference).set_index("judge")
               if self.similarity is not None and self.reference else None)
        rows = []
        for judge in order[:max_rows]:
            eff = judge_rows[judge_rows["judge"] == judge]
            top, bottom = eff.loc[eff["mean"].idxmax()], eff.loc[eff["mean"].idxmin()]
            row: dict[str, Any] = {"judge": display_name(judge)}
            if sim is not None:
                if judge in sim.index:
                    s = sim.loc[judge]
                    row[f"sim. to {display_name(self.reference)}"] = (
                        f"{s['mean']:.2f} [{s['lower']:.2f}, {s['upper']:.2f}]")
                else:
                    row[f"sim. to {display_name(self.reference)}"] = "(reference)"
            row["rewards most"] = f"{top['property']} ({top['pref_mean']:.0f}%)"
            row["penalises most"] = f"{bottom['property']} ({bottom['pref_mean']:.0f}%)"
            if self.contrasts is not None and self.reference:
                c = self.contrasts[self.contrasts["judge_a"] == judge]
                row["credible diffs"] = (f"{int(c['credible'].sum())}/{len(c)}" if len(c)
                                         else "-")
            rows.append(row)
        return pd.DataFrame(rows)


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


def similarity_sentences(sim: pd.DataFrame, reference: str | None, prob: float) -> list[str]:
    """Most/least similar pair overall and judges most/least similar to the reference."""
    out = []
    if sim.empty:
        return out
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
    gap = float((sim["of_means"] - sim["mean"]).mean())
    out.append(f"The paper's number (the similarity of posterior-mean weights) is on average "
               f"{gap:+.2f} away from the posterior mean of the similarity: noise in each "
               "draw pulls per-draw correlations towards zero, so both are reported in "
               "similarity.csv.")
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
    return out


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


# ----------------------------------------------------------------------------- computing


def choose_judges(fit_judges: Sequence[str], judges: Sequence[str] | None) -> list[str]:
    """The judges to feature: the given ones (checked) or the paper's pair, falling back
    to the first two judges of the fit."""
    fit_judges = list(fit_judges)
    if judges:
        unknown = [j for j in judges if j not in fit_judges]
        if unknown:
            shown = ", ".join(fit_judges[:12]) + (", ..." if len(fit_judges) > 12 else "")
            raise BayesDissectError(f"--judges: unknown judge {unknown[0]!r}; this fit has: "
                                    f"{shown}")
        return list(dict.fromkeys(judges))
    chosen = [j for j in DEFAULT_JUDGES if j in fit_judges]
    return chosen if len(chosen) == len(DEFAULT_JUDGES) else list(
        dict.fromkeys(chosen + fit_judges))[:2]


def compute_findings(fit: Any, judges: Sequence[str] | None = None, *, prob: float = 0.9,
                     k: int | None = None, checks: bool = True,
                     progress: Callable[[str], None] | None = None,
                     counterfactuals: bool = True) -> Findings:
    """Run the queries a report needs: effects at every level, contrasts with the
    reference judge (human when present), similarity, clusters, (``checks``) the
    posterior predictive checks and (``counterfactuals``) the what-if queries."""
    from bayesdissect.queries.clusters import clusters
    from bayesdissect.queries.effects import all_effects, contrast
    from bayesdissect.queries.similarity import similarity
    from bayesdissect.queries.weights import as_posterior, available_levels

    say = progress or (lambda _m: None)
    post = as_posterior(fit)
    levels = available_levels(post)
    fit_judges = [str(j) for j in post["judge"].values] if "judge" in post.coords else []
    chosen = choose_judges(fit_judges, judges) if fit_judges else []
    reference = "human" if "human" in fit_judges else (chosen[0] if chosen else None)
    say("effects")
    eff = all_effects(fit, prob=prob)
    f = Findings(judges=chosen, reference=reference, prob=prob, effects=eff, levels=levels)
    by_judge = "judge" in levels and len(fit_judges) >= 2
    if by_judge and reference:
        say("contrasts")
        f.contrasts = pd.concat([contrast(fit, j, reference, prob=prob)
                                 for j in fit_judges if j != reference], ignore_index=True)
    if by_judge:
        say("similarity")
        f.similarity = similarity(fit, prob=prob)
        if len(fit_judges) >= 3:
            say("clusters")
            f.clusters = clusters(fit, k=k)
    if checks and getattr(fit, "data", None) is not None:
        from bayesdissect.queries.predictive import ppc

        say("posterior predictive checks")
        f.ppc = ppc(fit, prob=prob)
    if counterfactuals:
        compute_counterfactuals(fit, f, say)
    return f


# ----------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;line-height:1.45;color:#222}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:1.8em}
.banner{background:#fff3cd;border:2px solid #e0a800;padding:.8em 1em;border-radius:6px;
font-size:1.05em}
.ok{background:#e8f5e9;border-left:5px solid #2e7d32;padding:.5em 1em}
.warn{background:#fdecea;border-left:5px solid #c62828;padding:.5em 1em}
table.t{border-collapse:collapse;font-size:.88em;margin:.5em 0}
table.t td,table.t th{border:1px solid #ddd;padding:3px 7px;text-align:left}
table.t th{background:#f4f4f4}
pre{background:#f6f8fa;padding:.7em;border-radius:4px;overflow-x:auto}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.9em;color:#444}
.muted{color:#666;font-size:.9em}
"""


def _table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    return df.to_html(index=False, classes="t", border=0, escape=True,
                      float_format=floatfmt.format, na_rep="")


def _data_section(fit: Any, findings: Findings) -> str:
    data = getattr(fit, "data", None)
    spec = getattr(fit, "spec", None)
    parts = []
    if data is not None:
        attrs = data.attrs
        if int(attrs.get("simulated", 0)) == 1:
            parts.append(
                '<p class="banner"><b>These data are SIMULATED.</b> Labels were drawn from '
                "known weights by <code>bayesdissect.simulate</code>; every finding below is "
                "about the simulation, <b>not</b> about real human or LLM judges. To run the "
                "same analysis on the real GAIR/preference-dissection data, accept its terms "
                "on Hugging Face, set <code>HF_TOKEN</code>, and run:"
                f"<pre>{html.escape(REAL_DATA_HOWTO)}</pre>"
                "or pass a downloaded parquet/JSON-lines file of the dataset instead of the "
                "<code>hf:</code> name.</p>")
        n_pairs = data.sizes.get("pair", 0)
        n_labels = int(np.isfinite(data["y"].values).sum()) if "y" in data else 0
        groups = (sorted(set(map(str, data["group"].values))) if "group" in data else [])
        title = attrs.get("title") or ""
        parts.append(
            "<p>" + (f"{html.escape(str(title))}.<br>" if title else "")
            + f"Source: <code>{html.escape(str(attrs.get('source', '?')))}</code>. "
            f"{n_pairs:,} pairs, {data.sizes.get('judge', 0)} judges, "
            f"{data.sizes.get('property', 0)} properties, {len(groups)} groups "
            f"({html.escape(', '.join(groups[:12]))}{', ...' if len(groups) > 12 else ''}); "
            f"{n_labels:,} labels. {int(attrs.get('n_dropped', 0)):,} pairs were dropped by "
            "the accuracy rule.</p>")
    if spec is not None:
        levels = getattr(spec, "levels", {}) or {}
        level_names = list(levels) if isinstance(levels, dict) else list(levels)
        parts.append(
            f"<p>Model: <b>{html.escape(str(getattr(spec, 'name', '?')))}</b> "
            f"(levels on: {html.escape(', '.join(map(str, level_names)) or 'none')}). "
            "A Bradley-Terry model with property covariates: logit P(judge j prefers "
            "response 1 on pair i) = bias[j] + &Sigma;<sub>k</sub> x[i,k] w[j,g(i),k], with "
            "w[j,g,k] = mu[k] + judge[j,k] + group[g,k] + cell[j,g,k] for the hierarchical "
            "model. The display scale is 100&middot;sigmoid(w): the probability that the "
            "response better on this property alone is preferred.</p>")
    try:
        from bayesdissect.queries.weights import as_posterior

        p = as_posterior(fit)
        st = dict(getattr(fit, "settings", None) or {})
        how = (f"Sampler {html.escape(str(st['sampler']))}, " if st.get("sampler") else "")
        tune = f" after {st['tune']} tuning draws" if st.get("tune") is not None else ""
        seed = f", seed {st['seed']}" if st.get("seed") is not None else ""
        parts.append(f"<p class=muted>{how}{p.sizes['chain']} chains &times; "
                     f"{p.sizes['draw']} draws{tune}{seed}; intervals are equal-tailed at "
                     f"{findings.prob:.0%}.</p>")
    except (TypeError, KeyError):
        pass
    return "\n".join(parts)


def _ul(items: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{s}</li>" for s in items) + "</ul>" if items else ""


@dataclass
class _Figure:
    file: str
    caption: str


def _figures(fit: Any, f: Findings, folder: Path, dpi: int) -> list[_Figure]:
    """Draw and save every figure the fit supports; returns them in report order."""
    from matplotlib.figure import Figure

    from bayesdissect.report import figures as plots

    out: list[_Figure] = []

    def save(fig: Figure, name: str, caption: str) -> None:
        fig.savefig(folder / name, dpi=dpi)
        out.append(_Figure(name, caption))

    eff = f.effects
    shown = [display_name(j) for j in f.judges]
    if "judge" in f.levels and f.judges:
        save(plots.plot_preferences(eff, f.judges, prob=f.prob), "preferences.png",
             f"Probability of being preferred for {_names(shown)} when a response is better "
             "on one property alone (averaged over groups). Filled dots: the interval "
             "excludes 50%.")
        if "cell" in f.levels and eff["group"].replace("", np.nan).dropna().nunique() > 1:
            save(plots.plot_preferences(eff, f.judges, groups="all", prob=f.prob),
                 "preferences_by_group.png",
                 "The same per group (cell weights), with the average first.")
        judge_rows = eff[eff["level"] == "judge"]
        if judge_rows["judge"].nunique() >= 3:
            spread = judge_rows.groupby("property", sort=False)["mean"].std()
            prop = str(spread.idxmax())
            save(plots.plot_forest(eff, property=prop, highlight=f.reference), "forest.png",
                 f"The property on which the judges disagree most, {_p(prop)}: its effect "
                 "for every judge (red: the reference judge).")
        for judge in f.judges[:2]:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in judge)
            save(plots.plot_forest(eff, judge=judge, scale="weight"), f"forest_{safe}.png",
                 f"Every effect of {_j(judge)} on the log-odds scale, sorted.")
    if f.similarity is not None:
        order = None
        if f.clusters is not None and len(f.clusters.judges) > 2:
            from scipy.cluster.hierarchy import leaves_list

            order = [f.clusters.judges[i] for i in leaves_list(f.clusters.linkage)]
        save(plots.plot_similarity(f.similarity, order=order, prob=f.prob), "similarity.png",
             "Judge similarity (the paper's: correlation of weight vectors per group, "
             "averaged over groups), posterior mean per pair, ordered by the clustering; "
             "right: the width of each credible interval.")
        if f.clusters is not None:
            save(plots.plot_dendrogram(f.clusters.linkage, f.clusters.judges,
                                       f.clusters.coclustering, k=f.clusters.k),
                 "clusters.png",
                 "Clustering of the posterior-mean similarities, and for every pair of "
                 "judges the share of posterior draws in which the same clustering puts "
                 "them together.")
        data = getattr(fit, "data", None)
        if f.reference and data is not None and "judge_size" in data.coords:
            sizes = dict(zip(map(str, data["judge"].values),
                             data["judge_size"].values.astype(float), strict=True))
            types = (dict(zip(map(str, data["judge"].values),
                              map(str, data["judge_type"].values), strict=True))
                     if "judge_type" in data.coords else {})
            known = [j for j, s in sizes.items() if j != f.reference and np.isfinite(s)]
            if len(known) >= 3:
                save(plots.plot_size_similarity(f.similarity, f.reference, sizes, types),
                     "size_similarity.png",
                     f"Similarity to {_j(f.reference)} against judge size (billions of "
                     "parameters; proprietary models at nominal sizes).")
    if f.ppc is not None:
        save(plots.plot_calibration(f.ppc.calibration), "calibration.png",
             "Posterior predictive calibration: for labels binned by their predicted "
             "probability, the observed share preferring response 1.")
        if len(f.ppc.agreement):
            save(plots.plot_agreement(f.ppc.agreement), "agreement.png",
                 "How often two judges agree: observed against replicated from the "
                 "posterior, for every pair of judges.")
    counterfactual_figures(f, save)
    return out


def _write_tables(f: Findings, folder: Path) -> dict[str, str]:
    """CSV files beside the report; returns {file: description}."""
    files: dict[str, str] = {}
    f.effects.to_csv(folder / "effects.csv", index=False)
    files["effects.csv"] = "property effects at every level"
    if f.similarity is not None:
        f.similarity.to_csv(folder / "similarity.csv", index=False)
        files["similarity.csv"] = "similarity of every pair of judges with intervals"
    if f.clusters is not None:
        info = f.clusters.clusters.set_index("cluster")
        assign = f.clusters.assignments()
        assign["members"] = assign["cluster"].map(info["members"])
        assign.to_csv(folder / "clusters.csv", index=False)
        files["clusters.csv"] = "cluster of every judge, cluster stability and mates"
        f.clusters.pairs().to_csv(folder / "coclustering.csv", index=False)
        files["coclustering.csv"] = "co-clustering probability of every pair of judges"
    if f.contrasts is not None:
        f.contrasts.to_csv(folder / "contrasts.csv", index=False)
        files["contrasts.csv"] = f"every judge minus {display_name(f.reference or '')}"
    if f.ppc is not None:
        f.ppc.summary().to_csv(folder / "checks.csv", index=False)
        files["checks.csv"] = "posterior predictive checks"
    files.update(counterfactual_tables(f, folder))
    return files


def render_html(fit: Any, f: Findings, figures: list[_Figure], files: dict[str, str],
                diag_ok: bool, diag_text: list[str]) -> str:
    """The report page (no external resources; figures are the PNG files beside it)."""
    data = getattr(fit, "data", None)
    simulated = data is not None and int(data.attrs.get("simulated", 0)) == 1
    title = "bayesdissect report" + (" (SIMULATED data)" if simulated else "")
    s = f.sentences
    body = [f"<h1>{title}</h1>",
            f"<p class=muted>Written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by bayesdissect "
            f"{__version__}. Intervals: equal-tailed, {f.prob:.0%}.</p>",
            "<h2>Data and model</h2>", _data_section(fit, f),
            "<h2>Convergence</h2>",
            f'<div class="{"ok" if diag_ok else "warn"}">{_ul(diag_text)}</div>',
            "<h2>Headline findings</h2>"]
    if simulated:
        body.append('<p class="banner">Simulated data: these findings describe the '
                    "simulation's known weights, not real judges.</p>")
    for key, heading in [("effects", "What the featured judges reward and penalise"),
                         ("contrasts", f"Who differs from {display_name(f.reference or '')}"),
                         ("similarity", "Similarity"), ("clusters", "Clusters"),
                         ("size", "Size"), ("checks", "Does the model reproduce the data?"),
                         *COUNTERFACTUAL_HEADINGS]:
        if s.get(key):
            body += [f"<h3>{html.escape(heading)}</h3>", _ul(s[key])]
    summary = f.summary(max_rows=40)
    if not summary.empty:
        body += ["<h3>Summary per judge</h3>", _table(summary)]
    if f.ppc is not None and f.ppc.flagged()["agreement_pairs"]:
        worst = f.ppc.worst_agreement(8)[["judge_a", "judge_b", "n", "observed", "rep_mean",
                                          "rep_lower", "rep_upper", "ppp"]]
        body += ["<h3>Judge pairs whose agreement fits worst</h3>", _table(worst)]
    body.append("<h2>Figures</h2>")
    for fig in figures:
        body.append(f'<figure><img src="{html.escape(fig.file)}" alt="{html.escape(fig.file)}">'
                    f"<figcaption>{fig.caption}</figcaption></figure>")
    body.append("<h2>Tables</h2><ul>" + "".join(
        f'<li><a href="{html.escape(name)}">{html.escape(name)}</a>: {html.escape(desc)}</li>'
        for name, desc in files.items()) + "</ul>")
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _replace_dir(tmp: Path, target: Path) -> None:
    """Move the finished ``tmp`` folder onto ``target`` (an earlier report is replaced
    only now, after everything was written)."""
    if not target.exists():
        os.replace(tmp, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    old.rmdir()
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except OSError:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def check_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Raise unless ``out_dir`` is new, empty, or an earlier report folder (so a report
    never replaces a folder of other files); call it before long work."""
    target = Path(out_dir)
    if target.exists() and (not target.is_dir() or (
            any(target.iterdir()) and not (target / REPORT_FILE).exists())):
        raise BayesDissectError(
            f"--out {target}: exists and is not an earlier report folder; expected a new or "
            f"empty folder, or one holding {REPORT_FILE} (it is replaced)")
    return target


def write_report(fit: Any, out_dir: str | os.PathLike[str], judges: Sequence[str] | None = None,
                 *, prob: float = 0.9, k: int | None = None, checks: bool = True,
                 dpi: int = 110, findings: Findings | None = None,
                 progress: Callable[[str], None] | None = None) -> Path:
    """Write ``report.html`` with its figures and CSV tables into ``out_dir``; return the
    path of ``report.html``.

    ``judges``: the judges to feature (default human and GPT-4-Turbo when present).
    ``prob``: interval probability. ``k``: number of clusters (default: the clusters
    module's rule). ``checks``: run the posterior predictive checks. ``findings``: reuse
    already computed findings. ``out_dir`` must be new, empty, or an earlier report folder
    (one holding ``report.html``); it is replaced only once the new report is complete.
    """
    target = check_out_dir(out_dir)
    f = findings or compute_findings(fit, judges, prob=prob, k=k, checks=checks,
                                     progress=progress)
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
        f.sentences["similarity"] = similarity_sentences(f.similarity, f.reference, f.prob)
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
    counterfactual_sentences(f)
    diag_ok, diag_text = diagnostics_sentences(dict(getattr(fit, "diagnostics", None) or {}))

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a report folder is meant to be shared
    try:
        if progress:
            progress("figures")
        figures = _figures(fit, f, tmp, dpi)
        files = _write_tables(f, tmp)
        (tmp / REPORT_FILE).write_text(render_html(fit, f, figures, files, diag_ok, diag_text),
                                       encoding="utf-8")
        _replace_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target / REPORT_FILE


# ----------------------------------------------------------------------------- what-if

#: The report's what-if: equalise this property (the AlpacaEval length-control question).
WHATIF_PROPERTY = "lengthy"
_NOT_CAUSAL_HTML = ("These are the fitted model's counterfactuals of an observational "
                    "regression, not causal experiments: they say what the weights predict "
                    "if only the named comparison changed, everything else about each pair "
                    "kept as it is.")


def compute_counterfactuals(fit: Any, f: Findings,
                            progress: Callable[[str], None] | None = None) -> None:
    """Fill ``f.whatif`` (the featured judges' win rate with one property equalised),
    ``f.exploit`` (every judge x property) and ``f.departs`` (featured judges vs the
    reference) when the fit carries its data."""
    from bayesdissect.queries.whatif import departs, exploitability, whatif

    if getattr(fit, "data", None) is None or not f.judges:
        return
    say = progress or (lambda _m: None)
    props = [str(p) for p in fit.data["property"].values]
    say("counterfactual win rates")
    f.exploit = exploitability(fit, prob=f.prob)
    prop = WHATIF_PROPERTY if WHATIF_PROPERTY in props else _largest_weight(f, props)
    f.whatif = whatif(fit, {prop: 0}, judges=f.judges, by_group=True, prob=f.prob)
    f.whatif.attrs["property"] = prop
    others = [j for j in f.judges if j != f.reference]
    if f.reference and others:
        f.departs = departs(fit, others, reference=f.reference, prob=f.prob)


def _largest_weight(f: Findings, props: list[str]) -> str:
    """The property with the largest mean |judge-level weight| over the featured judges
    (the global level where the fit has no judge level)."""
    eff = f.effects
    rows = eff[(eff["level"] == "judge") & eff["judge"].isin(f.judges)]
    if rows.empty:
        rows = eff[eff["level"] == "global"]
    if rows.empty:
        return props[0]
    return str(rows.assign(a=rows["mean"].abs()).groupby("property")["a"].mean().idxmax())


def _pp(m: float, lo: float, hi: float) -> str:
    """'+9.1 points [7.8, 10.4]'."""
    return f"{m:+.1f} points [{lo:+.1f}, {hi:+.1f}]"


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


#: (sentence key, heading) of the what-if sections, in report order.
COUNTERFACTUAL_HEADINGS = [("whatif", "What if a property were equalised?"),
                           ("exploit", "How exploitable is each judge?"),
                           ("departs", "Where the judges depart from the reference")]


def counterfactual_figures(f: Findings, save: Callable[[Any, str, str], None]) -> None:
    """The exploitability heatmap and the first featured judge's departure chart."""
    from bayesdissect.report import figures as plots

    if f.exploit is not None and not f.exploit.empty:
        save(plots.plot_exploitability(f.exploit, reference=f.reference, prob=f.prob),
             "exploitability.png",
             "Exploitability: the change in each judge's win rate (points) when response 1 "
             "wins a property on every pair; the reference judge on top; a dot marks an "
             "interval that excludes 0. The model's counterfactual, not an experiment.")
    if f.departs is not None and not f.departs.empty:
        judge = str(f.departs["judge"].iloc[0])
        save(plots.plot_departs(f.departs, judge), "departs.png",
             f"Where {_j(judge)} departs from {_j(f.reference or '')}: the disagreement in "
             "predicted probability, split by property, with credible intervals.")


def counterfactual_tables(f: Findings, folder: Path) -> dict[str, str]:
    """whatif.csv, exploitability.csv and departs.csv beside the report."""
    files: dict[str, str] = {}
    for name, table, desc in (
            ("whatif.csv", f.whatif, "featured judges' win rates with one property equalised"),
            ("exploitability.csv", f.exploit, "gain and loss of always winning / losing "
             "each property, every judge"),
            ("departs.csv", f.departs, "each featured judge's disagreement with the "
             "reference, by property")):
        if table is not None and not table.empty:
            table.to_csv(folder / name, index=False)
            files[name] = desc
    return files
