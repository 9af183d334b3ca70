"""What-if queries (issue 13): counterfactual win rates, exploitability, explain, departs.

Exactness against brute force on synthetic posteriors (every spec, both kernel paths);
known truth on one small real fit (4 judges, 2 groups, 4 properties, 300 pairs, the last
property's true weight 0 everywhere): the 90% intervals of the true win-rate shifts cover
at a binomial rate, the zero-weight property's intervals sit around 0; explain's terms add
up to the logit draw by draw; the CLI's exact columns, files and one-line errors.
"""

from __future__ import annotations

import io
import json
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from _query_posteriors import make_posterior
from conftest import make_dataset
from scipy.stats import binom

import bayesdissect as bd
from bayesdissect.cli.main import main
from bayesdissect.errors import BayesDissectError
from bayesdissect.queries.weights import cell_weights

W = sys.modules["bayesdissect.queries.whatif"]  # the module (bd.whatif is the function)

GROUPS = ["group0", "group1", "group2"]


# ----------------------------------------------------------------------------- fixtures
def synthetic_fit(spec: str = "hierarchical", n_pairs: int = 150, seed: int = 0,
                  draws: int = 100, zero: str | None = None, noise: float = 0.05
                  ) -> SimpleNamespace:
    """A Fit-like object: make_posterior's draws (truth + noise) and matching data.
    Property p0 is 0 on 90% of pairs (so swapping it takes the gather path); ``zero``
    names a property whose true weight is 0 in every term (its draws are noise only)."""
    post, _ = make_posterior(n_judges=4, n_groups=3, n_props=6, draws=draws, spec=spec,
                             seed=seed, noise=noise)
    rng = np.random.default_rng(seed + 100)
    if zero is not None:
        for name in [v for v in post.data_vars if "property" in post[v].dims]:
            da = post[name]
            k = list(da["property"].values).index(zero)
            vals = da.values.copy()
            idx = [slice(None)] * vals.ndim
            idx[da.dims.index("property")] = k
            vals[tuple(idx)] = noise * rng.standard_normal(vals[tuple(idx)].shape)
            post[name] = (da.dims, vals)
    x = rng.choice([-1.0, 0.0, 1.0], size=(n_pairs, 6))
    x[:, 0] = rng.choice([-1.0, 0.0, 1.0], p=[0.05, 0.9, 0.05], size=n_pairs)
    y = rng.integers(0, 2, (n_pairs, 4)).astype(float)
    y[0, 1] = np.nan
    data = xr.Dataset(
        {"x": (("pair", "property"), x), "y": (("pair", "judge"), y),
         "group": (("pair",), rng.choice(GROUPS, n_pairs))},
        coords={"pair": np.arange(100, 100 + n_pairs), "property": [f"p{i}" for i in range(6)],
                "judge": [f"judge{i}" for i in range(4)]})
    return SimpleNamespace(data=data, posterior=post)


