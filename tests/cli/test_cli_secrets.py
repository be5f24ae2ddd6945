"""`stigmer run --secret` reads a value from a file or stdin, so it is not in
the process list, and a `stigmer server` never writes a secret to its log."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from stigmer.cli.secret_options import secret_values
from stigmer.client import Client
from stigmer.errors import InvalidArgument
from stigmer.resources.execution_events import FAILED
from stigmer.testing.cli import Cli
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerProcess

ON_SQLITE = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)

SECRET = "file-secret-5e2b7c9d"
# The tool server never starts: it prints the token reversed (which no mask
# hides, so the test sees which value arrived) and the token itself.
BROKEN_AGENT = f"""\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {{name: Broken}}
spec:
  instructions: Your tool server never starts.
  model: scripted
  mcp_servers:
    - name: broken
      stdio:
        command: {sys.executable}
        args:
          - -c
          - "import sys; print(sys.argv[1][::-1], sys.argv[1], file=sys.stderr); sys.exit(3)"
          - "${{RUN_TOKEN}}"
"""


def test_a_secret_value_comes_from_the_argument_a_file_or_stdin(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("from-file\n\n")
    values, has_read_stdin = secret_values(
        ["A=plain", f"B=@{tmp_path / 'key'}", "C=@@at-sign", "D=-", "E=a=b"],
        lambda: "from-stdin\n",
    )
    assert values == {
        "A": "plain",
        "B": "from-file\n",
        "C": "@at-sign",
        "D": "from-stdin",
        "E": "a=b",
    }
    assert has_read_stdin
    with pytest.raises(InvalidArgument, match="only one secret can be read from stdin"):
        secret_values(["A=-", "B=-"], lambda: "x")
    with pytest.raises(InvalidArgument, match="use KEY=VALUE"):
        secret_values(["novalue"], lambda: "x")


def _failed_error(client: Client) -> str:
    (execution,) = client.list_executions()
    final = client.wait(execution.metadata.id, timeout=60)
    assert final.status.phase == FAILED
    return final.status.error


@ON_SQLITE
def test_secret_from_a_file_reaches_the_tools_and_is_masked(
    cli: Cli, client: Client, tmp_path: Path
) -> None:
    client.apply(BROKEN_AGENT)
    secret_file = tmp_path / "token"
    secret_file.write_text(SECRET + "\n")

    run = cli("run", "broken", "hello", "--secret", f"RUN_TOKEN=@{secret_file}")

    assert run.exit_code == 1, run.stderr
    error = _failed_error(client)
    assert f"{SECRET[::-1]} ***" in error
    assert SECRET not in error + run.stdout + run.stderr


@ON_SQLITE
def test_secret_from_stdin_needs_the_message_as_an_argument(cli: Cli, client: Client) -> None:
    client.apply(BROKEN_AGENT)

    refused = cli("run", "broken", "--secret", "RUN_TOKEN=-", stdin=SECRET)
    assert refused.exit_code == 2
    assert "give the message as an argument" in refused.stderr
    run = cli("run", "broken", "hello", "--secret", "RUN_TOKEN=-", stdin=SECRET + "\n")

    assert run.exit_code == 1, run.stderr
    assert f"{SECRET[::-1]} ***" in _failed_error(client)


@ON_SQLITE
def test_an_unreadable_secret_file_is_a_usage_error_naming_it(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    run = cli("run", "broken", "hello", "--secret", f"RUN_TOKEN=@{missing}")
    assert run.exit_code == 2
    assert f"RUN_TOKEN: cannot read {missing}" in run.stderr


TALKER_AGENT = f"""\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {{name: Talker}}
spec:
  instructions: You read the token with your tool and say it.
  mcp_servers:
    - name: tools
      stdio:
        command: {sys.executable}
        args: ["-m", "stigmer.testing.mcp_server"]
        env: {{PYTHONPATH: {Path(__file__).resolve().parents[2] / "src"}}}
"""


@ON_SQLITE
def test_the_server_log_file_holds_no_secret(
    tmp_path: Path, store_url: str, stigmer_home: Path
) -> None:
    script = [
        Reply(tool_calls=(ToolCallStep("read_env", {"name": "RUN_TOKEN"}),)),
        Reply(content=f"Here: {SECRET}."),
    ]
    with ScriptedModel(script, chunk_size=3) as model:
        settings = {
            "LLM_PROVIDER": "openai",
            "LLM_MODEL": "scripted",
            "LLM_BASE_URL": model.base_url,
            "LOG_LEVEL": "DEBUG",
        }
        with ServerProcess(stigmer_home, store_url, settings) as server:
            env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")}
            env.update(STIGMER_HOME=str(stigmer_home), STIGMER_SERVER=server.address)
            cli = Cli(env, tmp_path)
            with Client(server.address) as client:
                client.apply(TALKER_AGENT)
                client.apply(BROKEN_AGENT)
            talked = cli("run", "talker", "hello", "--secret", f"RUN_TOKEN={SECRET}")
            broke = cli("run", "broken", "hello", "--secret", f"RUN_TOKEN={SECRET}")
        log = server.log.read_text()

    assert talked.exit_code == 0, talked.stderr
    assert "Here: ***." in talked.stdout
    assert broke.exit_code == 1
    assert "failed: tool server error: tool server 'broken'" in log
    assert SECRET not in log
    assert SECRET not in talked.stdout + talked.stderr + broke.stdout + broke.stderr
