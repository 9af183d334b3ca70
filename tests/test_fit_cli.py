"""CLI ``fit`` and ``check``: a small end-to-end fit, JSON/table diagnostics, one-line
errors with exit code 2, and no half-written or overwritten FIT after a failure."""

from __future__ import annotations

import json

import pytest
from conftest import make_dataset

from bayesdissect import cli
from bayesdissect.data.loaders import to_tidy


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory):
    data, _ = make_dataset(3, 2, 120, 3, seed=51)
    path = tmp_path_factory.mktemp("cli") / "data.csv"
    to_tidy(data).to_csv(path, index=False)
    return path, data


def _one_error_line(capsys) -> str:  # noqa: ANN001
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_fit_then_check_json_and_table(data_csv, tmp_path, capsys) -> None:
    path, data = data_csv
    out = tmp_path / "fit.nc"
    rc = cli.main(["fit", str(path), "--out", str(out), "--model", "pooled", "--chains", "2",
                   "--draws", "60", "--tune", "60", "--seed", "3", "--backend", "jax",
                   "--judges", ",".join(map(str, data.judge.values[:2]))])
    assert rc == 0 and out.is_file()
    assert "wrote" in capsys.readouterr().err
    assert cli.main(["check", str(out), "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    for key in ("max_rhat", "min_ess_bulk", "min_ess_tail", "divergences",
                "sampling_seconds", "total_seconds"):
        assert isinstance(d[key], int | float), key
    assert d["model"] == "pooled" and d["settings"]["seed"] == 3
    assert d["settings"]["judges"] == [str(j) for j in data.judge.values[:2]]
    pred = d["predictive"]
    for key in ("accuracy", "log_score", "calibration_ece", "elpd_loo", "elpd_loo_se",
                "flagged_judges", "worst_agreement"):
        assert key in pred, key
    assert 0.0 <= pred["accuracy"] <= 1.0 and pred["log_score"] < 0 and pred["elpd_loo"] < 0
    assert cli.main(["check", str(out)]) == 0
    text = capsys.readouterr().out
    assert "max_rhat" in text and "divergences" in text and "converged:" in text
    assert "[predictive]" in text and "elpd_loo" in text
    assert cli.main(["check", str(out), "--no-ppc", "--format", "json"]) == 0
    assert "predictive" not in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("extra", "needle"), [
    (["--model", "nosuch"], "unknown model"),
    (["--judges", "nobody"], "unknown judge"),
    (["--groups", "Nowhere"], "unknown group"),
    (["--subset", "no_case"], "unknown case"),
    (["--sampler", "emcee"], "unknown sampler"),
    (["--chains", "0"], "--chains"),
    (["--draws", "many"], "--draws"),
    (["--min-draws", "-1"], "--min-draws"),
    (["--target-accept", "2"], "--target-accept"),
])
def test_bad_arguments_one_line_exit_2_and_nothing_overwritten(data_csv, tmp_path, capsys,
                                                               extra, needle) -> None:
    path, _ = data_csv
    out = tmp_path / "fit.nc"
    out.write_bytes(b"earlier result")
    rc = cli.main(["fit", str(path), "--out", str(out), "--model", "pooled", *extra])
    assert rc == 2
    assert needle in _one_error_line(capsys)
    assert out.read_bytes() == b"earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.nc"]


def test_failed_or_interrupted_write_leaves_earlier_fit(data_csv, tmp_path, capsys,
                                                        monkeypatch) -> None:
    import xarray as xr

    import bayesdissect.model.sample as fitting

    path, _ = data_csv
    out = tmp_path / "fit.nc"
    out.write_bytes(b"earlier result")

    def interrupted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise KeyboardInterrupt

    monkeypatch.setattr(fitting, "fit", interrupted)
    assert cli.main(["fit", str(path), "--out", str(out), "--model", "pooled"]) == 130
    assert out.read_bytes() == b"earlier result"
    monkeypatch.undo()

    def half_written(self, target, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        with open(target, "wb") as fh:
            fh.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(xr.DataTree, "to_netcdf", half_written)
    with pytest.raises(OSError):
        cli.main(["fit", str(path), "--out", str(out), "--model", "pooled", "--chains", "1",
                  "--draws", "20", "--tune", "20", "--backend", "jax", "--quiet"])
    assert out.read_bytes() == b"earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.nc"]
    capsys.readouterr()


def test_check_on_a_missing_or_foreign_file(tmp_path, capsys) -> None:
    assert cli.main(["check", str(tmp_path / "none.nc")]) == 2
    assert "not found" in _one_error_line(capsys)
    junk = tmp_path / "junk.nc"
    junk.write_text("junk")
    assert cli.main(["check", str(junk)]) == 2
    assert "junk.nc" in _one_error_line(capsys)
