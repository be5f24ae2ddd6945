"""A skill's folder as an archive: built, checked, hashed and unpacked.

A skill travels as a zip. Whoever sends one may be hostile, so every archive
is read by `read_archive` only, which refuses, each with an InvalidArgument
naming the limit and the entry:

- more than MAX_ARCHIVE_BYTES of zip (well below the 16 MiB gRPC message
  limit, so a push always fits in one message);
- more than MAX_FILES files, or more than MAX_UNPACKED_BYTES unpacked;
- an entry that unpacks to more than MAX_RATIO times its compressed size
  (a zip bomb), measured while reading, so a lying header does not help;
- a path that is absolute, climbs out with `..`, holds a backslash, a drive
  letter or a control character (zip-slip), or repeats another entry's;
- a symlink (or anything but a regular file or a directory).

The version of a skill is the sha256 of its *canonical* archive: the same
files, sorted by path, stored uncompressed with fixed timestamps and modes.
It depends on the folder's content only, not on the zip a client sent nor on
the zlib that compressed it: the same folder always hashes the same.
"""

from __future__ import annotations

import hashlib
import io
import stat
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from stigmer.errors import InvalidArgument
from stigmer.resources.skill_documents import SKILL_FILE, SkillDocument, parse_skill_document

MAX_ARCHIVE_BYTES = 8 * 1024 * 1024
MAX_UNPACKED_BYTES = 32 * 1024 * 1024
MAX_FILES = 1000
MAX_RATIO = 100
# Entries smaller than this may compress as well as they like: text of a few
# KiB of repeated lines is no bomb, and the total is bounded anyway.
RATIO_FLOOR_BYTES = 64 * 1024
# 1980-01-01, the earliest time a zip can hold: no clock in the archive.
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644 << 16
_FIELD = "archive"


@dataclass(frozen=True)
class SkillContent:
    """A skill folder's files (path -> bytes), checked, and its SKILL.md read."""

    files: Mapping[str, bytes]
    document: SkillDocument
    hash: str

    @property
    def size_bytes(self) -> int:
        return sum(len(data) for data in self.files.values())

    def canonical_zip(self, *, compressed: bool = True) -> bytes:
        return build_zip(self.files, compressed=compressed)


def _refuse(limit: str, entry: str, message: str) -> InvalidArgument:
    return InvalidArgument.for_field(
        _FIELD, f"{message} ({limit})" + (f": {entry!r}" if entry else "")
    )


def check_path(name: str) -> str:
    """The entry's path, normalized; refuses anything that could leave the folder.

    Raises:
        InvalidArgument: an absolute path, `..`, a backslash, a drive letter or
            a control character.
    """
    if not name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise _refuse(
            "path traversal", name, "an entry's path is empty or holds control characters"
        )
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _refuse("path traversal", name, "an entry's path is absolute or not a POSIX path")
    parts = PurePosixPath(name).parts
    if any(part == ".." for part in parts):
        raise _refuse("path traversal", name, "an entry's path climbs out of the folder")
    cleaned = "/".join(part for part in parts if part != ".")
    if not cleaned:
        raise _refuse("path traversal", name, "an entry's path names no file")
    return cleaned


def _file_type(info: zipfile.ZipInfo) -> int:
    """The entry's Unix file type bits; 0 when its zip says none (most
    tools write only permission bits for a plain file)."""
    return stat.S_IFMT(info.external_attr >> 16)


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return _file_type(info) == stat.S_IFLNK


def _is_irregular(info: zipfile.ZipInfo) -> bool:
    return _file_type(info) not in {0, stat.S_IFREG, stat.S_IFDIR}


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    """The entry's bytes, read in chunks so that neither the total nor the
    ratio can be exceeded by more than one chunk, whatever its header says."""
    chunks: list[bytes] = []
    size = 0
    compressed = max(info.compress_size, 1)
    with archive.open(info) as stream:
        while chunk := stream.read(64 * 1024):
            size += len(chunk)
            if size > budget:
                raise _refuse(
                    f"at most {MAX_UNPACKED_BYTES} bytes unpacked",
                    info.filename,
                    "the archive unpacks to more than the limit",
                )
            if size > RATIO_FLOOR_BYTES and size > compressed * MAX_RATIO:
                raise _refuse(
                    f"compression ratio at most {MAX_RATIO}",
                    info.filename,
                    "an entry unpacks to far more than its compressed size (a zip bomb)",
                )
            chunks.append(chunk)
    return b"".join(chunks)


