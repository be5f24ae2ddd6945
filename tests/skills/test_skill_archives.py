"""The archive reader's limits and SKILL.md's checks, without a server."""

from __future__ import annotations

import os

import pytest

from stigmer.errors import InvalidArgument
from stigmer.resources.skill_archives import (
    MAX_FILES,
    MAX_UNPACKED_BYTES,
    build_zip,
    read_archive,
)
from tests.skills.folders import SKILL_MD, zip_of

SKILL = SKILL_MD.encode()


def refusal(archive: bytes) -> str:
    with pytest.raises(InvalidArgument) as refused:
        read_archive(archive)
    assert refused.value.violations[0].field == "archive"
    return refused.value.message


def test_more_files_than_the_limit_names_the_limit_and_the_entry() -> None:
    entries = {"SKILL.md": SKILL, **{f"f{n:04}.txt": b"x" for n in range(MAX_FILES)}}
    message = refusal(zip_of(entries))
    assert f"at most {MAX_FILES} files" in message
    assert "f0999.txt" in message


def test_more_unpacked_bytes_than_the_limit_names_the_limit_and_the_entry() -> None:
    # Two symbols at random: compresses about sevenfold, no bomb, but too large.
    two_symbols = bytes(97 + (i & 1) for i in range(256))
    chunk = os.urandom(4 * 1024 * 1024).translate(two_symbols)
    entries = {"SKILL.md": SKILL, **{f"part{n}.txt": chunk for n in range(9)}}
    message = refusal(zip_of(entries))
    assert f"at most {MAX_UNPACKED_BYTES} bytes unpacked" in message
    assert "part7.txt" in message  # the entry that crosses the limit


@pytest.mark.parametrize(
    "name", ["..\\evil", "C:/evil", "a/../../evil", "/abs", "ok/\x01"], ids=repr
)
def test_paths_that_could_leave_the_folder_are_refused(name: str) -> None:
    message = refusal(zip_of({"SKILL.md": SKILL, name: b"x"}))
    assert "path traversal" in message


def test_two_entries_with_one_path_are_refused() -> None:
    message = refusal(zip_of({"SKILL.md": SKILL, "a.txt": b"1", "./a.txt": b"2"}))
    assert "unique paths" in message


def test_not_a_zip_is_refused() -> None:
    assert "is not a zip archive" in refusal(b"PK\x03\x04 certainly not")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no front matter\n", "line 1: must start with a front matter"),
        ("---\nname: x\ndescription: y\n", "line 3: the front matter is not closed"),
        ("---\nname: [x\ndescription: y\n---\n", "line 3: the front matter is not valid YAML"),
        ("---\nname: x\ndescription:\n---\n", "line 3: description: must be text"),
        ("---\n- a list\n---\n", "line 2: the front matter must be a mapping"),
    ],
    ids=["no-front-matter", "unclosed", "bad-yaml", "empty-description", "not-a-mapping"],
)
def test_a_bad_skill_md_names_the_file_and_line(text: str, expected: str) -> None:
    message = refusal(zip_of({"SKILL.md": text.encode()}))
    assert message.startswith("SKILL.md: "), message
    assert expected in message


def test_a_folder_without_skill_md_is_refused() -> None:
    assert "has no SKILL.md at its top" in refusal(zip_of({"README.md": b"hi"}))


def test_the_same_files_in_any_zip_have_one_hash() -> None:
    files = {"SKILL.md": SKILL, "b/two.txt": b"2", "a.txt": b"1"}
    hashes = {
        read_archive(archive).hash
        for archive in (
            build_zip(files),
            build_zip(files, compressed=False),
            zip_of(dict(reversed(list(files.items())))),
        )
    }
    assert len(hashes) == 1
    assert read_archive(build_zip({**files, "a.txt": b"changed"})).hash not in hashes
