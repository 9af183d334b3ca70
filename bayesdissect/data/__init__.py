"""Bundled data: the simulated paper-sized dataset and its true weights."""
