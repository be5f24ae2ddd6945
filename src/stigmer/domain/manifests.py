"""Applying a manifest: several resources of any kinds, one transaction.

Each resource goes through its own kind's apply pipeline, all inside one
store transaction, so a file either lands whole or not at all, and a dry
run sees the resources it would have created before (an agent that refers
to an McpServer defined earlier in the same file resolves).
"""

from __future__ import annotations

from collections.abc import Sequence

from stigmer.domain.registry import Domains
from stigmer.errors import AlreadyExists, StigmerError
from stigmer.pipeline.envelope import Envelope
from stigmer.resources.kinds import kind_by_name
from stigmer.store.base import Transaction


async def _apply_all(
    domains: Domains, resources: Sequence[Envelope], transaction: Transaction
) -> list[tuple[Envelope, int]]:
    results = []
    for index, resource in enumerate(resources):
        kind = kind_by_name(resource.DESCRIPTOR.name)  # type: ignore[attr-defined]
        try:
            controller = domains.writable_controller(kind)
            results.append(await controller.apply(resource, transaction=transaction))
        except StigmerError as error:
            label = resource.metadata.slug or resource.metadata.name
            error.facts.setdefault("resource", f"{kind.name}/{label}")
            error.facts.setdefault("resource_index", str(index))
            raise
    return results


async def apply_manifest(
    domains: Domains, resources: Sequence[Envelope], *, is_dry_run: bool
) -> list[tuple[Envelope, int]]:
    """Applies every resource in order, all or nothing.

    Raises:
        StigmerError: the first resource that fails, with `resource` and
            `resource_index` facts; nothing of the manifest is written.
    """
    for attempt in (1, 2):
        try:
            async with domains.store.transaction() as transaction:
                results = await _apply_all(domains, resources, transaction)
                if is_dry_run:
                    transaction.discard()
                return results
        except AlreadyExists:
            # A concurrent writer created one of the slugs after our lookup;
            # the second attempt sees it and updates instead.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
