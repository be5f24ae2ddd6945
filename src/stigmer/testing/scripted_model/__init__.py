"""A scripted OpenAI-compatible model: deterministic answers over real HTTP.

Agents talk to their model through the `openai` SDK over HTTP. To test an agent without a real
model, and without mocking the SDK (which we do not own), `ScriptedModel` runs a small
chat-completions server on 127.0.0.1 that answers each request with the next scripted `Reply`:
a text answer, a request to call tools, a slow answer, or an HTTP error. The agent under test
uses the real client against `base_url`, so streaming, tool-call assembly, error mapping and
retries are exercised exactly as in production, and every request the agent sent is kept in
`requests` for the test to assert on.

    with ScriptedModel([Reply(tool_calls=(ToolCallStep("add", {"a": 1, "b": 2}),)),
                        Reply(content="1 + 2 = 3")]) as model:
        client = openai.OpenAI(base_url=model.base_url, api_key="test", max_retries=0)
        ...
        assert model.requests[1]["messages"][-1]["role"] == "tool"

Each chat-completion request consumes one reply, in order. When the script runs out, the
responder given to `reply_with` computes the reply from the request (an echo, an answer built
from the last tool result); without one the `default` reply is used; without that the server
answers HTTP 500 "script exhausted", so a test that makes more model calls than it scripted
fails loudly instead of hanging. Clients that retry consume one reply per attempt: tests
normally pass `max_retries=0`.

The parts: the script (`script.py`: `Reply`, `ToolCallStep` and the queue), the OpenAI wire
shapes of a reply (`wire.py`), and the stdlib HTTP server that answers with them
(`server.py`); `model.py` puts them together as `ScriptedModel`.
"""

from stigmer.testing.scripted_model.model import ScriptedModel
from stigmer.testing.scripted_model.script import Reply, ToolCallStep
from stigmer.testing.scripted_model.wire import MODEL_ID

__all__ = ["MODEL_ID", "Reply", "ScriptedModel", "ToolCallStep"]
