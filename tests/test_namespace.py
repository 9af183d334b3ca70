"""The public namespace: every documented name resolves to a callable, not a module."""

import importlib
import inspect

import bayesdissect


def test_public_names_are_callables_even_after_submodule_import():
    for mod in ("queries.effects", "queries.similarity", "queries.clusters",
                "queries.predictive", "model.sample", "data.loaders"):
        importlib.import_module(f"bayesdissect.{mod}")
    for name in bayesdissect.__all__:
        obj = getattr(bayesdissect, name)
        assert not inspect.ismodule(obj), name
    assert callable(bayesdissect.effects) and callable(bayesdissect.similarity)
    assert callable(bayesdissect.load) and callable(bayesdissect.fit)
