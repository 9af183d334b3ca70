"""One self-contained HTML report of a fit: data and model, convergence in plain words,
headline findings computed as sentences with their credible intervals, the figures, and
the tables as CSV files beside it.

``write_report(fit, out_dir)`` builds everything in a temporary folder next to ``out_dir``
and renames it into place only when all of it was written (``bayesdissect._io.atomic_dir``),
so a failed run never leaves a half-written report or clobbers an earlier one. The findings
are computed in ``findings.py`` and put in words in ``sentences.py``; this module renders.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesdissect import __version__
from bayesdissect._io import REPORT_FILE, atomic_dir, check_out_dir
from bayesdissect.report.figures import display_name
from bayesdissect.report.findings import Findings, compute_findings
from bayesdissect.report.sentences import _j, _names, _p, diagnostics_sentences, fill_sentences

#: How to run the same analysis on the real data (shown when the data are simulated).
REAL_DATA_HOWTO = (
    "bayesdissect fit hf:GAIR/preference-dissection --out gair-fit.nc\n"
    "bayesdissect report gair-fit.nc --out gair-report"
)

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
.flags{background:#fdecea;border:2px solid #c62828;padding:.6em 1em;border-radius:6px;
font-size:1.05em}
.weakened{color:#b71c1c;font-size:.92em;margin:.2em 0}
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
        pair = "pair" in level_names  # u[i]: a latent quality of pair i every judge sees
        parts.append(
            f"<p>Model: <b>{html.escape(str(getattr(spec, 'name', '?')))}</b> "
            f"(levels on: {html.escape(', '.join(map(str, level_names)) or 'none')}). "
            "A Bradley-Terry model with property covariates: logit P(judge j prefers "
            "response 1 on pair i) = bias[j] + " + ("u[i] + " if pair else "")
            + "&Sigma;<sub>k</sub> x[i,k] w[j,g(i),k], with "
            "w[j,g,k] = mu[k] + judge[j,k] + group[g,k] + cell[j,g,k] for the hierarchical "
            "model" + (", and u[i] ~ Normal(0, sigma_pair) a quality of pair i that every "
                       "judge sees and the properties miss" if pair else "")
            + ". The display scale is 100&middot;sigmoid(w): the probability that the "
            "response better on this property alone is preferred.</p>")
    try:
        from bayesdissect.model.fitted import as_posterior

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


def _words(text: str) -> str:
    """Plain text as HTML: escaped, `spec` names as code."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def flags_box(f: Findings) -> str:
    """The box at the top of the report: each flag of the predictive checks in words
    (what it weakens, the spec that addresses it); empty when nothing is flagged."""
    warns = f.warnings()
    if not warns:
        return ""
    return ('<div class="flags" id="check-flags"><b>The posterior predictive checks flag '
            "a problem; the findings marked below are weakened by it.</b>"
            + _ul([_words(w) for w in warns]) + "</div>")


def _weakened(f: Findings, section: str) -> str:
    """A mark on a section whose confidence a flagged check weakens ('' when none)."""
    checks = f.weakened_by(section)
    if not checks:
        return ""
    read = {"dependence": "its weights as attenuated towards 0 and their intervals as too "
                          "narrow",
            "miscalibration": "its predicted probabilities and win rates with care"}
    return ('<p class="weakened">&#9888; Weakened by the ' + html.escape(" and ".join(checks))
            + " warning at the top: read " + "; and ".join(read.get(c, "it with care")
                                                         for c in checks) + ".</p>")


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
        what = ("the predicted agreement: how often two judges would choose the same "
                "response on these pairs" if f.similarity.attrs.get("kind") == "agreement"
                else "the paper's: correlation of weight vectors per group, averaged over "
                "groups")
        save(plots.plot_similarity(f.similarity, order=order, prob=f.prob), "similarity.png",
             f"Judge similarity ({what}), posterior mean per pair, ordered by the "
             "clustering; right: the width of each credible interval.")
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


def _write_tables(f: Findings, folder: Path) -> dict[str, str]:
    """CSV files beside the report; returns {file: description}."""
    files: dict[str, str] = {}
    f.effects.to_csv(folder / "effects.csv", index=False)
    files["effects.csv"] = "property effects at every level"
    if f.similarity is not None:
        f.similarity.to_csv(folder / "similarity.csv", index=False)
        files["similarity.csv"] = (f"similarity ({f.similarity.attrs.get('kind', 'paper')}) "
                                   "of every pair of judges with intervals")
        if f.similarity_paper is not None and f.similarity_paper is not f.similarity:
            f.similarity_paper.to_csv(folder / "similarity_paper.csv", index=False)
            files["similarity_paper.csv"] = ("the paper's similarity (correlation of weight "
                                             "vectors) of every pair; of_means is the "
                                             "paper's number")
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
        f.ppc.flags.to_csv(folder / "flags.csv", index=False)
        files["flags.csv"] = ("what the checks can flag (dependence, miscalibration), with "
                              "p-values and the spec that addresses each")
    files.update(counterfactual_tables(f, folder))
    return files


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


#: (sentence key, heading) of the what-if sections, in report order.
COUNTERFACTUAL_HEADINGS = [("whatif", "What if a property were equalised?"),
                           ("exploit", "How exploitable is each judge?"),
                           ("departs", "Where the judges depart from the reference")]


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
            flags_box(f),
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
            body += [f"<h3>{html.escape(heading)}</h3>", _weakened(f, key), _ul(s[key])]
    summary = f.summary(max_rows=40)
    if not summary.empty:
        body += ["<h3>Summary per judge</h3>", _weakened(f, "effects"), _table(summary)]
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
    fill_sentences(fit, f)
    diag_ok, diag_text = diagnostics_sentences(dict(getattr(fit, "diagnostics", None) or {}))

    with atomic_dir(target) as tmp:
        if progress:
            progress("figures")
        figures = _figures(fit, f, tmp, dpi)
        files = _write_tables(f, tmp)
        (tmp / REPORT_FILE).write_text(render_html(fit, f, figures, files, diag_ok, diag_text),
                                       encoding="utf-8")
    return target / REPORT_FILE
