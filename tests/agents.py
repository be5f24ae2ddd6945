"""Agent manifests the execution tests run: one that only talks, and one whose
tools come from the real MCP test server over stdio."""

from __future__ import annotations

import sys
from pathlib import Path

import stigmer

PLAIN_AGENT = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: Greeter
spec:
  instructions: Greet the user in one short sentence.
"""


def stdio_tools_agent(name: str = "Calculator", env: dict[str, str] | None = None) -> str:
    """An agent with the MCP test server's tools (add, echo, read_env, fail, crash, sleep)."""
    env_lines = "".join(f"\n          {key}: {value}" for key, value in (env or {}).items())
    env_block = f"\n        env:{env_lines}" if env else ""
    return f"""\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: {name}
spec:
  instructions: You add numbers with the add tool and answer with the sum.
  mcp_servers:
    - name: calc
      stdio:
        command: {sys.executable}
        args: ["-m", "stigmer.testing.mcp_server"]{env_block}
"""


def gated_tools_agent(
    *, ask: tuple[str, ...] = ("calc/add",), deny: tuple[str, ...] = (), extra: str = ""
) -> str:
    """The MCP test server's agent with a tool policy: the `ask` patterns wait
    for a person, the `deny` ones are never offered."""
    rules = f"\n    ask: {list(ask)}" + (f"\n    deny: {list(deny)}" if deny else "")
    # The tool server runs this checkout's code (its annotated `discard` tool).
    source = Path(stigmer.__file__).resolve().parents[1]
    return f"""\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: Careful
spec:
  instructions: You add numbers with the add tool and answer with the sum.
  tool_policy:{rules}{extra}
  mcp_servers:
    - name: calc
      stdio:
        command: {sys.executable}
        args: ["-m", "stigmer.testing.mcp_server"]
        env:
          PYTHONPATH: {source}
"""
