"""Shared pytest configuration.

Hypothesis profiles: ``ci`` (default, 100 examples per property, no deadline: the machines
are shared and noisy) and ``fuzz`` (10,000 examples, for dedicated fuzzing runs):
``HYPOTHESIS_PROFILE=fuzz .venv/bin/python -m pytest tests/test_formats_voc.py``.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "fuzz", max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
