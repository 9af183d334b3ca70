"""What a report states, computed once from a fit: the ``Findings`` (effects, contrasts
with the reference judge, similarity, clusters, posterior predictive checks, the what-if
tables) and which judges to feature."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bayesdissect.errors import BayesDissectError
from bayesdissect.report.figures import DEFAULT_JUDGES, display_name, similarity_to

#: The report's what-if: equalise this property (the AlpacaEval length-control question).
WHATIF_PROPERTY = "lengthy"
#: The report sections whose confidence each flag of the predictive checks weakens:
#: dependence left out attenuates every weight and narrows its interval (so everything
#: built on the weights); miscalibrated predictions weaken the predicted win rates.
WEAKENS: dict[str, tuple[str, ...]] = {
    "dependence": ("effects", "contrasts", "similarity", "clusters", "size", "whatif",
                   "exploit", "departs"),
    "miscalibration": ("checks", "whatif", "exploit", "departs"),
}


@dataclass
class Findings:
    """Everything the report states, computed once; ``summary`` is the short table the
    CLI prints."""

    judges: list[str]
    reference: str | None
    prob: float
    effects: pd.DataFrame
    similarity: pd.DataFrame | None = None
    similarity_paper: pd.DataFrame | None = None
    clusters: Any = None
    contrasts: pd.DataFrame | None = None
    ppc: Any = None
    loo: Any = None
    levels: tuple[str, ...] = ()
    sentences: dict[str, list[str]] = field(default_factory=dict)
    whatif: pd.DataFrame | None = None
    exploit: pd.DataFrame | None = None
    departs: pd.DataFrame | None = None

    def flagged_checks(self) -> list[str]:
        """The checks the posterior predictive checks flag (dependence, miscalibration)."""
        if self.ppc is None or self.ppc.flags.empty:
            return []
        fl = self.ppc.flags
        return [str(c) for c in fl.loc[fl["flagged"].astype(bool), "check"]]

    def warnings(self) -> list[str]:
        """The flags in words (``PPCResult.warnings``), for the top of the report."""
        return self.ppc.warnings() if self.ppc is not None else []

    def weakened_by(self, section: str) -> list[str]:
        """The flagged checks that weaken a report section (``WEAKENS``)."""
        return [c for c in self.flagged_checks() if section in WEAKENS.get(c, ())]

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
    reference judge (human when present), similarity (the default kind, agreement, when
    the fit carries its data, else the paper's; ``similarity_paper`` the paper's kind
    beside it), clusters on the same similarity, (``checks``) PSIS-LOO once and the
    posterior predictive checks on it (their calibration is leave-one-out) and
    (``counterfactuals``) the what-if queries."""
    from bayesdissect.model.fitted import as_posterior
    from bayesdissect.queries.clusters import cluster_matrices
    from bayesdissect.queries.effects import all_effects, contrast
    from bayesdissect.queries.similarity import (
        DEFAULT_KIND,
        pair_table,
        similarity,
        similarity_matrices,
    )
    from bayesdissect.queries.weights import available_levels

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
        kind = DEFAULT_KIND if getattr(fit, "data", None) is not None else "paper"
        draws, of_means, sim_judges = similarity_matrices(fit, kind)
        f.similarity = pair_table(draws, of_means, sim_judges, prob, kind)
        f.similarity_paper = (f.similarity if kind == "paper"
                              else similarity(fit, kind="paper", prob=prob))
        if len(fit_judges) >= 3:
            say("clusters")
            f.clusters = cluster_matrices(draws, of_means, sim_judges, k, kind)
    if checks and getattr(fit, "data", None) is not None:
        from bayesdissect.queries.predictive import loo, ppc

        say("PSIS-LOO")
        f.loo = loo(fit)
        say("posterior predictive checks")
        f.ppc = ppc(fit, prob=prob, loo_result=f.loo)
    if counterfactuals:
        compute_counterfactuals(fit, f, say)
    return f


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
