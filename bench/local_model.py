"""Local model benchmark: what the in-process llama.cpp model costs, beside the scripted model.

    .venv/bin/python bench/local_model.py           # full run (~2-3 min on 2 cores)
    .venv/bin/python bench/local_model.py --quick   # smoke run (~1 min)

What is measured, all in one process and one run:

1. Load: the shared `LocalModelHost` started and stopped several times with
   the default model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, already assembled;
   its file check is a `stat` against the stamp). Median and best wall time of
   `ensure_started`, i.e. what the first execution of a server waits.
2. Memory: this process's resident set (VmRSS) before the first load, with the
   model loaded, and after requests have run (the KV cache is touched), and the
   peak (VmHWM). The deltas are the model's cost; the baseline is Python with
   Stigmer and the SDKs imported.
3. Tokens/s, through the OpenAI SDK against the running server, temperature 0,
   with the default thread count (all cores but one) and with all cores:
   - decoding: a streamed answer capped at 128 tokens (no tools), counted from
     the first token to the last (the usage chunk gives the count), and the
     prompt processing rate llama.cpp reports for the quickstart's first prompt
     (~170 tokens with its tool schema, prompt cache off);
   - the quickstart's first turn with its tool offered: the tool call is
     grammar-constrained, which costs more per token than free text.
4. Whole executions through a Stigmer server (in-process `ServerThread`, one
   worker, SQLite in a temporary folder), one at a time, each from `run()` to
   COMPLETED: the quickstart agent (examples/quickstart.yaml, one MCP stdio
   tool, a tool call then an answer) and a plain agent (no tools), first with
   the scripted model (instant replies of the same shape) and then with the
   local model. The local model's first execution (which loads it) is not
   timed. The ratio local / scripted is what the model itself costs per run;
   the scripted rate is the floor (server, store, MCP tool process start).

Why ratios and medians: these machines are shared and noisy (other test
suites may run beside this), so the system load is printed at the start and
the end. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import harness
import openai
from harness import format_ratio, format_seconds, median, percentile
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageParam

from stigmer.client import Client
from stigmer.engine.options import EngineOptions
from stigmer.resources.execution_events import COMPLETED
from stigmer.runtime.contract import ModelSettings
from stigmer.runtime.local_model import LocalModelConfig, default_threads, shared_host
from stigmer.runtime.model_files import DEFAULT_MODEL, install_model
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerThread

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = (ROOT / "examples" / "quickstart.yaml").read_text()
QUESTION = "How many days are there between 2024-03-01 and 2025-01-15?"
PLAIN_AGENT = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: Greeter
spec:
  instructions: Greet the user in one short sentence.
"""
DECODE_PROMPT = "Write a Python function that returns the n-th Fibonacci number, with a docstring."
DECODE_TOKENS = 128
RUN_TIMEOUT_SECONDS = 120.0
DAYS_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "days_between",
        "description": "Return the number of days from the start date to the end date.",
        "parameters": {
            "type": "object",
            "properties": {"start": {"type": "string"}, "end": {"type": "string"}},
            "required": ["start", "end"],
        },
    },
}


TOOL_TURN: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You answer questions about dates with the tool."},
    {"role": "user", "content": QUESTION},
]


@dataclass(frozen=True)
class Counts:
    loads: int
    decodes: int
    scripted_runs: int
    local_runs: int


FULL = Counts(loads=5, decodes=3, scripted_runs=20, local_runs=5)
QUICK = Counts(loads=2, decodes=1, scripted_runs=5, local_runs=2)


