"""requirements.lock against pyproject.toml and the running environment.

The lock is what `make setup` installs from. It must pin every requirement
of every extra (an added dependency without a rerun of `make lock` fails
here), at a version the requirement allows, and the environment the tests
run in must be exactly the lock (a stale lock, or a package upgraded by hand,
fails here rather than in someone else's checkout).
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"


def locked_versions() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in LOCK.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        name, separator, version = text.partition("==")
        assert separator, f"not an exact pin: {line!r}"
        pins[canonicalize_name(name)] = Version(version)
    return pins


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        texts += extra
    return [Requirement(text) for text in texts]


def applies(requirement: Requirement, extras: tuple[str, ...] = ("",)) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in extras)


def test_the_lock_holds_exact_pins_and_nothing_of_this_machines_configuration() -> None:
    text = LOCK.read_text()
    assert "Linux x86_64" in text.splitlines()[0]
    for line in text.splitlines():
        assert not line.startswith("-"), f"an option in the lock: {line!r}"
    assert "file:" not in text and "/opt/" not in text
    assert len(locked_versions()) > 20


def test_every_requirement_of_every_extra_is_pinned_at_a_version_it_allows() -> None:
    pins = locked_versions()
    problems = []
    for requirement in project_requirements():
        if not applies(requirement):
            continue
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement} is not in the lock: run `make lock`")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{requirement} does not allow the locked {pinned}")
        # What an extra brings (psycopg[binary,pool]) must be pinned too.
        for needed in metadata.requires(requirement.name) or []:
            brought = Requirement(needed)
            if (
                requirement.extras
                and applies(brought, tuple(requirement.extras))
                and canonicalize_name(brought.name) not in pins
            ):
                problems.append(f"{brought} (from {requirement}) is not locked")
    assert problems == []


def test_the_running_environment_is_exactly_the_lock() -> None:
    problems = []
    for name, pinned in sorted(locked_versions().items()):
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            problems.append(f"{name}=={pinned} is not installed")
            continue
        if installed != pinned:
            problems.append(f"{name}: {installed} installed, {pinned} locked")
    assert problems == [], "install from the lock (make setup) or refresh it (make lock)"