def read_archive(data: bytes) -> SkillContent:
    """The files of a skill archive, each limit checked, SKILL.md parsed.

    Raises:
        InvalidArgument: naming the limit and the entry, or SKILL.md's file and line.
    """
    if len(data) > MAX_ARCHIVE_BYTES:
        raise _refuse(f"at most {MAX_ARCHIVE_BYTES} bytes", "", f"the archive is {len(data)} bytes")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise InvalidArgument.for_field(_FIELD, f"is not a zip archive: {error}") from None
    files: dict[str, bytes] = {}
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_FILES * 2:
            raise _refuse(f"at most {MAX_FILES} files", "", f"the archive has {len(infos)} entries")
        budget = MAX_UNPACKED_BYTES
        for info in infos:
            path = check_path(info.filename)
            if _is_symlink(info):
                raise _refuse("no symlinks", info.filename, "an entry is a symbolic link")
            if _is_irregular(info):
                raise _refuse("regular files only", info.filename, "an entry is not a file")
            if info.is_dir():
                continue
            if path in files:
                raise _refuse("unique paths", info.filename, "two entries have the same path")
            if len(files) >= MAX_FILES:
                raise _refuse(f"at most {MAX_FILES} files", info.filename, "too many files")
            if info.flag_bits & 0x1:
                raise _refuse("no encryption", info.filename, "an entry is encrypted")
            try:
                content = _read_entry(archive, info, budget)
            except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError) as error:
                raise _refuse("readable entries", info.filename, f"cannot read: {error}") from None
            except RuntimeError as error:  # an encrypted entry without its password
                raise _refuse("readable entries", info.filename, str(error)) from None
            budget -= len(content)
            files[path] = content
    return content_of(files)


def content_of(files: Mapping[str, bytes]) -> SkillContent:
    """Raises: InvalidArgument: no SKILL.md at the top, or a bad one."""
    if SKILL_FILE not in files:
        raise InvalidArgument.for_field(_FIELD, f"the folder has no {SKILL_FILE} at its top")
    document = parse_skill_document(files[SKILL_FILE])
    digest = hashlib.sha256(build_zip(files, compressed=False)).hexdigest()
    return SkillContent(dict(sorted(files.items())), document, digest)


def build_zip(files: Mapping[str, bytes], *, compressed: bool = True) -> bytes:
    """A deterministic zip: sorted paths, fixed times and modes."""
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for path in sorted(files):
            info = zipfile.ZipInfo(path, date_time=_FIXED_TIME)
            info.external_attr = _FILE_MODE
            info.compress_type = method
            info.create_system = 3  # unix: the mode bits mean what they say
            archive.writestr(info, files[path], compresslevel=9 if compressed else None)
    return buffer.getvalue()


def _folder_files(folder: Path) -> Iterable[tuple[str, Path]]:
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_symlink():
            raise _refuse("no symlinks", relative, "the folder holds a symbolic link")
        if path.is_dir():
            continue
        if not path.is_file():
            raise _refuse("regular files only", relative, "the folder holds something not a file")
        yield relative, path


def read_folder(folder: Path) -> SkillContent:
    """A skill folder's content, checked against the same limits as an archive.

    Raises:
        InvalidArgument: not a folder, a limit exceeded, no or a bad SKILL.md.
    """
    if not folder.is_dir():
        raise InvalidArgument.for_field("dir", f"{folder} is not a folder")
    files: dict[str, bytes] = {}
    total = 0
    for relative, path in _folder_files(folder):
        check_path(relative)
        if len(files) >= MAX_FILES:
            raise _refuse(f"at most {MAX_FILES} files", relative, "the folder has too many files")
        total += path.stat().st_size
        if total > MAX_UNPACKED_BYTES:
            raise _refuse(
                f"at most {MAX_UNPACKED_BYTES} bytes unpacked", relative, "the folder is too large"
            )
        files[relative] = path.read_bytes()
    try:
        return content_of(files)
    except InvalidArgument as error:
        error.message = f"{folder}: {error.message}"
        raise


def unpack(content: SkillContent, target: Path) -> None:
    """Writes the files under `target` (paths were checked when read)."""
    for relative, data in content.files.items():
        path = target.joinpath(*relative.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
