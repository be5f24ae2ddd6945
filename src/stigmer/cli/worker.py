"""`stigmer worker`: run the Temporal engine's activities on this machine."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Annotated

import typer

from stigmer import config
from stigmer.cli.server import TaskQueueOption, TemporalAddressOption, TemporalNamespaceOption
from stigmer.errors import FailedPrecondition, InvalidArgument
from stigmer.runtime.model_resolution import resolve_model


def register(app: typer.Typer) -> None:
    app.command()(worker)


def worker(
    server: Annotated[
        str | None, typer.Option("--server", help="Stigmer server host:port [env: STIGMER_SERVER]")
    ] = None,
    temporal_address: TemporalAddressOption = None,
    temporal_namespace: TemporalNamespaceOption = None,
    task_queue: TaskQueueOption = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Activities (model or tool calls) run at once")
    ] = 8,
    tls_ca: Annotated[
        str | None,
        typer.Option("--tls-ca", help="CA file that verifies the server [env: STIGMER_TLS_CA]"),
    ] = None,
) -> None:
    """Run executions' model and tool calls for a server on the Temporal engine,
    until SIGINT/SIGTERM. Start as many as you like, on any machine that
    reaches both the server and Temporal."""
    from stigmer.engine.temporal_dev_server import managed_address

    if concurrency < 1:
        raise InvalidArgument.for_field("concurrency", f"{concurrency} is not a positive number")
    address = config.value("temporal.address", temporal_address) or managed_address(
        config.stigmer_home()
    )
    if not address:
        raise FailedPrecondition(
            "no Temporal address: pass --temporal-address or set STIGMER_TEMPORAL_ADDRESS "
            "(a local `stigmer server --engine temporal` without one writes its dev "
            f"server's address to {config.stigmer_home() / 'temporal' / 'address'})"
        )
    # The worker's code (the model, MCP and Temporal SDKs) is imported only
    # once the flags are known to be good.
    from stigmer.runtime.context_window import context_settings_from_config
    from stigmer.worker.process import WorkerOptions, run_worker

    options = WorkerOptions(
        server=config.value("server", server),
        temporal_address=address,
        namespace=config.value("temporal.namespace", temporal_namespace),
        task_queue=config.value("temporal.task_queue", task_queue),
        model=resolve_model().settings,
        max_concurrent_activities=concurrency,
        tls_ca=config.value("tls.ca", tls_ca) or None,
        max_tool_result_bytes=int(config.checked_value("tool_result_max_bytes")),
        context=context_settings_from_config(),
    )
    logging.basicConfig(
        level=os.environ.get("STIGMER_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    async def run() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        await run_worker(options, stopping)

    asyncio.run(run())
