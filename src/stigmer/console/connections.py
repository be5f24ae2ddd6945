"""The SDK clients the console calls the server with, one per token.

The console speaks to the server like any other client, over its gRPC
address. It never falls back to a token of its own (STIGMER_TOKEN, the
home's admin token): with auth on, each person signs in with their token
(auth.py) and every call they cause carries exactly that token, so the
server decides what they may do. Without auth, calls carry no token.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

from stigmer.client.aio import AsyncClient

# Channels kept open for the most recent tokens; an evicted one is reopened.
MAX_CLIENTS = 32
CALL_TIMEOUT_SECONDS = 15.0


class ConsoleClients:
    def __init__(self, address: str, *, tls_ca: str | None = None) -> None:
        self.address = address
        self.tls_ca = tls_ca
        self._clients: OrderedDict[str, AsyncClient] = OrderedDict()

    def for_token(self, token: str) -> AsyncClient:
        client = self._clients.get(token)
        if client is not None:
            self._clients.move_to_end(token)
            return client
        client = AsyncClient(self.address, timeout=CALL_TIMEOUT_SECONDS, tls_ca=self.tls_ca)
        # Exactly this person's token, never one configured on this machine.
        client.connection = dataclasses.replace(client.connection, token=token)
        self._clients[token] = client
        while len(self._clients) > MAX_CLIENTS:
            _, evicted = self._clients.popitem(last=False)
            # Closing a channel with calls in flight would fail them; an
            # evicted client is dropped and closes when it is collected.
            del evicted
        return client

    async def close(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.close()
