"""Environments: named sets of variables (some secret) merged into executions."""

from __future__ import annotations

from stigmer.domain.resource_controller import WritableResourceController
from stigmer.resources.kinds import ENVIRONMENT


class EnvironmentController(WritableResourceController):
    kind = ENVIRONMENT
