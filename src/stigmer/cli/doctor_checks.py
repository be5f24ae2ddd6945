"""The checks `stigmer doctor` runs: the settings, the server, the model endpoint.

Each check ends ok, warn or fail with one sentence that names what it looked
at (the setting and where its value came from, the address, the URL), so the
line alone says what to fix. A fail is something that breaks runs or the
server start; a warn is worth knowing but breaks nothing now: no server
running (not every doctor run needs one) unless its address was given for
this command (`--server`, `STIGMER_SERVER`), a server of another version, a
model the endpoint does not list.

Every probe has a short deadline: doctor is what people run when things are
down, and must answer in a few seconds then too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from stigmer import config
from stigmer.client import Client
from stigmer.errors import StigmerError
from stigmer.version import __version__

if TYPE_CHECKING:
    from stigmer.api.v1 import server_pb2
    from stigmer.runtime.model_resolution import ModelChoice

SERVER_TIMEOUT_SECONDS = 1.5
MODEL_PROBE_SECONDS = 2.0
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
ANTHROPIC_DEFAULT_URL = "https://api.anthropic.com"
ANTHROPIC_API_VERSION = "2023-06-01"
# An address given for this command (a flag, or the shell's STIGMER_SERVER)
# must answer; the config file's, server.json's or the default may not.
_EXPLICIT_SOURCES = ("flag", "env ")

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str  # config, server or model
    status: Status
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


def check_settings() -> list[Check]:
    """One fail per setting whose value breaks its rule, else one ok."""
    try:
        resolved = config.all_settings()
    except StigmerError as error:  # the config file itself is unreadable
        return [Check("config", "fail", error.message)]
    failures = [
        Check("config", "fail", f"{setting.setting.key}: {setting.problem}")
        for setting in resolved
        if setting.problem is not None
    ]
    if failures:
        return failures
    where = config.config_path()
    file = f"config file {where}" if where.exists() else "no config file"
    return [Check("config", "ok", f"{len(resolved)} settings valid ({file})")]


def check_server(flag: str | None) -> tuple[Check, server_pb2.ServerInfo | None]:
    """Whether a server answers where clients would connect, and what it says it is."""
    try:
        resolved = config.resolve("server", flag)
    except StigmerError as error:
        return Check("server", "fail", error.message), None
    address, source = resolved.value, resolved.source
    is_explicit = source.startswith(_EXPLICIT_SOURCES)
    try:
        with Client(address, timeout=SERVER_TIMEOUT_SECONDS) as client:
            info = client.server_info()
    except StigmerError:
        if is_explicit:
            return Check(
                "server", "fail", f"no Stigmer server answers on {address} ({source})"
            ), None
        return Check(
            "server",
            "warn",
            f"no Stigmer server answers on {address} ({source}); "
            "commands and runs need one: stigmer server start",
        ), None
    described = (
        f"{address} answers: stigmer {info.version}, pid {info.pid}, "
        f"store {info.store.url}, engine {info.engine}, "
        f"model {info.model.provider} {info.model.model or '(none named)'}"
    )
    if info.version != __version__:
        return Check("server", "warn", f"{described}; this CLI is {__version__}"), info
    return Check("server", "ok", described), info


def check_server_model(choice: ModelChoice, info: server_pb2.ServerInfo) -> Check | None:
    """A warn when the running server's default model is not the one a server
    started from this shell would use (it was started with other settings)."""
    if (info.model.provider, info.model.model) == (choice.provider, choice.settings.model):
        return None
    return Check(
        "model",
        "warn",
        f"the running server uses {info.model.provider} {info.model.model or '(none named)'}; "
        f"a server started from this shell would use {choice.provider} "
        f"{choice.settings.model or '(none named)'}: restart it to apply the settings",
    )


def check_model(choice: ModelChoice) -> Check:
    """The model endpoint runs would use, asked for real (the local model: its
    file and llama.cpp, not loaded)."""
    if not choice.is_resolved:
        return Check("model", "fail", "no model provider is configured and none was found")
    if choice.local is not None:
        return _check_local_model(choice)
    settings = choice.settings
    if settings.provider == "anthropic":
        url = (settings.base_url or ANTHROPIC_DEFAULT_URL).rstrip("/") + "/v1/models"
        headers = {"anthropic-version": ANTHROPIC_API_VERSION}
        if settings.api_key:
            headers["x-api-key"] = settings.api_key
        key_hint = "llm.api_key or ANTHROPIC_API_KEY"
    else:
        url = (settings.base_url or OPENAI_DEFAULT_URL).rstrip("/") + "/models"
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        key_hint = "llm.api_key or OPENAI_API_KEY"
    return _probe_models(url, headers, settings.model, key_hint)


def _probe_models(url: str, headers: Mapping[str, str], model: str, key_hint: str) -> Check:
    import httpx2  # only doctor needs an HTTP client of its own

    try:
        response = httpx2.get(url, headers=dict(headers), timeout=MODEL_PROBE_SECONDS)
    except httpx2.TimeoutException:
        return Check("model", "fail", f"{url} did not answer within {MODEL_PROBE_SECONDS:g}s")
    except httpx2.HTTPError as error:
        return Check("model", "fail", f"{url} cannot be reached: {error or type(error).__name__}")
    if response.status_code in (401, 403):
        said = "refuses the API key" if headers else "needs an API key"
        return Check("model", "fail", f"{url} {said} (HTTP {response.status_code}): set {key_hint}")
    if not response.is_success:
        return Check("model", "fail", f"{url} answers HTTP {response.status_code}")
    listed = _model_ids(response)
    if listed is None:
        return Check("model", "warn", f"{url} answers, but not with a list of models")
    if model and listed and model not in listed:
        shown = ", ".join(listed[:5]) + (", ..." if len(listed) > 5 else "")
        return Check(
            "model",
            "warn",
            f"{url} answers, but does not list model {model!r} (it lists {shown})",
        )
    named = f", {model!r} among them" if model and listed else ""
    return Check("model", "ok", f"{url} answers ({len(listed)} models{named})")


def _model_ids(response: Any) -> list[str] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    entries = body.get("data") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        return None
    return [str(entry["id"]) for entry in entries if isinstance(entry, dict) and "id" in entry]


def _check_local_model(choice: ModelChoice) -> Check:
    from stigmer.runtime.local_model import is_local_runtime_installed
    from stigmer.runtime.model_files import INSTALL_HINT, default_model_path, has_model_parts

    assert choice.local is not None
    if not is_local_runtime_installed():
        return Check("model", "fail", f"llama.cpp is not installed ({INSTALL_HINT})")
    path = choice.local.resolved_model_path
    if path.is_file():
        return Check("model", "ok", f"{path} is installed and llama.cpp importable")
    if path == default_model_path() and has_model_parts():
        return Check(
            "model",
            "warn",
            f"{path} is not assembled yet: `stigmer model install` or the first run does it",
        )
    return Check("model", "fail", f"{path} does not exist")
