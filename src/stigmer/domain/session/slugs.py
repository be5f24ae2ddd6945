"""Readable session slugs: `<agent-slug>-<suffix>`, like a Kubernetes
generateName.

A session started by a run has no name of its own, yet people need to type
it (`stigmer run reviewer --session reviewer-k3m9x`). The agent's slug says
whose conversation it is; five random base32 characters (32^5, about 33
million per agent) tell the agent's sessions apart. A suffix can still
repeat, so the caller inserts if absent on the unique slug index and draws
again on a collision, in the same transaction.
"""

from __future__ import annotations

import secrets

from stigmer.resources.slugs import MAX_SLUG_LENGTH

# Lowercase Crockford base32, as in ids: no i, l, o, u to misread.
SUFFIX_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
SUFFIX_LENGTH = 5


def new_session_slug(agent_slug: str) -> str:
    """A fresh slug for a session of this agent, at most 63 characters
    (a long agent slug is cut to fit)."""
    suffix = "".join(secrets.choice(SUFFIX_ALPHABET) for _ in range(SUFFIX_LENGTH))
    room = MAX_SLUG_LENGTH - SUFFIX_LENGTH - 1
    prefix = agent_slug[:room].rstrip("-")
    return f"{prefix}-{suffix}" if prefix else suffix
