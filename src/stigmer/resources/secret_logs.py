"""Log lines never carry a secret value.

What a process logs while it runs executions (a tool server's failed
command line with `${TOKEN}` resolved, a model's 400 quoting a tool result,
a traceback) can hold the executions' secret values. The engines remember
each running execution's secrets here, and `install_log_masking` makes every
log record of the process pass through them: its message and its traceback
are masked when the record is made, before any handler, file or test
capture sees it.

An execution's secrets are remembered until it is forgotten, and at most
for the last REMEMBERED_EXECUTIONS executions: a worker that never sees an
execution end (another worker ended it) does not keep its secrets forever.
Masking with other executions' secrets as well is harmless.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from stigmer.resources.secrets import SecretMasker

REMEMBERED_EXECUTIONS = 1024


class KnownSecrets:
    """The secrets of the executions this process runs, by execution id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_execution: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._masker = SecretMasker(())

    def remember(self, execution_id: str, secrets: Iterable[str]) -> None:
        values = frozenset(s for s in secrets if s)
        with self._lock:
            if not values and execution_id not in self._by_execution:
                return
            self._by_execution[execution_id] = values
            self._by_execution.move_to_end(execution_id)
            while len(self._by_execution) > REMEMBERED_EXECUTIONS:
                self._by_execution.popitem(last=False)
            self._rebuild()

    def forget(self, execution_id: str) -> None:
        with self._lock:
            if self._by_execution.pop(execution_id, None) is not None:
                self._rebuild()

    def _rebuild(self) -> None:
        self._masker = SecretMasker(s for values in self._by_execution.values() for s in values)

    def mask(self, text: str) -> str:
        return self._masker.mask(text)

    @property
    def is_empty(self) -> bool:
        return self._masker.pattern is None


known_secrets = KnownSecrets()
_installing = threading.Lock()
_installed = threading.Event()


def install_log_masking() -> None:
    """Masks every log record this process makes from now on; idempotent."""
    with _installing:
        if _installed.is_set():
            return
        _installed.set()
        make_record = logging.getLogRecordFactory()

        def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make_record(*args, **kwargs)
            if not known_secrets.is_empty:
                _mask_record(record)
            return record

        logging.setLogRecordFactory(masked_record)


def _mask_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: leave it to the handler to report
        return
    record.msg, record.args = known_secrets.mask(message), None
    if record.exc_info and record.exc_info[1] is not None:
        # Formatters use exc_text when it is set, so the traceback is
        # rendered (and masked) once, here.
        record.exc_text = known_secrets.mask(
            "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        )
    if record.stack_info:
        record.stack_info = known_secrets.mask(record.stack_info)
