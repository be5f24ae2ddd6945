"""Masking secret values in text: whole, streamed in pieces, and in log records."""

from __future__ import annotations

import logging
import random

import pytest

from stigmer.resources.secret_logs import install_log_masking, known_secrets
from stigmer.resources.secrets import MASK, SecretMasker

SECRETS = ("abcdef", "abc", "zz", "s3cr3t-value")


def test_a_secret_containing_another_is_masked_whole() -> None:
    masker = SecretMasker(SECRETS)
    assert masker.mask("x abcdef y abc z") == f"x {MASK} y {MASK} z"


@pytest.mark.parametrize("seed", range(40))
def test_streamed_text_in_any_pieces_is_masked_as_the_whole_text(seed: int) -> None:
    generator = random.Random(seed)
    words = [*SECRETS, "ab", "abcde", "z", "s3cr3t", " ", "text", "-value"]
    text = "".join(generator.choice(words) for _ in range(60))
    masker = SecretMasker(SECRETS)
    stream = masker.stream()
    shown = []
    position = 0
    while position < len(text):
        size = generator.randint(1, 5)
        shown.append(stream.push(text[position : position + size]))
        position += size
    shown.append(stream.finish())
    assert "".join(shown) == masker.mask(text)
    for secret in SECRETS:
        assert all(secret not in piece for piece in shown)


def test_streamed_text_waits_only_for_what_can_start_a_secret() -> None:
    stream = SecretMasker(["secret-token"]).stream()
    assert stream.push("Hello ") == "Hello "
    assert stream.push("sec") == ""
    assert stream.push("ond") == "second"
    assert stream.push(" secret-to") == " "
    assert stream.push("ken!") == f"{MASK}!"


def test_an_abandoned_stream_drops_a_trailing_start_of_a_secret() -> None:
    stream = SecretMasker(["secret-token"]).stream()
    assert stream.push("cut at secret-to") == "cut at "
    assert stream.abandon() == ""


def test_log_records_of_the_process_are_masked_with_the_remembered_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_log_masking()
    known_secrets.remember("aex-test", ["hunter2-log"])
    logger = logging.getLogger("stigmer.test")
    try:
        with caplog.at_level(logging.INFO):
            logger.info("command %s failed", "run --token=hunter2-log")
            try:
                raise RuntimeError("refused hunter2-log")
            except RuntimeError:
                logger.exception("tool failed")
        known_secrets.forget("aex-test")
        with caplog.at_level(logging.INFO):
            logger.info("after: %s", "hunter2-log")
    finally:
        known_secrets.forget("aex-test")
    assert "command run --token=*** failed" in caplog.text
    assert "RuntimeError: refused ***" in caplog.text
    assert caplog.text.count("hunter2-log") == 1
    assert "after: hunter2-log" in caplog.text
