"""`stigmer server`: run the server in the foreground, or as a daemon.

The daemon is the same foreground command started in its own session, its
output in `<home>/logs/server.log` and its pid in `<home>/server.pid`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stigmer import config
from stigmer.cli.output import console
from stigmer.client import Client
from stigmer.engine.options import EngineOptions
from stigmer.errors import FailedPrecondition, InvalidArgument, Unavailable
from stigmer.runtime.model_resolution import resolve_model

if TYPE_CHECKING:
    from stigmer.engine.temporal_engine import TemporalOptions

app = typer.Typer(help="Run the Stigmer server (foreground), or start|stop|status|logs it.")

HostOption = Annotated[
    str | None, typer.Option("--host", help="Listen address [env: STIGMER_HOST]")
]
PortOption = Annotated[int | None, typer.Option("--port", help="Port [env: STIGMER_PORT]")]
StoreOption = Annotated[
    str | None, typer.Option("--store", help="SQLite path or store URL [env: STIGMER_STORE]")
]
EngineOption = Annotated[
    str | None,
    typer.Option("--engine", help="embedded (default) or temporal [env: STIGMER_ENGINE]"),
]
TemporalAddressOption = Annotated[
    str | None,
    typer.Option(
        "--temporal-address",
        help="Temporal host:port; none: a managed dev server [env: STIGMER_TEMPORAL_ADDRESS]",
    ),
]
TemporalNamespaceOption = Annotated[
    str | None,
    typer.Option("--temporal-namespace", help="[env: STIGMER_TEMPORAL_NAMESPACE]"),
]
TaskQueueOption = Annotated[
    str | None, typer.Option("--task-queue", help="[env: STIGMER_TEMPORAL_TASK_QUEUE]")
]
START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 15.0


def pid_file() -> Path:
    return config.stigmer_home() / "server.pid"


def log_file() -> Path:
    return config.stigmer_home() / "logs" / "server.log"


def _port(port: int | None) -> int:
    text = config.value("port", port)
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise InvalidArgument.for_field("port", f"{text!r} is not a port number")
    return int(text)


def _engine(engine: str | None) -> str:
    chosen = config.value("engine", engine)
    if chosen not in ("embedded", "temporal"):
        raise InvalidArgument.for_field(
            "engine", f"{chosen!r} is not an engine (use embedded or temporal)"
        )
    return chosen


def temporal_options(
    address: str | None, namespace: str | None, task_queue: str | None
) -> TemporalOptions:
    """The Temporal engine's settings; without an address the server manages
    a dev server persisted in <home>/temporal."""
    from stigmer.engine.temporal_engine import TemporalOptions

    return TemporalOptions(
        address=config.value("temporal.address", address),
        namespace=config.value("temporal.namespace", namespace),
        task_queue=config.value("temporal.task_queue", task_queue),
        heartbeat_seconds=_positive("temporal.heartbeat_seconds", float),
        dev_server_dir=config.stigmer_home() / "temporal",
    )


@app.callback(invoke_without_command=True)
def serve(
    context: typer.Context,
    host: HostOption = None,
    port: PortOption = None,
    store: StoreOption = None,
    engine: EngineOption = None,
    temporal_address: TemporalAddressOption = None,
    temporal_namespace: TemporalNamespaceOption = None,
    task_queue: TaskQueueOption = None,
) -> None:
    """Run the server in the foreground until SIGINT/SIGTERM."""
    if context.invoked_subcommand is not None:
        return
    from stigmer.server.app import ServerOptions, StigmerServer

    is_temporal = _engine(engine) == "temporal"
    options = ServerOptions(
        store_url=config.value("store", store),
        host=config.value("host", host),
        port=_port(port),
        engine=engine_options(),
        temporal=(
            temporal_options(temporal_address, temporal_namespace, task_queue)
            if is_temporal
            else None
        ),
        check_interval_seconds=_non_negative("check_interval_seconds"),
    )
    logging.basicConfig(
        level=os.environ.get("STIGMER_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    async def run() -> None:
        server = StigmerServer(options)
        await server.start()
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        await stopping.wait()
        await server.stop()

    asyncio.run(run())


def _positive(key: str, cast: type[int] | type[float]) -> Any:
    text = config.value(key)
    try:
        number = cast(text)
    except ValueError:
        number = 0
    if number <= 0:
        raise InvalidArgument.for_field(key, f"{text!r} is not a positive number")
    return number


def _non_negative(key: str) -> float:
    text = config.value(key)
    try:
        number = float(text)
    except ValueError:
        number = -1
    if number < 0:
        raise InvalidArgument.for_field(key, f"{text!r} is not a number of seconds (0: off)")
    return number


def engine_options() -> EngineOptions:
    """The embedded engine's settings and the default model, from config.

    Without llm.provider the model is resolved from what the machine has
    (Ollama, an API key, the local model); `stigmer doctor` says which and why.
    """
    return EngineOptions(
        workers=_positive("workers", int),
        lease_seconds=_positive("lease_seconds", float),
        model=resolve_model().settings,
    )


def _running_pid() -> int | None:
    try:
        pid = int(pid_file().read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _client_address(host: str, port: int) -> str:
    return f"{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"


@app.command()
def start(
    host: HostOption = None,
    port: PortOption = None,
    store: StoreOption = None,
    engine: EngineOption = None,
    temporal_address: TemporalAddressOption = None,
    temporal_namespace: TemporalNamespaceOption = None,
    task_queue: TaskQueueOption = None,
) -> None:
    """Start the server in the background and wait until it serves."""
    if (pid := _running_pid()) is not None:
        raise FailedPrecondition(f"the server is already running (pid {pid}); stop it first")
    chosen_host, chosen_port = config.value("host", host), _port(port)
    command = [
        sys.executable, "-m", "stigmer.cli.main", "server",
        "--host", chosen_host, "--port", str(chosen_port),
        "--store", config.value("store", store), "--engine", _engine(engine),
    ]  # fmt: skip
    for flag, given in (
        ("--temporal-address", temporal_address),
        ("--temporal-namespace", temporal_namespace),
        ("--task-queue", task_queue),
    ):
        if given:
            command += [flag, given]
    log_file().parent.mkdir(parents=True, exist_ok=True)
    with log_file().open("ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    pid_file().write_text(f"{process.pid}\n")
    address = _client_address(chosen_host, chosen_port)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    with Client(address) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pid_file().unlink(missing_ok=True)
                tail = log_file().read_text(errors="replace").splitlines()[-15:]
                raise Unavailable(
                    f"the server exited with code {process.returncode}:\n" + "\n".join(tail)
                )
            if client.is_serving(wait_seconds=0.5):
                console.print(f"Stigmer server started on {address} (pid {process.pid})")
                console.print(f"  logs: {log_file()}")
                return
            time.sleep(0.1)
    raise Unavailable(f"the server did not answer on {address} within {START_TIMEOUT_SECONDS}s")


@app.command()
def stop() -> None:
    """Stop the background server (SIGTERM, then SIGKILL after a timeout)."""
    pid = _running_pid()
    if pid is None:
        pid_file().unlink(missing_ok=True)
        console.print("Stigmer server is not running")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline and _is_alive(pid):
        time.sleep(0.05)
    if _is_alive(pid):
        os.kill(pid, signal.SIGKILL)
    pid_file().unlink(missing_ok=True)
    console.print(f"Stigmer server stopped (pid {pid})")


def _is_alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        finished = 0
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
    return finished == 0


@app.command()
def status(
    server: Annotated[str | None, typer.Option("--server", help="Server address")] = None,
) -> None:
    """Say whether the server runs and answers."""
    pid = _running_pid()
    with Client(server) as client:
        is_serving = client.is_serving()
        address = client.address
    if is_serving:
        console.print(f"Stigmer server is serving on {address}" + (f" (pid {pid})" if pid else ""))
        return
    if pid is not None:
        raise Unavailable(f"the server process {pid} runs but does not answer on {address}")
    raise Unavailable(f"no Stigmer server on {address}; start it with `stigmer server start`")


@app.command()
def logs(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines")] = False,
    lines: Annotated[int, typer.Option("--tail", help="Lines from the end")] = 100,
) -> None:
    """Print the background server's log."""
    path = log_file()
    if not path.exists():
        raise FailedPrecondition(f"no server log at {path}; has the server been started?")
    with path.open(errors="replace") as log:
        for line in log.readlines()[-lines:]:
            sys.stdout.write(line)
        sys.stdout.flush()
        while follow:
            line = log.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.2)
