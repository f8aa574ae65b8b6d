"""Resume of a search's Tuner: ``Tuner.restore`` inside the window of
``core/restorable.py``, each restored callback matched to the driver's fresh one by its
``restore_key`` (see that module)."""

from __future__ import annotations

from typing import Any, Callable

from gan_search.core.restorable import Restorable, collecting


def restore_tuner(path: str, trainable: Any,
                  fresh: list[Any]) -> tuple[Any, Callable[[Any], Any]]:
    """``Tuner.restore`` of the search at ``path``, and ``in_effect``: for each of the
    driver's fresh callbacks, the restored twin that now serves in its place (having taken
    over its live parts), or the fresh callback itself when Tune restored no twin."""
    from ray import tune

    with collecting() as restored:
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True,
                                   resume_errored=True)
    twins = {callback.restore_key: callback for callback in restored}
    for callback in fresh:
        twin = twins.get(callback.restore_key) if isinstance(callback, Restorable) else None
        if twin is not None:
            twin.take_over(callback)

    def in_effect(callback: Any) -> Any:
        key = callback.restore_key if isinstance(callback, Restorable) else None
        return twins.get(key, callback) if key is not None else callback
    return tuner, in_effect
