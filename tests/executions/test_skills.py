"""Skills at run time, on both engines and both stores: the versions an
execution uses are fixed when it is created, the model learns of its skills
from the system prompt and reads them with read_skill."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from stigmer.client import Client
from stigmer.resources.execution_events import COMPLETED
from stigmer.resources.skill_archives import read_folder
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from tests.skills.folders import SKILL_MD, write_skill
from tests.waiting import wait_for_end, wait_until

AGENT = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: writer}
spec:
  instructions: Write what the user asks for, using your skills.
  skill_refs: [release-notes]
"""
BODY = SKILL_MD.split("---\n", 2)[2].strip("\n")


def _tool_results(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


def test_read_skill_returns_the_body_and_the_prompt_lists_the_skill(
    client: Client, model: ScriptedModel, tmp_path: Path
) -> None:
    folder = write_skill(tmp_path / "notes")
    pushed = client.push_skill(read_folder(folder))
    client.apply(AGENT)
    model.add(
        Reply(tool_calls=(ToolCallStep("read_skill", {"name": "release-notes"}),)),
        Reply(
            tool_calls=(
                ToolCallStep("read_skill", {"name": "release-notes", "path": "template.md"}),
            )
        ),
        Reply(content="Done."),
    )

    final = wait_for_end(client, client.run("writer", "Notes for 1.2, please").metadata.id)

    assert final.status.phase == COMPLETED, final.status.error
    (skill,) = final.status.skills
    assert (skill.slug, skill.hash, skill.name) == ("release-notes", pushed.hash, "release-notes")
    system = model.requests[0]["messages"][0]
    assert system["role"] == "system"
    assert (
        "- release-notes: Writes release notes from a list of merged changes." in system["content"]
    )
    assert "Group the changes by area" not in system["content"]  # the body waits for read_skill
    offered = [tool["function"]["name"] for tool in model.requests[0]["tools"]]
    assert offered == ["read_skill"]
    assert _tool_results(model.requests[1]) == [BODY]
    assert _tool_results(model.requests[2]) == [BODY, "## Added\n"]
    assert [c.server for c in final.status.tool_calls] == ["stigmer", "stigmer"]


def test_an_execution_created_before_a_push_keeps_the_version_it_resolved(
    client: Client, model: ScriptedModel, tmp_path: Path
) -> None:
    folder = write_skill(tmp_path / "notes")
    old = client.push_skill(read_folder(folder)).hash
    client.apply(AGENT)
    pushed = threading.Event()

    def after_the_push(request: dict[str, Any]) -> Reply:
        if not _tool_results(request):
            # The first turn of the first run waits for the test's push.
            pushed.wait(timeout=60)
            return Reply(tool_calls=(ToolCallStep("read_skill", {"name": "release-notes"}),))
        return Reply(content="Done.")

    model.reply_with(after_the_push)
    earlier = client.run("writer", "Notes for 1.2")
    wait_until(lambda: len(model.requests) >= 1, what="the first model call")
    changed = SKILL_MD.replace("Group the changes by area", "List the changes by author")
    write_skill(folder, changed)
    new = client.push_skill(read_folder(folder)).hash
    pushed.set()
    final = wait_for_end(client, earlier.metadata.id)

    assert new != old
    assert final.status.phase == COMPLETED, final.status.error
    assert [s.hash for s in final.status.skills] == [old]
    assert _tool_results(model.requests[1]) == [BODY]
    later = wait_for_end(client, client.run("writer", "Notes for 1.3").metadata.id)
    assert [s.hash for s in later.status.skills] == [new]
    assert "List the changes by author" in _tool_results(model.requests[-1])[0]


def test_read_skill_of_an_unknown_file_is_an_error_result_the_model_reads(
    client: Client, model: ScriptedModel, tmp_path: Path
) -> None:
    client.push_skill(read_folder(write_skill(tmp_path / "notes")))
    client.apply(AGENT)
    model.add(
        Reply(tool_calls=(ToolCallStep("read_skill", {"name": "release-notes", "path": "../x"}),)),
        Reply(content="Sorry."),
    )
    final = wait_for_end(client, client.run("writer", "Notes").metadata.id)
    assert final.status.phase == COMPLETED, final.status.error
    (call,) = final.status.tool_calls
    assert call.error or call.result
    assert "climbs out of the folder" in _tool_results(model.requests[1])[0]


def test_tool_servers_get_the_unpacked_skill_folder_and_it_is_removed_after(
    client: Client, model: ScriptedModel, tmp_path: Path
) -> None:
    client.push_skill(read_folder(write_skill(tmp_path / "notes")))
    client.apply(
        f"""\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {{name: renderer}}
spec:
  instructions: Render release notes with your tools and skills.
  skill_refs: [release-notes]
  mcp_servers:
    - name: files
      stdio:
        command: {sys.executable}
        args: ["-m", "stigmer.testing.mcp_server"]
"""
    )
    seen: list[bool] = []

    def turns(request: dict[str, Any]) -> Reply:
        results = _tool_results(request)
        if not results:
            return Reply(tool_calls=(ToolCallStep("read_env", {"name": "STIGMER_SKILLS_DIR"}),))
        # While the run goes on, its tool servers see the skill's files.
        seen.append(
            (Path(results[0]) / "release-notes" / "template.md").read_text() == "## Added\n"
        )
        return Reply(content=results[0])

    model.reply_with(turns)
    final = wait_for_end(client, client.run("renderer", "Render the notes").metadata.id)

    assert final.status.phase == COMPLETED, final.status.error
    assert seen == [True]
    folder = Path(final.status.tool_calls[0].result)
    assert folder.name == final.metadata.id
    wait_until(lambda: not folder.exists(), what="the skill folder removed")
