"""The requirements' ranges, the exact pins of constraints.txt and the installed packages agree.

requirements.txt and requirements-dev.txt state ranges (what the package needs); constraints.txt
pins the exact versions the suite ran (Airflow's convention). These tests keep the three from
drifting apart: a requirement without a pin, a pin outside its range, or a venv that no longer
holds what the pins say fails here, with the command that fixes it.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENT_FILES = ("requirements.txt", "requirements-dev.txt")
REGENERATE = "regenerate with scripts/freeze_constraints.sh (see its header)"


def _lines(path: Path) -> list[str]:
    """The file's requirement lines: no comments, blanks or ``-r`` includes."""
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("-")]


def requirements(name: str) -> list[Requirement]:
    return [Requirement(line) for line in _lines(ROOT / name)]


def constraints() -> dict[str, Version]:
    """constraints.txt as canonical name -> pinned version; every line must be ``name==version``."""
    pins: dict[str, Version] = {}
    for line in _lines(ROOT / "constraints.txt"):
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"constraints.txt: {line!r} is not an exact pin"
        key = canonicalize_name(req.name)
        assert key not in pins, f"constraints.txt pins {req.name} twice"
        pins[key] = Version(specs[0].version)
    return pins


@pytest.mark.parametrize("name", REQUIREMENT_FILES)
def test_every_requirement_has_an_exact_pin_inside_its_range(name: str) -> None:
    pins = constraints()
    reqs = requirements(name)
    assert reqs, f"{name} names no requirement"
    for req in reqs:
        key = canonicalize_name(req.name)
        assert key in pins, f"{name}: {req.name} has no pin in constraints.txt; {REGENERATE}"
        assert req.specifier.contains(pins[key], prereleases=True), (
            f"{name}: {req.name}{req.specifier} does not admit the pinned {pins[key]}; fix the range or {REGENERATE}"
        )


@pytest.mark.parametrize("name", REQUIREMENT_FILES)
def test_requirements_state_ranges_not_pins(name: str) -> None:
    pinned = [str(r) for r in requirements(name) if any(s.operator in ("==", "===") for s in r.specifier)]
    assert not pinned, f"{name} pins {pinned}: state a range there, the exact version goes in constraints.txt"


def test_the_installed_packages_are_the_pinned_versions() -> None:
    wrong = {}
    for key, pinned in constraints().items():
        try:
            installed = Version(metadata.version(key))
        except metadata.PackageNotFoundError:
            wrong[key] = "not installed"
            continue
        if installed != pinned:
            wrong[key] = f"installed {installed}"
    assert not wrong, (
        f"the venv differs from constraints.txt: {wrong}; run scripts/setup.sh, or after a deliberate change {REGENERATE}"
    )


def test_celery_stays_below_5_7_which_breaks_the_celery_provider() -> None:
    celery = next(r for r in requirements("requirements.txt") if canonicalize_name(r.name) == "celery")
    assert not celery.specifier.contains("5.7.0")
    assert celery.specifier.contains(constraints()["celery"])
