"""``load``: simulated GAIR files, the bundled demo, tidy tables, field maps, ``hf:``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayesdissect import load
from bayesdissect.data.catalogue import (
    CASE_SIZES,
    CASES,
    JUDGE_KEYS,
    PROPERTY_NAMES,
    SCENARIO_SIZES,
)
from bayesdissect.data.loaders import to_tidy
from bayesdissect.data.simulate import simulate


def assert_same_data(got: xr.Dataset, want: xr.Dataset) -> None:
    """Exact equality of everything the contract holds (attrs source/title aside)."""
    assert got["pair"].values.tolist() == want["pair"].values.tolist()
    assert got["judge"].values.tolist() == want["judge"].values.tolist()
    assert got["property"].values.tolist() == want["property"].values.tolist()
    assert np.array_equal(got["x"].values, want["x"].values)
    assert np.array_equal(got["y"].values, want["y"].values, equal_nan=True)
    assert got["group"].values.tolist() == want["group"].values.tolist()
    cases = sorted(v for v in want.data_vars if str(v).startswith("case_"))
    assert sorted(v for v in got.data_vars if str(v).startswith("case_")) == cases
    for c in cases:
        assert got[c].dtype == bool and (got[c].values == want[c].values).all()
    assert got.attrs["n_dropped"] == want.attrs["n_dropped"]
    assert got.attrs["simulated"] == want.attrs["simulated"]


def check_contract(data: xr.Dataset) -> None:
    assert set(data.dims) == {"pair", "property", "judge"}
    assert data["pair"].dtype == np.int64
    assert data["x"].dims == ("pair", "property") and data["x"].dtype == np.float64
    assert data["y"].dims == ("pair", "judge") and data["y"].dtype == np.float64
    assert set(np.unique(data["y"].values[~np.isnan(data["y"].values)])) <= {0.0, 1.0}
    for c in ("judge_display", "judge_size", "judge_type"):
        assert data[c].dims == ("judge",)
    for c in ("property_key", "property_kind"):
        assert data[c].dims == ("property",)
    assert {"source", "n_dropped", "simulated", "title"} <= set(data.attrs)
    for v in data.attrs.values():
        assert isinstance(v, (str, int, float))


@pytest.fixture(scope="module")
def sim_files(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("sim")
    sims = {}
    for ext in ("parquet", "jsonl"):
        sims[ext] = simulate(d / f"sim.{ext}", n_pairs=400, judges=6, groups=4, seed=11,
                             drop_rate=0.1, label_rate=0.9)
    return sims


@pytest.mark.parametrize("ext", ["parquet", "jsonl"])
def test_simulated_file_loads_to_the_simulators_own_data(sim_files, ext: str) -> None:
    sim = sim_files[ext]
    data = load(sim.path)
    check_contract(data)
    assert_same_data(data, sim.data)
    assert data.attrs["simulated"] == 1 and "imulated" in data.attrs["title"]
    assert data.attrs["source"] == str(sim.path)
    assert 0 < data.attrs["n_dropped"] < 100
    assert data.sizes["pair"] + data.attrs["n_dropped"] == 400
    assert np.isnan(data["y"].values).any()


def test_judge_and_property_metadata(sim_files) -> None:
    data = load(sim_files["parquet"].path)
    assert data["judge"].values.tolist() == list(JUDGE_KEYS[:6])
    assert data["judge_display"].values.tolist()[:2] == ["Yi-6B", "Yi-6B-Chat"]
    assert data["judge_size"].values.tolist()[:3] == [6.0, 6.0, 7.0]
    assert data["judge_type"].values.tolist()[:2] == ["base", "aligned"]
    assert data["property"].values.tolist() == list(PROPERTY_NAMES)
    assert data["property_key"].values[15] == "repetitive"
    assert data["property_kind"].values[[0, 20, 23, 28]].tolist() == [
        "basic", "error", "query-specific", "length"]


def test_demo_offline_fast_and_paper_sized() -> None:
    t0 = time.perf_counter()
    data = load("demo")
    seconds = time.perf_counter() - t0
    assert seconds < 5.0, seconds
    check_contract(data)
    assert data.attrs["simulated"] == 1 and "SIMULATED" in data.attrs["title"]
    assert data.attrs["source"] == "demo"
    assert data["judge"].values.tolist() == list(JUDGE_KEYS)
    n_kept, n_drop = data.sizes["pair"], data.attrs["n_dropped"]
    assert n_kept + n_drop == 5240 and 0 < n_drop < 500
    assert data["pair"].values.max() <= 5239


def test_demo_raw_rows_have_paper_group_and_case_sizes() -> None:
    from importlib import resources

    import pyarrow.parquet as pq

    with resources.as_file(resources.files("bayesdissect.data") / "demo.parquet") as p:
        table = pq.read_table(p, columns=["scenario_group", "clear intent",
                                          "explicitly express feelings",
                                          "explicit constraints", "explicit subjective stances",
                                          "explicit mistakes or biases"]).to_pandas()
    assert table["scenario_group"].value_counts().to_dict() == SCENARIO_SIZES
    sizes = {
        "intent_unclear": int((table["clear intent"] == "No").sum()),
        "express_feeling": int((table["explicitly express feelings"] == "Yes").sum()),
        "w_constraints": int(table["explicit constraints"].map(len).gt(0).sum()),
        "w_stances": int(table["explicit subjective stances"].map(len).gt(0).sum()),
        "w_mistakes": int(table["explicit mistakes or biases"].map(len).gt(0).sum()),
    }
    assert sizes == CASE_SIZES


def test_demo_truth_matches_dataset() -> None:
    from bayesdissect.data.simulate import load_truth

    truth = load_truth("demo")
    data = load("demo")
    assert truth["w"].dims == ("judge", "group", "property")
    assert truth["judge"].values.tolist() == data["judge"].values.tolist()
    assert truth["group"].values.tolist() == sorted(set(data["group"].values))
    w = truth["mu"] + truth["judge_offset"] + truth["group_offset"] + truth["cell_offset"]
    np.testing.assert_allclose(w.transpose("judge", "group", "property").values,
                               truth["w"].values, atol=1e-12)
    for v in ("bias", "sigma_judge", "sigma_group", "sigma_cell"):
        assert v in truth


def test_field_map_reads_renamed_dataset(tmp_path: Path, sim_files) -> None:
    sim = sim_files["jsonl"]
    rename = {"scenario_group": "category", "preference_labels": "votes",
              "num_words": "n_words", "accuracy check": "acc_ok",
              "basic_response_1": "basic_a", "clear intent": "intent_is_clear"}

    def rn(obj):
        if isinstance(obj, dict):
            return {rename.get(k, k): rn(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [rn(v) for v in obj]
        return obj

    path = tmp_path / "renamed.jsonl"
    path.write_text("".join(json.dumps(rn(r)) + "\n" for r in sim.rows))
    from bayesdissect.errors import BayesDissectError

    with pytest.raises(BayesDissectError, match="scenario_group"):
        load(path)
    data = load(path, field_map=rename)
    assert_same_data(data, sim.data.assign_attrs(simulated=0))  # no truth file beside it


def test_tidy_round_trip_csv_and_parquet(tmp_path: Path, sim_files) -> None:
    want = sim_files["parquet"].data
    df = to_tidy(want)
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.parquet"):
        got = load(tmp_path / name)
        check_contract(got)
        assert_same_data(got, want.assign_attrs(simulated=0, n_dropped=0))
        assert got["property_kind"].values[28] == "length"


def test_tidy_minimal_real_valued_table(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text(
        "label:alice,label:bob,label:carol,warmth,log length ratio,case:long\n"
        "A,1,response_1,0.5,1.25,yes\n"
        "B,2,,-0.25,0,0\n"
        "a,,RESPONSE_2,0,-3.5,True\n")
    data = load(tmp_path / "m.csv")
    check_contract(data)
    assert data["pair"].values.tolist() == [0, 1, 2]
    assert data["group"].values.tolist() == ["all"] * 3
    assert data["property"].values.tolist() == ["warmth", "log length ratio"]
    assert data["property_kind"].values.tolist() == ["custom", "custom"]
    assert data["x"].values.tolist() == [[0.5, 1.25], [-0.25, 0.0], [0.0, -3.5]]
    np.testing.assert_array_equal(data["y"].values,
                                  [[1, 1, 1], [0, 0, np.nan], [1, np.nan, 0]])
    assert data["case_long"].values.tolist() == [True, False, True]
    assert data["judge_type"].values.tolist() == ["unknown"] * 3


def test_tidy_dataframe_and_pair_column() -> None:
    df = pd.DataFrame({"pair": [10, 3], "group": ["g1", "g2"], "label:human": ["B", "A"],
                       "clear": [1.0, -1.0]})
    data = load(df)
    assert data["pair"].values.tolist() == [10, 3]
    assert data["judge_display"].values.tolist() == ["Human"]
    assert data["property_key"].values.tolist() == ["clear and understandable"]


def test_hf_source_through_datasets(monkeypatch: pytest.MonkeyPatch, sim_files) -> None:
    import datasets
    import pyarrow.parquet as pq

    import bayesdissect.data.loaders as loaders

    sim = sim_files["parquet"]
    calls = {}

    def fake_load_dataset(repo, split=None, token=None, **kw):
        calls.update(repo=repo, split=split, token=token)
        return datasets.Dataset(pq.read_table(sim.path))

    monkeypatch.setattr(loaders, "_probe_hub", lambda: "")
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    data = load("hf:GAIR/preference-dissection")
    assert calls == {"repo": "GAIR/preference-dissection", "split": "train",
                     "token": "hf_test_token"}
    assert_same_data(data, sim.data.assign_attrs(simulated=0))
    assert data.attrs["source"] == "hf:GAIR/preference-dissection"


def test_every_case_flag_present_for_gair(sim_files) -> None:
    data = load(sim_files["jsonl"].path)
    assert [v for v in data.data_vars if str(v).startswith("case_")] == [
        f"case_{c}" for c in CASES]


def test_cli_info_prints_counts(capsys: pytest.CaptureFixture[str], sim_files) -> None:
    from bayesdissect.cli.main import main

    sim = sim_files["parquet"]
    assert main(["info", str(sim.path)]) == 0
    out = capsys.readouterr().out
    d = sim.data
    assert f"{d.sizes['pair']} kept, {d.attrs['n_dropped']} dropped" in out
    assert "judges:   6" in out and "groups:   4" in out and "imulated" in out


def test_cli_info_field_map(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            sim_files) -> None:
    from bayesdissect.cli.main import main

    rows = [dict(r) for r in sim_files["jsonl"].rows[:50]]
    for r in rows:
        r["category"] = r.pop("scenario_group")
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "map.json").write_text('{"scenario_group": "category"}')
    assert main(["info", str(path), "--field-map", '{"scenario_group": "category"}']) == 0
    assert main(["info", str(path), "--field-map", str(tmp_path / "map.json")]) == 0
    assert "pairs:" in capsys.readouterr().out
    assert main(["info", str(path), "--field-map", "{oops"]) == 2
    assert "--field-map" in capsys.readouterr().err
