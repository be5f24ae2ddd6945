"""The TokenController service: make, list and revoke access tokens (admin only)."""

from __future__ import annotations

import time
from typing import Any

from google.protobuf import timestamp_pb2

from stigmer.api.v1 import token_pb2, token_pb2_grpc
from stigmer.errors import NotFound
from stigmer.resources.principals import hash_token, new_token_secret
from stigmer.resources.validation import validate_message
from stigmer.store.base import AccessToken, Store


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    moment = timestamp_pb2.Timestamp()
    moment.FromNanoseconds(int(seconds * 1e9))
    return moment


def token_message(token: AccessToken) -> token_pb2.AccessToken:
    shown = token_pb2.AccessToken(
        name=token.name, role=token.role, created_at=_timestamp(token.created_at)
    )
    if token.revoked_at is not None:
        shown.revoked_at.CopyFrom(_timestamp(token.revoked_at))
    return shown


class TokenService(token_pb2_grpc.TokenControllerServicer):
    def __init__(self, store: Store) -> None:
        self.store = store

    async def Create(  # noqa: N802
        self, request: token_pb2.CreateTokenRequest, context: Any
    ) -> token_pb2.CreatedToken:
        validate_message(request)
        secret = new_token_secret()
        token = AccessToken(request.name, request.role, hash_token(secret), time.time())
        async with self.store.transaction() as transaction:
            await transaction.put_access_token(token)
        return token_pb2.CreatedToken(token=token_message(token), secret=secret)

    async def List(  # noqa: N802
        self, request: token_pb2.ListTokensRequest, context: Any
    ) -> token_pb2.AccessTokenList:
        async with self.store.transaction(write=False) as transaction:
            tokens = await transaction.list_access_tokens()
        return token_pb2.AccessTokenList(items=[token_message(token) for token in tokens])

    async def Revoke(  # noqa: N802
        self, request: token_pb2.RevokeTokenRequest, context: Any
    ) -> token_pb2.AccessToken:
        validate_message(request)
        async with self.store.transaction() as transaction:
            token = await transaction.revoke_access_token(request.name, time.time())
        if token is None:
            raise NotFound("AccessToken", request.name, field="name")
        return token_message(token)
