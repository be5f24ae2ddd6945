"""Settings: what a command uses, and where each value comes from.

Each key (dotted: `llm.provider`) is resolved in this order, the first that
has a value wins:

1. the command-line flag (`--port`, `--server`, ...);
2. its `STIGMER_*` environment variable (`STIGMER_PORT`, `STIGMER_SERVER`, ...);
3. the config file, `<home>/config.yaml` (`stigmer config set|unset` edit it);
4. for `server` only: the address in `<home>/server.json`, written by the
   server running from this home, while its pid is alive (server_record.py);
5. the default.

`STIGMER_HOME` (default `~/.stigmer`) moves the whole data folder: config,
store, `server.pid`, `server.json` and logs. `stigmer config list` shows
every key with its value and its source.

Each setting has one rule for its values (a port, a positive whole number,
one of a few names): `stigmer config set` refuses a value that breaks it,
the server refuses to start with one, and `stigmer doctor` lists them all.
"""

from __future__ import annotations

import difflib
import math
import os
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stigmer.atomic_files import write_file_atomically
from stigmer.errors import InvalidArgument
from stigmer.resources.prices import is_price_list
from stigmer.server_record import live_server_record, server_record_path

DEFAULT_PORT = 7234
DEFAULT_CONSOLE_PORT = 7235
PROVIDERS = ("openai", "anthropic", "ollama", "local")
ENGINES = ("embedded", "temporal")
AUTH_MODES = ("none", "token")


@dataclass(frozen=True)
class Rule:
    """Which values a setting takes, and how to say so."""

    is_valid: Callable[[str], bool]
    expected: str  # completes "expected ...", e.g. "embedded or temporal"


def _is_whole_number(text: str, minimum: int, maximum: int | None = None) -> bool:
    text = text.strip()
    if not text.isdigit():
        return False
    return int(text) >= minimum and (maximum is None or int(text) <= maximum)


def _is_number(text: str, *, is_zero_allowed: bool) -> bool:
    try:
        number = float(text)
    except ValueError:
        return False
    return math.isfinite(number) and (number > 0 or (is_zero_allowed and number == 0))


def _is_address(text: str) -> bool:
    """HOST:PORT, [IPv6]:PORT, or a gRPC target with a scheme (unix:, dns:///...)."""
    if text.startswith(("unix:", "unix-abstract:")) or ":///" in text:
        return True
    host, colon, port = text.rpartition(":")
    return bool(colon and host.strip("[]") and _is_whole_number(port, 1, 65535))


def _is_store_url(text: str) -> bool:
    if text.startswith(("postgres://", "postgresql://")):
        try:
            urllib.parse.urlsplit(text).port  # noqa: B018 (raises on a bad port)
        except ValueError:
            return False
        return True
    if text.startswith("sqlite:"):
        return bool(text.removeprefix("sqlite:").removeprefix("//"))
    return "://" not in text


