"""Shared pytest configuration: one hypothesis profile for the whole suite."""

from hypothesis import HealthCheck, settings

# Deterministic (derandomize) so a CI failure reproduces; no per-example deadline,
# since a 2-core CI machine running notebooks beside the tests has noisy timings.
settings.register_profile(
    "dlnotes", derandomize=True, deadline=None, max_examples=50,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("dlnotes")
