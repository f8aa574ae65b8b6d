"""Resume: how the callbacks Tune restores get the driver's live parts back (the
vocabulary: ``Restorable`` and the window; ``hpo/driver/restore.py`` restores a Tuner with it).

``Tuner.restore`` unpickles the callbacks the search was started with (Ray saves them with
the experiment; there is no way to hand it new ones). Those copies carry what must survive
an interrupt (the tracker's ledger, the view's counts), but nothing that belongs to one
driver process: the log function, the progress board actor, an MLflow client, a writer
thread. One mechanism hands those over, by name:

- a callback that survives a resume is a ``Restorable``: it lists its ``LIVE`` attributes
  (never pickled) and has a ``restore_key`` (what it is, e.g. ``progress`` or
  ``mlflow:<search>``);
- ``restore_tuner`` opens a window around ``Tuner.restore``; each ``Restorable`` unpickled
  inside it is collected, matched to the driver's fresh callback of the same key, and takes
  that one's live attributes (``take_over``). The driver continues with what it returns.

No module state outlives the window; outside one (Ray pickling for other reasons),
unpickling collects nothing.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

_window = threading.local()  # the restore in progress on this thread, if any


class Restorable:
    """A Tune callback that a resumed search continues with (see the module docstring)."""

    LIVE: tuple[str, ...] = ()  # attributes of this driver process: not pickled, handed over
    DETACHED: dict[str, Any] = {}  # a LIVE attribute's value until one is handed over

    @property
    def restore_key(self) -> str:
        raise NotImplementedError

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in self.LIVE}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({name: self.DETACHED.get(name) for name in self.LIVE})
        self.__dict__.update(state)
        collected = getattr(_window, "collected", None)
        if collected is not None:
            collected.append(self)

    def take_over(self, fresh: Any) -> None:
        """Take the live attributes of the driver's fresh callback of the same key."""
        for name in self.LIVE:
            setattr(self, name, getattr(fresh, name))
        self.resumed()

    def resumed(self) -> None:
        """Called once the live attributes are back (e.g. to reset a clock)."""


@contextlib.contextmanager
def collecting() -> Iterator[list[Restorable]]:
    """The window: every ``Restorable`` unpickled inside it is in the yielded list."""
    _window.collected = []
    try:
        yield _window.collected
    finally:
        del _window.collected
