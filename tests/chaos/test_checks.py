"""The chaos harness's checkers must be able to fail: each is fed a good history and deliberately
broken ones (a gap, a repeat, a phantom write, overlapping holds, a lost update, a list out of
order, a stale read, ...) and must give the verdict expected. No cluster is needed:

    /usr/bin/python3 -m unittest discover -s tests/chaos -p 'test_*.py'"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checks import (COUNTER_INITIAL, Append, Hold, Increment, Read, Stream, Write,  # noqa: E402
                    check_list_append, check_lock, check_watch, stop_reason)


class CheckerTest(unittest.TestCase):
    def passes(self, verdict):
        ok, detail = verdict
        self.assertTrue(ok, detail)
        self.assertNotIn("VIOLATION", detail)

    def fails(self, verdict, phrase):
        ok, detail = verdict
        self.assertFalse(ok, detail)
        self.assertIn(phrase, detail)


# --- watch ---------------------------------------------------------------------------------------

WRITES = [
    Write("put", "w/begin", "begin", "ok", 10, None),
    Write("put", "w/k1", "a", "ok", 12, None),
    Write("delete", "w/k1", None, "ok", 14, 1),
    Write("delete", "w/k5", None, "ok", 14, 0),  # removed nothing: no event
    Write("put", "w/k2", "b", "unknown", None, None),  # took effect at 15
    Write("put", "w/k3", "c", "unknown", None, None),  # never took effect
    Write("put", "w/end", "end", "ok", 17, None),
]
EVENTS = [(10, "w/begin", "begin", "put"), (12, "w/k1", "a", "put"), (14, "w/k1", "", "delete"),
          (15, "w/k2", "b", "put"), (17, "w/end", "end", "put")]
FINAL = {"w/begin": "begin", "w/k2": "b", "w/end": "end"}


def streams(*event_lists, compacted=None):
    return [Stream("watcher-%d" % (i + 1), list(evs), compacted if i == 0 else None, i)
            for i, evs in enumerate(event_lists)]


class WatchTest(CheckerTest):
    def check(self, ss, writes=WRITES, final=FINAL, end=17, cluster_compact=0):
        return check_watch(writes, ss, 10, end, final, cluster_compact)

    def test_identical_complete_streams_pass(self):
        self.passes(self.check(streams(EVENTS, EVENTS, EVENTS)))

    def test_a_gap_fails(self):
        gap = [e for e in EVENTS if e[0] != 14]
        self.fails(self.check(streams(EVENTS, gap, EVENTS)), "watcher-2 missed 1 events")

    def test_an_event_seen_twice_fails(self):
        twice = EVENTS[:3] + [EVENTS[2]] + EVENTS[3:]
        self.fails(self.check(streams(EVENTS, twice)), "revision 14 after 14 (seen twice)")

    def test_events_out_of_order_fail(self):
        swapped = [EVENTS[0], EVENTS[2], EVENTS[1]] + EVENTS[3:]
        self.fails(self.check(streams(EVENTS, swapped)), "out of order")

    def test_watchers_disagreeing_on_a_revision_fail(self):
        other = [(12, "w/k1", "zz", "put") if e[0] == 12 else e for e in EVENTS]
        self.fails(self.check(streams(EVENTS, other)), "revision 12: watcher-1 saw")

    def test_an_acknowledged_write_no_one_saw_fails(self):
        missing = [e for e in EVENTS if e[0] != 12]
        final = dict(FINAL)
        self.fails(self.check(streams(missing, missing), final=final),
                   "acknowledged put of w/k1 at revision 12: no watcher saw it")

    def test_a_write_seen_at_another_revision_than_acknowledged_fails(self):
        moved = [(13, "w/k1", "a", "put") if e[0] == 12 else e for e in EVENTS]
        self.fails(self.check(streams(moved, moved)), "put w/k1='a', a write never attempted")

    def test_a_phantom_event_fails(self):
        phantom = EVENTS[:4] + [(16, "w/k7", "never", "put")] + EVENTS[4:]
        final = dict(FINAL, **{"w/k7": "never"})
        self.fails(self.check(streams(phantom, phantom), final=final), "never attempted")

    def test_an_unknown_write_landing_after_the_end_marker_passes(self):
        late = EVENTS + [(18, "w/k3", "c", "put")]
        ok, detail = self.check(streams(late, late, EVENTS))
        self.assertTrue(ok, detail)
        self.assertIn("1 events past the end marker", detail)

    def test_a_phantom_event_after_the_end_marker_fails(self):
        late = EVENTS + [(18, "w/k3", "never", "put")]
        self.fails(self.check(streams(late, EVENTS)), "never attempted")

    def test_a_final_read_that_disagrees_with_the_events_fails(self):
        self.fails(self.check(streams(EVENTS, EVENTS), final=dict(FINAL, **{"w/k1": "a"})),
                   "they differ at w/k1")

    def test_a_watcher_that_never_caught_up_fails(self):
        self.fails(self.check(streams(EVENTS, EVENTS[:-1])),
                   "watcher-2 stopped at revision 15, before the end marker's 17")

    def test_a_stream_not_starting_at_the_begin_marker_fails(self):
        self.fails(self.check(streams(EVENTS, EVENTS[1:])), "first event at revision 12")

    def test_compaction_when_the_cluster_never_compacted_fails(self):
        self.fails(self.check(streams(EVENTS[:2], EVENTS, compacted=13)),
                   "cancelled as compacted at revision 13, but the cluster's compact revision is 0")

    def test_compaction_the_cluster_did_is_allowed(self):
        self.passes(self.check(streams(EVENTS[:2], EVENTS, compacted=13), cluster_compact=13))

    def test_no_end_marker_fails(self):
        self.fails(self.check(streams(EVENTS[:-1], EVENTS[:-1]), writes=WRITES[:-1], end=None,
                              final=None), "the end marker was never acknowledged")


# --- lock ----------------------------------------------------------------------------------------

def hold(cid, start, end, valid_for=100):
    return Hold(cid, start - 1, start, end, start - 1 + valid_for)


class LockTest(CheckerTest):
    HOLDS = [hold(1, 1, 3), hold(2, 5, 7), hold(3, 9, 11)]
    INCS = [Increment(1, COUNTER_INITIAL, "1 a", "ok", 0), Increment(2, "1 a", "2 b", "ok", 1),
            Increment(3, "2 b", "3 c", "unknown", 2)]

    def test_sequential_holds_and_a_whole_chain_pass(self):
        self.passes(check_lock(self.HOLDS, self.INCS, [COUNTER_INITIAL, "1 a", "2 b", "3 c"]))

    def test_an_unknown_increment_that_never_landed_passes(self):
        self.passes(check_lock(self.HOLDS, self.INCS, [COUNTER_INITIAL, "1 a", "2 b"]))

    def test_overlapping_holds_fail(self):
        holds = [hold(1, 1, 6), hold(2, 5, 7), hold(3, 9, 11)]
        self.fails(check_lock(holds, self.INCS, [COUNTER_INITIAL, "1 a", "2 b", "3 c"]),
                   "client 2 acquired the lock at")

    def test_an_overlap_after_the_lease_could_have_expired_passes(self):
        holds = [hold(1, 1, 6, valid_for=4), hold(2, 5, 7), hold(3, 9, 11)]
        incs = [Increment(1, COUNTER_INITIAL, "1 a", "ok", 0),
                Increment(2, COUNTER_INITIAL, "1 b", "ok", 1),
                Increment(3, "1 b", "2 c", "ok", 2)]
        self.passes(check_lock(holds, incs, [COUNTER_INITIAL, "1 a", "1 b", "2 c"]))

    def test_a_lost_update_fails(self):
        incs = [Increment(1, COUNTER_INITIAL, "1 a", "ok", 0),
                Increment(2, COUNTER_INITIAL, "1 b", "ok", 1)]
        self.fails(check_lock(self.HOLDS[:2], incs, [COUNTER_INITIAL, "1 a", "1 b"]),
                   "lost update: client 2 read '0 init'")

    def test_a_lost_acknowledged_increment_fails(self):
        self.fails(check_lock(self.HOLDS, self.INCS, [COUNTER_INITIAL, "1 a"]),
                   "client 2's acknowledged increment to '2 b' is not in the counter's history")

    def test_a_value_no_increment_wrote_fails(self):
        self.fails(check_lock(self.HOLDS, self.INCS, [COUNTER_INITIAL, "1 a", "2 b", "3 zz"]),
                   "was never written by an increment")

    def test_a_counter_outside_the_acknowledged_range_fails(self):
        incs = [Increment(1, COUNTER_INITIAL, "1 a", "ok", 0), Increment(2, "1 a", "3 b", "ok", 1)]
        self.fails(check_lock(self.HOLDS[:2], incs, [COUNTER_INITIAL, "1 a", "3 b"]),
                   "counter is 3, expected 2 acknowledged increments")

    def test_an_unknown_put_landing_late_passes(self):
        incs = [Increment(1, COUNTER_INITIAL, "1 a", "unknown", 0),
                Increment(2, COUNTER_INITIAL, "1 b", "ok", 1), Increment(3, "1 b", "2 c", "ok", 2)]
        self.passes(check_lock(self.HOLDS, incs, [COUNTER_INITIAL, "1 b", "2 c", "1 a"]))

    def test_an_unreadable_history_fails(self):
        self.fails(check_lock(self.HOLDS, self.INCS, None), "could not be read")


# --- list-append ---------------------------------------------------------------------------------

APPENDS = [Append("k", "x1", "ok", 10, 20), Append("k", "x2", "ok", 30, 40),
           Append("k", "x3", "unknown", 50, None), Append("k", "x4", "refused", None, None),
           Append("k", "x5", "unknown", 55, None)]
READS = [Read("k", 0, 5, (), False), Read("k", 10, 20, ("x1",), False),
         Read("k", 25, 28, ("x1",), False), Read("k", 30, 40, ("x1", "x2"), False),
         Read("k", 45, 48, ("x1", "x2"), False)]
FINAL_READ = Read("k", 100, 101, ("x1", "x2", "x3"), True)


class ListAppendTest(CheckerTest):
    def check(self, reads, final=FINAL_READ, appends=APPENDS):
        return check_list_append(appends, reads + ([final] if final else []))

    def test_a_consistent_history_passes(self):
        self.passes(self.check(READS))

    def test_two_keys_are_checked_apart(self):
        other = [Append("j", "y1", "ok", 1, 2)]
        self.passes(self.check(READS + [Read("j", 3, 4, ("y1",), True)], appends=APPENDS + other))

    def test_lists_in_different_orders_fail(self):
        self.fails(self.check(READS + [Read("k", 45, 48, ("x2",), False)]),
                   "two lists disagree at position 0")

    def test_a_lost_acknowledged_append_fails(self):
        self.fails(self.check(READS, final=Read("k", 100, 101, ("x1",), True)),
                   "acknowledged append 'x2' is not in the final list")

    def test_a_value_twice_fails(self):
        self.fails(self.check(READS, final=Read("k", 100, 101, ("x1", "x2", "x1"), True)),
                   "'x1' appears twice")

    def test_a_value_never_appended_fails(self):
        self.fails(self.check(READS, final=Read("k", 100, 101, ("x1", "x2", "x9"), True)),
                   "'x9' appears but was never appended")

    def test_a_refused_append_that_appears_fails(self):
        self.fails(self.check(READS, final=Read("k", 100, 101, ("x1", "x2", "x4"), True)),
                   "'x4' appears but was refused")

    def test_a_stale_read_fails(self):
        self.fails(self.check(READS + [Read("k", 45, 48, ("x1",), False)]),
                   "misses 'x2', acknowledged before it began")

    def test_a_read_of_the_future_fails(self):
        self.fails(self.check(READS + [Read("k", 25, 28, ("x1", "x2"), False)]),
                   "holds 'x2', appended only after the read returned")

    def test_a_read_shorter_than_an_earlier_one_fails(self):
        appends = [Append("k", "x1", "unknown", 10, None)]
        reads = [Read("k", 20, 22, ("x1",), False), Read("k", 30, 32, (), False)]
        self.fails(self.check(reads, final=Read("k", 100, 101, ("x1",), True), appends=appends),
                   "a read of 0 values began after a read of 1 had returned")

    def test_appends_out_of_real_time_order_fail(self):
        self.fails(self.check([], final=Read("k", 100, 101, ("x2", "x1"), True),
                              appends=APPENDS[:2]),
                   "'x2' comes before 'x1', acknowledged before it was sent")

    def test_no_final_read_fails(self):
        self.fails(self.check(READS, final=None), "no final read")


class StopReasonTest(unittest.TestCase):
    """A member that stops names its cause in a fatal line; requests failing as it stops may log
    after it (a soak run once took such a warning for the reason, and a full disk for a crash)."""

    def test_the_cause_is_found_behind_later_warnings(self):
        log = "\n".join(
            ['{"level":"info","msg":"serving"}',
             '{"level":"fatal","msg":"state machine flush: NoSpace: No space left on device"}',
             '{"level":"fatal","msg":"stopping after the error above"}'] +
            ['{"level":"warn","msg":"request took too long"}'] * 40)
        self.assertIn("No space left", stop_reason(log))

    def test_the_last_stop_counts(self):
        log = "\n".join(['{"level":"fatal","msg":"No space left on device"}',
                         '{"level":"fatal","msg":"stopping after the error above"}',
                         '{"level":"info","msg":"serving"}',
                         '{"level":"fatal","msg":"write-ahead log: damaged"}',
                         '{"level":"fatal","msg":"stopping after the error above"}'])
        self.assertIn("damaged", stop_reason(log))

    def test_no_fatal_line_gives_no_reason(self):
        self.assertEqual(stop_reason('{"level":"info","msg":"serving"}\n'), "")


if __name__ == "__main__":
    unittest.main()
