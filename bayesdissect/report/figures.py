"""Figures for a fit: each function takes the plain tables the queries return and
returns a ``matplotlib.figure.Figure``.

Figures are built on ``matplotlib.figure.Figure`` directly, never through ``pyplot``, so
they work without a display (Agg), leave no global state behind, and are garbage-collected
like any object. Save one with ``fig.savefig("x.png", dpi=150)``; in a notebook it shows
itself.

* :func:`plot_preferences` -- the paper's main view: 100*sigmoid(w) per property, one judge
  per colour, with credible intervals and the 50% line; averaged and per group.
* :func:`plot_forest` -- effects of one judge over properties, or of one property over judges.
* :func:`plot_similarity` -- the judge similarity matrix ordered by clustering, with the
  credible-interval width as a second panel.
* :func:`plot_dendrogram` -- the clustering of judges with the co-clustering probabilities.
* :func:`plot_calibration`, :func:`plot_agreement` -- posterior predictive checks.
* :func:`plot_size_similarity` -- similarity to a reference judge against judge size.
* :func:`plot_exploitability`, :func:`plot_explain`, :func:`plot_departs` -- the what-if
  queries: the judges x properties gain heatmap, one pair's logit waterfall, and where a
  judge departs from the reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bayesdissect.data.catalogue import judge_info
from bayesdissect.errors import BayesDissectError
from bayesdissect.queries.similarity import PREDICTIVE_KINDS

#: The judges of the paper's main figure.
DEFAULT_JUDGES: tuple[str, ...] = ("human", "gpt-4-1106-preview")

_TYPE_COLOURS = {"base": "#1f77b4", "aligned": "#ff7f0e", "proprietary": "#2ca02c",
                 "human": "#d62728", "unknown": "#7f7f7f"}
_TYPE_MARKERS = {"base": "o", "aligned": "s", "proprietary": "D", "human": "*",
                 "unknown": "^"}


def display_name(judge: str) -> str:
    """The paper's display name of a judge key (the key itself for unknown judges)."""
    return judge_info(judge).display


