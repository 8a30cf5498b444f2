"""Test configuration shared by every layer.

Airflow reads its configuration when first imported, so ``AIRFLOW_HOME`` (a project-local
SQLite metadata DB) is set here, before any test module imports airflow.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".run" / "airflow-test"))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import pytest  # noqa: E402

from include.retention.policy import Policy, load_policy  # noqa: E402

pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.mysql",
    "tests.fixtures.redis",
    "tests.fixtures.cos",
    "tests.fixtures.elasticsearch",
]


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy()
