"""The README cannot rot: every command and code block in it is taken from README.md itself
and run here, in order, in a fresh folder, as a new user would.

* ``bash`` blocks: ``python3 -m pip install ...`` and ``python3 -m pytest ...`` must be the
  exact commands of ``.ci/run`` (and vice versa); every ``bayesdissect ...`` line runs
  through the real command line (``cli.main``) and must exit 0. A block preceded by
  ``<!-- readme-test: parse-only ... -->`` (the gated real data, which tests must not
  download) is parsed by the real argument parser instead. Any other line fails the test.
* ``python`` blocks run with ``exec``; ``csv`` blocks are written to the file the sentence
  before them names (e.g. `my-pairs.csv`).

To stay within seconds, ``bayesdissect.fitting.fit`` is replaced by ``quick_fit``: the same
data loading, subsetting and spec, a ``Fit`` of the real class, but draws around a crude
least-squares estimate instead of NUTS (sampling itself is tested in the fitting tests); the
paper spec's cell-wise sampler, fast, runs for real at 2 x (200 + 200).
Everything downstream -- saving, loading, every query, the report -- is the real code.
``test_demo_samples_for_real`` runs the README's demo once with real NUTS at a tiny size.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import bayesdissect.model.sample as fitting
from bayesdissect.cli.main import build_parser, main
from bayesdissect.model.specs import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def readme_blocks() -> list[dict[str, Any]]:
    """Fenced blocks in order: language, text, whether parse-only, and the text before."""
    text = README.read_text()
    out, pos = [], 0
    for m in FENCE.finditer(text):
        before = text[pos:m.start()]
        out.append({"lang": m.group(1), "code": m.group(2), "before": before,
                    "parse_only": "readme-test: parse-only" in before.strip().splitlines()[-1]
                    if before.strip() else False})
        pos = m.end()
    return out


def commands(code: str) -> list[str]:
    """Shell lines of a bash block (comments and blank lines dropped, continuations joined)."""
    joined = code.replace("\\\n", " ")
    return [ln.strip() for ln in joined.splitlines()
            if ln.strip() and not ln.strip().startswith("#")]


def ci_commands() -> list[str]:
    """The python3 commands .ci/run runs inside its fresh virtual environment."""
    lines = [ln.strip() for ln in CI.read_text().splitlines()]
    start = lines.index(". .ci-venv/bin/activate")
    return [ln for ln in lines[start + 1:] if ln.startswith("python3 ")]


REAL_FIT = fitting.fit


def quick_fit(data: Any, model: Any = DEFAULT_MODEL, sampler: str | None = None,
              chains: int | None = None, draws: int | None = None, tune: int | None = None,
              seed: int | None = None, target_accept: float | None = None, judges: Any = None,
              groups: Any = None, subset: str | None = None, progressbar: bool = True,
              **_: Any) -> fitting.Fit:
    """Stand-in for ``fitting.fit`` with its signature: real loading, subsetting and spec,
    40 draws x 2 chains around per-judge least-squares weights (no sampling)."""
    from bayesdissect.data.loaders import load
    from bayesdissect.model.diagnostics import compute_diagnostics
    from bayesdissect.model.specs import load_spec

    spec = load_spec(model)
    if (sampler or spec.sampler.name) == "percell":  # the cell-wise loop is fast: run it
        return REAL_FIT(data, model, sampler=sampler, chains=2, draws=200, tune=200,
                        seed=seed, judges=judges, groups=groups, subset=subset,
                        progressbar=False, warn=False)
    if not isinstance(data, xr.Dataset):
        data = load(data)
    data = fitting.subset_data(data, judges=judges, groups=groups, subset=subset)
    x, y = data["x"].values, data["y"].values
    jn, kn = y.shape[1], x.shape[1]
    groups_ = sorted(set(map(str, data["group"].values)))
    w = np.zeros((jn, kn))
    for j in range(jn):
        m = np.isfinite(y[:, j])
        w[j] = 4 * np.linalg.lstsq(x[m], y[m, j] - 0.5, rcond=None)[0]
    rng = np.random.default_rng(seed or 0)
    mu = w.mean(0)
    point = {"mu": mu, "judge_offset": w - mu, "group_offset": np.zeros((len(groups_), kn)),
             "cell_offset": np.zeros((jn, len(groups_), kn)), "bias": np.zeros(jn)}
    dims = {"mu": ("property",), "judge_offset": ("judge", "property"),
            "group_offset": ("group", "property"),
            "cell_offset": ("judge", "group", "property"), "bias": ("judge",)}
    if spec.has("pair"):  # the default spec's latent pair quality (here none)
        point["pair_effect"] = np.zeros(data.sizes["pair"])
        dims["pair_effect"] = ("pair",)
    shape = (2, 40)
    post = xr.Dataset(
        {k: (("chain", "draw") + dims[k], v + 0.05 * rng.normal(size=shape + v.shape))
         for k, v in point.items()},
        coords={"chain": np.arange(2), "draw": np.arange(40), "judge": data["judge"].values,
                "group": groups_, "property": data["property"].values,
                **({"pair": data["pair"].values} if "pair_effect" in point else {})})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros(shape, bool))},
                       coords={"chain": np.arange(2), "draw": np.arange(40)})
    tree = xr.DataTree()
    tree["posterior"] = xr.DataTree(post)
    tree["sample_stats"] = xr.DataTree(stats)
    diag = compute_diagnostics(post, stats, {"sampling_seconds": 0.0, "total_seconds": 0.0})
    return fitting.Fit(data=data, spec=spec, posterior=tree, diagnostics=diag,
                       settings={"sampler": "quick_fit (test stand-in)", "chains": 2,
                                 "draws": 40, "tune": 0, "seed": seed})


def test_install_and_test_commands_match_ci():
    shown = [c for b in readme_blocks() if b["lang"] == "bash" for c in commands(b["code"])
             if c.startswith("python3 ")]
    assert shown == ci_commands(), "README's install/test commands must be .ci/run's"
    assert shown == ['python3 -m pip install -e ".[dev]"', "python3 -m pytest -q"]


def test_ci_runs_in_a_fresh_virtual_environment():
    """A package installed by hand on the machine must not hide a missing dependency: CI
    makes a new venv inside the clone, activates it, and checks imports with deptry."""
    lines = [ln.strip() for ln in CI.read_text().splitlines()]
    assert "rm -rf .ci-venv" in lines and "python3 -m venv .ci-venv" in lines
    assert lines.index("python3 -m venv .ci-venv") < lines.index(". .ci-venv/bin/activate")
    assert "deptry bayesdissect" in lines


def test_readme_has_the_promised_parts():
    langs = [b["lang"] for b in readme_blocks()]
    assert "python" in langs and "csv" in langs
    text = README.read_text()
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (ROOT / image).is_file(), image
    assert "benchmarks/RESULTS.md" in text
    assert (ROOT / "benchmarks" / "RESULTS.md").is_file()
    assert "DEMO_TIME" not in text  # the measured demo time is filled in


def test_every_readme_block_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(fitting, "fit", quick_fit)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    parser = build_parser()
    ran = []
    namespace = {"__name__": "__readme__"}  # the Python blocks run as one session, in order
    for block in readme_blocks():
        lang, code = block["lang"], block["code"]
        if lang == "csv":
            name = re.findall(r"`([\w.-]+\.csv)`", block["before"])[-1]
            (tmp_path / name).write_text(code)
        elif lang == "python":
            exec(compile(code, str(README), "exec"), namespace)
            ran.append("python block")
        elif lang == "bash":
            for line in commands(code):
                if line.startswith("python3 "):
                    continue  # install and test: checked against .ci/run above
                argv = shlex.split(line)
                assert argv[0] == "bayesdissect", f"README command not covered: {line}"
                if block["parse_only"]:
                    args = parser.parse_args(argv[1:])
                    assert callable(args.func), line
                else:
                    code_ = main(argv[1:])
                    err = capsys.readouterr().err
                    assert code_ == 0, f"{line}\n{err}"
                ran.append(line)
        else:
            pytest.fail(f"README block of unknown kind {lang!r}")
    assert (tmp_path / "bayesdissect-demo" / "report.html").is_file()
    assert (tmp_path / "bayesdissect-demo" / "fit.nc").is_file()
    assert any(line.startswith("bayesdissect demo") for line in ran)
    assert "python block" in ran


def test_demo_samples_for_real(tmp_path, monkeypatch, capsys):
    """The README's demo command with real NUTS, on 2 judges and few draws."""
    demo = next(c for b in readme_blocks() if b["lang"] == "bash"
                for c in commands(b["code"]) if c.startswith("bayesdissect demo"))
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(demo)[1:] + ["--judges", "human,gpt-4-1106-preview", "--chains", "2",
                                     "--draws", "40", "--tune", "40", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"report: {Path('bayesdissect-demo') / 'report.html'}"]
    html = (tmp_path / "bayesdissect-demo" / "report.html").read_text()
    assert "These data are SIMULATED" in html
    for image in re.findall(r'<img src="([^"]+)"', html):
        assert (tmp_path / "bayesdissect-demo" / image).is_file()
