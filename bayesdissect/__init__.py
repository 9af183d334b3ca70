"""bayesdissect: Bayesian preference dissection.

Why do human and LLM judges prefer one response over another, property by property,
and how sure are we? One hierarchical Bayesian Bradley-Terry model in PyMC, fit with NUTS.

The public namespace is small and imported lazily (PyMC is only imported when a model
is built or a fit is loaded):

* ``load(source)`` -> ``xarray.Dataset`` (GAIR file, ``hf:`` id, ``"demo"``, tidy table)
* ``simulate(...)`` -> a dataset in the GAIR schema with known true weights
* ``fit(data, model="hierarchical", ...)`` -> ``Fit``; ``load_fit(path)`` -> ``Fit``
* ``BayesDissectError``: the one exception type bad input raises
"""

from __future__ import annotations

import importlib
from typing import Any

from .catalogue import JUDGES, PROPERTIES, PROPERTY_NAMES
from .errors import BayesDissectError

__version__ = "0.1.0"

_LAZY = {
    "load": "loaders",
    "simulate": "simulate",
    "fit": "fitting",
    "load_fit": "fitting",
    "Fit": "fitting",
    "load_spec": "specs",
    "build_model": "model",
}

__all__ = ["BayesDissectError", "JUDGES", "PROPERTIES", "PROPERTY_NAMES", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'bayesdissect' has no attribute {name!r}")
