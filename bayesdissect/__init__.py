"""bayesdissect: Bayesian preference dissection.

Why do human and LLM judges prefer one response over another, property by property,
and how sure are we? One hierarchical Bayesian Bradley-Terry model in PyMC, fit with NUTS.

The public namespace is small and imported lazily (PyMC is only imported when a model
is built or a fit is loaded):

* ``load(source)`` -> ``xarray.Dataset`` (GAIR file, ``hf:`` id, ``"demo"``, tidy table)
* ``simulate(...)`` -> a dataset in the GAIR schema with known true weights
* ``fit(data, model="hierarchical-pair", ...)`` -> ``Fit``; ``load_fit(path)`` -> ``Fit``;
  ``add_judge(fit, labels, name)`` -> ``Fit``
* ``effects``, ``contrast``, ``similarity``, ``clusters``, ``ppc``, ``loo``,
  ``compare_models``: what a fit answers, as pandas / xarray objects
* ``add_log_likelihood(fit)``, ``add_posterior_predictive(fit)``: the fit with those ArviZ
  groups added to ``fit.idata`` (the fit's standard ArviZ DataTree)
* ``whatif``, ``exploitability``, ``explain``, ``departs``: the model's counterfactual
  win rates, per-pair explanations and judge-vs-reference disagreement (bayesdissect.queries.whatif)
* ``write_report(fit, out_dir)``: the HTML report (figures: ``bayesdissect.plots``)
* ``BayesDissectError``: the one exception type bad input raises
"""

from __future__ import annotations

import importlib
from typing import Any

# Data and query functions are imported eagerly: several share their module's name
# (bayesdissect.effects is a function), and a lazy name would be shadowed by the submodule
# once it is imported. They need numpy/pandas/xarray/scipy only; PyMC stays lazy.
from bayesdissect.data.catalogue import JUDGES, PROPERTIES, PROPERTY_NAMES
from bayesdissect.data.loaders import load, to_tidy
from bayesdissect.data.simulate import load_truth, simulate
from bayesdissect.errors import BayesDissectError
from bayesdissect.queries.clusters import clusters
from bayesdissect.queries.effects import all_effects, contrast, effects
from bayesdissect.queries.predictive import (
    add_log_likelihood,
    add_posterior_predictive,
    compare_models,
    loo,
    ppc,
)
from bayesdissect.queries.similarity import similarity, similarity_matrix
from bayesdissect.queries.whatif import departs, explain, exploitability, whatif

__version__ = "0.1.0"

_LAZY = {
    "load_spec": "model.specs",
    "build_model": "model.build",
    "fit": "model.sample",
    "load_fit": "model.fitted",
    "Fit": "model.fitted",
    "add_judge": "queries.addjudge",
    "write_report": "report.html",
}

__all__ = [
    "BayesDissectError", "JUDGES", "PROPERTIES", "PROPERTY_NAMES",
    "load", "to_tidy", "simulate", "load_truth",
    "add_log_likelihood", "add_posterior_predictive", "all_effects", "clusters",
    "compare_models", "contrast", "effects", "loo", "ppc", "similarity", "similarity_matrix",
    "whatif", "exploitability", "explain", "departs", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'bayesdissect' has no attribute {name!r}")
