"""The PostgreSQL schema, as numbered migrations applied in order at open.

The same tables and indexes as the SQLite schema, in PostgreSQL's types:

- Key columns are NOT NULL (with '' for "none"): NULLs are distinct in a
  unique index, so a nullable column would let (kind, org, slug) repeat.
- Text columns use the "C" collation. Ids sort by creation time only in
  byte order, and list pages (`ORDER BY id`, `id > after_id`) must sort
  exactly as they do on SQLite and in Python, whatever locale the database
  was created with (en_US, for one, ignores '-' when comparing).
- Labels are `jsonb` with a GIN index (jsonb_path_ops), so a label selector
  is one indexed containment test (`labels @> '{"k": "v"}'`).
- Each migration runs in one transaction (PostgreSQL's DDL is transactional):
  a failed upgrade leaves the previous schema intact.

Never edit a migration that has shipped; append a new one.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """
            CREATE TABLE resources (
                id TEXT COLLATE "C" PRIMARY KEY,
                kind TEXT COLLATE "C" NOT NULL,
                org TEXT COLLATE "C" NOT NULL,
                slug TEXT COLLATE "C" NOT NULL,
                version BIGINT NOT NULL,
                owner_id TEXT COLLATE "C" NOT NULL DEFAULT '',
                labels JSONB NOT NULL DEFAULT '{}',
                agent_id TEXT COLLATE "C" NOT NULL DEFAULT '',
                agent_instance_id TEXT COLLATE "C" NOT NULL DEFAULT '',
                session_id TEXT COLLATE "C" NOT NULL DEFAULT '',
                phase TEXT COLLATE "C" NOT NULL DEFAULT '',
                data BYTEA NOT NULL
            )
            """,
            "CREATE UNIQUE INDEX resources_kind_org_slug ON resources (kind, org, slug)",
            "CREATE INDEX resources_kind_org_id ON resources (kind, org, id)",
            "CREATE INDEX resources_kind_id ON resources (kind, id)",
            "CREATE INDEX resources_owner ON resources (owner_id, kind, id)",
            "CREATE INDEX resources_agent ON resources (kind, agent_id, id)",
            "CREATE INDEX resources_agent_instance ON resources (kind, agent_instance_id, id)",
            "CREATE INDEX resources_session ON resources (kind, session_id, id)",
            "CREATE INDEX resources_phase ON resources (kind, phase, id)",
            "CREATE INDEX resources_labels ON resources USING GIN (labels jsonb_path_ops)",
        ),
    ),
    (
        2,
        (
            """
            CREATE TABLE resource_events (
                resource_id TEXT COLLATE "C" NOT NULL,
                sequence BIGINT NOT NULL,
                data BYTEA NOT NULL,
                PRIMARY KEY (resource_id, sequence)
            )
            """,
            """
            CREATE TABLE leases (
                resource_id TEXT COLLATE "C" PRIMARY KEY,
                owner TEXT NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL
            )
            """,
            "CREATE INDEX leases_expires_at ON leases (expires_at)",
        ),
    ),
    (
        3,
        (
            # An identity hands out numbers at insert, and transactions commit
            # in any order; the store writes change rows at commit under an
            # advisory lock so that numbers become visible in order (see
            # PostgresTransaction._log_changes).
            """
            CREATE TABLE resource_changes (
                sequence BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                change_type TEXT COLLATE "C" NOT NULL,
                kind TEXT COLLATE "C" NOT NULL,
                id TEXT COLLATE "C" NOT NULL,
                org TEXT COLLATE "C" NOT NULL,
                slug TEXT COLLATE "C" NOT NULL,
                version BIGINT NOT NULL,
                owner_id TEXT COLLATE "C" NOT NULL DEFAULT '',
                labels JSONB NOT NULL DEFAULT '{}',
                agent_id TEXT COLLATE "C" NOT NULL DEFAULT '',
                agent_instance_id TEXT COLLATE "C" NOT NULL DEFAULT '',
                session_id TEXT COLLATE "C" NOT NULL DEFAULT '',
                phase TEXT COLLATE "C" NOT NULL DEFAULT '',
                data BYTEA NOT NULL
            )
            """,
            "CREATE INDEX resource_changes_kind ON resource_changes (kind, sequence)",
            """
            CREATE TABLE resource_change_horizon (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                compacted_through BIGINT NOT NULL
            )
            """,
            "INSERT INTO resource_change_horizon (id, compacted_through) VALUES (1, 0)",
        ),
    ),
    # -- access tokens (store/postgres/access_tokens.py) ------------------
    (
        4,
        (
            """
            CREATE TABLE access_tokens (
                name TEXT COLLATE "C" PRIMARY KEY,
                role TEXT COLLATE "C" NOT NULL,
                token_hash TEXT COLLATE "C" NOT NULL UNIQUE,
                created_at DOUBLE PRECISION NOT NULL,
                revoked_at DOUBLE PRECISION
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
                execution_id TEXT COLLATE "C" NOT NULL,
                call_id TEXT COLLATE "C" NOT NULL,
                org TEXT COLLATE "C" NOT NULL,
                agent_id TEXT COLLATE "C" NOT NULL,
                session_id TEXT COLLATE "C" NOT NULL,
                sub_agent TEXT COLLATE "C" NOT NULL,
                provider TEXT COLLATE "C" NOT NULL,
                model TEXT COLLATE "C" NOT NULL,
                day TEXT COLLATE "C" NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                input_tokens BIGINT NOT NULL,
                output_tokens BIGINT NOT NULL,
                cached_tokens BIGINT NOT NULL,
                reasoning_tokens BIGINT NOT NULL,
                duration_ms BIGINT NOT NULL,
                cost_micros BIGINT NOT NULL,
                price_input_micros BIGINT NOT NULL,
                price_output_micros BIGINT NOT NULL,
                price_cached_micros BIGINT NOT NULL,
                PRIMARY KEY (execution_id, call_id)
            )
            """,
            "CREATE INDEX usage_records_agent ON usage_records (org, agent_id, at)",
            "CREATE INDEX usage_records_session ON usage_records (org, session_id, at)",
            "CREATE INDEX usage_records_model ON usage_records (org, model, at)",
            "CREATE INDEX usage_records_day ON usage_records (org, day)",
            "CREATE INDEX usage_records_at ON usage_records (org, at)",
        ),
    ),
    # -- artifacts (store/postgres/artifacts.py): skill archives -----------
    (
        6,
        (
            """
            CREATE TABLE artifacts (
                owner_id TEXT COLLATE "C" NOT NULL,
                hash TEXT COLLATE "C" NOT NULL,
                size BIGINT NOT NULL,
                data BYTEA NOT NULL,
                PRIMARY KEY (owner_id, hash)
            )
            """,
        ),
    ),
)