def _is_http_url(text: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _or_empty(rule: Rule, meaning: str) -> Rule:
    return Rule(lambda text: text == "" or rule.is_valid(text), f"{rule.expected}, or {meaning}")


ANY = Rule(lambda _: True, "any text")
NAME = Rule(lambda text: bool(text.strip()), "a non-empty name")
ADDRESS = Rule(_is_address, "HOST:PORT, the port from 1 to 65535")
PORT = Rule(
    lambda text: _is_whole_number(text, 0, 65535), "a port from 0 to 65535 (0: any free port)"
)
CONSOLE_PORT = Rule(
    lambda text: _is_whole_number(text, 0, 65535), "a port from 0 to 65535 (0: no console)"
)
POSITIVE_WHOLE = Rule(lambda text: _is_whole_number(text, 1), "a whole number, 1 or more")
WHOLE = Rule(lambda text: _is_whole_number(text, 0), "a whole number, 0 or more")
SECONDS = Rule(lambda text: _is_number(text, is_zero_allowed=False), "a number of seconds above 0")
SECONDS_OR_OFF = Rule(
    lambda text: _is_number(text, is_zero_allowed=True), "a number of seconds, 0 or more"
)
ENGINE = Rule(lambda text: text in ENGINES, " or ".join(ENGINES))
AUTH = Rule(lambda text: text in AUTH_MODES, " or ".join(AUTH_MODES))
PROVIDER = _or_empty(
    Rule(
        lambda text: text.lower() in PROVIDERS, ", ".join(PROVIDERS[:-1]) + f" or {PROVIDERS[-1]}"
    ),
    "empty (chosen from what this machine has)",
)
STORE = _or_empty(
    Rule(_is_store_url, "a SQLite path, sqlite:///PATH or postgres://USER@HOST:PORT/DATABASE"),
    "empty (<home>/stigmer.db)",
)
PERCENT = Rule(lambda text: _is_whole_number(text, 1, 100), "a whole percentage from 1 to 100")
HTTP_URL = _or_empty(Rule(_is_http_url, "an http:// or https:// URL"), "empty")
DOLLARS = Rule(
    lambda text: _is_number(text, is_zero_allowed=True) and float(text) <= 1_000_000,
    "a number of dollars from 0 to 1000000 (0: no limit)",
)
TEMPERATURE = _or_empty(
    Rule(
        lambda text: _is_number(text, is_zero_allowed=True) and float(text) <= 2,
        "a number from 0 to 2",
    ),
    "empty (the model's default)",
)
SUMMARIZATION = _or_empty(Rule(lambda text: text in ("on", "off"), "on or off"), "empty (on)")
PRICES = _or_empty(
    Rule(is_price_list, "MODEL=IN/OUT[/CACHED],... in dollars per million tokens"),
    "empty (the shipped prices)",
)


@dataclass(frozen=True)
class Setting:
    key: str
    env: str
    default: str
    description: str
    is_secret: bool = False
    rule: Rule = ANY


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "server",
        "STIGMER_SERVER",
        f"127.0.0.1:{DEFAULT_PORT}",
        "address clients connect to (unset: the server of this home, see server.json)",
        rule=ADDRESS,
    ),
    Setting("host", "STIGMER_HOST", "127.0.0.1", "address the server listens on", rule=NAME),
    Setting("port", "STIGMER_PORT", str(DEFAULT_PORT), "port the server listens on", rule=PORT),
    Setting(
        "console_port",
        "STIGMER_CONSOLE_PORT",
        str(DEFAULT_CONSOLE_PORT),
        "port of the web console `stigmer server` starts on 127.0.0.1 (0: none)",
        rule=CONSOLE_PORT,
    ),
    Setting(
        "store",
        "STIGMER_STORE",
        "",
        "store URL or SQLite path (default: <home>/stigmer.db)",
        rule=STORE,
    ),
    Setting(
        "engine",
        "STIGMER_ENGINE",
        "embedded",
        "execution engine: embedded or temporal",
        rule=ENGINE,
    ),
    Setting(
        "workers",
        "STIGMER_WORKERS",
        "4",
        "executions the embedded engine runs at once",
        rule=POSITIVE_WHOLE,
    ),
    Setting(
        "lease_seconds",
        "STIGMER_LEASE_SECONDS",
        "15",
        "how long a running execution survives its worker going silent",
        rule=SECONDS,
    ),
    Setting(
        "tool_result_max_bytes",
        "STIGMER_TOOL_RESULT_MAX_BYTES",
        "65536",
        "a tool result longer than this is cut (marked) when an execution records it",
        rule=POSITIVE_WHOLE,
    ),
    Setting(
        "check_interval_seconds",
        "STIGMER_CHECK_INTERVAL",
        "300",
        "seconds between the server's own consistency checks (0: off)",
        rule=SECONDS_OR_OFF,
    ),
    # -- authentication and TLS (server/authentication.py, client/connection.py)
    Setting(
        "auth",
        "STIGMER_AUTH",
        "none",
        "server: none, or token (every call needs a token; required beyond loopback)",
        rule=AUTH,
    ),
    Setting(
        "token",
        "STIGMER_TOKEN",
        "",
        "token clients send (unset: <home>/admin.token, when there is one)",
        is_secret=True,
    ),
    Setting("tls.ca", "STIGMER_TLS_CA", "", "clients: CA file that verifies the server (TLS)"),
    Setting("tls.cert", "STIGMER_TLS_CERT", "", "server: certificate file (turns TLS on)"),
    Setting("tls.key", "STIGMER_TLS_KEY", "", "server: private key file of tls.cert"),
    Setting(
        "tls.client_ca",
        "STIGMER_TLS_CLIENT_CA",
        "",
        "server: CA file; set, every client must present a certificate it signed",
    ),
    Setting("tls.client_cert", "STIGMER_TLS_CLIENT_CERT", "", "clients: certificate (mutual TLS)"),
    Setting("tls.client_key", "STIGMER_TLS_CLIENT_KEY", "", "clients: key of tls.client_cert"),
    Setting(
        "temporal.address",
        "STIGMER_TEMPORAL_ADDRESS",
        "",
        "Temporal frontend host:port (empty: the server starts a managed dev server)",
        rule=_or_empty(ADDRESS, "empty (a managed dev server)"),
    ),
    Setting(
        "temporal.namespace",
        "STIGMER_TEMPORAL_NAMESPACE",
        "default",
        "Temporal namespace",
        rule=NAME,
    ),
    Setting(
        "temporal.task_queue",
        "STIGMER_TEMPORAL_TASK_QUEUE",
        "stigmer-executions",
        "Temporal task queue of the execution workflows and their activities",
        rule=NAME,
    ),
    Setting(
        "temporal.heartbeat_seconds",
        "STIGMER_TEMPORAL_HEARTBEAT_SECONDS",
        "30",
        "how long a worker may go silent before its activity counts as lost",
        rule=SECONDS,
    ),
    # -- the server's run profile: the first layer of every execution's run
    # settings (resources/run_configs.py); 0 or empty sets nothing
    Setting(
        "run.max_cost_usd",
        "STIGMER_RUN_MAX_COST_USD",
        "0",
        "server: an execution's model calls may cost at most this many dollars (0: no limit)",
        rule=DOLLARS,
    ),
    Setting(
        "run.max_tool_rounds",
        "STIGMER_RUN_MAX_TOOL_ROUNDS",
        "0",
        "server: model turns that ask for tools an execution may take (0: no limit)",
        rule=WHOLE,
    ),
    Setting(
        "run.max_tool_result_chars",
        "STIGMER_RUN_MAX_TOOL_RESULT_CHARS",
        "0",
        "server: a longer tool result is cut to this many characters (0: no limit)",
        rule=WHOLE,
    ),
    Setting(
        "run.temperature",
        "STIGMER_RUN_TEMPERATURE",
        "",
        "server: sampling temperature of model calls (empty: the model's default)",
        rule=TEMPERATURE,
    ),
    Setting(
        "run.max_tokens",
        "STIGMER_RUN_MAX_TOKENS",
        "0",
        "server: at most this many tokens per model answer (0: the provider's default)",
        rule=WHOLE,
    ),
    Setting(
        "run.summarization",
        "STIGMER_RUN_SUMMARIZATION",
        "",
        "server: summarize a conversation that outgrows the model's window: on or off",
        rule=SUMMARIZATION,
    ),
    Setting(
        "prices",
        "STIGMER_PRICES",
        "",
        "server: model prices over the shipped ones, MODEL=IN/OUT[/CACHED] $ per 1M tokens",
        rule=PRICES,
    ),
    Setting(
        "llm.provider",
        "STIGMER_LLM_PROVIDER",
        "",
        "openai, anthropic, ollama or local (empty: chosen, see `stigmer doctor`)",
        rule=PROVIDER,
    ),
    Setting("llm.model", "STIGMER_LLM_MODEL", "", "model name"),
    Setting(
        "llm.base_url", "STIGMER_LLM_BASE_URL", "", "OpenAI-compatible endpoint", rule=HTTP_URL
    ),
    Setting("llm.api_key", "STIGMER_LLM_API_KEY", "", "API key for the provider", is_secret=True),
    Setting(
        "llm.model_path",
        "STIGMER_LLM_MODEL_PATH",
        "",
        "GGUF file the local provider loads (default: <home>/models/, the default model)",
    ),
    Setting(
        "llm.threads",
        "STIGMER_LLM_THREADS",
        "0",
        "local model CPU threads (0: all cores but one)",
        rule=_or_empty(WHOLE, "empty (automatic)"),
    ),
    Setting(
        "llm.context_size",
        "STIGMER_LLM_CONTEXT_SIZE",
        "8192",
        "local model context window in tokens (0: the model's own)",
        rule=_or_empty(WHOLE, "empty (automatic)"),
    ),
    # -- context that never overflows (runtime/context_window.py)
    Setting(
        "llm.context_window",
        "STIGMER_LLM_CONTEXT_WINDOW",
        "0",
        "the model's context window in tokens (0: what the provider says, else known models)",
        rule=_or_empty(WHOLE, "empty (from the provider)"),
    ),
    Setting(
        "llm.context_trigger",
        "STIGMER_LLM_CONTEXT_TRIGGER",
        "85",
        "percent of the window past which older turns are summarized before a model call",
        rule=PERCENT,
    ),
    Setting(
        "llm.context_target",
        "STIGMER_LLM_CONTEXT_TARGET",
        "60",
        "percent of the window a summarized conversation is brought down to",
        rule=PERCENT,
    ),
    Setting(
        "llm.summary_model",
        "STIGMER_LLM_SUMMARY_MODEL",
        "",
        "model that writes those summaries (empty: the execution's own model)",
    ),
)
_BY_KEY = {setting.key: setting for setting in SETTINGS}


