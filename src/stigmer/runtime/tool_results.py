"""How much of a tool's result an execution keeps.

A tool can answer with megabytes (a file read, a listing): kept whole, one
result would make the execution larger than a default gRPC client reads
(4 MiB), and larger than any model's context. A result is therefore cut to
`max_bytes` of UTF-8 (DEFAULT_MAX_BYTES, 64 KiB: some 16k tokens, a good
share of a model's context and a small fraction of a response) and the cut
is marked with how much was left out, so the model and a reader both know
the result is partial. The cut keeps the result within `max_bytes`, marker
included, so cutting a cut result changes nothing.
"""

from __future__ import annotations

DEFAULT_MAX_BYTES = 64 * 1024
# Room kept for the marker; its longest form fits with plenty to spare.
MARKER_BYTES = 96


def cap_tool_result(text: str, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The text, or its first bytes and a marker saying how many were cut."""
    if len(text) <= max_bytes // 4:  # no UTF-8 character is longer than 4 bytes
        return text
    encoded = text.encode("utf-8", errors="surrogatepass")
    if len(encoded) <= max_bytes:
        return text
    kept = encoded[: max(0, max_bytes - MARKER_BYTES)].decode("utf-8", errors="ignore")
    cut = len(encoded) - len(kept.encode("utf-8", errors="surrogatepass"))
    return f"{kept}\n[result cut: {cut:,} of {len(encoded):,} bytes left out]"