def brute(fit: SimpleNamespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w (S, J, N, K) per pair, bias (S, J), x (N, K)) in float64, straight from the
    posterior terms with xarray (an independent path from the kernels')."""
    post, data = fit.posterior, fit.data
    cw = cell_weights(post).transpose("chain", "draw", "judge", "group", "property")
    s = post.sizes["chain"] * post.sizes["draw"]
    cw = cw.values.reshape((s,) + cw.shape[2:])
    gi = np.searchsorted(GROUPS, data["group"].values.astype(str))
    b = (post["bias"].values.reshape(s, -1) if "bias" in post
         else np.zeros((s, data.sizes["judge"])))
    return cw[:, :, gi, :], b, data["x"].values


def rates(w: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(S, J, N) P(response 1 wins) in percent."""
    z = np.einsum("ik,sjik->sji", x, w) + b[:, :, None]
    return 100.0 / (1.0 + np.exp(-z))


ZERO = 3  # the real fit's property with true weight 0


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> dict:
    """One small real fit of data with known truth; property ZERO has weight 0."""
    data, truth = make_dataset(n_judges=4, n_groups=2, n_pairs=300, n_properties=4, seed=3,
                               sigma_judge=0.8)
    judges = ["human", "gpt-4-1106-preview", "gpt-3.5-turbo-1106", "yi-6b"]
    data = data.assign_coords(judge=judges)
    for key in ("mu", "judge_offset", "group_offset", "cell_offset", "w"):
        truth[key][..., ZERO] = 0.0
    z = np.einsum("ik,jik->ij", data["x"].values, truth["w"][:, truth["group_index"], :])
    p = 1.0 / (1.0 + np.exp(-(z + truth["bias"][None, :])))
    data["y"] = (("pair", "judge"), (np.random.default_rng(4).random(p.shape) < p) * 1.0)
    fit = bd.fit(data, "hierarchical", sampler="numpyro", chains=2, draws=200, tune=200,
                 seed=5, progressbar=False, warn=False)
    groups = sorted(set(map(str, data["group"].values)))
    true_post = xr.Dataset(
        {"w_cell": (("chain", "draw", "judge", "group", "property"), truth["w"][None, None]),
         "bias": (("chain", "draw", "judge"), truth["bias"][None, None])},
        coords={"chain": [0], "draw": [0], "judge": judges, "group": groups,
                "property": data["property"].values})
    path = tmp_path_factory.mktemp("whatif") / "fit.nc"
    fit.save(path)
    return {"fit": fit, "truth_fit": SimpleNamespace(data=data, posterior=true_post),
            "path": str(path), "data": data}


def min_covered(n: int, prob: float = 0.9, alpha: float = 0.001) -> int:
    """The fewest of n independent ``prob`` intervals that cover, but for chance alpha."""
    return int(binom.ppf(alpha, n, prob))


# ----------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("spec", ["hierarchical", "paper", "pooled"])
def test_whatif_matches_brute_force_every_spec(spec) -> None:
    fit = synthetic_fit(spec)
    w, b, x = brute(fit)
    x2 = x.copy()
    x2[:, 2] = 1.0
    x2[:, 4] = np.clip(x2[:, 4] - 1, -1, 1)
    x2[:, 5] = -x2[:, 5]
    df = bd.whatif(fit, {"p2": 1}, shift={"p4": -1}, swap=["p5"], by_group=True)
    assert list(df.columns) == W.WHATIF_COLUMNS
    r0, r1 = rates(w, b, x), rates(w, b, x2)
    for group, m in [("all", slice(None))] + [(g, fit.data.group.values == g) for g in GROUPS]:
        rows = df[df.group == group]
        ch = (r1[:, :, m] - r0[:, :, m]).mean(2)
        np.testing.assert_allclose(rows.change, ch.mean(0), atol=2e-5)
        np.testing.assert_allclose(rows.before, r0[:, :, m].mean(2).mean(0), atol=2e-5)
        np.testing.assert_allclose(rows.after, r1[:, :, m].mean(2).mean(0), atol=2e-5)
        np.testing.assert_allclose(rows.change_lower, np.quantile(ch, 0.05, axis=0), atol=2e-5)
        np.testing.assert_allclose(rows.change_upper, np.quantile(ch, 0.95, axis=0), atol=2e-5)
    assert df.attrs["n_intervened"] == int((x2 != x).any(1).sum())
    # the gather path: swapping p0 changes ~10% of the pairs
    df = bd.whatif(fit, swap=["p0"], by_group=True)
    x3 = x.copy()
    x3[:, 0] = -x3[:, 0]
    np.testing.assert_allclose(df[df.group == "all"].change,
                               (rates(w, b, x3) - r0).mean(2).mean(0), atol=2e-5)
    assert df.attrs["n_intervened"] == int((x[:, 0] != 0).sum()) < 0.5 * len(x)


@pytest.mark.parametrize("spec", ["hierarchical", "paper", "pooled"])
def test_exploitability_matches_brute_force(spec) -> None:
    fit = synthetic_fit(spec, seed=1)
    w, b, x = brute(fit)
    ex = bd.exploitability(fit, max_draws=None)
    assert list(ex.columns) == W.EXPLOIT_COLUMNS and len(ex) == 24
    r0 = rates(w, b, x)
    for k in range(6):
        xg, xl = x.copy(), x.copy()
        xg[:, k], xl[:, k] = 1.0, -1.0
        gain = (rates(w, b, xg) - r0).mean(2)
        loss = (rates(w, b, xl) - r0).mean(2)
        e = ex[ex.property == f"p{k}"].set_index("judge").loc[fit.data.judge.values]
        np.testing.assert_allclose(e.gain, gain.mean(0), atol=2e-5)
        np.testing.assert_allclose(e.loss, loss.mean(0), atol=2e-5)
        np.testing.assert_allclose(e.gain_upper, np.quantile(gain, 0.95, axis=0), atol=2e-5)
        assert (e.n_gain_pairs == (x[:, k] != 1).sum()).all()
        assert (e.n_loss_pairs == (x[:, k] != -1).sum()).all()
    for _, g in ex.groupby("judge"):  # ranked by gain within each judge
        assert list(g["rank"]) == list(range(1, 7)) and g["gain"].is_monotonic_decreasing
    top = W.most_exploitable(ex)
    assert len(top) == 4 and (top["rank"] == 1).all()


def test_explain_terms_sum_to_the_logit_draw_by_draw() -> None:
    fit = synthetic_fit("hierarchical", seed=2)
    w, b, x = brute(fit)
    i = 7
    ex = W.explain_draws(fit, int(fit.data.pair.values[i]))
    total = ex["contribution"].sum("property") + ex["bias"]
    np.testing.assert_allclose(total.values, ex["logit"].values, rtol=0, atol=1e-12)
    # and it is the model's logit (float64 path through xarray; kernels use float32)
    np.testing.assert_allclose(ex["logit"].values, np.einsum("k,sjk->sj", x[i], w[:, :, i]) + b,
                               atol=1e-5)
    df = bd.explain(fit, int(fit.data.pair.values[i]), prob=0.8)
    assert list(df.columns) == W.EXPLAIN_COLUMNS
    one = df[df.judge == "judge1"].set_index("term")
    assert list(one.index[-3:]) == ["bias", "logit", "probability"]
    props = one.iloc[:-3]
    assert props["mean"].abs().is_monotonic_decreasing
    np.testing.assert_allclose(props["mean"].sum() + one.loc["bias", "mean"],
                               one.loc["logit", "mean"], atol=1e-12)
    assert np.isnan(one.loc["bias", "x"]) and (props["x"].to_numpy() == x[i][
        [int(p[1]) for p in props.index]]).all()
    assert (one["observed"] == fit.data.y.values[i, 1]).all()


def test_explain_observed_missing_label_is_empty() -> None:
    fit = synthetic_fit()
    df = bd.explain(fit, str(int(fit.data.pair.values[0])), judges=["judge1"])
    assert df["observed"].isna().all() and set(df.judge) == {"judge1"}


def test_departs_terms_add_up_and_match_brute_force() -> None:
    fit = synthetic_fit("hierarchical", seed=3)
    w, b, x = brute(fit)
    p = rates(w, b, x)
    for measure in ("absolute", "signed"):
        df = bd.departs(fit, reference="judge0", measure=measure)
        assert list(df.columns) == W.DEPARTS_COLUMNS
        diff = p[:, 1:] - p[:, :1]
        tot = (np.abs(diff) if measure == "absolute" else diff).mean(2)
        got = df[df.term == "total"]
        np.testing.assert_allclose(got["mean"], tot.mean(0), atol=1e-5)
        parts = df[df.term != "total"].groupby("judge", sort=False)["mean"].sum()
        np.testing.assert_allclose(parts.to_numpy(), got["mean"].to_numpy(), atol=1e-10)
        assert set(df.judge) == {"judge1", "judge2", "judge3"}
    one = bd.departs(fit, ["judge2"], reference="judge0")
    assert set(one.judge) == {"judge2"}
    assert abs(one[one.term != "total"]["share"].sum() - 1) < 1e-9


# ----------------------------------------------------------------------------- known truth
def test_zero_weight_property_gives_an_interval_around_zero_synthetic() -> None:
    noise, draws = 0.05, 200
    fit = synthetic_fit("hierarchical", seed=4, draws=draws, zero="p3", noise=noise)
    ex = bd.exploitability(fit, properties=["p3"], max_draws=None)
    # 4 noise terms of sd `noise` -> weight sd 2 * noise; |change| <= 25 * |dx| * |w| (pp)
    bound = 4 * 25 * 2 * (2 * noise) / np.sqrt(2 * draws)
    assert (ex.gain_lower < 0).all() and (ex.gain_upper > 0).all()
    assert (ex.loss_lower < 0).all() and (ex.loss_upper > 0).all()
    assert (ex.gain.abs() < bound).all() and (ex.loss.abs() < bound).all()
    wi = bd.whatif(fit, {"p3": 1})
    assert (wi.change_lower < 0).all() and (wi.change_upper > 0).all()


def test_real_fit_intervals_cover_true_shifts(real) -> None:
    fit, truth_fit = real["fit"], real["truth_fit"]
    got = bd.exploitability(fit, max_draws=None).set_index(["judge", "property"])
    true = bd.exploitability(truth_fit, max_draws=None).set_index(["judge", "property"])
    true = true.loc[got.index]
    covered = np.r_[(got.gain_lower <= true.gain) & (true.gain <= got.gain_upper),
                    (got.loss_lower <= true.loss) & (true.loss <= got.loss_upper)]
    assert covered.sum() >= min_covered(covered.size), (covered.sum(), covered.size)
    # and whatif's interval covers the true change of a joint intervention per judge/group
    props = [str(p) for p in real["data"].property.values]
    wi = bd.whatif(fit, {props[0]: 0}, swap=[props[1]], by_group=True)
    wt = bd.whatif(truth_fit, {props[0]: 0}, swap=[props[1]], by_group=True)
    ok = (wi.change_lower <= wt.change) & (wt.change <= wi.change_upper)
    assert ok.sum() >= min_covered(len(ok)), (ok.sum(), len(ok))


def test_real_fit_zero_weight_property_interval_around_zero(real) -> None:
    fit = real["fit"]
    prop = str(real["data"].property.values[ZERO])
    ex = bd.exploitability(fit, properties=[prop], max_draws=None)
    around = np.r_[(ex.gain_lower < 0) & (ex.gain_upper > 0),
                   (ex.loss_lower < 0) & (ex.loss_upper > 0)]
    assert around.sum() >= min_covered(around.size)
    # far smaller than the real properties' gains
    others = bd.exploitability(fit, max_draws=None)
    others = others[others.property != prop]
    assert ex.gain.abs().mean() < 0.25 * others.gain.abs().mean()


def test_real_fit_explain_and_departs_on_saved_fit(real) -> None:
    fit = bd.load_fit(real["path"])
    ex = W.explain_draws(fit, 5)
    np.testing.assert_allclose((ex["contribution"].sum("property") + ex["bias"]).values,
                               ex["logit"].values, rtol=0, atol=1e-12)
    dp = bd.departs(fit)  # reference human
    assert set(dp.reference) == {"human"} and "human" not in set(dp.judge)
    assert (dp[dp.term == "total"]["mean"] > 0).all()


# ----------------------------------------------------------------------------- options
def test_applicable_query_specific_property_only_in_its_case() -> None:
    fit = synthetic_fit(seed=5)
    data = fit.data.assign_coords(property=["clear", "support stances", "p2", "p3", "p4",
                                            "p5"])
    flag = np.zeros(data.sizes["pair"], bool)
    flag[::4] = True
    data["case_w_stances"] = (("pair",), flag)
    post = fit.posterior.assign_coords(property=data.property.values)
    f2 = SimpleNamespace(data=data, posterior=post)
    x = data.x.values[:, 1]
    df = bd.whatif(f2, {"Support Stances": 1})  # case-insensitive name
    assert df.attrs["n_intervened"] == int(((x != 1) & flag).sum())
    df = bd.whatif(f2, {"support stances": 1}, applicable=False)
    assert df.attrs["n_intervened"] == int((x != 1).sum())
    ex = bd.exploitability(f2, properties=["support stances"])
    assert (ex.n_gain_pairs == ((x != 1) & flag).sum()).all()
    table = W.intervened_pairs(f2, {"support stances": 1})
    assert set(table["pair"]) <= set(data.pair.values[flag]) and (table.x_after == 1).all()


def test_own_pairs_table_and_ids_agree_and_thinning() -> None:
    fit = synthetic_fit(seed=6)
    ids = [int(v) for v in fit.data.pair.values[10:40]]
    sub = fit.data.sel(pair=ids)
    table = pd.DataFrame(sub.x.values, columns=[str(p) for p in sub.property.values])
    table["group"] = sub.group.values
    a = bd.whatif(fit, {"p1": 0}, pairs=ids)
    b = bd.whatif(fit, {"p1": 0}, pairs=table)
    pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-9)
    assert a.n_pairs.iloc[0] == 30
    c = bd.whatif(fit, {"p1": 0}, groups=["group1"], max_draws=50)
    assert c.attrs["n_draws"] == 50 and c.n_pairs.iloc[0] == int((fit.data.group == "group1"
                                                                   ).sum())


@pytest.mark.parametrize("call, message", [
    (lambda f: bd.whatif(f), "no intervention given"),
    (lambda f: bd.whatif(f, {"nope": 1}), "unknown property 'nope'"),
    (lambda f: bd.whatif(f, {"p1": 1}, swap=["p1"]), "intervened on twice"),
    (lambda f: bd.whatif(f, {"p1": "x"}), "is not a number"),
    (lambda f: bd.whatif(f, {"p1": 1}, judges=["zed"]), "unknown judge 'zed'"),
    (lambda f: bd.whatif(f, {"p1": 1}, groups=["zed"]), "unknown group 'zed'"),
    (lambda f: bd.whatif(f, {"p1": 1}, pairs=[1]), "unknown pair 1"),
    (lambda f: bd.whatif(f, {"p1": 1}, pairs=pd.DataFrame({"p0": [1.0]})),
     "no column for the fitted property 'p1'"),
    (lambda f: bd.whatif(f, {"p1": 1}, pairs=pd.DataFrame(
        {f"p{i}": [0.0] for i in range(6)} | {"group": ["zed"]})), "unknown group 'zed'"),
    (lambda f: bd.whatif(f, {"p1": 1}, max_draws=0), "max_draws must be at least 1"),
    (lambda f: bd.whatif(f, {"p1": 1}, prob=1.5), "strictly between 0 and 1"),
    (lambda f: bd.exploitability(f, value=0), "non-zero number"),
    (lambda f: bd.explain(f, 99999), "unknown pair 99999"),
    (lambda f: bd.departs(f), "unknown judge 'human'"),
    (lambda f: bd.departs(f, ["judge0"], reference="judge0"), "no judge to compare"),
    (lambda f: bd.departs(f, reference="judge0", measure="odd"), "unknown measure 'odd'"),
])
def test_bad_input_is_one_line_error(call, message) -> None:
    with pytest.raises(BayesDissectError, match=message) as exc:
        call(synthetic_fit(n_pairs=40, draws=20))
    assert "\n" not in str(exc.value)


def test_parse_assignment() -> None:
    assert W.parse_assignment("no severe errors=+1") == ("no severe errors", 1.0)
    assert W.parse_assignment("lengthy=-0.5") == ("lengthy", -0.5)
    for bad in ("lengthy", "=1", "lengthy=abc", "lengthy=nan"):
        with pytest.raises(BayesDissectError):
            W.parse_assignment(bad)


def test_figures(real) -> None:
    from matplotlib.figure import Figure

    from bayesdissect import plots
    fit = real["fit"]
    ex = bd.exploitability(fit, max_draws=100)
    assert isinstance(plots.plot_exploitability(ex, prob=0.9), Figure)
    assert isinstance(plots.plot_exploitability(ex, column="loss"), Figure)
    assert isinstance(plots.plot_explain(bd.explain(fit, 3), "yi-6b", max_terms=2), Figure)
    assert isinstance(plots.plot_departs(bd.departs(fit, max_draws=100)), Figure)
    with pytest.raises(BayesDissectError, match="not in the table"):
        plots.plot_explain(bd.explain(fit, 3, judges=["human"]), "yi-6b")
    with pytest.raises(BayesDissectError, match="lacks column"):
        plots.plot_exploitability(ex.drop(columns="gain"))


# ----------------------------------------------------------------------------- CLI
def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_whatif(real, capsys, tmp_path) -> None:
    props = [str(p) for p in real["data"].property.values]
    listed = tmp_path / "changed.csv"
    code, out, err = run(capsys, "whatif", real["path"], "--set", f"{props[2]}=+1",
                         "--swap", props[0], "--by-group", "--judge", "human", "yi-6b",
                         "--format", "csv", "--intervened", str(listed), "--max-draws", "100")
    assert code == 0, err
    df = pd.read_csv(io.StringIO(out))
    assert list(df.columns) == W.WHATIF_COLUMNS
    assert set(df.judge) == {"human", "yi-6b"} and "all" in set(df.group) and len(df) == 6
    assert "not causal experiments" in err and "changed x on" in err
    changed = pd.read_csv(listed)
    assert list(changed.columns) == ["pair", "group", "property", "x_before", "x_after"]
    assert set(changed.property) <= {props[0], props[2]}
    own = tmp_path / "mine.csv"
    sub = real["data"].isel(pair=slice(0, 20))
    tbl = pd.DataFrame(sub.x.values, columns=props)
    tbl["group"] = sub.group.values
    tbl.to_csv(own, index=False)
    code, out, _ = run(capsys, "whatif", real["path"], "--set", f"{props[1]}=0", "--pairs",
                       str(own), "--format", "json")
    rows = json.loads(out)
    assert code == 0 and rows[0]["n_pairs"] == 20 and len(rows) == 4


def test_cli_exploit_explain_departs(real, capsys, tmp_path) -> None:
    fig = tmp_path / "heat.png"
    code, out, err = run(capsys, "exploit", real["path"], "--max-draws", "100", "--plot",
                         str(fig), "--format", "csv")
    assert code == 0, err
    assert list(pd.read_csv(io.StringIO(out)).columns) == W.EXPLOIT_COLUMNS
    assert fig.stat().st_size > 1000 and "not causal" in err
    code, out, _ = run(capsys, "exploit", real["path"], "--top", "--judge", "human",
                       "--max-draws", "100", "--format", "json")
    assert code == 0 and len(json.loads(out)) == 1
    wf = tmp_path / "wf.svg"
    code, out, _ = run(capsys, "explain", real["path"], "5", "--judge", "human", "--plot",
                       str(wf), "--format", "csv")
    df = pd.read_csv(io.StringIO(out))
    assert code == 0 and list(df.columns) == W.EXPLAIN_COLUMNS and len(df) == 4 + 3
    assert wf.read_text().startswith("<?xml")
    code, out, _ = run(capsys, "departs", real["path"], "yi-6b", "--measure", "signed",
                       "--format", "csv")
    df = pd.read_csv(io.StringIO(out))
    assert code == 0 and list(df.columns) == W.DEPARTS_COLUMNS and set(df.judge) == {"yi-6b"}


@pytest.mark.parametrize("argv, message", [
    (["whatif", "{fit}"], "no intervention given"),
    (["whatif", "{fit}", "--set", "lengthy"], "expected NAME=VALUE"),
    (["whatif", "{fit}", "--set", "nope=1"], "unknown property 'nope'"),
    (["whatif", "{fit}", "--set", "friendly=1", "--pairs", "/no/such.csv"], "no such file"),
    (["whatif", "{fit}", "--set", "friendly=1", "--pair-ids", "1,x"], "comma-separated"),
    (["exploit", "{fit}", "--plot", "heat.txt"], "unknown figure type"),
    (["explain", "{fit}", "abc"], "unknown pair 'abc'"),
    (["departs", "{fit}", "--reference", "zed"], "unknown judge 'zed'"),
])
def test_cli_errors_are_one_line_exit_2(real, capsys, argv, message) -> None:
    code, out, err = run(capsys, *[a.format(fit=real["path"]) for a in argv])
    assert code == 2 and out == ""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err


def test_namespace_names_are_the_functions() -> None:
    import importlib
    importlib.import_module("bayesdissect.queries.whatif")
    for name in ("whatif", "exploitability", "explain", "departs"):
        assert name in bd.__all__ and callable(getattr(bd, name))
    assert bd.whatif is W.whatif


def test_report_sections_are_computed(tmp_path) -> None:
    from test_report import fake_fit

    from bayesdissect.report.html import compute_findings, write_report
    fit = fake_fit()
    f = compute_findings(fit, checks=False)
    planted = str(fit.data.property.values[2])  # human's weight on it is planted at 4
    top = W.most_exploitable(f.exploit).set_index("judge").loc["human"]
    assert top["property"] == planted
    page = write_report(fit, tmp_path / "rep", findings=f).read_text()
    for heading in ("What if a property were equalised?", "How exploitable is each judge?",
                    "Where the judges depart from the reference"):
        assert heading in page
    assert (f"most exploitable on <i>{planted}</i>: always winning it gains "
            f"{top['gain']:+.1f} points [{top['gain_lower']:+.1f}, "
            f"{top['gain_upper']:+.1f}]") in page
    assert page.count("not causal experiments") >= 2
    for name in ("whatif.csv", "exploitability.csv", "departs.csv", "exploitability.png",
                 "departs.png"):
        assert (tmp_path / "rep" / name).is_file(), name
    assert list(pd.read_csv(tmp_path / "rep" / "whatif.csv").columns) == W.WHATIF_COLUMNS
