"""The writer thread: Tune's event loop hands changes over and returns at once.

Each Tune event becomes a small change of the ledger, posted here; one daemon thread applies
the changes in order and then brings MLflow in line (``sync``). So Tune's loop, and with it
every trial waiting for its report to be taken, never waits for MLflow. When nothing new
came but something is still unwritten (after a failure), it retries once ``due`` says so.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable


class Writer:
    """Applies posted changes, then calls ``sync``, on one background thread."""

    def __init__(self, sync: Callable[[], None], due: Callable[[], bool]) -> None:
        self.sync, self.due = sync, due
        self._inbox: deque[Callable[[], None]] = deque()  # appends and pops are thread-safe
        self._wake, self._thread, self._closing = threading.Event(), None, False

    def post(self, change: Callable[[], None]) -> None:
        self._inbox.append(change)
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="gan-search-mlflow",
                                            daemon=True)
            self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            if self._drain() or self.due():
                self.sync()
            if self._closing and not self._inbox:
                return

    def _drain(self) -> bool:
        changed = False
        while self._inbox:
            self._inbox.popleft()()
            changed = True
        return changed

    def flush(self) -> None:
        """Stop the thread and apply every change it has not applied yet."""
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=600)
        self._drain()
        self._closing = False
