"""Shared pytest configuration: Keras on PyTorch, and one hypothesis profile for the suite."""

import os

# Before any test module imports keras: the tests compare Keras on the torch backend.
os.environ["KERAS_BACKEND"] = "torch"

from hypothesis import HealthCheck, settings

# Deterministic (derandomize) so a CI failure reproduces; no per-example deadline,
# since a 2-core CI machine running notebooks beside the tests has noisy timings.
settings.register_profile(
    "dlnotes", derandomize=True, deadline=None, max_examples=50,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("dlnotes")
