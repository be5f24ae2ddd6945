"""Pushing skills to a real server on both stores: versions by content hash,
movable tags, and archives that are refused before anything is written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import grpc
import pytest
import yaml

from stigmer.api.v1 import skill_pb2, skill_pb2_grpc
from stigmer.client import Client
from stigmer.errors import FailedPrecondition, InvalidArgument, NotFound
from stigmer.resources.skill_archives import MAX_RATIO, build_zip, read_folder
from stigmer.testing.cli import Cli
from stigmer.testing.server import ServerThread
from tests.skills.folders import SKILL_MD, write_skill, zip_of

AGENT_WITH_SKILL = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: writer}
spec:
  instructions: Write what the user asks for, using your skills.
  skill_refs: [release-notes]
"""


def test_pushing_the_same_folder_twice_makes_one_version(
    cli: Cli, client: Client, tmp_path: Path
) -> None:
    folder = write_skill(tmp_path / "notes")
    first = cli("skill", "push", str(folder))
    second = cli("skill", "push", str(folder))
    assert first.exit_code == 0, first.stderr
    assert second.exit_code == 0, second.stderr
    skill = client.get("skill", "release-notes")
    assert len(skill.status.versions) == 1
    digest = skill.status.versions[0].hash
    assert dict(skill.status.tags) == {"latest": digest}
    assert "new version" in first.stdout
    assert "unchanged content" in second.stdout
    assert skill.metadata.version == 1  # the second push wrote nothing


def test_a_changed_folder_is_a_new_hash_and_latest_moves_to_it(
    client: Client, tmp_path: Path
) -> None:
    folder = write_skill(tmp_path / "notes")
    old = client.push_skill(read_folder(folder)).hash
    (folder / "template.md").write_text("## Added\n## Fixed\n")
    pushed = client.push_skill(read_folder(folder))
    assert pushed.hash != old
    assert pushed.is_new_version
    assert list(pushed.moved_tags) == ["latest"]
    skill = client.get("skill", "release-notes")
    assert [v.hash for v in skill.status.versions] == [old, pushed.hash]
    assert skill.status.tags["latest"] == pushed.hash


def test_a_named_tag_moves_and_latest_stays(client: Client, tmp_path: Path) -> None:
    folder = write_skill(tmp_path / "notes")
    first = client.push_skill(read_folder(folder)).hash
    (folder / "template.md").write_text("## Changed\n")
    second = client.push_skill(read_folder(folder), tag="beta")
    assert list(second.moved_tags) == ["beta"]
    skill = client.get("skill", "release-notes")
    assert dict(skill.status.tags) == {"latest": first, "beta": second.hash}


def test_the_hash_is_of_the_content_not_of_the_zip(client: Client, tmp_path: Path) -> None:
    folder = write_skill(tmp_path / "notes")
    content = read_folder(folder)
    canonical = build_zip(dict(content.files), compressed=False)
    assert content.hash == hashlib.sha256(canonical).hexdigest()
    # Another zip of the same files (other order, compression, timestamps).
    shuffled = zip_of(dict(reversed(list(content.files.items()))))
    stub = skill_pb2_grpc.SkillCommandControllerStub(grpc.insecure_channel(client.address))
    response = stub.Push(skill_pb2.PushSkillRequest(archive=shuffled))
    assert response.hash == content.hash


def test_dry_run_reports_the_hash_and_writes_nothing(
    cli: Cli, client: Client, tmp_path: Path
) -> None:
    folder = write_skill(tmp_path / "notes")
    result = cli("skill", "push", str(folder), "--dry-run", "--name", "Changelog Writer")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("skill/changelog-writer ")
    assert read_folder(folder).hash[:12] in result.stdout
    assert "(dry run)" in result.stdout
    assert client.list("skill") == []


def test_get_skill_yaml_shows_versions_and_tags(cli: Cli, tmp_path: Path) -> None:
    folder = write_skill(tmp_path / "notes")
    assert cli("skill", "push", str(folder), "--tag", "v1").exit_code == 0
    shown = cli("get", "skill", "release-notes", "-o", "yaml")
    assert shown.exit_code == 0, shown.stderr
    skill = yaml.safe_load(shown.stdout)
    (version,) = skill["status"]["versions"]
    assert version["name"] == "release-notes"
    assert skill["status"]["tags"] == {"v1": version["hash"], "latest": version["hash"]}
    listed = cli("get", "skills")
    assert "release-notes" in listed.stdout
    described = cli("describe", "skill", "release-notes")
    assert described.exit_code == 0, described.stderr
    assert version["hash"][:12] in described.stdout


