"""`stigmer config set|unset`: values are checked against their setting's
rule before anything is written, unknown keys name the close ones, and unset
removes a key (and the section it leaves empty) from the file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from stigmer import config
from stigmer.errors import InvalidArgument
from stigmer.testing.cli import Cli


@pytest.fixture
def home_cli(stigmer_home: Path, tmp_path: Path) -> Cli:
    return Cli.isolated(stigmer_home, cwd=tmp_path)


@pytest.fixture
def home(stigmer_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This process's settings come from `stigmer_home` only."""
    for variable in [name for name in os.environ if name.startswith("STIGMER_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("STIGMER_HOME", str(stigmer_home))
    return stigmer_home


def _file(home: Path) -> object:
    return yaml.safe_load((home / "config.yaml").read_text())


def test_config_set_of_a_bad_value_exits_2_saying_what_is_allowed_and_writes_nothing(
    home_cli: Cli, stigmer_home: Path
) -> None:
    refused = home_cli("config", "set", "engine", "bogus")

    assert refused.exit_code == 2
    assert "engine: 'bogus' is not allowed: expected embedded or temporal" in refused.stderr
    assert not (stigmer_home / "config.yaml").exists()


def test_config_set_of_an_unknown_key_exits_2_naming_the_close_keys(home_cli: Cli) -> None:
    typo = home_cli("config", "set", "llm.provder", "openai")
    bare = home_cli("config", "set", "provider", "openai")

    assert (typo.exit_code, bare.exit_code) == (2, 2)
    assert "unknown setting 'llm.provder' (did you mean llm.provider?" in typo.stderr
    assert "unknown setting 'provider' (did you mean llm.provider?" in bare.stderr


def test_config_set_writes_a_valid_value_and_unset_removes_it_and_its_empty_section(
    home_cli: Cli, stigmer_home: Path
) -> None:
    assert home_cli("config", "set", "llm.provider", "ollama").exit_code == 0
    assert home_cli("config", "set", "workers", "8").exit_code == 0
    assert _file(stigmer_home) == {"llm": {"provider": "ollama"}, "workers": "8"}
    assert stat.S_IMODE((stigmer_home / "config.yaml").stat().st_mode) == 0o600

    removed = home_cli("config", "unset", "llm.provider")
    again = home_cli("config", "unset", "llm.provider")

    assert removed.exit_code == 0, removed.stderr
    assert removed.stdout.splitlines() == [
        f"llm.provider removed from {stigmer_home / 'config.yaml'}",
        "  now (empty) (default)",
    ]
    assert _file(stigmer_home) == {"workers": "8"}
    # Not there any more: nothing to do, which is what was asked.
    assert again.exit_code == 0
    assert f"llm.provider was not set in {stigmer_home / 'config.yaml'}" in again.stderr
    assert home_cli("config", "unset", "llm.provder").exit_code == 2


def test_config_list_names_each_source_and_the_resolution_order(home_cli: Cli) -> None:
    home_cli.env["STIGMER_ENGINE"] = "temporal"

    listed = home_cli("config", "list")

    assert listed.exit_code == 0
    rows = {line.split()[0]: line.split()[1:] for line in listed.stdout.splitlines()[1:]}
    assert rows["engine"] == ["temporal", "env", "STIGMER_ENGINE"]
    assert rows["server"] == ["127.0.0.1:7234", "default"]
    assert "flag > STIGMER_* env > config file > (server only) server.json" in listed.stderr


@pytest.mark.parametrize(
    ("key", "bad", "good"),
    [
        ("server", "localhost", "10.0.0.5:7234"),
        ("server", "host:99999", "[::1]:7234"),
        ("port", "http", "0"),
        ("port", "65536", "65535"),
        ("store", "mysql://db/stigmer", "postgres://stigmer@db:5432/stigmer"),
        ("store", "postgres://db:port/x", "sqlite:///var/lib/stigmer.db"),
        ("engine", "Temporal", "temporal"),
        ("workers", "0", "16"),
        ("workers", "2.5", "1"),
        ("lease_seconds", "0", "0.5"),
        ("check_interval_seconds", "-1", "0"),
        ("temporal.address", "temporal", "temporal.internal:7233"),
        ("temporal.heartbeat_seconds", "nan", "30"),
        ("temporal.task_queue", " ", "agents"),
        ("llm.provider", "gpt", "anthropic"),
        ("llm.base_url", "localhost:11434/v1", "http://localhost:11434/v1"),
        ("llm.threads", "-2", "3"),
        ("llm.context_size", "8k", "0"),
        ("llm.context_window", "128k", "128000"),
        ("llm.context_trigger", "0", "90"),
        ("llm.context_target", "150", "50"),
    ],
)
def test_each_setting_takes_the_values_its_rule_allows(
    home: Path, key: str, bad: str, good: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        config.set_value(key, bad)
    config.set_value(key, good)

    assert refused.value.violations[0].field == key
    assert f"{bad!r} is not allowed: expected " in refused.value.message
    assert config.resolve(key).value == good


def test_a_value_from_the_environment_that_breaks_its_rule_names_its_source(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STIGMER_WORKERS", "many")

    with pytest.raises(InvalidArgument) as refused:
        config.checked_value("workers")

    assert refused.value.message == (
        "workers: 'many' (env STIGMER_WORKERS) is not allowed: expected a whole number, 1 or more"
    )