def memory_kib() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in KiB (Linux)."""
    found: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(rest.split()[0])
    return found


def mib(kib: float) -> str:
    return f"{kib / 1024:,.0f} MiB"


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


# -- 1-2: load and memory ---------------------------------------------------------


def measure_loads(config: LocalModelConfig, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.monotonic()
        asyncio.run(shared_host.ensure_started(config))  # threads: the default
        times.append(time.monotonic() - started)
        asyncio.run(shared_host.stop())
    return times


# -- 3: tokens per second -----------------------------------------------------------


@dataclass(frozen=True)
class Decode:
    seconds: float  # first token to last
    tokens: int
    first_token_seconds: float
    prompt_per_second: float  # llama.cpp's own figure


def measure_decode(client: openai.OpenAI) -> Decode:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": DECODE_PROMPT}]
    started = time.monotonic()
    first = last = 0.0
    tokens = 0
    stream = client.chat.completions.create(
        model=DEFAULT_MODEL.alias,
        messages=messages,
        max_tokens=DECODE_TOKENS,
        stream=True,
        stream_options={"include_usage": True},
    )
    with stream:
        for chunk in stream:
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
            if chunk.choices and chunk.choices[0].delta.content:
                last = time.monotonic()
                first = first or last
    # The quickstart's prompt (its tool schema makes it ~170 tokens), with llama.cpp's
    # prompt cache off so every token is processed, for the prompt rate it reports.
    reply = client.chat.completions.create(
        model=DEFAULT_MODEL.alias,
        messages=TOOL_TURN,
        tools=[DAYS_TOOL],
        max_tokens=1,
        extra_body={"cache_prompt": False},
    )
    timings = (reply.model_extra or {}).get("timings", {})
    return Decode(
        seconds=last - first,
        tokens=tokens,
        first_token_seconds=first - started,
        prompt_per_second=float(timings.get("prompt_per_second", float("nan"))),
    )


def measure_tool_turn(client: openai.OpenAI) -> tuple[float, int, str]:
    """The quickstart's first turn: seconds, output tokens, the call it produced."""
    started = time.monotonic()
    reply = client.chat.completions.create(
        model=DEFAULT_MODEL.alias, messages=TOOL_TURN, tools=[DAYS_TOOL]
    )
    seconds = time.monotonic() - started
    calls = reply.choices[0].message.tool_calls or []
    shown = ", ".join(
        f"{call.function.name}({call.function.arguments})"
        for call in calls
        if call.type == "function"
    )
    tokens = reply.usage.completion_tokens if reply.usage else 0
    return seconds, tokens, shown or "no tool call"


@dataclass(frozen=True)
class TokenRates:
    decodes: list[Decode]
    tool_turns: list[tuple[float, int, str]]

    def rows(self, threads: int) -> list[list[str]]:
        decode_rates = [d.tokens / d.seconds for d in self.decodes if d.seconds > 0]
        tool_rates = [tokens / seconds for seconds, tokens, _ in self.tool_turns if seconds > 0]
        first_token = median([d.first_token_seconds for d in self.decodes])
        turn = median([seconds for seconds, _, _ in self.tool_turns])
        return [
            [
                str(threads),
                "decode, free text",
                f"{median(decode_rates):.1f}",
                f"{self.decodes[0].tokens} tokens, first after {format_seconds(first_token)}",
            ],
            [
                str(threads),
                "prompt processing (llama.cpp)",
                f"{median([d.prompt_per_second for d in self.decodes]):.1f}",
                "",
            ],
            [
                str(threads),
                "tool-call turn (grammar)",
                f"{median(tool_rates):.1f}",
                f"{format_seconds(turn)} per turn: {self.tool_turns[0][2]}",
            ],
        ]


def measure_tokens(count: int) -> TokenRates:
    """Decode and tool-turn rates against the running shared host."""
    client = openai.OpenAI(
        base_url=shared_host.base_url, api_key=shared_host.api_key, max_retries=0
    )
    with client:
        decodes = [measure_decode(client) for _ in range(count)]
        tool_turns = [measure_tool_turn(client) for _ in range(count)]
    return TokenRates(decodes, tool_turns)


# -- 4: whole executions --------------------------------------------------------------


def quickstart_turns(request: dict[str, Any]) -> Reply:
    """The scripted model's half of the quickstart: a tool call, then an answer."""
    last = request["messages"][-1]
    if last["role"] == "tool":
        return Reply(content=f"There are {last['content']} days between those dates.")
    return Reply(
        tool_calls=(ToolCallStep("days_between", {"start": "2024-03-01", "end": "2025-01-15"}),)
    )


