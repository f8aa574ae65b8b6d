"""The writer thread (tracking/writer.py) on its own: changes applied in the order posted,
off the poster's thread, MLflow brought in line after them; a failed sync retried when due;
flush applies everything left."""

import threading
import time

from gan_search.tracking.writer import Writer


def test_changes_are_applied_in_order_on_another_thread_then_synced():
    applied, synced, threads = [], [], set()

    def change(n):
        def apply():
            threads.add(threading.get_ident())
            applied.append(n)
        return apply
    writer = Writer(sync=lambda: synced.append(list(applied)), due=lambda: False)
    for n in range(50):
        writer.post(change(n))
    writer.flush()
    assert applied == list(range(50))
    assert threading.get_ident() not in threads  # the poster never waited for them
    assert synced and synced[-1] == list(range(50))  # the last sync saw every change


def test_a_sync_that_failed_is_retried_when_due_without_a_new_change():
    calls, owed = [], [True]

    def sync():
        calls.append(time.monotonic())
        if len(calls) == 1:
            return  # pretend the write failed: still owed
        owed[0] = False
    writer = Writer(sync=sync, due=lambda: owed[0])
    writer.post(lambda: None)
    deadline = time.monotonic() + 10
    while owed[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.flush()
    assert len(calls) >= 2 and not owed[0]  # retried by the thread's own clock


def test_flush_applies_what_was_posted_after_the_thread_ended():
    applied = []
    writer = Writer(sync=lambda: None, due=lambda: False)
    writer.post(lambda: applied.append(1))
    writer.flush()
    writer.post(lambda: applied.append(2))  # a new thread starts for it
    writer.flush()
    assert applied == [1, 2]
