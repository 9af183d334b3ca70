"""Spec -> model -> sample: model specs, the PyMC model, sampling, diagnostics,
the Fit object and its file."""