def time_runs(client: Client, agent: str, message: str, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.monotonic()
        execution = client.run(agent, message)
        final = client.wait(execution.metadata.id)
        latencies.append(time.monotonic() - started)
        if final.status.phase != COMPLETED:
            raise RuntimeError(
                f"{agent}: execution ended {final.status.phase}: {final.status.error}"
            )
    return latencies


def run_executions(
    store_url: str, model: ModelSettings, counts: int, *, warm_up: bool
) -> dict[str, list[float]]:
    engine = EngineOptions(workers=1, poll_seconds=0.2, model=model)
    with ServerThread(store_url, engine=engine) as server, Client(server.address) as client:
        client.apply(QUICKSTART)
        client.apply(PLAIN_AGENT)
        if warm_up:  # the local model's first execution loads it: not what a run costs
            time_runs(client, "greeter", "hi", 1)
        return {
            "quickstart agent (1 MCP tool)": time_runs(client, "date-helper", QUESTION, counts),
            "plain agent": time_runs(client, "greeter", "hi", counts),
        }


def summary(latencies: list[float]) -> tuple[float, float, float]:
    ordered = sorted(latencies)
    return median(ordered), percentile(ordered, 0.99), len(ordered) / sum(ordered)


# -- main -----------------------------------------------------------------------------


def model_costs(model_path: Path, counts: Counts) -> None:
    """Sections 1-3: the model alone, through the shared host."""
    config = LocalModelConfig(model_path=model_path)
    before = memory_kib()
    loads = measure_loads(config, counts.loads)
    loaded = used = before
    rates: dict[int, TokenRates] = {}
    for threads in sorted({default_threads(), os.cpu_count() or 1}):
        asyncio.run(shared_host.ensure_started(replace(config, threads=threads)))
        if not rates:
            loaded = memory_kib()
        rates[threads] = measure_tokens(counts.decodes)
        used = memory_kib()
        asyncio.run(shared_host.stop())

    print(f"1. Load ({counts.loads} starts of the shared host, each stopped again)")
    print(
        harness.table(
            ["", "median", "best"],
            [["load time", format_seconds(median(loads)), format_seconds(min(loads))]],
        )
    )
    print("\n2. Memory of this process (RSS)")
    print(
        harness.table(
            ["", "RSS", "delta"],
            [
                ["before the model", mib(before["VmRSS"]), "-"],
                ["model loaded", mib(loaded["VmRSS"]), mib(loaded["VmRSS"] - before["VmRSS"])],
                ["after requests", mib(used["VmRSS"]), mib(used["VmRSS"] - before["VmRSS"])],
                ["peak (VmHWM)", mib(used["VmHWM"]), mib(used["VmHWM"] - before["VmRSS"])],
            ],
        )
    )
    print(
        f"\n3. Tokens/s (median of {counts.decodes}, temperature 0; "
        f"{default_threads()} thread(s) is the default: all cores but one)"
    )
    rows = [row for threads, measured in rates.items() for row in measured.rows(threads)]
    print(harness.table(["threads", "", "tokens/s", "detail"], rows))


def run_costs(workspace: Path, counts: Counts) -> None:
    """Section 4: whole executions, the scripted model then the local one."""
    with ScriptedModel() as scripted:
        scripted.reply_with(
            lambda request: (
                quickstart_turns(request)
                if request.get("tools")
                else Reply(content="Hello! Nice to meet you.")
            )
        )
        scripted_settings = ModelSettings("openai", "scripted", base_url=scripted.base_url)
        scripted_runs = run_executions(
            str(workspace / "scripted.db"), scripted_settings, counts.scripted_runs, warm_up=False
        )
    local_settings = ModelSettings("local", DEFAULT_MODEL.alias)
    local_runs = run_executions(
        str(workspace / "local.db"), local_settings, counts.local_runs, warm_up=True
    )
    print(
        f"\n4. Whole executions, one at a time, run() to COMPLETED "
        f"({counts.scripted_runs} scripted, {counts.local_runs} local, per agent)"
    )
    rows = []
    for agent, scripted_latencies in scripted_runs.items():
        s_p50, s_p99, s_rate = summary(scripted_latencies)
        l_p50, l_p99, l_rate = summary(local_runs[agent])
        rows.append([f"{agent}, scripted", format_seconds(s_p50), format_seconds(s_p99),
                     f"{s_rate:.2f}", ""])  # fmt: skip
        rows.append([f"{agent}, local", format_seconds(l_p50), format_seconds(l_p99),
                     f"{l_rate:.2f}", format_ratio(l_p50 / s_p50)])  # fmt: skip
    print(harness.table(["", "p50", "p99", "executions/s", "local/scripted p50"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    counts = QUICK if parser.parse_args().quick else FULL
    model_path = install_model()  # before STIGMER_HOME moves: the real models folder
    with tempfile.TemporaryDirectory(prefix="stigmer-bench-local-") as folder:
        workspace = Path(folder)
        # A home of our own (no user config); the quickstart's tool found as `make run` finds it.
        os.environ["STIGMER_HOME"] = str(workspace / "home")
        os.environ["STIGMER_LLM_MODEL_PATH"] = str(model_path)
        os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        os.chdir(ROOT)
        print(
            f"Local model benchmark: {DEFAULT_MODEL.title} ({DEFAULT_MODEL.size / 1e6:,.0f} MB), "
            f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        )
        print(f"load average at start: {load_average()}\n")
        model_costs(model_path, counts)
        run_costs(workspace, counts)
        print(f"\nload average at end: {load_average()}")


if __name__ == "__main__":
    main()
