"""Resume's one mechanism (core/restorable.py, hpo/driver/restore.py): what Tune pickles of a callback leaves the
driver's live parts out, and a restored callback takes them back from the fresh one of the
same name; outside a restore nothing is collected."""

import pickle

from gan_search.core.restorable import Restorable, collecting


class Counter(Restorable):
    LIVE = ("log",)
    DETACHED = {"log": None}

    def __init__(self, key, log):
        self.key, self.log, self.seen, self.resumes = key, log, 0, 0

    @property
    def restore_key(self):
        return self.key

    def resumed(self):
        self.resumes += 1


def test_a_restored_callback_takes_the_live_parts_of_the_fresh_one_of_its_name():
    before = Counter("progress", log=print)
    before.seen = 3  # state that must survive the interrupt
    saved = pickle.dumps(before)
    assert b"print" not in saved  # the log function is not part of what Tune saves
    with collecting() as restored:
        twin = pickle.loads(saved)
    assert restored == [twin] and twin.log is None and twin.seen == 3
    lines = []
    fresh = Counter("progress", log=lines.append)
    twin.take_over(fresh)
    twin.log("resumed")
    assert lines == ["resumed"] and twin.seen == 3 and twin.resumes == 1


def test_unpickling_outside_a_restore_collects_nothing():
    with collecting() as restored:
        pass
    copy = pickle.loads(pickle.dumps(Counter("view", log=print)))
    assert restored == [] and copy.log is None