def _colours(n: int) -> list:
    """n distinct colours: tab10, then tab20 for more."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise BayesDissectError(
            f"{what}: table lacks column(s) {', '.join(missing)}; expected {', '.join(columns)}")


def _ordered_unique(values: pd.Series) -> list:
    return list(dict.fromkeys(values.tolist()))


# --------------------------------------------------------------------------- (a) main view

_EFFECT_COLUMNS = ("level", "judge", "group", "property", "mean", "lower", "upper",
                   "pref_mean", "pref_lower", "pref_upper")


def _preference_panel(ax, rows: pd.DataFrame, judges: Sequence[str], properties: list[str],
                      colours: list, show_labels: bool) -> None:
    """One panel: properties top to bottom, one dodged interval per judge."""
    n = len(judges)
    step = 0.7 / max(n, 1)
    y_base = np.arange(len(properties))[::-1].astype(float)
    pos = {p: y for p, y in zip(properties, y_base, strict=True)}
    for i, (judge, colour) in enumerate(zip(judges, colours, strict=True)):
        sub = rows[rows["judge"] == judge]
        if sub.empty:
            continue
        ys = np.array([pos[p] for p in sub["property"]]) + (n - 1) / 2 * step - i * step
        mean = sub["pref_mean"].to_numpy(float)
        lo = sub["pref_lower"].to_numpy(float)
        hi = sub["pref_upper"].to_numpy(float)
        ax.hlines(ys, lo, hi, color=colour, lw=1.6)
        credible = (lo > 50) | (hi < 50)
        ax.scatter(mean[credible], ys[credible], color=colour, s=18, zorder=3)
        ax.scatter(mean[~credible], ys[~credible], facecolor="white", edgecolor=colour,
                   s=18, zorder=3, linewidths=1.2)
    ax.axvline(50, color="0.35", ls="--", lw=0.9, zorder=0)
    for y in y_base[::2]:
        ax.axhspan(y - 0.5, y + 0.5, color="0.95", zorder=-1, lw=0)
    ax.set_ylim(-0.6, len(properties) - 0.4)
    ax.set_yticks(y_base)
    ax.set_yticklabels(properties, fontsize=7.5)
    ax.tick_params(axis="y", labelleft=show_labels)
    ax.tick_params(axis="x", labelsize=7.5)
    ax.grid(axis="x", color="0.85", lw=0.5)


def plot_preferences(effects: pd.DataFrame, judges: Sequence[str] | None = None,
                     groups: Sequence[str] | str | None = None, *, ncols: int = 4,
                     prob: float | None = None) -> Figure:
    """The paper's main view: probability of being preferred, 100*sigmoid(w), per property.

    ``effects`` is the effects table (columns ``level, judge, group, property, pref_mean,
    pref_lower, pref_upper``, ...). The "average" panel uses the ``judge`` level rows (the
    judge averaged over groups, as the paper averages); one panel per group uses the
    ``cell`` rows. ``groups``: None = the average only, ``"all"`` = the average and every
    group in the table, or a list of group names. A filled dot marks an interval that
    excludes 50%; an open one an interval that includes it. ``prob`` only labels the axis.
    """
    _require(effects, _EFFECT_COLUMNS, "plot_preferences")
    judges = list(judges) if judges is not None else list(DEFAULT_JUDGES)
    present = set(effects["judge"].dropna())
    unknown = [j for j in judges if j not in present]
    if unknown:
        raise BayesDissectError(
            f"plot_preferences: judge(s) {', '.join(unknown)} not in the effects table; "
            f"it has {', '.join(sorted(present)) or 'none'}")
    properties = _ordered_unique(effects["property"])
    cells = effects[(effects["level"] == "cell") & effects["judge"].isin(judges)]
    if groups is None:
        group_list: list[str] = []
    elif isinstance(groups, str) and groups == "all":
        group_list = _ordered_unique(cells["group"].dropna())
    else:
        group_list = [groups] if isinstance(groups, str) else list(groups)
        missing = [g for g in group_list if g not in set(cells["group"])]
        if missing:
            raise BayesDissectError(
                f"plot_preferences: group(s) {', '.join(missing)} have no cell-level effects "
                "for these judges")
    panels: list[tuple[str, pd.DataFrame]] = []
    avg = effects[(effects["level"] == "judge") & effects["judge"].isin(judges)]
    if not avg.empty:
        panels.append(("Averaged over groups", avg))
    panels += [(g, cells[cells["group"] == g]) for g in group_list]
    if not panels:
        raise BayesDissectError("plot_preferences: the effects table has no judge-level rows "
                                "for these judges; pass groups=... for cell-level panels")
    ncols = max(1, min(ncols, len(panels)))
    nrows = -(-len(panels) // ncols)
    height = 0.2 * len(properties) * max(1.0, len(judges) / 2.5) + 1.2
    fig = Figure(figsize=(2.0 + 3.0 * ncols, height * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    colours = _colours(len(judges))
    for k, ax in enumerate(axes.flat):
        if k >= len(panels):
            ax.set_visible(False)
            continue
        title, rows = panels[k]
        _preference_panel(ax, rows, judges, properties, colours, show_labels=k % ncols == 0)
        ax.set_title(title, fontsize=9)
        if k // ncols == nrows - 1 or k + ncols >= len(panels):
            ax.tick_params(axis="x", labelbottom=True)
            ax.set_xlabel("probability of being preferred (%)", fontsize=8)
    handles = [Line2D([], [], color=c, marker="o", lw=1.6, label=display_name(j))
               for j, c in zip(judges, colours, strict=True)]
    label = f"{prob:.0%} credible intervals" if prob else "credible intervals"
    fig.legend(handles=handles, loc="outside upper center", ncols=min(len(judges), 6),
               fontsize=8, frameon=False,
               title=f"{label}; open dot = interval includes 50%", title_fontsize=8)
    return fig


# --------------------------------------------------------------------------- (b) forest


def plot_forest(effects: pd.DataFrame, *, judge: str | None = None,
                property: str | None = None, level: str = "judge", group: str | None = None,
                scale: str = "pref", sort: bool = True, highlight: str | None = "human") -> Figure:
    """Forest plot: one judge's effects over all properties, or one property over judges.

    Give exactly one of ``judge`` and ``property``. ``level`` picks the rows (``judge``:
    the judge averaged over groups; ``cell`` with ``group``; ``global``/``group`` for a
    property's shared effect). ``scale`` = ``"pref"`` (100*sigmoid(w), 50% line) or
    ``"weight"`` (w on the logit scale, 0 line). ``highlight`` draws that judge in red.
    """
    _require(effects, _EFFECT_COLUMNS, "plot_forest")
    if (judge is None) == (property is None):
        raise BayesDissectError("plot_forest: give exactly one of judge= or property=")
    if scale not in ("pref", "weight"):
        raise BayesDissectError(f"plot_forest: scale must be 'pref' or 'weight', not {scale!r}")
    rows = effects[effects["level"] == level]
    if group is not None:
        rows = rows[rows["group"] == group]
    if judge is not None:
        rows = rows[rows["judge"] == judge]
        labels = rows["property"].tolist()
        title = f"{display_name(judge)}: effect of each property"
    else:
        rows = rows[rows["property"] == property]
        labels = [display_name(j) if isinstance(j, str) and j else "(all)"
                  for j in rows["judge"]]
        title = f"'{property}': effect per judge"
    if rows.empty:
        raise BayesDissectError(
            f"plot_forest: no {level}-level rows for "
            f"{'judge ' + judge if judge else 'property ' + str(property)}"
            f"{' in group ' + group if group else ''}")
    if group is not None:
        title += f" ({group})"
    cols = ("pref_mean", "pref_lower", "pref_upper") if scale == "pref" else (
        "mean", "lower", "upper")
    ref = 50.0 if scale == "pref" else 0.0
    mean, lo, hi = (rows[c].to_numpy(float) for c in cols)
    order = np.argsort(mean) if sort else np.arange(len(mean))[::-1]
    ys = np.arange(len(order))
    fig = Figure(figsize=(6.5, 0.24 * len(order) + 1.3), layout="constrained")
    ax = fig.subplots()
    is_hl = np.array([judge is None and highlight is not None and j == highlight
                      for j in rows["judge"]])
    for y, i in zip(ys, order, strict=True):
        colour = "#d62728" if is_hl[i] else ("#1f4e79" if (lo[i] > ref or hi[i] < ref)
                                             else "0.55")
        ax.hlines(y, lo[i], hi[i], color=colour, lw=1.8)
        ax.plot(mean[i], y, "o", color=colour, ms=4.5)
    ax.axvline(ref, color="0.35", ls="--", lw=0.9)
    ax.set_yticks(ys)
    ax.set_yticklabels([labels[i] for i in order], fontsize=8)
    ax.set_ylim(-0.7, len(order) - 0.3)
    ax.grid(axis="x", color="0.88", lw=0.5)
    ax.set_xlabel("probability of being preferred (%)" if scale == "pref"
                  else "weight w (log-odds)", fontsize=9)
    ax.set_title(title + "\nblue: interval excludes the reference line; grey: includes it",
                 fontsize=9)
    return fig


# --------------------------------------------------------------------------- (c) similarity


def pair_matrix(similarity: pd.DataFrame, column: str = "mean",
                judges: Sequence[str] | None = None) -> pd.DataFrame:
    """Square judge x judge matrix of ``column`` from a long table with one row per pair
    (``judge_a, judge_b``: the similarity table, a co-clustering table), for the heatmaps;
    1 on the diagonal. (``bayesdissect.similarity_matrix`` computes matrices from a fit.)"""
    _require(similarity, ("judge_a", "judge_b", column), "pair_matrix")
    if judges is None:
        judges = _ordered_unique(pd.concat([similarity["judge_a"], similarity["judge_b"]]))
    judges = list(judges)
    index = {j: i for i, j in enumerate(judges)}
    mat = np.full((len(judges), len(judges)), np.nan)
    a = similarity["judge_a"].map(index)
    b = similarity["judge_b"].map(index)
    ok = (a.notna() & b.notna()).to_numpy()
    ia, ib = a[ok].astype(int).to_numpy(), b[ok].astype(int).to_numpy()
    v = similarity[column].to_numpy(float)[ok]
    mat[ia, ib] = v
    mat[ib, ia] = v
    np.fill_diagonal(mat, 1.0)
    return pd.DataFrame(mat, index=judges, columns=judges)


def _similarity_order(mat: pd.DataFrame) -> list[str]:
    """Leaf order of average-linkage clustering on 1 - similarity."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    if len(mat) < 3:
        return list(mat.index)
    dist = np.clip(1.0 - mat.to_numpy(float), 0.0, 2.0)
    dist = np.nan_to_num((dist + dist.T) / 2, nan=1.0)
    np.fill_diagonal(dist, 0.0)
    link = linkage(squareform(dist, checks=False), method="average")
    return [mat.index[i] for i in leaves_list(link)]


def _heatmap(fig, ax, mat: np.ndarray, labels: list[str], cmap: str, vmin: float, vmax: float,
             title: str, cbar_label: str, annotate: bool) -> None:
    im = ax.imshow(mat, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    n = len(labels)
    size = 8 if n <= 12 else (6.5 if n <= 24 else 5.5)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(labels, rotation=90, fontsize=size)
    ax.set_yticklabels(labels, fontsize=size)
    ax.set_title(title, fontsize=9)
    if annotate:
        for i in range(n):
            for j in range(n):
                if np.isfinite(mat[i, j]):
                    r, g, b, _ = im.cmap(im.norm(mat[i, j]))
                    dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5  # text readable on the cell
                    ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=6.5,
                            color="white" if dark else "black")
    fig.colorbar(im, ax=ax, shrink=0.75, label=cbar_label)


def plot_similarity(similarity: pd.DataFrame, order: Sequence[str] | None = None,
                    *, column: str = "mean", prob: float | None = None,
                    annotate: bool | None = None) -> Figure:
    """Judge similarity heatmap ordered by clustering, with the interval width beside it.

    ``similarity`` has columns ``judge_a, judge_b, mean, lower, upper`` (one row per
    pair). ``order``: the judges in display order (e.g. the dendrogram's leaves); default
    the leaves of average-linkage clustering on 1 - ``column``. The right panel shows
    upper - lower: how much the posterior leaves each similarity open.
    """
    _require(similarity, ("judge_a", "judge_b", column, "lower", "upper"), "plot_similarity")
    mat = pair_matrix(similarity, column)
    if order is None:
        order = _similarity_order(mat)
    order = [j for j in order if j in mat.index]
    mat = mat.loc[order, order]
    width = similarity.assign(width=similarity["upper"] - similarity["lower"])
    wmat = pair_matrix(width, "width", order).to_numpy(float, copy=True)
    np.fill_diagonal(wmat, np.nan)
    labels = [display_name(j) for j in order]
    n = len(order)
    annotate = n <= 10 if annotate is None else annotate
    side = max(4.0, 0.22 * n + 2.2)
    fig = Figure(figsize=(2 * side + 1.5, side), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    values = mat.to_numpy(float, copy=True)
    kind = similarity.attrs.get("kind", "paper")
    predictive = kind in PREDICTIVE_KINDS
    if predictive:  # a judge with itself is not 1 for these: leave the diagonal blank
        np.fill_diagonal(values, np.nan)
    off = values[~np.eye(n, dtype=bool)]
    finite = off.size and np.isfinite(off).any()
    if predictive and finite:
        # predicted agreement spans a narrow band (e.g. 0.52-0.64): colour that band
        vmin = float(np.floor(np.nanmin(off) * 20) / 20)
        vmax = max(float(np.ceil(np.nanmax(off) * 20) / 20), vmin + 0.05)
    else:  # correlations: up to 1, from a round value below the smallest
        vmin = min(0.9, float(np.floor((np.nanmin(off) if finite else 0.0) * 10) / 10))
        vmax = 1.0
    what = {"agreement": "predicted agreement", "kappa": "predicted kappa"}.get(
        kind, "correlation")
    _heatmap(fig, ax1, values, labels, "viridis", vmin, vmax,
             f"similarity (posterior mean of the {what})" if column == "mean"
             else f"similarity ({column})", "similarity", annotate)
    wmax = float(np.nanmax(wmat)) if np.isfinite(wmat).any() else 1.0
    _heatmap(fig, ax2, wmat, labels, "magma_r", 0.0, max(wmax, 1e-6),
             f"width of the {prob:.0%} credible interval" if prob
             else "credible interval width", "upper - lower", annotate)
    return fig


def _square(table: Any, labels: Sequence[str],
            value: str | None = None) -> np.ndarray:
    """A square matrix over ``labels`` from a square DataFrame, an array, or a long table
    with ``judge_a, judge_b`` and one value column."""
    if isinstance(table, np.ndarray):
        return table
    if hasattr(table, "to_pandas") and getattr(table, "ndim", 0) == 2:  # xarray.DataArray
        table = table.to_pandas()
    if {"judge_a", "judge_b"} <= set(table.columns):
        if value is None:
            numeric = [c for c in table.columns if c not in ("judge_a", "judge_b")
                       and pd.api.types.is_numeric_dtype(table[c])]
            if not numeric:
                raise BayesDissectError("co-clustering table has no numeric column")
            value = numeric[0]
        return pair_matrix(table, value, labels).to_numpy(float)
    return table.loc[list(labels), list(labels)].to_numpy(float)


def plot_dendrogram(linkage: np.ndarray, labels: Sequence[str],
                    coclustering: Any = None, *,
                    value: str | None = None, k: int | None = None) -> Figure:
    """Dendrogram of the judges, with the co-clustering probability matrix in leaf order.

    ``linkage`` is a scipy linkage matrix over ``labels`` (distance 1 - similarity).
    ``coclustering``: for each pair of judges, the share of posterior draws in which they
    fall in the same cluster (square DataFrame / DataArray / array over ``labels`` -- e.g.
    ``ClusterResult.coclustering`` -- or a long table
    with ``judge_a, judge_b`` and the probability in column ``value``). ``k`` colours the
    dendrogram's branches by the k-cluster cut.
    """
    from scipy.cluster.hierarchy import dendrogram

    labels = list(labels)
    linkage = np.asarray(linkage, dtype=float)
    if linkage.ndim != 2 or linkage.shape != (len(labels) - 1, 4):
        raise BayesDissectError(
            f"plot_dendrogram: linkage of shape {linkage.shape} does not fit {len(labels)} "
            "labels; expected (n - 1, 4)")
    n = len(labels)
    side = max(4.0, 0.22 * n + 2.2)
    ncols = 2 if coclustering is not None else 1
    fig = Figure(figsize=(side * (1 + 1.15 * (ncols - 1)) + 1.0, side), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False).ravel()
    threshold = None
    if k is not None and 1 < k <= n:
        heights = np.sort(linkage[:, 2])
        threshold = float((heights[n - k - 1] + heights[n - k]) / 2) if k < n else 0.0
    shown = [display_name(j) for j in labels]
    dn = dendrogram(linkage, labels=shown, orientation="left", ax=axes[0],
                    color_threshold=threshold if threshold is not None else 0.0,
                    above_threshold_color="0.4", leaf_font_size=7 if n > 12 else 8)
    axes[0].set_xlabel("distance (1 - similarity)", fontsize=8)
    axes[0].set_title("average-linkage clustering" + (f", k = {k}" if k else ""), fontsize=9)
    if threshold is not None:
        axes[0].axvline(threshold, color="0.5", ls=":", lw=0.9)
    if coclustering is not None:
        leaves = [labels[i] for i in dn["leaves"]][::-1]  # top-to-bottom as drawn
        mat = _square(coclustering, leaves, value)
        _heatmap(fig, axes[1], mat, [display_name(j) for j in leaves], "Blues", 0.0, 1.0,
                 "co-clustering probability (share of draws)", "probability", n <= 10)
    return fig


# --------------------------------------------------------------------------- (d) checks


def _pick(df: pd.DataFrame, *candidates: str) -> str | None:
    for c in candidates:
        if c in df.columns:
            return c
    return None


def plot_calibration(calibration: pd.DataFrame) -> Figure:
    """Posterior predictive calibration: predicted probability vs observed share per bin.

    ``calibration`` has one row per bin with the mean predicted probability
    (``predicted``/``mean_predicted``/``p_pred``), the observed share (``observed``/
    ``observed_share``) and optionally the number of labels (``n``/``count``) and
    interval bounds (``lower``, ``upper`` on the observed share). If a ``judge`` column is
    present, each judge is one line.
    """
    x = _pick(calibration, "predicted", "mean_predicted", "p_pred", "pred_mean", "prob")
    y = _pick(calibration, "observed", "observed_share", "obs", "y_mean", "frac_observed")
    if x is None or y is None:
        raise BayesDissectError(
            "plot_calibration: table needs a predicted and an observed column; it has "
            + ", ".join(map(str, calibration.columns)))
    n = _pick(calibration, "n", "count", "n_obs")
    calibration = calibration[calibration[x].notna() & calibration[y].notna()]
    if n:
        calibration = calibration[calibration[n] > 0]
    lo, hi = _pick(calibration, "lower", "obs_lower"), _pick(calibration, "upper", "obs_upper")
    fig = Figure(figsize=(5.2, 5.0), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=0.9, label="perfect calibration")
    groups = ([(display_name(j), d) for j, d in calibration.groupby("judge", sort=False)]
              if "judge" in calibration.columns and calibration["judge"].nunique() > 1
              else [("all labels", calibration)])
    colours = _colours(len(groups))
    for (name, d), c in zip(groups, colours, strict=True):
        d = d.sort_values(x)
        ax.plot(d[x], d[y], "-", color=c, lw=1.0, alpha=0.8)
        sizes = 12 + 60 * d[n] / max(float(calibration[n].max()), 1) if n else 25
        ax.scatter(d[x], d[y], s=sizes, color=c, zorder=3, label=name)
        if lo and hi:
            ax.vlines(d[x], d[lo], d[hi], color=c, lw=1.2)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("predicted P(response 1 preferred)", fontsize=9)
    ax.set_ylabel("observed share preferring response 1", fontsize=9)
    ax.set_title("posterior predictive calibration" + (" (dot size: labels per bin)" if n
                                                        else ""), fontsize=9)
    ax.grid(color="0.9", lw=0.5)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    return fig


def plot_agreement(agreement: pd.DataFrame, *, n_labels: int = 4) -> Figure:
    """Observed vs replicated agreement rate for every pair of judges.

    ``agreement`` has one row per judge pair: ``judge_a, judge_b``, the observed rate
    (``observed``), the replicated posterior mean (``replicated``/``rep_mean``) and its
    interval (``rep_lower``/``rep_upper`` or ``lower``/``upper``). Pairs outside their
    interval are red; the ``n_labels`` worst are named.
    """
    obs = _pick(agreement, "observed", "obs", "observed_rate")
    rep = _pick(agreement, "replicated", "rep_mean", "replicated_mean", "predicted")
    if obs is None or rep is None:
        raise BayesDissectError(
            "plot_agreement: table needs observed and replicated agreement columns; it has "
            + ", ".join(map(str, agreement.columns)))
    lo = _pick(agreement, "rep_lower", "replicated_lower", "lower")
    hi = _pick(agreement, "rep_upper", "replicated_upper", "upper")
    agreement = agreement[agreement[obs].notna() & agreement[rep].notna()]
    o = agreement[obs].to_numpy(float)
    r = agreement[rep].to_numpy(float)
    fig = Figure(figsize=(5.4, 5.2), layout="constrained")
    ax = fig.subplots()
    bounds = [o, r] + ([agreement[lo].to_numpy(float), agreement[hi].to_numpy(float)]
                       if lo and hi else [])
    allv = np.concatenate(bounds) if len(o) else np.array([0.0, 1.0])
    pad = 0.03 * max(float(np.nanmax(allv) - np.nanmin(allv)), 0.1)
    lim_lo = max(0.0, float(np.nanmin(allv)) - pad)
    lim_hi = min(1.0, float(np.nanmax(allv)) + pad)
    ax.plot([lim_lo, lim_hi], [lim_lo, lim_hi], color="0.5", ls="--", lw=0.9)
    if lo and hi:
        lov, hiv = agreement[lo].to_numpy(float), agreement[hi].to_numpy(float)
        outside = (o < lov) | (o > hiv)
        ax.vlines(o, lov, hiv, color=np.where(outside, "#d62728", "0.6"), lw=0.8)
        # distance from the replicated mean in half-interval widths: > 1 means outside
        gap = np.abs(o - r) / np.maximum((hiv - lov) / 2, 1e-12)
    else:
        outside = np.zeros(len(o), dtype=bool)
        gap = np.abs(o - r)
    ax.scatter(o[~outside], r[~outside], s=12, color="#1f4e79", zorder=3,
               label="observed within the interval")
    ax.scatter(o[outside], r[outside], s=16, color="#d62728", zorder=3,
               label="observed outside the interval")
    if "judge_a" in agreement.columns and n_labels:
        worst = np.argsort(-gap)[:n_labels]
        for i in worst:
            a, b = agreement["judge_a"].iloc[i], agreement["judge_b"].iloc[i]
            ax.annotate(f"{display_name(a)} / {display_name(b)}", (o[i], r[i]), fontsize=6,
                        xytext=(4, -3), textcoords="offset points")
    ax.set_xlim(lim_lo, lim_hi)
    ax.set_ylim(lim_lo, lim_hi)
    ax.set_aspect("equal")
    ax.set_xlabel("observed agreement rate", fontsize=9)
    ax.set_ylabel("replicated agreement rate (posterior predictive)", fontsize=9)
    ax.set_title(f"judge-pair agreement: {int(outside.sum())} of {len(o)} pairs outside "
                 "their interval", fontsize=9)
    ax.grid(color="0.9", lw=0.5)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    return fig


# --------------------------------------------------------------------------- (e) size


def similarity_to(similarity: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Rows of the similarity table that involve ``reference``, as ``judge, mean, lower,
    upper, of_means`` (the other judge in ``judge``), in table order."""
    _require(similarity, ("judge_a", "judge_b", "mean", "lower", "upper"), "similarity_to")
    a = similarity[similarity["judge_a"] == reference].rename(columns={"judge_b": "judge"})
    b = similarity[similarity["judge_b"] == reference].rename(columns={"judge_a": "judge"})
    keep = [c for c in ("judge", "mean", "lower", "upper", "of_means") if c in a.columns]
    out = pd.concat([a[keep], b[keep]], ignore_index=True)
    return out[out["judge"] != reference].reset_index(drop=True)


def plot_size_similarity(similarity: pd.DataFrame, reference: str = "human",
                         sizes: Mapping[str, float] | None = None,
                         types: Mapping[str, str] | None = None, *,
                         label: bool = True) -> Figure:
    """Similarity to ``reference`` (default the human) against judge size, with intervals.

    Sizes (billions of parameters) and types come from the catalogue unless given (the
    fitted dataset carries them as ``judge_size``/``judge_type``). Judges of unknown size
    are left out and counted in the title. Proprietary sizes are nominal placements.
    """
    rows = similarity_to(similarity, reference)
    if rows.empty:
        raise BayesDissectError(f"plot_size_similarity: no similarity rows involve {reference!r}")
    size_of = dict(sizes) if sizes is not None else {}
    type_of = dict(types) if types is not None else {}
    rows["size"] = [size_of.get(j, judge_info(j).size) for j in rows["judge"]]
    rows["type"] = [type_of.get(j, judge_info(j).type) for j in rows["judge"]]
    unknown = int(rows["size"].isna().sum())
    rows = rows[rows["size"].notna() & (rows["size"] > 0)]
    fig = Figure(figsize=(7.2, 4.6), layout="constrained")
    ax = fig.subplots()
    if not rows.empty:
        # spread judges of equal size a little so their intervals do not overlap
        rank = rows.groupby("size").cumcount().to_numpy()
        count = rows.groupby("size")["judge"].transform("size").to_numpy()
        x = rows["size"].to_numpy(float) * 1.045 ** (rank - (count - 1) / 2)
        rows = rows.assign(x=x)
        order = [t for t in _TYPE_COLOURS if t in set(rows["type"])]
        order += sorted(set(rows["type"]) - set(order))
        for t in order:
            d = rows[rows["type"] == t]
            colour = _TYPE_COLOURS.get(t, _TYPE_COLOURS["unknown"])
            ax.vlines(d["x"], d["lower"], d["upper"], color=colour, lw=1.3, alpha=0.8)
            ax.scatter(d["x"], d["mean"], color=colour, marker=_TYPE_MARKERS.get(t, "o"),
                       s=26, zorder=3, label=t)
            if label:
                for xi, yi, j in zip(d["x"], d["mean"], d["judge"], strict=True):
                    ax.annotate(display_name(j), (xi, yi), fontsize=5.5, xytext=(3, 1),
                                textcoords="offset points", color="0.25")
        ax.set_xscale("log")
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
        ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax.set_xlabel("judge size (billions of parameters, log scale; proprietary: nominal)",
                  fontsize=9)
    ax.set_ylabel(f"similarity to {display_name(reference)}", fontsize=9)
    note = f"; {unknown} judge(s) of unknown size not shown" if unknown else ""
    ax.set_title(f"similarity to {display_name(reference)} vs size (credible intervals){note}",
                 fontsize=9)
    ax.grid(color="0.9", lw=0.5)
    return fig


# --------------------------------------------------------------------------- (f) what-if

_EXPLOIT_COLUMNS = ("judge", "property", "gain", "gain_lower", "gain_upper", "loss",
                    "loss_lower", "loss_upper")


def plot_exploitability(table: pd.DataFrame, *, column: str = "gain",
                        reference: str | None = "human", prob: float | None = None) -> Figure:
    """Judges x properties heatmap of the win-rate change (percentage points) of always
    winning (``column="gain"``) or always losing (``"loss"``) a property, from
    ``bayesdissect.exploitability``. The reference judge (the human) is the top row, set
    apart by a line; properties are ordered by their mean over judges; a dot marks a cell
    whose interval excludes 0. The model's counterfactual, not a causal experiment."""
    _require(table, _EXPLOIT_COLUMNS, "plot_exploitability")
    if column not in ("gain", "loss"):
        raise BayesDissectError(f"plot_exploitability: column must be 'gain' or 'loss', "
                                f"not {column!r}")
    judges = _ordered_unique(table["judge"])
    if reference in judges:
        judges = [reference] + [j for j in judges if j != reference]
    mat = table.pivot_table(index="judge", columns="property", values=column,
                            sort=False).reindex(judges)
    props = list(mat.mean(axis=0).sort_values(ascending=column == "loss").index)
    mat = mat[props]
    lo = table.pivot_table(index="judge", columns="property", values=f"{column}_lower",
                           sort=False).reindex(index=judges, columns=props)
    hi = table.pivot_table(index="judge", columns="property", values=f"{column}_upper",
                           sort=False).reindex(index=judges, columns=props)
    vals = mat.to_numpy(float)
    vmax = float(np.nanmax(np.abs(vals))) if np.isfinite(vals).any() else 1.0
    fig = Figure(figsize=(max(7.0, 2.5 + 0.28 * len(props)), 1.9 + 0.24 * len(judges)),
                 layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(vals, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
    credible = (lo.to_numpy(float) > 0) | (hi.to_numpy(float) < 0)
    yy, xx = np.nonzero(credible)
    ax.scatter(xx, yy, s=4, color="k", marker="o", linewidths=0)
    ax.set_xticks(np.arange(len(props)))
    ax.set_xticklabels(props, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(np.arange(len(judges)))
    ax.set_yticklabels([display_name(j) for j in judges], fontsize=7)
    if reference in judges and len(judges) > 1:
        ax.axhline(0.5, color="k", lw=1.2)
    what = "winning" if column == "gain" else "losing"
    label = f"{prob:.0%} " if prob else ""
    fig.colorbar(im, ax=ax, shrink=0.8).set_label(
        "win-rate change (points)", fontsize=8)
    ax.set_title(f"Exploitability: response 1 always {what} a property (dot: {label}interval "
                 "excludes 0)\nthe model's counterfactual of an observational regression, "
                 "not a causal experiment", fontsize=8)
    return fig


def _judge_rows(table: pd.DataFrame, judge: str | None, what: str) -> tuple[str, pd.DataFrame]:
    """(judge, its rows) of a per-judge table; default judge: the table's first."""
    judges = _ordered_unique(table["judge"])
    judge = judge if judge is not None else (judges[0] if judges else None)
    rows = table[table["judge"] == judge]
    if rows.empty:
        raise BayesDissectError(f"{what}: judge {judge!r} is not in the table; it has "
                                f"{', '.join(map(str, judges)) or 'none'}")
    return judge, rows


def plot_explain(table: pd.DataFrame, judge: str | None = None, *,
                 max_terms: int = 12) -> Figure:
    """Waterfall of one pair's logit for one judge (default: the table's first), from
    ``bayesdissect.explain``: the bias, then each non-zero property contribution
    x[i,k] * w[j,g,k] (largest first; the rest summed as one bar), ending at the logit;
    whiskers are each term's credible interval, placed at the running total."""
    _require(table, ("judge", "term", "x", "mean", "lower", "upper", "observed"),
             "plot_explain")
    judge, rows = _judge_rows(table, judge, "plot_explain")
    special = rows.set_index("term").loc[["bias", "logit", "probability"]]
    props = rows[~rows["term"].isin(["bias", "logit", "probability"])]
    props = props[props["x"].fillna(0) != 0]
    shown, rest = props.head(max_terms), props.iloc[max_terms:]
    items = [("bias", *special.loc["bias", ["mean", "lower", "upper"]])]
    items += [(f"{r.term} (x={r.x:+g})", r["mean"], r["lower"], r["upper"])
              for _, r in shown.iterrows()]
    if len(rest):
        items.append((f"{len(rest)} other properties", float(rest["mean"].sum()), np.nan,
                      np.nan))
    fig = Figure(figsize=(7.0, 1.4 + 0.3 * (len(items) + 1)), layout="constrained")
    ax = fig.subplots()
    cum = 0.0
    for y, (_name, m, lo, hi) in enumerate(items):
        colour = "#2c7fb8" if m >= 0 else "#d95f0e"
        ax.barh(y, m, left=cum, color=colour, height=0.6)
        if np.isfinite(lo) and np.isfinite(hi):
            ax.hlines(y, cum + lo, cum + hi, color="k", lw=1.0)
        ax.vlines(cum + m, y - 0.3, y + 1.3, color="0.6", lw=0.6, ls=":")
        cum += m
    logit = special.loc["logit"]
    y = len(items)
    ax.barh(y, logit["mean"], color="0.35", height=0.6)
    ax.hlines(y, logit["lower"], logit["upper"], color="k", lw=1.2)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(np.arange(len(items) + 1))
    ax.set_yticklabels([i[0] for i in items] + ["logit"], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("contribution to the logit of P(response 1 wins)", fontsize=9)
    p = special.loc["probability"]
    obs = rows["observed"].iloc[0]
    seen = ("not labelled" if pd.isna(obs) else
            f"chose response {1 if float(obs) > 0.5 else 2}")
    ax.set_title(f"{display_name(str(judge))}: P(response 1 wins) = {p['mean']:.2f} "
                 f"[{p['lower']:.2f}, {p['upper']:.2f}]; the judge {seen}\n"
                 "whiskers: credible intervals; the fitted regression's terms, not causes",
                 fontsize=8)
    ax.grid(axis="x", color="0.9", lw=0.5)
    return fig


def plot_departs(table: pd.DataFrame, judge: str | None = None, *,
                 max_terms: int = 15) -> Figure:
    """How much of a judge's disagreement with the reference each property explains, from
    ``bayesdissect.departs``: one bar per property (largest |contribution| first, at most
    ``max_terms``), the bias and the total, with credible-interval whiskers (percentage
    points of predicted win probability). Default judge: the table's first."""
    _require(table, ("judge", "reference", "term", "mean", "lower", "upper"),
             "plot_departs")
    judge, rows = _judge_rows(table, judge, "plot_departs")
    ref = str(rows["reference"].iloc[0])
    props = rows[~rows["term"].isin(["bias", "total"])]
    props = props.reindex(props["mean"].abs().sort_values(ascending=False).index)
    shown = pd.concat([props.head(max_terms), rows[rows["term"] == "bias"],
                       rows[rows["term"] == "total"]])
    fig = Figure(figsize=(6.8, 1.3 + 0.27 * len(shown)), layout="constrained")
    ax = fig.subplots()
    ys = np.arange(len(shown))
    m, lo, hi = (shown[c].to_numpy(float) for c in ("mean", "lower", "upper"))
    colours = ["0.3" if t == "total" else ("#2c7fb8" if v >= 0 else "#d95f0e")
               for t, v in zip(shown["term"], m, strict=True)]
    ax.barh(ys, m, color=colours, height=0.6)
    ax.hlines(ys, lo, hi, color="k", lw=1.0)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels(shown["term"].tolist(), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("contribution (points of predicted win probability)", fontsize=9)
    ax.set_title(f"Where {display_name(str(judge))} departs from {display_name(ref)}: the "
                 "disagreement in predicted probability, split by property\n"
                 "whiskers: credible intervals; the model's view, not a causal account",
                 fontsize=8)
    ax.grid(axis="x", color="0.9", lw=0.5)
    return fig
