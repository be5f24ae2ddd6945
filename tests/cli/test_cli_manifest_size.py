"""A manifest too large for one apply: the CLI says what to do and exits 2.

The limit is lowered for the test (16 MiB of YAML takes the YAML parser
tens of seconds); what is tested is the path from the SDK's size check to
the message and exit code a user sees.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stigmer.client import aio
from stigmer.testing.server import ServerThread
from tests.cli.test_usage_errors import invoke

MANIFEST = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {{name: Big Reviewer}}
spec:
  instructions: {instructions}
"""


def test_a_manifest_over_the_message_limit_says_to_apply_smaller_files_and_exits_2(
    server: ServerThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in [key for key in os.environ if key.startswith("STIGMER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("STIGMER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STIGMER_SERVER", server.address)
    monkeypatch.setattr(aio, "MAX_MESSAGE_BYTES", 4096)
    manifest = tmp_path / "big.yaml"
    manifest.write_text(MANIFEST.format(instructions="Review carefully. " * 400))

    outcome = invoke(capsys, monkeypatch, "apply", "-f", str(manifest))

    assert outcome.exit_code == 2
    said = " ".join(outcome.stderr.split())
    assert "more than the 4 KiB one apply may carry" in said
    assert "apply it in smaller files" in said
    assert "Traceback" not in outcome.stderr
    small = tmp_path / "small.yaml"
    small.write_text(MANIFEST.format(instructions="Review carefully."))
    assert invoke(capsys, monkeypatch, "apply", "-f", str(small)).exit_code == 0
