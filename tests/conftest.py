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


# -- Qt app tests (tests/test_app_*.py) --------------------------------------------------------
import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _private_model_cache(tmp_path_factory):
    """Exported ONNX graphs (rpn_core.rpn.onnx_backbone) go to a throw-away folder, never the
    user's cache; subprocesses (CLI tests) inherit it."""
    os.environ["RPN_STUDIO_CACHE"] = str(tmp_path_factory.mktemp("rpn-studio-cache"))


@pytest.fixture(scope="session")
def _drain_qt_threads():
    """At the end of the session wait for background jobs still running on Qt's global pool
    (e.g. a torch import started by a window): Python must not finalize under them."""
    yield
    from PySide6.QtCore import QThreadPool

    QThreadPool.globalInstance().waitForDone(60_000)


@pytest.fixture
def app_settings(tmp_path, qapp, _drain_qt_threads):
    """Preferences in a throw-away ini file; QStandardPaths in test mode (never the user's)."""
    from PySide6.QtCore import QSettings, QStandardPaths

    from app.common.settings import AppSettings

    QStandardPaths.setTestModeEnabled(True)
    return AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