def stigmer_home() -> Path:
    return Path(os.environ.get("STIGMER_HOME") or Path.home() / ".stigmer").expanduser()


def config_path() -> Path:
    return stigmer_home() / "config.yaml"


def close_keys(key: str) -> list[str]:
    """Known keys that look like `key`: a typo, or a key without its section."""
    suffixed = [known for known in _BY_KEY if known.endswith(f".{key}")]
    similar = difflib.get_close_matches(key, list(_BY_KEY), n=3, cutoff=0.8)
    return list(dict.fromkeys([*suffixed, *similar]))


def setting_of(key: str) -> Setting:
    """The setting named `key`.

    Raises:
        InvalidArgument: no setting has that name (the message names close ones).
    """
    try:
        return _BY_KEY[key]
    except KeyError:
        close = close_keys(key)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise InvalidArgument.for_field(
            "key", f"unknown setting {key!r} ({hint}`stigmer config list` shows them all)"
        ) from None


def _read_file() -> dict[str, Any]:
    path = config_path()
    if not path.exists():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise InvalidArgument.for_field(
            "config", f"{path} is not valid YAML{where}: {problem}"
        ) from None
    if not isinstance(loaded, dict):
        raise InvalidArgument.for_field("config", f"{path} must hold a mapping")
    return loaded


