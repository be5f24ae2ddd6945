"""`stigmer check` finds each broken invariant; `stigmer repair` fixes what
can be fixed; `--dry-run` changes nothing."""

from __future__ import annotations

import json
import logging

import pytest

from stigmer.client import Client
from stigmer.testing.cli import Cli
from stigmer.testing.server import ServerThread
from tests.consistency.broken_states import (
    DECISION_SEEDERS,
    REPAIRABLE_SEEDERS,
    Seeder,
    dump_store,
)
from tests.control_plane.manifests import FOUR_RESOURCES
from tests.waiting import wait_until

ALL_SEEDERS = {**REPAIRABLE_SEEDERS, **DECISION_SEEDERS}


def codes(cli: Cli) -> tuple[int, list[str]]:
    checked = cli("check", "-o", "json")
    body = json.loads(checked.stdout)
    return checked.exit_code, sorted(v["code"] for v in body.get("violations", []))


def test_healthy_store_checks_clean(cli: Cli, client: Client) -> None:
    client.apply(FOUR_RESOURCES)
    result = cli("check")
    assert result.exit_code == 0
    assert "No violations" in result.stdout


@pytest.mark.parametrize("seeder", ALL_SEEDERS.values(), ids=ALL_SEEDERS.keys())
def test_check_reports_the_seeded_violation_and_exits_1(
    cli: Cli, client: Client, store_url: str, seeder: Seeder
) -> None:
    client.apply(FOUR_RESOURCES)
    expected = seeder(client, store_url)
    exit_code, found = codes(cli)
    assert exit_code == 1
    assert found == [expected]
    table = cli("check")
    assert table.exit_code == 1 and expected in table.stdout


@pytest.mark.parametrize("seeder", REPAIRABLE_SEEDERS.values(), ids=REPAIRABLE_SEEDERS.keys())
def test_repair_fixes_it_and_dry_run_changes_nothing(
    cli: Cli, client: Client, store_url: str, seeder: Seeder
) -> None:
    client.apply(FOUR_RESOURCES)
    expected = seeder(client, store_url)
    before = dump_store(store_url)

    dry = cli("repair", "--dry-run", "--orphans=delete")

    assert dry.exit_code == 0
    assert f"would: {expected}" in dry.stdout
    assert dump_store(store_url) == before

    repaired = cli("repair", "--orphans=delete")
    assert repaired.exit_code == 0, repaired.stdout
    assert f"done: {expected}" in repaired.stdout
    assert codes(cli) == (0, [])


@pytest.mark.parametrize("seeder", DECISION_SEEDERS.values(), ids=DECISION_SEEDERS.keys())
def test_repair_leaves_what_needs_a_decision_and_says_so(
    cli: Cli, client: Client, store_url: str, seeder: Seeder
) -> None:
    expected = seeder(client, store_url)
    repaired = cli("repair")
    assert repaired.exit_code == 1
    assert "need a decision" in repaired.stdout
    assert codes(cli) == (1, [expected])


def test_orphans_are_kept_unless_asked(cli: Cli, client: Client, store_url: str) -> None:
    REPAIRABLE_SEEDERS["orphan-instance"](client, store_url)
    kept = cli("repair")
    assert kept.exit_code == 1
    assert codes(cli) == (1, ["ORPHAN_INSTANCE"])


def test_periodic_checker_logs_each_violation_code_and_heals_pointers(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with (
        ServerThread(store_url, check_interval_seconds=0.2) as server,
        Client(server.address) as client,
    ):
        client.apply(FOUR_RESOURCES)
        expected = {seeder(client, store_url) for seeder in ALL_SEEDERS.values()}

        def logged() -> set[str]:
            return {
                r.getMessage().split(":", 1)[0].removeprefix("Consistency violation ")
                for r in caplog.records
                if r.getMessage().startswith("Consistency violation ")
            }

        wait_until(lambda: expected <= logged(), what="the checker to log every seeded violation")
        assert len(expected) == 12
        messages = [r.getMessage() for r in caplog.records]
        assert any(m.startswith("Healed DEFAULT_INSTANCE_POINTER_EMPTY") for m in messages)
        last = client.last_report()
        assert last.resources_checked > 0
        # The pointers it healed on its own are no longer reported.
        remaining = {v.code for v in client.check().violations}
        assert "DEFAULT_INSTANCE_POINTER_EMPTY" not in remaining
        assert "DANGLING_REFERENCE" in remaining
