"""Who holds an execution's lease, as the store records it.

The Temporal engine's leases all have one owner: its activities run in
`stigmer worker` processes anywhere, and Temporal (not the server) decides
which worker runs which activity. A worker token may therefore serve an
execution exactly while the Temporal engine holds its lease
(server/authorization.py). The embedded engine's owners name the server
process itself; no worker may touch those executions.
"""

from __future__ import annotations

TEMPORAL_LEASE_OWNER = "temporal"
