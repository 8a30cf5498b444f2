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
from hypothesis import settings  # noqa: E402

from devservers.policies import NO_APPROVAL, write_policy_variant  # noqa: E402
from include.retention.policy import POLICY_PATH_ENV, Policy, load_policy  # noqa: E402

# Every test runs on the packaged policy with the four-eyes approval off (dag.test() has no
# second user to answer it); the tests of the approval point the DAGs at their own policy.
os.environ[POLICY_PATH_ENV] = str(write_policy_variant(ROOT / ".run" / "policy-tests.yaml", NO_APPROVAL))

# Property-based tests: the default profile for every run, `long` for the documented deep
# run (HYPOTHESIS_PROFILE=long ./scripts/test.sh ...). Tests on real servers take fewer
# examples under `default` (their own @settings) and the profile's count under any other.
LONG_EXAMPLES = 1000
settings.register_profile("default", max_examples=150, deadline=None)
settings.register_profile("long", max_examples=LONG_EXAMPLES, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

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