def test_delete_is_refused_while_an_agent_refers_to_the_skill_unless_forced(
    cli: Cli, client: Client, tmp_path: Path
) -> None:
    client.push_skill(read_folder(write_skill(tmp_path / "notes")))
    client.apply(AGENT_WITH_SKILL)
    refused = cli("delete", "skill", "release-notes")
    assert refused.exit_code != 0
    assert "used by 1 agent(s): writer" in refused.stderr
    with pytest.raises(FailedPrecondition):
        client.delete("skill", "release-notes")
    assert client.get("skill", "release-notes")
    forced = cli("delete", "skill", "release-notes", "--force")
    assert forced.exit_code == 0, forced.stderr
    with pytest.raises(NotFound):
        client.get("skill", "release-notes")
    (violation,) = client.check().violations
    assert "spec.skill_refs[0] names Skill 'release-notes', which does not exist" in (
        violation.message
    )


def test_an_agent_naming_a_missing_skill_or_version_is_not_found(
    client: Client, tmp_path: Path
) -> None:
    with pytest.raises(NotFound) as missing:
        client.apply(AGENT_WITH_SKILL)
    assert "spec.skill_refs[0].slug" in missing.value.message
    client.push_skill(read_folder(write_skill(tmp_path / "notes")))
    with pytest.raises(NotFound) as no_tag:
        client.apply(
            AGENT_WITH_SKILL.replace("[release-notes]", "[{slug: release-notes, version: v9}]")
        )
    assert "spec.skill_refs[0].version" in no_tag.value.message
    assert client.list("agent") == []


# -- hostile archives, sent past the CLI's own checks ------------------------


def _push_raw(server: ServerThread, archive: bytes) -> grpc.RpcError:
    with grpc.insecure_channel(server.address) as channel:
        stub = skill_pb2_grpc.SkillCommandControllerStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Push(skill_pb2.PushSkillRequest(name="hostile", archive=archive))
    return refused.value


@pytest.mark.parametrize(
    ("entries", "symlink", "expected"),
    [
        ({"SKILL.md": SKILL_MD.encode(), "../../evil.sh": b"rm -rf /"}, "", "climbs out"),
        ({"SKILL.md": SKILL_MD.encode(), "/etc/cron.d/x": b"* * * * *"}, "", "absolute"),
        ({"SKILL.md": SKILL_MD.encode()}, "link", "symbolic link"),
        (
            {"SKILL.md": SKILL_MD.encode(), "bomb.txt": b"\0" * (40 * 1024 * 1024)},
            "",
            "zip bomb",
        ),
    ],
    ids=["zip-slip", "absolute-path", "symlink", "zip-bomb"],
)
def test_hostile_archives_are_invalid_argument_naming_the_limit_and_entry(
    server: ServerThread,
    client: Client,
    entries: dict[str, bytes],
    symlink: str,
    expected: str,
) -> None:
    error = _push_raw(server, zip_of(entries, symlink=symlink))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert expected in (error.details() or "")
    assert client.list("skill") == []


def test_zip_bomb_names_the_ratio_limit(server: ServerThread) -> None:
    bomb = zip_of({"SKILL.md": SKILL_MD.encode(), "bomb.txt": b"\0" * (40 * 1024 * 1024)})
    error = _push_raw(server, bomb)
    assert f"compression ratio at most {MAX_RATIO}" in (error.details() or "")
    assert "bomb.txt" in (error.details() or "")


def test_skill_md_without_a_description_names_the_file_and_line(tmp_path: Path) -> None:
    folder = write_skill(tmp_path / "bad", "---\nname: notes\n---\nbody\n")
    with pytest.raises(InvalidArgument) as bad:
        read_folder(folder)
    assert "SKILL.md: line 3: the front matter has no 'description'" in bad.value.message


def test_cli_refuses_a_folder_with_a_symlink_before_sending(cli: Cli, tmp_path: Path) -> None:
    folder = write_skill(tmp_path / "notes")
    (folder / "passwd").symlink_to("/etc/passwd")
    result = cli("skill", "push", str(folder))
    assert result.exit_code == 2
    assert "symbolic link" in result.stderr
    assert "passwd" in result.stderr
    assert "Traceback" not in result.stderr
