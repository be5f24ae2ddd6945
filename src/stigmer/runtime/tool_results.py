"""How much of a tool's result an execution keeps.

A tool can answer with megabytes (a file read, a listing): kept whole, one
result would make the execution larger than a default gRPC client reads
(4 MiB), and larger than any model's context. A result is therefore cut to
`max_bytes` of UTF-8 (DEFAULT_MAX_BYTES, 64 KiB: some 16k tokens, a good
share of a model's context and a small fraction of a response) and the cut
is marked with how much was left out, so the model and a reader both know
the result is partial. The cut keeps the result within `max_bytes`, marker
included, so cutting a cut result changes nothing.

An execution's run settings may cut results shorter, in characters
(`max_tool_result_chars`): the result keeps that many characters and a
marker saying how many of how many were cut follows them. The character cut
comes first, then the byte cap, so a result is never over either.
"""

from __future__ import annotations

DEFAULT_MAX_BYTES = 64 * 1024
# Room kept for the marker; its longest form fits with plenty to spare.
MARKER_BYTES = 96


def cap_tool_result(text: str, max_bytes: int = DEFAULT_MAX_BYTES, max_chars: int = 0) -> str:
    """The text, or its first characters or bytes and a marker saying how
    many were cut (`max_chars` 0: no character limit)."""
    if 0 < max_chars < len(text) and not _is_cut_to(text, max_chars):
        text = (
            f"{text[:max_chars]}\n[result cut: {len(text) - max_chars:,} of "
            f"{len(text):,} characters left out]"
        )
    if len(text) <= max_bytes // 4:  # no UTF-8 character is longer than 4 bytes
        return text
    encoded = text.encode("utf-8", errors="surrogatepass")
    if len(encoded) <= max_bytes:
        return text
    kept = encoded[: max(0, max_bytes - MARKER_BYTES)].decode("utf-8", errors="ignore")
    cut = len(encoded) - len(kept.encode("utf-8", errors="surrogatepass"))
    return f"{kept}\n[result cut: {cut:,} of {len(encoded):,} bytes left out]"


def _is_cut_to(text: str, max_chars: int) -> bool:
    """Whether the text is already a result cut to `max_chars` characters."""
    return text[max_chars:].startswith("\n[result cut: ") and text.endswith(" characters left out]")
