"""Settings: `~/.stigmer/config.yaml`, overridden by `STIGMER_*` environment
variables, overridden by command-line flags.

`STIGMER_HOME` moves the whole data folder (config, store, pid and log files).
Keys are dotted (`llm.provider`); each has one environment variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stigmer.errors import InvalidArgument

DEFAULT_PORT = 7234


@dataclass(frozen=True)
class Setting:
    key: str
    env: str
    default: str
    description: str
    is_secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("server", "STIGMER_SERVER", f"127.0.0.1:{DEFAULT_PORT}", "address clients connect to"),
    Setting("host", "STIGMER_HOST", "127.0.0.1", "address the server listens on"),
    Setting("port", "STIGMER_PORT", str(DEFAULT_PORT), "port the server listens on"),
    Setting("store", "STIGMER_STORE", "", "store URL or SQLite path (default: <home>/stigmer.db)"),
    Setting("engine", "STIGMER_ENGINE", "embedded", "execution engine: embedded or temporal"),
    Setting("workers", "STIGMER_WORKERS", "4", "executions the embedded engine runs at once"),
    Setting(
        "lease_seconds",
        "STIGMER_LEASE_SECONDS",
        "15",
        "how long a running execution survives its worker going silent",
    ),
    Setting(
        "check_interval_seconds",
        "STIGMER_CHECK_INTERVAL",
        "300",
        "seconds between the server's own consistency checks (0: off)",
    ),
    Setting(
        "temporal.address",
        "STIGMER_TEMPORAL_ADDRESS",
        "",
        "Temporal frontend host:port (empty: the server starts a managed dev server)",
    ),
    Setting("temporal.namespace", "STIGMER_TEMPORAL_NAMESPACE", "default", "Temporal namespace"),
    Setting(
        "temporal.task_queue",
        "STIGMER_TEMPORAL_TASK_QUEUE",
        "stigmer-executions",
        "Temporal task queue of the execution workflows and their activities",
    ),
    Setting(
        "temporal.heartbeat_seconds",
        "STIGMER_TEMPORAL_HEARTBEAT_SECONDS",
        "30",
        "how long a worker may go silent before its activity counts as lost",
    ),
    Setting(
        "llm.provider",
        "STIGMER_LLM_PROVIDER",
        "",
        "openai, anthropic, ollama or local (empty: chosen, see `stigmer doctor`)",
    ),
    Setting("llm.model", "STIGMER_LLM_MODEL", "", "model name"),
    Setting("llm.base_url", "STIGMER_LLM_BASE_URL", "", "OpenAI-compatible endpoint"),
    Setting("llm.api_key", "STIGMER_LLM_API_KEY", "", "API key for the provider", is_secret=True),
    Setting(
        "llm.model_path",
        "STIGMER_LLM_MODEL_PATH",
        "",
        "GGUF file the local provider loads (default: <home>/models/, the default model)",
    ),
    Setting(
        "llm.threads", "STIGMER_LLM_THREADS", "0", "local model CPU threads (0: all cores but one)"
    ),
    Setting(
        "llm.context_size",
        "STIGMER_LLM_CONTEXT_SIZE",
        "8192",
        "local model context window in tokens (0: the model's own)",
    ),
)
_BY_KEY = {setting.key: setting for setting in SETTINGS}


def stigmer_home() -> Path:
    return Path(os.environ.get("STIGMER_HOME") or Path.home() / ".stigmer").expanduser()


def config_path() -> Path:
    return stigmer_home() / "config.yaml"


def _setting(key: str) -> Setting:
    try:
        return _BY_KEY[key]
    except KeyError:
        raise InvalidArgument.for_field(
            "key", f"unknown setting {key!r} (known: {', '.join(_BY_KEY)})"
        ) from None


def _read_file() -> dict[str, Any]:
    path = config_path()
    if not path.exists():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise InvalidArgument.for_field("config", f"{path} is not valid YAML: {error}") from None
    if not isinstance(loaded, dict):
        raise InvalidArgument.for_field("config", f"{path} must hold a mapping")
    return loaded


def _lookup(tree: Mapping[str, Any], key: str) -> str | None:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return None if node is None or isinstance(node, Mapping) else str(node)


@dataclass(frozen=True)
class ResolvedSetting:
    setting: Setting
    value: str
    source: str  # "flag", "env STIGMER_X", "config file", "default"


def resolve(key: str, flag: str | int | None = None) -> ResolvedSetting:
    """The value in effect for a key, and where it came from."""
    setting = _setting(key)
    if flag is not None and flag != "":
        return ResolvedSetting(setting, str(flag), "flag")
    if os.environ.get(setting.env):
        return ResolvedSetting(setting, os.environ[setting.env], f"env {setting.env}")
    from_file = _lookup(_read_file(), key)
    if from_file is not None:
        return ResolvedSetting(setting, from_file, f"config file {config_path()}")
    default = setting.default
    if key == "store" and not default:
        default = str(stigmer_home() / "stigmer.db")
    return ResolvedSetting(setting, default, "default")


def value(key: str, flag: str | int | None = None) -> str:
    return resolve(key, flag).value


def set_value(key: str, new_value: str) -> None:
    _setting(key)
    tree = _read_file()
    node = tree
    *parents, last = key.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[last] = new_value
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(tree, sort_keys=True))


def all_settings() -> list[ResolvedSetting]:
    return [resolve(setting.key) for setting in SETTINGS]
