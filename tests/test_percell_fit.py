"""``bd.fit(model="paper")`` through the cell-wise loop (its default sampler ``percell``) and
the CLI's ``fit --folds / --cell-groups``: what the Fit holds, a saved and reloaded fit
answering queries, and the options refused with one line (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_dataset

import bayesdissect as bd
from bayesdissect import cli
from bayesdissect.data.loaders import to_tidy
from bayesdissect.errors import BayesDissectError

SMALL = {"chains": 2, "draws": 150, "tune": 150, "progressbar": False, "warn": False}


@pytest.fixture(scope="module")
def data():  # noqa: ANN201
    d, _ = make_dataset(3, 2, 160, 3, seed=61, bias_scale=0.0)
    return d


def test_paper_defaults_to_percell_at_the_papers_settings() -> None:
    s = bd.load_spec("paper").sampler
    assert (s.name, s.chains, s.tune, s.draws) == ("percell", 4, 500, 2000)


def test_fit_paper_is_cellwise_and_queries_run_on_the_reloaded_fit(data, tmp_path) -> None:  # noqa: ANN001
    f = bd.fit(data, "paper", seed=2, **SMALL)
    judges = [str(j) for j in data.judge.values]
    groups = sorted(set(map(str, data.group.values)))
    assert f.settings["sampler"] == "percell" and f.settings["cell_groups"] == "scenarios"
    cs = f.idata["cell_stats"].to_dataset()
    assert cs["rhat"].shape == (len(judges), len(groups), data.sizes["property"])
    assert f.posterior["w_cell"].dims == ("chain", "draw", "judge", "group", "property")
    assert list(f.posterior["group"].values) == groups  # the data's groups: queries line up
    assert f.diagnostics["n_cells"] == len(judges) * len(groups)
    g = bd.load_fit(f.save(tmp_path / "cells.nc"))
    np.testing.assert_array_equal(g.posterior["w_cell"].values, f.posterior["w_cell"].values)
    assert "cell_stats" in g.idata.children
    eff = bd.effects(g)
    assert np.isfinite(eff["pref_mean"]).all()
    assert bd.similarity(g).shape[0] == len(judges) * (len(judges) - 1) // 2
    assert bd.ppc(g, n_resamples=20).n_draws > 0


def test_cases_as_groups_and_folds(data) -> None:  # noqa: ANN001
    f = bd.fit(data, "paper", seed=3, cell_groups="scenarios+cases", folds=2, **SMALL)
    groups = [str(g) for g in f.posterior["group"].values]
    assert len(groups) > len(set(map(str, data.group.values)))  # the cases came in
    assert f.posterior.sizes["chain"] == 2 * 2  # folds x chains
    assert f.idata["cell_stats"]["rhat"].dims[0] == "fold"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"sampler": "nutpie", "folds": 2}, "only sampler 'percell'"),
    ({"sampler": "percell", "cell_groups": "cases"}, "cell_groups"),
    ({"model": "hierarchical", "sampler": "percell"}, "does not factorise"),
    ({"sampler": "percell", "folds": 0}, "folds"),
    ({"sampler": "percell", "cell_groups": "scenarios+cases", "log_likelihood": True},
     "log_likelihood"),
])
def test_bad_percell_options_are_one_line(data, kwargs: dict, match: str) -> None:  # noqa: ANN001
    kwargs = {"model": "paper", **kwargs}
    with pytest.raises(BayesDissectError, match=match) as exc:
        bd.fit(data, seed=1, **{**SMALL, **kwargs})
    assert "\n" not in str(exc.value)


def test_cli_fit_paper_folds(data, tmp_path, capsys) -> None:  # noqa: ANN001
    path = tmp_path / "d.csv"
    to_tidy(data).to_csv(path, index=False)
    out = tmp_path / "f.nc"
    rc = cli.main(["fit", str(path), "--out", str(out), "--model", "paper", "--chains", "2",
                   "--draws", "100", "--tune", "100", "--seed", "1", "--folds", "2"])
    assert rc == 0 and out.is_file()
    assert "cells x 2 chains" in capsys.readouterr().err
    assert bd.load_fit(out).settings["folds"] == 2
    before = out.read_bytes()
    for extra, needle in ((["--folds", "1"], "--folds: expected an integer >= 2"),
                          (["--folds", "x"], "--folds: expected an integer"),
                          (["--sampler", "nutpie", "--folds", "2"], "only sampler 'percell'")):
        rc = cli.main(["fit", str(path), "--out", str(out), "--model", "paper", *extra])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and needle in err and "Traceback" not in err, err
        assert len(err.splitlines()) == 1, err
    assert out.read_bytes() == before  # a failed run leaves the earlier fit alone


def test_cli_fit_thin_and_compress(data, tmp_path, capsys) -> None:  # noqa: ANN001
    path = tmp_path / "d.csv"
    to_tidy(data).to_csv(path, index=False)
    out = tmp_path / "thin.nc"
    base = ["fit", str(path), "--out", str(out), "--model", "paper", "--chains", "2",
            "--draws", "100", "--tune", "100", "--seed", "1"]
    assert cli.main([*base, "--thin", "4", "--compress", "1"]) == 0
    f = bd.load_fit(out)
    assert f.posterior.sizes["draw"] == 25 and f.settings["thin"] == 4
    capsys.readouterr()
    for extra, needle in ((["--thin", "101"], "--thin: expected at most the 100 draws"),
                          (["--thin", "0"], "--thin: expected an integer >= 1"),
                          (["--compress", "10"], "--compress: expected a zlib level 0-9")):
        assert cli.main([*base, "--out", str(tmp_path / "no.nc"), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "no.nc").exists()
