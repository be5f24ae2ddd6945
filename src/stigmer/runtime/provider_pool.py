"""One chat provider per model setting, kept as long as the process that runs
executions (the server's embedded engine, or a `stigmer worker`).

Building an SDK client loads TLS certificates and would cost every execution
tens of milliseconds of event loop, so each setting's provider is built once.
The model SDKs are imported on first use, not with this module: the CLI's
client commands never need them.
"""

from __future__ import annotations

import asyncio
import contextlib

from stigmer.runtime.contract import ChatProvider, ModelSettings
from stigmer.runtime.local_model import shared_host as local_model_host


class ProviderPool:
    def __init__(self) -> None:
        self._providers: dict[ModelSettings, ChatProvider] = {}
        self._builds: dict[ModelSettings, asyncio.Future[ChatProvider]] = {}

    async def get(self, settings: ModelSettings) -> ChatProvider:
        """The provider for `settings`, built (off the event loop) on first use.

        Raises:
            ModelError: the settings name no usable provider.
        """
        provider = self._providers.get(settings)
        if provider is not None:
            return provider
        build = self._builds.get(settings)
        if build is None:
            build = asyncio.ensure_future(self._build(settings))
            # A build whose every caller was cancelled still has its error read.
            build.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._builds[settings] = build
        # Shielded: an execution cancelled while its provider is built (the
        # server stopping, say) must not drop a half-owned SDK client, whose
        # connection pool would then be closed by the garbage collector on a
        # loop that is gone. The build finishes and lands in the pool, which
        # `aclose` closes.
        return await asyncio.shield(build)

    async def _build(self, settings: ModelSettings) -> ChatProvider:
        try:
            provider = await asyncio.to_thread(_build, settings)
            self._providers[settings] = provider
            return provider
        finally:
            self._builds.pop(settings, None)

    async def aclose(self) -> None:
        """Closes every provider, and the local model they share."""
        for build in list(self._builds.values()):
            with contextlib.suppress(Exception):
                await build
        for provider in self._providers.values():
            with contextlib.suppress(Exception):
                await provider.aclose()
        self._providers.clear()
        await local_model_host.stop()


def _build(settings: ModelSettings) -> ChatProvider:
    # Imported here, on the builder's thread: the first import of the model
    # SDKs takes seconds, which on the event loop would stall every stream and
    # heartbeat the process has in flight.
    from stigmer.runtime.providers import provider_for

    return provider_for(settings)
