"""`stigmer get KIND -w` as a user runs it: a real `stigmer` process watching a
real server while another client writes, stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

from stigmer.api.v1 import agent_pb2, environment_pb2, meta_pb2
from stigmer.client import Client
from stigmer.testing.cli import COMMAND, Cli
from stigmer.testing.server import ServerThread

LINE_DEADLINE = 20.0


class WatchProcess:
    """A running `stigmer get ... -w`, its stdout read line by line in a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        assert process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for_line(self, is_wanted: Callable[[str], bool]) -> str:
        deadline = time.monotonic() + LINE_DEADLINE
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if is_wanted(line):
                return line
        raise AssertionError(f"no such line; stdout so far: {self.seen}")

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C; returns the exit code and stderr."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=LINE_DEADLINE)
        assert self.process.stderr is not None
        return code, self.process.stderr.read()


@contextmanager
def watching(cli: Cli, *args: str) -> Iterator[WatchProcess]:
    process = subprocess.Popen(
        [*COMMAND, "get", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli.env,
        cwd=cli.cwd,
    )
    try:
        yield WatchProcess(process)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=LINE_DEADLINE)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def agent(name: str) -> agent_pb2.Agent:
    return agent_pb2.Agent(
        metadata=meta_pb2.ApiResourceMetadata(name=name),
        spec=agent_pb2.AgentSpec(instructions=f"You are {name}."),
    )


def test_get_agents_watch_prints_the_list_then_a_line_per_change_until_ctrl_c(
    cli: Cli, server: ServerThread
) -> None:
    with Client(server.address) as client:
        client.apply_one(agent("first"))
        with watching(cli, "agents", "-w") as watch:
            header = watch.wait_for_line(lambda line: line.startswith("NAME"))
            watch.wait_for_line(lambda line: line.split()[:1] == ["first"])
            client.apply_one(agent("second"))
            added = watch.wait_for_line(lambda line: line.startswith("ADDED"))
            client.delete("agent", "first")
            deleted = watch.wait_for_line(lambda line: line.startswith("DELETED"))
            code, stderr = watch.interrupt()
    assert header.split()[:2] == ["NAME", "MODEL"]
    assert added.split()[:2] == ["ADDED", "second"]
    assert deleted.split()[:2] == ["DELETED", "first"]
    assert code == 130
    assert "Traceback" not in stderr


def test_get_watch_with_json_output_prints_one_document_per_event(
    cli: Cli, server: ServerThread
) -> None:
    secret = environment_pb2.Environment(
        metadata=meta_pb2.ApiResourceMetadata(name="prod"),
        spec=environment_pb2.EnvironmentResourceSpec(
            data={"TOKEN": meta_pb2.EnvironmentValue(value="hunter2", is_secret=True)}
        ),
    )
    with Client(server.address) as client, watching(cli, "env", "--watch", "-o", "json") as watch:
        client.apply_one(agent("unrelated"))  # another kind: not this watch's
        client.apply_one(secret)
        first = json.loads(watch.wait_for_line(lambda line: line.startswith("{")))
        client.delete("environment", "prod")
        second = json.loads(watch.wait_for_line(lambda line: line.startswith("{")))
        code, stderr = watch.interrupt()
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "prod")
    assert first["object"]["spec"]["data"]["TOKEN"]["value"] == "***"
    assert second["type"] == "DELETED"
    assert second["resourceVersion"] > first["resourceVersion"]
    assert code == 130
    assert "Traceback" not in stderr
