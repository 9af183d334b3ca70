"""Model specs: built-ins, user TOML files, validation with one clear line."""

from __future__ import annotations

import pytest

from bayesdissect.errors import BayesDissectError
from bayesdissect.model.specs import builtin_specs, load_spec, spec_from_json


def test_builtin_specs_have_the_documented_levels() -> None:
    assert {"hierarchical", "paper", "pooled"} <= set(builtin_specs())
    h = load_spec("hierarchical")
    assert set(h.levels) == {"mu", "judge", "group", "cell", "bias"}
    assert h.levels["judge"].sigma_prior == "halfnormal"
    assert h.levels["judge"].sigma_scale == 0.5 and h.levels["group"].sigma_scale == 0.5
    assert h.levels["cell"].sigma_scale == 0.25
    assert h.levels["mu"].prior == "normal" and h.levels["mu"].scale == 1.0
    assert h.levels["bias"].scale == 0.5
    p = load_spec("paper")
    assert set(p.levels) == {"w_cell"}
    assert (p.levels["w_cell"].prior, p.levels["w_cell"].scale) == ("laplace", 0.1)
    assert set(load_spec("pooled").levels) == {"mu", "bias"}
    assert h.sampler.name == "nutpie" and h.sampler.chains >= 2


def test_user_spec_file_and_level_switched_off(tmp_path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text("""
name = "mine"
[levels.mu]
prior = "student_t"
scale = 2.0
nu = 4
[levels.judge]
sigma_prior = "exponential"
sigma_scale = 0.3
sigma_per_property = false
[levels.bias]
on = false
prior = "normal"
scale = 1.0
[sampler]
chains = 2
draws = 50
""")
    spec = load_spec(path)
    assert spec.name == "mine" and set(spec.levels) == {"mu", "judge"}
    assert spec.levels["mu"].nu == 4.0
    assert spec.levels["judge"].sigma_per_property is False
    assert spec.sampler.chains == 2 and spec.sampler.draws == 50
    assert spec_from_json(spec.to_json()) == spec


def test_json_round_trip_and_replace_level() -> None:
    h = load_spec("hierarchical")
    assert spec_from_json(h.to_json()) == h
    no_cell = h.replace_level("cell")
    assert "cell" not in no_cell.levels and "cell" in h.levels
    tight = h.replace_level("judge", sigma_scale=0.01)
    assert tight.levels["judge"].sigma_scale == 0.01


@pytest.mark.parametrize(("text", "needle"), [
    ('name = "x"\n[levels.mu]\nprior = "gamma"\nscale = 1', "levels.mu.prior"),
    ('name = "x"\n[levels.mu]\nprior = "normal"\nscale = -1', "levels.mu.scale"),
    ('name = "x"\n[levels.nope]\nprior = "normal"\nscale = 1', "unknown level 'nope'"),
    ('name = "x"\n[levels.mu]\nsigma_prior = "halfnormal"\nsigma_scale = 1', "sigma_prior"),
    ('name = "x"\n[levels.judge]\nprior = "normal"\nscale = 1\nsigma_prior = "halfnormal"\n'
     'sigma_scale = 1', "not both"),
    ('name = "x"\n[levels.bias]\nprior = "normal"\nscale = 1', "no weight level"),
    ('[levels.mu]\nprior = "normal"\nscale = 1', "missing 'name'"),
    ('name = "x"\n[levels.mu]\nprior = "normal"\nscale = 1\ncolour = 3', "unknown key"),
    ('name = "x"\n[levels.mu]\nprior = "normal"\nscale = 1\n[sampler]\nchains = 0', "chains"),
    ('name = "x"\n[levels.mu]\nprior = "normal"\nscale = 1\n[sampler]\nname = "emcee"',
     "sampler.name"),
    ('name = "x"\n[levels.mu\n', "not valid TOML"),
    # one shared sigma cannot be sampled as size x direction (was: non-centered, silently)
    ('name = "x"\n[levels.judge]\nsigma_prior = "halfnormal"\nsigma_scale = 1\n'
     'sigma_per_property = false\nparameterization = "radial"',
     "'radial' samples one size per sigma, so it needs sigma_per_property = true"),
])
def test_bad_specs_fail_with_one_clear_line(tmp_path, text: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(BayesDissectError) as err:
        load_spec(path)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg and str(path) in msg


def test_unknown_model_name_and_missing_file() -> None:
    with pytest.raises(BayesDissectError, match="unknown model 'nosuch'.*hierarchical"):
        load_spec("nosuch")
    with pytest.raises(BayesDissectError, match="not found"):
        load_spec("/nonexistent/dir/spec.toml")
