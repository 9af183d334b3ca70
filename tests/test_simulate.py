"""``simulate``: reproducible, realistic GAIR-schema data with labels from known weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from bayesdissect import load
from bayesdissect.data.catalogue import CASES, JUDGE_KEYS, PROPERTY_NAMES
from bayesdissect.data.simulate import load_truth, simulate, truth_path_for
from bayesdissect.errors import BayesDissectError

QS_SLOT = {c: 23 + k for k, c in enumerate(CASES)}


def test_same_seed_same_data_other_seed_differs() -> None:
    a = simulate(n_pairs=200, judges=3, groups=2, seed=7)
    b = simulate(n_pairs=200, judges=3, groups=2, seed=7)
    c = simulate(n_pairs=200, judges=3, groups=2, seed=8)
    assert a.rows == b.rows
    assert a.truth.equals(b.truth) and a.data.equals(b.data)
    assert not np.array_equal(a.data["x"].values, c.data["x"].values[: a.data.sizes["pair"]])
    assert not np.allclose(a.truth["w"].values, c.truth["w"].values)


def test_truth_written_beside_file_and_consistent(tmp_path: Path) -> None:
    sim = simulate(tmp_path / "d.parquet", n_pairs=150, judges=4, groups=3, seed=2)
    assert sim.truth_path == truth_path_for(tmp_path / "d.parquet")
    assert sim.truth_path.name == "d.parquet.truth.nc" and sim.truth_path.exists()
    truth = load_truth(sim.path)
    assert truth.equals(sim.truth)
    assert truth["w"].dims == ("judge", "group", "property")
    assert {d: truth.sizes[d] for d in ("judge", "group", "property")} == \
        {"judge": 4, "group": 3, "property": 29}   # (+ judge2 of the true similarities)
    assert truth["group"].values.tolist() == sorted(set(sim.data["group"].values))
    w = truth["mu"] + truth["judge_offset"] + truth["group_offset"] + truth["cell_offset"]
    np.testing.assert_allclose(w.transpose(*truth["w"].dims).values, truth["w"].values,
                               atol=1e-12)
    assert (truth["sigma_judge"] >= 0).all() and truth["bias"].dims == ("judge",)
    assert truth.attrs["simulated"] == 1


def test_realistic_features() -> None:
    sim = simulate(n_pairs=2000, judges=2, seed=3, drop_rate=0.05)
    d = sim.data
    x = d["x"].values
    basic = x[:, :20]
    assert 0.3 < (basic == 0).mean() < 0.9           # ties are common
    assert set(np.unique(x)) == {-1.0, 0.0, 1.0}
    for case, slot in QS_SLOT.items():
        flags = d[f"case_{case}"].values
        assert not x[~flags, slot].any()             # zero outside their case
        assert flags.any() and x[flags, slot].any()  # and used inside it
    assert 0.02 < d.attrs["n_dropped"] / 2000 < 0.08  # some pairs fail the accuracy check
    assert 0.3 < (x[:, 28] != 0).mean() < 0.95
    assert 0.3 < np.nanmean(d["y"].values) < 0.7


def test_no_drops_and_missing_labels_when_asked() -> None:
    sim = simulate(n_pairs=300, judges=4, groups=2, seed=4, drop_rate=0.0, label_rate=0.7)
    assert sim.data.attrs["n_dropped"] == 0 and sim.data.sizes["pair"] == 300
    missing = np.isnan(sim.data["y"].values).mean()
    assert abs(missing - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 1200)


def test_any_number_of_judges_groups_cases() -> None:
    sim = simulate(n_pairs=120, judges=35, groups={"a": 50, "b": 40, "c": 30},
                   cases={"w_stances": 0.5, "intent_unclear": 0.2}, seed=1, drop_rate=0)
    d = sim.data
    assert d["judge"].values.tolist() == list(JUDGE_KEYS) + ["judge-34", "judge-35"]
    assert {g: int((d["group"] == g).sum()) for g in "abc"} == {"a": 50, "b": 40, "c": 30}
    assert int(d["case_w_stances"].sum()) == 25 + 20 + 15
    assert int(d["case_intent_unclear"].sum()) == 10 + 8 + 6
    for c in ("express_feeling", "w_constraints", "w_mistakes"):
        assert not d[f"case_{c}"].any()
    named = simulate(n_pairs=10, judges=["me", "you"], groups=["x"], seed=0)
    assert named.data["judge"].values.tolist() == ["me", "you"]
    assert set(named.data["group"].values) == {"x"}


def test_given_weights_drive_labels() -> None:
    w = np.zeros(29)
    w[PROPERTY_NAMES.index("lengthy")] = 30.0
    sim = simulate(n_pairs=400, judges=3, groups=2, seed=9, weights=w, levels=("judge",))
    d = sim.data
    assert np.allclose(sim.truth["w"].values, w) and not sim.truth["bias"].any()
    lengthy = d["x"].sel(property="lengthy").values
    y = d["y"].values
    on = lengthy != 0
    assert on.sum() > 100
    assert (y[on] == (lengthy[on] > 0)[:, None]).all()


def test_labels_follow_drawn_weights() -> None:
    sim = simulate(n_pairs=3000, judges=3, groups=2, seed=12)
    d, t = sim.data, sim.truth
    g = np.searchsorted(t["group"].values, d["group"].values)
    logits = t["bias"].values[None, :] + np.einsum("ik,jik->ij", d["x"].values,
                                                   t["w"].values[:, g, :])
    p = 1 / (1 + np.exp(-logits))
    y = d["y"].values
    # calibration: predicted vs observed share in probability bins, within binomial noise
    for lo, hi in ((0.0, 0.2), (0.2, 0.5), (0.5, 0.8), (0.8, 1.0)):
        m = (p >= lo) & (p < hi)
        if m.sum() < 200:
            continue
        se = np.sqrt((p[m] * (1 - p[m])).sum()) / m.sum()
        assert abs(y[m].mean() - p[m].mean()) < 4 * se + 1e-9, (lo, hi)


def test_paper_layout_defaults() -> None:
    sim = simulate(seed=0, judges=2)
    d = sim.data
    assert d.sizes["pair"] + d.attrs["n_dropped"] == 5240
    assert sim.truth.sizes["group"] == 11


def test_bad_arguments() -> None:
    with pytest.raises(BayesDissectError, match="unknown case"):
        simulate(n_pairs=10, cases=["w_feelings"])
    with pytest.raises(BayesDissectError, match="expected .parquet or .jsonl"):
        simulate("out.csv", n_pairs=10)
    with pytest.raises(BayesDissectError, match="broadcast"):
        simulate(n_pairs=10, judges=2, groups=1, weights=np.zeros(5))
    with pytest.raises(BayesDissectError, match="drop_rate"):
        simulate(n_pairs=10, drop_rate=1.5)


def test_cli_simulate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bayesdissect.cli.main import main

    out = tmp_path / "cli.jsonl"
    rc = main(["simulate", "--out", str(out), "--judges", "3", "--pairs", "80",
               "--groups", "2", "--seed", "5"])
    assert rc == 0
    assert out.exists() and truth_path_for(out).exists()
    assert "SIMULATED" in capsys.readouterr().out
    data = load(out)
    assert data.sizes["judge"] == 3 and data.attrs["simulated"] == 1
    again = simulate(tmp_path / "api.jsonl", judges=3, n_pairs=80, groups=2, seed=5)
    assert np.array_equal(data["x"].values, again.data["x"].values)
    assert xr.open_dataset(truth_path_for(out)).load().equals(again.truth)
    assert main(["simulate", "--out", str(tmp_path / "x.txt"), "--pairs", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x.txt" in err[0]
