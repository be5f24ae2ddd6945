"""`stigmer server`: run the server in the foreground, or as a daemon.

The daemon is the same foreground command started in its own session, its
output in `<home>/logs/server.log` and its pid in `<home>/server.pid`. Either
way the running server records its address (with the port it really bound),
pid, store and engine in `<home>/server.json` (server_record.py): clients
using the same STIGMER_HOME find it there when no address is given.

`stigmer server status` exits 0 when the server of this home runs and
answers as itself, and 3 (as for any unreachable server) when it does not;
a stale server.json or pid file, of a process that is gone, is removed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stigmer import __version__, config
from stigmer.cli.output import console
from stigmer.client import Client
from stigmer.client.connection import ADMIN_TOKEN_FILE
from stigmer.engine.options import EngineOptions
from stigmer.errors import FailedPrecondition, InvalidArgument, StigmerError, Unavailable
from stigmer.server_record import (
    ServerRecord,
    is_process_alive,
    read_server_record,
    remove_server_record,
    write_server_record,
)

if TYPE_CHECKING:
    from stigmer.api.v1 import server_pb2
    from stigmer.console.serving import ConsoleServer
    from stigmer.engine.temporal_engine import TemporalOptions
    from stigmer.server.tls import TlsFiles

app = typer.Typer(help="Run the Stigmer server (foreground), or start|stop|status|logs it.")

HostOption = Annotated[
    str | None, typer.Option("--host", help="Listen address [env: STIGMER_HOST]")
]
PortOption = Annotated[int | None, typer.Option("--port", help="Port [env: STIGMER_PORT]")]
ConsolePortOption = Annotated[
    int | None,
    typer.Option(
        "--console-port",
        help="Web console port on 127.0.0.1; 0: none [env: STIGMER_CONSOLE_PORT]",
    ),
]
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
AuthOption = Annotated[
    str | None,
    typer.Option("--auth", help="none or token (required beyond loopback) [env: STIGMER_AUTH]"),
]
TlsCertOption = Annotated[
    str | None,
    typer.Option("--tls-cert", help="Certificate file: serve TLS [env: STIGMER_TLS_CERT]"),
]
TlsKeyOption = Annotated[
    str | None, typer.Option("--tls-key", help="Key of --tls-cert [env: STIGMER_TLS_KEY]")
]
TlsClientCaOption = Annotated[
    str | None,
    typer.Option(
        "--tls-client-ca",
        help="Require client certificates signed by this CA [env: STIGMER_TLS_CLIENT_CA]",
    ),
]
START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 15.0
STATUS_TIMEOUT_SECONDS = 2.0
# `status` of a server that is not running exits like any command that cannot
# reach its server (cli/main.py's EXIT_UNAVAILABLE).
NOT_RUNNING_EXIT_CODE = 3


def pid_file() -> Path:
    return config.stigmer_home() / "server.pid"


def log_file() -> Path:
    return config.stigmer_home() / "logs" / "server.log"


def _engine(engine: str | None) -> str:
    return config.checked_value("engine", engine)


def temporal_options(
    address: str | None, namespace: str | None, task_queue: str | None
) -> TemporalOptions:
    """The Temporal engine's settings; without an address the server manages
    a dev server persisted in <home>/temporal."""
    from stigmer.engine.temporal_engine import TemporalOptions

    return TemporalOptions(
        address=config.checked_value("temporal.address", address),
        namespace=config.checked_value("temporal.namespace", namespace),
        task_queue=config.checked_value("temporal.task_queue", task_queue),
        heartbeat_seconds=float(config.checked_value("temporal.heartbeat_seconds")),
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
    auth: AuthOption = None,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    tls_client_ca: TlsClientCaOption = None,
    console_port: ConsolePortOption = None,
) -> None:
    """Run the server in the foreground until SIGINT/SIGTERM (and its web console)."""
    if context.invoked_subcommand is not None:
        return
    from stigmer.cli.run_settings import price_table, run_profile
    from stigmer.server.app import ServerOptions, StigmerServer

    is_temporal = _engine(engine) == "temporal"
    options = ServerOptions(
        store_url=config.checked_value("store", store),
        host=config.checked_value("host", host),
        port=int(config.checked_value("port", port)),
        engine=engine_options(),
        temporal=(
            temporal_options(temporal_address, temporal_namespace, task_queue)
            if is_temporal
            else None
        ),
        check_interval_seconds=float(config.checked_value("check_interval_seconds")),
        auth=config.checked_value("auth", auth),
        admin_token_path=config.stigmer_home() / ADMIN_TOKEN_FILE,
        tls=tls_files(tls_cert, tls_key, tls_client_ca),
        run_profile=run_profile(),
        prices=price_table(),
    )
    chosen_console_port = int(config.checked_value("console_port", console_port))
    logging.basicConfig(
        level=os.environ.get("STIGMER_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    home = config.stigmer_home()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        server = StigmerServer(options)
        await server.start()
        address = client_address(options.host, server.port)
        web_console = await start_console(address, chosen_console_port, options.tls)
        record = ServerRecord(
            address=address,
            pid=os.getpid(),
            version=__version__,
            store=server.store.url,
            engine="temporal" if is_temporal else "embedded",
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            console_url=web_console.url if web_console is not None else "",
        )
        write_server_record(home, record)
        console.print(f"Stigmer server on {address}")
        if web_console is not None:
            console.print(f"  console: {web_console.url}")
        try:
            await stopping.wait()
        finally:
            # Gone from the record first: while it drains, clients no longer pick it.
            remove_server_record(home, record.pid)
            if web_console is not None:
                await web_console.stop()
            await server.stop()

    asyncio.run(run())


async def start_console(address: str, port: int, tls: TlsFiles | None) -> ConsoleServer | None:
    """The web console on 127.0.0.1:`port`, a client of the server at
    `address`; None when `port` is 0 or cannot be bound (the server still
    serves, and says why there is no console)."""
    if port == 0:
        return None
    from stigmer.console.app import ConsoleOptions
    from stigmer.console.serving import ConsoleServer

    # Over TLS the console verifies the server as any client would: with the
    # configured CA, else with the server's own (self-signed) certificate.
    tls_ca = (config.value("tls.ca") or str(tls.cert)) if tls is not None else None
    web_console = ConsoleServer(ConsoleOptions(address, tls_ca=tls_ca), port=port)
    try:
        await web_console.start()
    except FailedPrecondition as error:
        print(f"warning: no web console: {error.message}", file=sys.stderr)
        return None
    return web_console


def tls_files(cert: str | None, key: str | None, client_ca: str | None) -> TlsFiles | None:
    """The server's TLS files from flags and settings; None without a certificate.

    Raises:
        InvalidArgument: a certificate without its key, or the other way round.
    """
    from stigmer.server.tls import TlsFiles

    cert_path, key_path = config.value("tls.cert", cert), config.value("tls.key", key)
    client_ca_path = config.value("tls.client_ca", client_ca)
    if not cert_path and not key_path:
        if client_ca_path:
            raise InvalidArgument.for_field("tls-client-ca", "needs --tls-cert and --tls-key")
        return None
    if not cert_path or not key_path:
        missing = "tls-key" if cert_path else "tls-cert"
        raise InvalidArgument.for_field(missing, "TLS needs both --tls-cert and --tls-key")
    return TlsFiles(
        cert=Path(cert_path).expanduser(),
        key=Path(key_path).expanduser(),
        client_ca=Path(client_ca_path).expanduser() if client_ca_path else None,
    )


def engine_options() -> EngineOptions:
    """The embedded engine's settings and the default model, from config.

    Without llm.provider the model is resolved from what the machine has
    (Ollama, an API key, the local model); `stigmer doctor` says which and why.
    """
    from stigmer.runtime.context_window import context_settings_from_config
    from stigmer.runtime.model_resolution import resolve_model

    for key in ("llm.provider", "llm.base_url"):  # a typo here would fail every run
        config.checked_value(key)
    choice = resolve_model()
    return EngineOptions(
        workers=int(config.checked_value("workers")),
        lease_seconds=float(config.checked_value("lease_seconds")),
        max_tool_result_bytes=int(config.checked_value("tool_result_max_bytes")),
        model=choice.settings,
        context=context_settings_from_config(),
        model_provider=choice.provider,
        model_reason=choice.reason,
    )


def _pid_file_pid() -> int | None:
    """The daemon's pid from server.pid, when that process runs."""
    try:
        pid = int(pid_file().read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if is_process_alive(pid) else None


def _remove_stale_files(home: Path) -> ServerRecord | None:
    """Removes server.json and server.pid of processes that are gone; the
    stale record removed, if there was one."""
    record = read_server_record(home)
    if record is not None and not is_process_alive(record.pid):
        remove_server_record(home, record.pid)
    else:
        record = None
    if pid_file().exists() and _pid_file_pid() is None:
        pid_file().unlink(missing_ok=True)
    return record


def client_address(host: str, port: int) -> str:
    """Where a client on this machine reaches a server listening on host:port."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


@app.command()
def start(
    host: HostOption = None,
    port: PortOption = None,
    store: StoreOption = None,
    engine: EngineOption = None,
    temporal_address: TemporalAddressOption = None,
    temporal_namespace: TemporalNamespaceOption = None,
    task_queue: TaskQueueOption = None,
    auth: AuthOption = None,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    tls_client_ca: TlsClientCaOption = None,
    console_port: ConsolePortOption = None,
) -> None:
    """Start the server (and its web console) in the background and wait until it serves."""
    home = config.stigmer_home()
    _remove_stale_files(home)
    record = read_server_record(home)
    if record is not None:
        raise FailedPrecondition(
            f"the server of {home} is already running at {record.address} "
            f"(pid {record.pid}); stop it first"
        )
    if (pid := _pid_file_pid()) is not None:
        raise FailedPrecondition(f"the server is already running (pid {pid}); stop it first")
    command = [
        sys.executable, "-m", "stigmer.cli.main", "server",
        "--host", config.checked_value("host", host),
        "--port", config.checked_value("port", port),
        "--store", config.checked_value("store", store), "--engine", _engine(engine),
        "--console-port", config.checked_value("console_port", console_port),
    ]  # fmt: skip
    for flag, given in (
        ("--temporal-address", temporal_address),
        ("--temporal-namespace", temporal_namespace),
        ("--task-queue", task_queue),
        ("--auth", auth),
        ("--tls-cert", tls_cert),
        ("--tls-key", tls_key),
        ("--tls-client-ca", tls_client_ca),
    ):
        if given:
            command += [flag, given]
    log_file().parent.mkdir(parents=True, exist_ok=True)
    with log_file().open("ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    pid_file().write_text(f"{process.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pid_file().unlink(missing_ok=True)
            tail = log_file().read_text(errors="replace").splitlines()[-15:]
            raise Unavailable(
                f"the server exited with code {process.returncode}:\n" + "\n".join(tail)
            )
        # The server records itself once it serves: its address has the real port.
        record = read_server_record(home)
        if record is not None and record.pid == process.pid:
            with Client(record.address) as client:
                if client.is_serving(wait_seconds=0.5):
                    console.print(f"Stigmer server started on {record.address} (pid {process.pid})")
                    console.print(f"  logs: {log_file()}")
                    if record.console_url:
                        console.print(f"  console: {record.console_url}")
                    return
        time.sleep(0.1)
    raise Unavailable(
        f"the server (pid {process.pid}) did not serve within {START_TIMEOUT_SECONDS}s; "
        f"see {log_file()}"
    )


@app.command()
def stop() -> None:
    """Stop the server of this home (SIGTERM, then SIGKILL after a timeout)."""
    home = config.stigmer_home()
    _remove_stale_files(home)
    record = read_server_record(home)
    pid = record.pid if record is not None else _pid_file_pid()
    if pid is None:
        console.print("Stigmer server is not running")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline and _is_alive(pid):
        time.sleep(0.05)
    if _is_alive(pid):
        os.kill(pid, signal.SIGKILL)
    pid_file().unlink(missing_ok=True)
    remove_server_record(home, pid)  # a clean stop removed it already; a killed server did not
    console.print(f"Stigmer server stopped (pid {pid})")


def _is_alive(pid: int) -> bool:
    """Whether pid runs; reaps it when it is our own child that exited."""
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return is_process_alive(pid)
    return finished == 0


def _identity(address: str) -> server_pb2.ServerInfo | None:
    """What the server on `address` says about itself, or None when no
    Stigmer server answers there as serving."""
    with Client(address, timeout=STATUS_TIMEOUT_SECONDS) as client:
        try:
            if not client.is_serving(wait_seconds=STATUS_TIMEOUT_SECONDS):
                return None
            return client.server_info()
        except StigmerError:
            return None


def _not_running(why: str) -> typer.Exit:
    console.print(f"not running: {why}")
    return typer.Exit(NOT_RUNNING_EXIT_CODE)


@app.command()
def status(
    server: Annotated[
        str | None,
        typer.Option("--server", help="Ask this address instead of the server of this home"),
    ] = None,
) -> None:
    """Say whether the server of this home (or the one at --server /
    STIGMER_SERVER / the config file's server) runs and answers: exit 0 when
    it does, 3 when it does not."""
    home = config.stigmer_home()
    resolved = config.resolve("server", server)
    if resolved.source != "default" and not resolved.source.startswith("server.json"):
        info = _identity(resolved.value)
        if info is None:
            raise _not_running(f"no Stigmer server answers on {resolved.value} ({resolved.source})")
        _print_running(resolved.value, info)
        return
    stale = _remove_stale_files(home)
    record = read_server_record(home)
    if record is None:
        if (pid := _pid_file_pid()) is not None:
            raise _not_running(
                f"the server process {pid} runs but has not recorded its address in "
                f"{home / 'server.json'} (still starting? see {log_file()})"
            )
        if stale is not None:
            raise _not_running(
                f"the server recorded at {stale.address} (pid {stale.pid}) is gone; "
                f"removed its stale {home / 'server.json'}"
            )
        raise _not_running(f"no server runs from {home}; start one with `stigmer server start`")
    info = _identity(record.address)
    if info is None:
        raise _not_running(
            f"the server process {record.pid} runs but does not answer on {record.address}"
        )
    if info.pid != record.pid:
        raise _not_running(
            f"the server process {record.pid} does not answer on {record.address}: "
            f"another Stigmer server (pid {info.pid}) does"
        )
    _print_running(record.address, info)


def _print_running(address: str, info: server_pb2.ServerInfo) -> None:
    console.print(
        f"running at {address} (pid {info.pid}, store {info.store.url}, engine {info.engine})"
    )


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
