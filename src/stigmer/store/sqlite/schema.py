"""The SQLite schema, as numbered migrations applied in order at open.

Key columns are NOT NULL (with '' for "none") so the unique index on
(kind, org, slug) means what it says and relation indexes stay simple.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """
            CREATE TABLE resources (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                org TEXT NOT NULL,
                slug TEXT NOT NULL,
                version INTEGER NOT NULL,
                owner_id TEXT NOT NULL DEFAULT '',
                labels TEXT NOT NULL DEFAULT '{}',
                agent_id TEXT NOT NULL DEFAULT '',
                agent_instance_id TEXT NOT NULL DEFAULT '',
                session_id TEXT NOT NULL DEFAULT '',
                phase TEXT NOT NULL DEFAULT '',
                data BLOB NOT NULL
            )
            """,
            "CREATE UNIQUE INDEX resources_kind_org_slug ON resources (kind, org, slug)",
            "CREATE INDEX resources_kind_org_id ON resources (kind, org, id)",
            "CREATE INDEX resources_owner ON resources (owner_id, kind, id)",
            "CREATE INDEX resources_agent ON resources (kind, agent_id, id)",
            "CREATE INDEX resources_agent_instance ON resources (kind, agent_instance_id, id)",
            "CREATE INDEX resources_session ON resources (kind, session_id, id)",
            "CREATE INDEX resources_phase ON resources (kind, phase, id)",
        ),
    ),
    (
        2,
        (
            """
            CREATE TABLE resource_events (
                resource_id TEXT NOT NULL,
                sequence INTEGER NOT NULL,
                data BLOB NOT NULL,
                PRIMARY KEY (resource_id, sequence)
            ) WITHOUT ROWID
            """,
            """
            CREATE TABLE leases (
                resource_id TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                expires_at REAL NOT NULL
            )
            """,
            "CREATE INDEX leases_expires_at ON leases (expires_at)",
        ),
    ),
    (
        3,
        (
            # AUTOINCREMENT: a sequence is never handed out twice, even after
            # compaction deleted the newest rows' predecessors (a plain rowid
            # may reuse the largest number once its row is gone).
            """
            CREATE TABLE resource_changes (
                sequence INTEGER PRIMARY KEY AUTOINCREMENT,
                change_type TEXT NOT NULL,
                kind TEXT NOT NULL,
                id TEXT NOT NULL,
                org TEXT NOT NULL,
                slug TEXT NOT NULL,
                version INTEGER NOT NULL,
                owner_id TEXT NOT NULL DEFAULT '',
                labels TEXT NOT NULL DEFAULT '{}',
                agent_id TEXT NOT NULL DEFAULT '',
                agent_instance_id TEXT NOT NULL DEFAULT '',
                session_id TEXT NOT NULL DEFAULT '',
                phase TEXT NOT NULL DEFAULT '',
                data BLOB NOT NULL
            )
            """,
            "CREATE INDEX resource_changes_kind ON resource_changes (kind, sequence)",
            # The sequence up to which changes were compacted away.
            """
            CREATE TABLE resource_change_horizon (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                compacted_through INTEGER NOT NULL
            )
            """,
            "INSERT INTO resource_change_horizon (id, compacted_through) VALUES (1, 0)",
        ),
    ),
    # -- access tokens (store/sqlite/access_tokens.py) --------------------
    (
        4,
        (
            """
            CREATE TABLE access_tokens (
                name TEXT PRIMARY KEY,
                role TEXT NOT NULL,
                token_hash TEXT NOT NULL UNIQUE,
                created_at REAL NOT NULL,
                revoked_at REAL
            )
            """,
        ),
    ),
    # -- usage records (store/usage_records.py): one row per model call ----
    (
        5,
        (
            """
            CREATE TABLE usage_records (
                execution_id TEXT NOT NULL,
                call_id TEXT NOT NULL,
                org TEXT NOT NULL,
                agent_id TEXT NOT NULL,
                session_id TEXT NOT NULL,
                sub_agent TEXT NOT NULL,
                provider TEXT NOT NULL,
                model TEXT NOT NULL,
                day TEXT NOT NULL,
                at REAL NOT NULL,
                input_tokens INTEGER NOT NULL,
                output_tokens INTEGER NOT NULL,
                cached_tokens INTEGER NOT NULL,
                reasoning_tokens INTEGER NOT NULL,
                duration_ms INTEGER NOT NULL,
                cost_micros INTEGER NOT NULL,
                price_input_micros INTEGER NOT NULL,
                price_output_micros INTEGER NOT NULL,
                price_cached_micros INTEGER NOT NULL,
                PRIMARY KEY (execution_id, call_id)
            ) WITHOUT ROWID
            """,
            "CREATE INDEX usage_records_agent ON usage_records (org, agent_id, at)",
            "CREATE INDEX usage_records_session ON usage_records (org, session_id, at)",
            "CREATE INDEX usage_records_model ON usage_records (org, model, at)",
            "CREATE INDEX usage_records_day ON usage_records (org, day)",
            "CREATE INDEX usage_records_at ON usage_records (org, at)",
        ),
    ),
    # -- artifacts (store/sqlite/artifacts.py): skill archives -------------
    (
        6,
        (
            """
            CREATE TABLE artifacts (
                owner_id TEXT NOT NULL,
                hash TEXT NOT NULL,
                size INTEGER NOT NULL,
                data BLOB NOT NULL,
                PRIMARY KEY (owner_id, hash)
            ) WITHOUT ROWID
            """,
        ),
    ),
    # -- the consistency checker's pages (consistency/checker.py) --------
    # It walks a kind in id order: without this index SQLite read and
    # sorted every row of the kind for each page. PostgreSQL has had the
    # same index since its first migration.
    (8, ("CREATE INDEX IF NOT EXISTS resources_kind_id ON resources (kind, id)",)),
)
