"""`stigmer console`: the web console on its own, against any server.

`stigmer server` already starts one beside itself (--console-port); this
runs the same console in the foreground for a server elsewhere, until
Ctrl-C. It is a client of that server like every other command: with auth
on, the browser asks for a token.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from stigmer import config
from stigmer.cli.output import console

ServerOption = Annotated[
    str | None,
    typer.Option("--server", help="Server HOST:PORT [env: STIGMER_SERVER]"),
]
PortOption = Annotated[
    int | None,
    typer.Option("--port", help="Port on 127.0.0.1; 0: any free port [env: STIGMER_CONSOLE_PORT]"),
]
HostOption = Annotated[
    str, typer.Option("--host", help="Listen address (the console has no TLS of its own)")
]


def register(app: typer.Typer) -> None:
    app.command(name="console")(run_console)


def run_console(
    server: ServerOption = None, port: PortOption = None, host: HostOption = "127.0.0.1"
) -> None:
    """Serve the web console for a Stigmer server (foreground, until Ctrl-C)."""
    from stigmer.console.app import ConsoleOptions
    from stigmer.console.serving import ConsoleServer

    address = config.checked_value("server", server)
    chosen_port = int(config.checked_value("console_port", port))
    tls_ca = config.value("tls.ca") or None

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        web_console = ConsoleServer(
            ConsoleOptions(address, tls_ca=tls_ca), host=host, port=chosen_port
        )
        await web_console.start()
        console.print(f"Stigmer console of the server at {address}")
        console.print(f"  console: {web_console.url}")
        try:
            await stopping.wait()
        finally:
            await web_console.stop()

    asyncio.run(serve())
