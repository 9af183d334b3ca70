"""Commands that answer questions of a saved fit: effects, compare, similarity, clusters,
ppc (posterior predictive checks) and compare-models. Every table goes through
``output.emit`` (``--format table|csv|json``, ``--out FILE``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bayesdissect.cli.output import add_output_args, emit


def _load(path: str) -> Any:
    from bayesdissect.model.fitted import load_fit
    return load_fit(path)


def _prob(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prob", type=float, default=0.9,
                        help="probability mass of the equal-tailed interval (default 0.9)")


def _population(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--population", action="store_true",
                        help="a new judge instead of the fitted ones: its predictive weights, "
                        "mu + a new judge offset drawn per posterior draw from the fitted "
                        "prior (Normal(0, sigma_judge^2 (1 + 1/J)) under zero-sum offsets; "
                        "plus the group and a new cell term at --level group/cell); one row "
                        "per property, judge 'new judge', wider intervals than any fitted "
                        "judge's. Not for the paper spec (no population of judges)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the new judge's draws (--population; default 0)")


def _note(args: argparse.Namespace, text: str) -> None:
    """A one-line context note on stderr (tables only, so csv/json stay clean to parse)."""
    if args.format == "table" and not args.out:
        print(text, file=sys.stderr)


def _effects(args: argparse.Namespace) -> int:
    from bayesdissect.queries.effects import effects
    emit(effects(_load(args.fit), args.level, judges=args.judge, groups=args.group,
                 prob=args.prob, population=args.population, seed=args.seed), args)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from bayesdissect.queries.effects import contrast
    emit(contrast(_load(args.fit), args.judge_a, args.judge_b, group=args.group,
                  prob=args.prob), args)
    return 0


def _similarity(args: argparse.Namespace) -> int:
    from bayesdissect.errors import BayesDissectError
    from bayesdissect.queries.similarity import DEFAULT_KIND, KINDS, similarity
    kind = args.kind or DEFAULT_KIND
    if kind not in KINDS:   # before reading the fit
        raise BayesDissectError(f"unknown similarity kind {kind!r}; expected one of "
                                f"{', '.join(KINDS)}")
    emit(similarity(_load(args.fit), kind=kind, group=args.group, prob=args.prob), args)
    return 0


def _clusters(args: argparse.Namespace) -> int:
    from bayesdissect.queries.clusters import clusters
    from bayesdissect.queries.similarity import DEFAULT_KIND
    res = clusters(_load(args.fit), k=args.k, kind=args.kind or DEFAULT_KIND, group=args.group)
    _note(args, f"K = {res.k} ({res.rule}); {res.n_draws} posterior draws; stability = share "
                "of draws in which exactly that cluster appears")
    table = {"clusters": res.clusters, "judges": res.assignments(), "pairs": res.pairs(),
             "silhouette": res.silhouette.rename_axis("k").reset_index()}[args.table]
    emit(table, args)
    return 0


def check_warnings(res: Any) -> list[str]:
    """What the predictive checks ``res`` flag, in words (``PPCResult.warnings``), for the
    top of ``check``'s and ``ppc``'s output; empty when nothing is flagged."""
    return res.warnings(below=False)


def _ppc_notes(args: argparse.Namespace, res: Any) -> None:
    """The context line of each ``ppc`` table (on stderr, tables only)."""
    disp = res.dispersion.set_index("statistic") if not res.dispersion.empty else None
    if args.table == "counts" and disp is not None:
        _note(args, "pairs on which n_chose_1 judges chose response 1, observed vs replicated "
                    f"(ppp per count); the whole distribution: chi-square p = "
                    f"{disp.loc['count_chi2', 'ppp']:.3f}, variance p = "
                    f"{disp.loc['count_variance', 'ppp']:.3f}, excess variance (dependence) "
                    f"p = {disp.loc['count_excess_variance', 'ppp']:.3f}")
    elif args.table == "dispersion":
        _note(args, "the count of judges choosing response 1 per pair: observed vs "
                    "replicated statistics, mid-p values (excess variance: small p = judges "
                    "agree within pairs more than the model replicates)")
    elif args.table in ("calibration", "reliability"):
        a = res.reliability.attrs
        _note(args, f"leave-one-out (PSIS-LOO) probabilities; "
                    f"{'PAV blocks' if args.table == 'reliability' else 'equal-width bins'}; "
                    f"Brier {a.get('brier', float('nan')):.4f} = miscalibration "
                    f"{a.get('mcb', float('nan')):.4f} - discrimination "
                    f"{a.get('dsc', float('nan')):.4f} + uncertainty "
                    f"{a.get('unc', float('nan')):.4f}; miscalibration p = "
                    f"{a.get('p_value', float('nan')):.3f}; ECE "
                    f"{res.calibration.attrs.get('ece', float('nan')):.4f}")
    else:
        fl = res.flagged()
        sc = res.scores.set_index("judge").loc["all"]
        _note(args, f"{res.n_draws} draws; accuracy {sc.accuracy:.3f}, log score "
                    f"{sc.log_score:.3f} (coin: -0.693); flagged (p < 0.025 or > 0.975): "
                    f"{fl['judges']} judges, {fl['groups']} groups, {fl['agreement_pairs']} of "
                    f"{fl['agreement_pairs_total']} judge pairs' agreement")


def _ppc(args: argparse.Namespace) -> int:
    from bayesdissect.queries.predictive import loo, ppc
    fit = _load(args.fit)
    lr = loo(fit)  # once: the LOO table, and the calibration of the checks
    if args.table == "loo":
        _note(args, f"elpd_loo = {lr.elpd_loo:.1f} (se {lr.se:.1f}), p_loo = {lr.p_loo:.1f}, "
                    f"{lr.n_bad_k} of {lr.n_obs} entries with Pareto k > "
                    f"{lr.k_threshold:.2f}")
        emit(lr.by_judge, args)
        return 0
    res = ppc(fit, seed=args.seed, n_bins=args.bins, prob=args.prob, loo_result=lr)
    for line in check_warnings(res):  # what the checks flag comes first, in any format
        print(line, file=sys.stderr)
    _ppc_notes(args, res)
    emit(res.tables()[args.table], args)
    return 0


def _compare_models(args: argparse.Namespace) -> int:
    from bayesdissect.errors import BayesDissectError
    from bayesdissect.queries.predictive import compare_models
    if len(args.fits) < 2:
        raise BayesDissectError("compare-models needs at least two fits")
    fits = [_load(p) for p in args.fits]
    names = [str(getattr(getattr(f, "spec", None), "name", "") or Path(p).stem)
             for f, p in zip(fits, args.fits, strict=True)]
    if len(set(names)) < len(names):  # same spec twice: name them by file
        names = [Path(p).stem for p in args.fits]
    emit(compare_models(fits, names=names), args)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the query commands to the ``bayesdissect`` dispatcher."""
    p = sub.add_parser("effects", help="property effects with credible intervals",
                       description="Posterior mean, sd, equal-tailed interval, P(w > 0) and "
                       "the paper's 100*sigmoid(w) scale of every property weight at a level.")
    p.add_argument("fit", metavar="FIT", help="a saved fit (bayesdissect fit ... --out FIT)")
    # no argparse choices for --level / --kind: a wrong value is a one-line
    # BayesDissectError naming the options (argparse would print the usage block too)
    p.add_argument("--level", default="judge", metavar="LEVEL",
                   help="global | judge | group | cell: judge = the judge's weights averaged "
                   "over the fitted groups (the paper's average); group = averaged over "
                   "judges; global = over both; cell = full w[judge, group] (default: judge)")
    p.add_argument("--judge", nargs="+", default=None, metavar="JUDGE", help="only these judges")
    _population(p)
    p.add_argument("--group", nargs="+", default=None, metavar="GROUP", help="only these groups")
    _prob(p)
    add_output_args(p)
    p.set_defaults(func=_effects)

    p = sub.add_parser("compare", help="judge A minus judge B, property by property",
                       description="Posterior of w_A - w_B per property with interval and "
                       "P(w_A > w_B); biggest credible differences first.")
    p.add_argument("fit", metavar="FIT")
    p.add_argument("judge_a", metavar="JUDGE_A")
    p.add_argument("judge_b", metavar="JUDGE_B")
    p.add_argument("--group", default=None, help="compare cell weights in this group "
                   "(default: judge level, averaged over groups)")
    _prob(p)
    add_output_args(p)
    p.set_defaults(func=_compare)

    p = sub.add_parser("similarity", help="judge similarity with intervals",
                       description="The similarity of every pair of judges per posterior "
                       "draw: mean and interval, and of_means = the same of posterior means "
                       "(for --kind paper the paper's number: Pearson correlation of two "
                       "judges' weight vectors per group, averaged over groups).")
    p.add_argument("fit", metavar="FIT")
    p.add_argument("--kind", default=None, metavar="KIND",
                   help="agreement | paper | kappa | deviation (default agreement, as in the "
                   "report and bd.similarity: the judges' predicted agreement on the fitted "
                   "pairs, the kind whose 90%% intervals covered simulated truth in every "
                   "regime, benchmarks/RESULTS.md). paper = "
                   "correlation of the full weights; deviation = of the judge + cell terms "
                   "only (not inflated by what all judges share; zero-sum deviations sum to "
                   "zero over the J judges, which pulls their correlation to -1/(J-1) for "
                   "unrelated judges, so deviation reports ((J-1) r + 1) / J: 0 for "
                   "unrelated judges, 1 for identical ones). agreement = the probability "
                   "that the two judges choose the same response, predicted on the fitted "
                   "pairs; kappa = that agreement "
                   "chance-corrected against each judge's own rate of response 1. The "
                   "correlations' intervals are too narrow where the true weights are "
                   "sparse (noise in weights the data hardly constrain); agreement and "
                   "kappa rest on predictions, which are better identified")
    p.add_argument("--group", default=None, help="one group instead of the group average")
    _prob(p)
    add_output_args(p)
    p.set_defaults(func=_similarity)

    p = sub.add_parser("clusters", help="judge clusters with co-clustering probabilities",
                       description="Average-linkage clustering on 1 - similarity of posterior "
                       "means, repeated on every draw: stability of each cluster and "
                       "co-clustering probability of every pair.")
    p.add_argument("fit", metavar="FIT")
    p.add_argument("--k", type=int, default=None,
                   help="number of clusters (default: max mean silhouette over 2..min(10, J-1))")
    p.add_argument("--kind", default=None, metavar="KIND",
                   help="agreement | paper | kappa | deviation (as in similarity; default "
                   "agreement)")
    p.add_argument("--group", default=None, help="cluster on one group's similarity")
    p.add_argument("--table", default="clusters",
                   choices=["clusters", "judges", "pairs", "silhouette"],
                   help="what to print (default: clusters)")
    add_output_args(p)
    p.set_defaults(func=_clusters)

    p = sub.add_parser("ppc", help="posterior predictive checks",
                       description="Posterior predictive checks, observed vs replicated: "
                       "the distribution over pairs of how many judges chose response 1 "
                       "(counts, dispersion: its p-values test dependence between judges), "
                       "agreement of every judge pair, the share of 'response 1' per judge "
                       "and group, accuracy, log score, calibration of the leave-one-out "
                       "probabilities (calibration: bins; reliability: PAV), and flags "
                       "(dependence, miscalibration, with the spec that addresses each; "
                       "printed first when raised); --table loo for PSIS-LOO per judge.")
    p.add_argument("fit", metavar="FIT")
    p.add_argument("--table", default="summary",
                   choices=["summary", "flags", "counts", "dispersion", "reliability",
                            "calibration", "judges", "groups", "agreement", "worst", "scores",
                            "loo"],
                   help="what to print (default: summary): flags = dependence and "
                   "miscalibration with p-values and remedies; counts = pairs by how many "
                   "judges chose response 1, observed vs replicated; dispersion = that "
                   "count's variance statistics and p-values; reliability = PAV "
                   "calibration of the leave-one-out probabilities")
    p.add_argument("--seed", type=int, default=0, help="seed of the replications")
    p.add_argument("--bins", type=int, default=10, help="calibration bins (default 10)")
    _prob(p)
    add_output_args(p)
    p.set_defaults(func=_ppc)

    p = sub.add_parser("compare-models", help="rank fits by PSIS-LOO elpd",
                       description="Expected log predictive density (PSIS-LOO) of each fit of "
                       "the same data, best first, with standard errors of the differences.")
    p.add_argument("fits", nargs="+", metavar="FIT")
    add_output_args(p)
    p.set_defaults(func=_compare_models)