def _write_file(tree: Mapping[str, Any]) -> None:
    write_file_atomically(config_path(), yaml.safe_dump(dict(tree), sort_keys=True), mode=0o600)


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
    # "flag", "env STIGMER_X", "config file PATH", "server.json PATH" or "default"
    source: str

    @property
    def problem(self) -> str | None:
        """What is wrong with the value, or None when its rule allows it."""
        rule = self.setting.rule
        if rule.is_valid(self.value):
            return None
        return f"{self.value!r} ({self.source}) is not allowed: expected {rule.expected}"


def resolve(key: str, flag: str | int | None = None) -> ResolvedSetting:
    """The value in effect for a key, and where it came from (see the module docstring)."""
    setting = setting_of(key)
    if flag is not None and flag != "":
        return ResolvedSetting(setting, str(flag), "flag")
    if os.environ.get(setting.env):
        return ResolvedSetting(setting, os.environ[setting.env], f"env {setting.env}")
    from_file = _lookup(_read_file(), key)
    if from_file is not None:
        return ResolvedSetting(setting, from_file, f"config file {config_path()}")
    if key == "server":
        record = live_server_record(stigmer_home())
        if record is not None:
            source = f"server.json {server_record_path(stigmer_home())}"
            return ResolvedSetting(setting, record.address, source)
    default = setting.default
    if key == "store" and not default:
        default = str(stigmer_home() / "stigmer.db")
    return ResolvedSetting(setting, default, "default")


def value(key: str, flag: str | int | None = None) -> str:
    return resolve(key, flag).value


def checked_value(key: str, flag: str | int | None = None) -> str:
    """The value in effect for a key, once its rule allows it.

    Raises:
        InvalidArgument: the value breaks the setting's rule (the message
            says where it came from and what is allowed).
    """
    resolved = resolve(key, flag)
    problem = resolved.problem
    if problem is not None:
        raise InvalidArgument.for_field(key, problem)
    return resolved.value


def server_address(flag: str | None = None) -> str:
    """The address a client connects to: `flag` > STIGMER_SERVER > the config
    file's `server` > the live server of this home (server.json) > the default."""
    return resolve("server", flag).value


def set_value(key: str, new_value: str) -> None:
    """Writes a setting to the config file.

    Raises:
        InvalidArgument: the key is unknown, or the value breaks its rule.
    """
    setting = setting_of(key)
    if not setting.rule.is_valid(new_value):
        raise InvalidArgument.for_field(
            key, f"{new_value!r} is not allowed: expected {setting.rule.expected}"
        )
    tree = _read_file()
    node = tree
    *parents, last = key.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[last] = new_value
    _write_file(tree)


def unset_value(key: str) -> bool:
    """Removes a setting from the config file (and sections it leaves empty);
    whether it was there.

    Raises:
        InvalidArgument: the key is unknown.
    """
    setting_of(key)
    tree = _read_file()
    path: list[dict[str, Any]] = [tree]
    *parents, last = key.split(".")
    for part in parents:
        child = path[-1].get(part)
        if not isinstance(child, dict):
            return False
        path.append(child)
    if last not in path[-1]:
        return False
    del path[-1][last]
    for depth in range(len(parents), 0, -1):  # drop the sections left empty
        if not path[depth]:
            del path[depth - 1][parents[depth - 1]]
    _write_file(tree)
    return True


def all_settings() -> list[ResolvedSetting]:
    return [resolve(setting.key) for setting in SETTINGS]
