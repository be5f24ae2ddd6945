"""The generated protobuf code in src/stigmer/api matches proto/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_is_up_to_date() -> None:
    checked = subprocess.run(
        [sys.executable, "scripts/generate_proto.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "up to date" in checked.stdout


def test_check_fails_when_the_descriptor_set_is_stale(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "generate_proto.py", tmp_path / "scripts")
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    shutil.copytree(ROOT / "src" / "stigmer" / "api", tmp_path / "src" / "stigmer" / "api")
    descriptors = tmp_path / "src" / "stigmer" / "api" / "descriptors.binpb"
    descriptors.write_bytes(descriptors.read_bytes()[:-1])

    checked = subprocess.run(
        [sys.executable, "scripts/generate_proto.py", "--check"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "descriptors.binpb" in checked.stdout
