"""Checkers for the chaos harness's watch, lock and list-append workloads (workload.py).

Each checker takes what the clients recorded, as plain tuples with monotonic call and return
times in nanoseconds, and returns (ok, detail). None needs a cluster: test_checks.py feeds each
one good histories and deliberately broken ones and asserts the verdicts.

check_watch proves that watch streams are a faithful, gap-free copy of the revision history: every
watcher saw every event once and in revision order, across reconnects to other members; all
watchers saw the same (revision, key, value, type) for the revisions they share; every
acknowledged write appears at the revision its response named, and nothing appears that was
never written; replaying the events gives exactly the prefix's contents read at the end.

check_lock proves mutual exclusion of python-etcd3's lock (etcd3/locks.py) while the holders'
leases were valid, and that it protected a read-modify-write: the counter incremented under the
lock with a plain get and put lost no acknowledged increment and equals their number.

check_list_append proves, per key, what Elle's list-append checker proves of appends that are
compare-and-set Txns: every list observed is a prefix of one order, acknowledged appends are in
it once, nothing appears twice or without having been attempted, and reads and appends respect
real time."""

import bisect
import collections

# One write under the watched prefix. kind: "put" or "delete"; outcome: "ok" or "unknown";
# revision (the response header's) and deleted (keys a delete removed) only when acknowledged.
Write = collections.namedtuple("Write", "kind key value outcome revision deleted")
# One watcher's events in the order received, each (revision, key, value, type) with type "put"
# or "delete" (a delete's value is ""). compacted: the compact revision of a cancellation that
# said the start revision was compacted, else None. reconnects: streams it opened after the first.
Stream = collections.namedtuple("Stream", "name events compacted reconnects", defaults=(0,))

# One hold of the lock: acquire called at `call`, returned True at `start`, release called at
# `end`; `valid_until` is the earliest the lease could have expired (call + TTL / the fastest
# leader clock rate of the run): the lease was granted after `call`.
Hold = collections.namedtuple("Hold", "cid call start end valid_until")
# One increment of the counter inside hold number `hold`: read the value `read`, put `wrote`.
# Values are "<count> <tag>" with a tag unique to the increment. outcome: "ok" or "unknown".
Increment = collections.namedtuple("Increment", "cid read wrote outcome hold")
COUNTER_INITIAL = "0 init"

# One append of `value` to the list at `key`. outcome: "ok" (its Txn succeeded), "unknown" (the
# Txn failed or timed out: it may have taken effect) or "refused" (every attempt's compare failed:
# it never took effect). call: when the Txn that could have written it was sent; ret: when it
# was acknowledged (None unless "ok").
Append = collections.namedtuple("Append", "key value outcome call ret")
# One observation of a list: a read (its own call and return), or the list an acknowledged append
# wrote (the Txn's call and return). final: the read after the heal.
Read = collections.namedtuple("Read", "key call ret values final")

MAX_PROBLEMS = 5


def stop_reason(log_text):
    """Why a member stopped: the first of the last run of fatal lines in its log (chorusd logs
    the cause, then "stopping after the error above"; requests failing as it stops may log
    after both), or "" if it logged none."""
    lines = log_text.strip().splitlines()
    last = None
    for i in range(len(lines) - 1, -1, -1):
        if '"level":"fatal"' in lines[i]:
            last = i
            break
    if last is None:
        return ""
    first = last
    while first > 0 and '"level":"fatal"' in lines[first - 1]:
        first -= 1
    return lines[first]


def _verdict(problems, summary):
    if problems:
        more = len(problems) - MAX_PROBLEMS
        text = "; ".join(problems[:MAX_PROBLEMS]) + ("; and %d more" % more if more > 0 else "")
        return False, "%s; VIOLATION: %s" % (summary, text)
    return True, summary


# --- watch ---------------------------------------------------------------------------------------

def check_watch(writes, streams, begin, end, final, cluster_compact):
    """`writes`: every Write under the prefix, the begin and end markers included (acknowledged
    puts at revisions `begin` and `end`). `streams`: each watcher's Stream; every watcher started
    at `begin`, re-watched from the revision after its last event on every reconnect, and ran until
    it saw `end`. `final`: {key: value} under the prefix read at revision `end`, or None if it could
    not be read. `cluster_compact`: the cluster's compact revision at the end (0: never compacted).

    Proves: each stream's revisions strictly increase (each write here touches one key, so one
    event per revision: a repeat is an event seen twice); starts at `begin` and reaches `end`
    (a watcher cancelled as compacted may stop early, only if the cluster did compact that far);
    holds every event any watcher saw within its own first..last revisions (no gap) and the same
    event at each revision as every other watcher; every acknowledged put, and every acknowledged
    delete that removed the key, is seen at its revision with its key and value; every other event
    is a write with an unknown outcome, each at most once; replaying the events up to `end` from an
    empty prefix gives `final`."""
    problems = []
    union = {}  # revision -> (event, first watcher that saw it)
    for s in streams:
        prev = None
        for ev in s.events:
            rev = ev[0]
            if prev is not None and rev <= prev:
                problems.append("%s: revision %d after %d (%s)" % (
                    s.name, rev, prev, "seen twice" if rev == prev else "out of order"))
            prev = rev
            seen = union.get(rev)
            if seen is None:
                union[rev] = (ev, s.name)
            elif seen[0] != ev:
                problems.append("revision %d: %s saw %s, %s saw %s" % (
                    rev, seen[1], ev[1:], s.name, seen[0][1:]))
    revs = sorted(union)
    summary = "%d watchers, events %s, revisions %s..%s, reconnects %s" % (
        len(streams), "/".join(str(len(s.events)) for s in streams), begin, end,
        "/".join(str(s.reconnects) for s in streams))
    if end is None:
        problems.append("the end marker was never acknowledged: the watchers' catch-up is unknown")
        end = revs[-1] if revs else 0

    for s in streams:
        if s.compacted is not None and not (0 < s.compacted <= cluster_compact):
            problems.append("%s: cancelled as compacted at revision %d, but the cluster's compact "
                            "revision is %d" % (s.name, s.compacted, cluster_compact))
        if not s.events:
            problems.append("%s saw no event" % s.name)
            continue
        first, last = s.events[0][0], s.events[-1][0]
        if first != begin:
            problems.append("%s: first event at revision %d, not the begin marker's %s" % (
                s.name, first, begin))
        if s.compacted is None and last < end:
            problems.append("%s stopped at revision %d, before the end marker's %d" % (
                s.name, last, end))
        mine = {ev[0] for ev in s.events}
        lo, hi = bisect.bisect_left(revs, first), bisect.bisect_right(revs, last)
        missed = [r for r in revs[lo:hi] if r not in mine]
        if missed:
            problems.append("%s missed %d events within revisions %d..%d, the first at %d" % (
                s.name, len(missed), first, last, missed[0]))

    claimed = set()
    unknown_puts = set()
    unknown_deletes = collections.Counter()
    acked = unknown = 0
    for w in writes:
        if w.outcome != "ok":
            unknown += 1
            if w.kind == "put":
                unknown_puts.add((w.key, w.value))
            else:
                unknown_deletes[w.key] += 1
            continue
        acked += 1
        if w.kind == "put":
            expected = (w.revision, w.key, w.value, "put")
        elif w.deleted:
            expected = (w.revision, w.key, "", "delete")
        else:
            continue  # a delete of a missing key: no event
        claimed.add(w.revision)
        seen = union.get(w.revision)
        if seen is None:
            problems.append("acknowledged %s of %s at revision %d: no watcher saw it" % (
                w.kind, w.key, w.revision))
        elif seen[0] != expected:
            problems.append("revision %d: acknowledged %s %s=%r, watchers saw %s" % (
                w.revision, w.kind, w.key, w.value, seen[0][1:]))
    seen_values = set()
    for rev in revs:
        if rev in claimed:
            continue
        _, key, value, typ = union[rev][0]
        if typ == "put":
            if (key, value) not in unknown_puts:
                problems.append("revision %d: put %s=%r, a write never attempted (or acknowledged "
                                "at another revision)" % (rev, key, value))
            elif (key, value) in seen_values:
                problems.append("revision %d: put %s=%r applied a second time" % (rev, key, value))
            seen_values.add((key, value))
        elif unknown_deletes[key] > 0:
            unknown_deletes[key] -= 1
        else:
            problems.append("revision %d: delete of %s, more deletes than were attempted" % (
                rev, key))

    if final is None:
        problems.append("the prefix could not be read at the end marker's revision")
    else:
        state = {}
        for rev in revs:
            if rev > end:
                break
            _, key, value, typ = union[rev][0]
            if typ == "put":
                state[key] = value
            else:
                state.pop(key, None)
        if state != final:
            diff = sorted(k for k in set(state) | set(final) if state.get(k) != final.get(k))
            problems.append("replaying the events gives %d keys, the read at revision %d %d; "
                            "they differ at %s (events: %r, read: %r)" % (
                                len(state), end, len(final), diff[0], state.get(diff[0]),
                                final.get(diff[0])))
    summary += "; writes %d acknowledged, %d unknown" % (acked, unknown)
    past = sum(1 for r in revs if r > end)
    if past:
        summary += "; %d events past the end marker (writes with an unknown outcome that " \
                   "landed late)" % past
    return _verdict(problems, summary)


# --- lock ----------------------------------------------------------------------------------------

def count_of(value):
    """The count in a counter value "<count> <tag>", or None if it is not one."""
    parts = value.split(" ") if value else []
    if len(parts) == 2 and parts[0].isdigit():
        return int(parts[0])
    return None


def check_lock(holds, increments, versions):
    """`holds`: every Hold whose acquire returned True. `increments`: every Increment whose put
    was sent (a hold whose get failed sends none). `versions`: the counter's values in the order
    the store applied them, from COUNTER_INITIAL to the final one (read back through its
    revisions after the heal), or None if they could not be read.

    Proves:
      - mutual exclusion: no hold began (acquire returned) while another was in force, a hold
        being in force from its start until its release was called or its lease could have
        expired, whichever is first (an expired lease frees the lock, as it should);
      - the counter's history holds only values the increments wrote, each once, and every
        acknowledged increment (no acknowledged write lost);
      - no lost update: each acknowledged increment's put was applied with no acknowledged
        increment applied between the value it read and its own (unless either's lease could
        have expired first); what may come between is a put with an unknown outcome, which can
        land late (a timed-out proposal still travelling to the leader): a lock without fencing
        does not keep that out, and the workload cannot tell when it lands;
      - the counter equals the number of acknowledged increments, up to the number whose
        outcome is unknown, whenever its history shows no such late put (when it does, the
        count restarted from an older value by design, and the history check above stands in)."""
    problems = []
    t0 = min([h.call for h in holds] or [0])

    def sec(ns):
        return (ns - t0) / 1e9

    def in_force_until(h):
        return min(h.end, h.valid_until)

    order = sorted(range(len(holds)), key=lambda i: holds[i].start)
    latest = None
    for i in order:
        h = holds[i]
        if latest is not None and h.start < in_force_until(holds[latest]):
            o = holds[latest]
            problems.append("client %d acquired the lock at %.3f s while client %d held it "
                            "(%.3f..%.3f s, lease valid past %.3f s)" % (
                                h.cid, sec(h.start), o.cid, sec(o.start), sec(o.end),
                                sec(o.valid_until)))
        if latest is None or in_force_until(h) > in_force_until(holds[latest]):
            latest = i

    acked = sum(1 for inc in increments if inc.outcome == "ok")
    unknown = len(increments) - acked
    summary = "%d holds, increments %d acknowledged, %d unknown" % (len(holds), acked, unknown)
    if versions is None:
        problems.append("the counter's history could not be read")
        return _verdict(problems, summary)
    if not versions or versions[0] != COUNTER_INITIAL:
        problems.append("the counter's history does not start at %r: %r" % (
            COUNTER_INITIAL, versions[:1]))
    by_wrote = {inc.wrote: inc for inc in increments}
    pos = {}
    for k, v in enumerate(versions):
        if v in pos:
            problems.append("counter value %r applied twice (versions %d and %d)" % (v, pos[v], k))
        pos.setdefault(v, k)
        if k > 0 and v not in by_wrote:
            problems.append("counter value %r (version %d) was never written by an increment"
                            % (v, k))
    for inc in increments:
        if inc.outcome == "ok" and inc.wrote not in pos:
            problems.append("client %d's acknowledged increment to %r is not in the counter's "
                            "history" % (inc.cid, inc.wrote))

    def overran(inc):
        h = holds[inc.hold]
        return h.end > h.valid_until

    late = 0
    for k in range(1, len(versions)):
        w = by_wrote.get(versions[k])
        if w is None:
            continue
        p = pos.get(w.read)
        if p is None or p >= k:
            problems.append("client %d wrote %r after reading %r, a value the counter %s" % (
                w.cid, w.wrote, w.read,
                "never had" if p is None else "only had after that write"))
            continue
        if p == k - 1:
            continue
        late += 1
        if w.outcome != "ok" or overran(w):
            continue
        for j in range(p + 1, k):
            b = by_wrote.get(versions[j])
            if b is not None and b.outcome == "ok" and not overran(b):
                problems.append("lost update: client %d read %r and wrote %r, but client %d's "
                                "acknowledged %r was applied in between" % (
                                    w.cid, w.read, w.wrote, b.cid, b.wrote))
                break

    final = count_of(versions[-1]) if versions else None
    summary += "; counter %s after %d versions" % (final, max(len(versions) - 1, 0))
    if late:
        summary += " (%d applied after another write since their read: unknown puts landing " \
                   "late or leases run out; the count is not compared)" % late
    elif final is None or not acked <= final <= acked + unknown:
        problems.append("counter is %s, expected %d acknowledged increments (up to %d with the "
                        "unknown ones)" % (final, acked, acked + unknown))
    return _verdict(problems, summary)


# --- list-append ---------------------------------------------------------------------------------

def check_list_append(appends, reads):
    """`appends`: every Append. `reads`: every observed list (Read), the final read of each key
    after the heal among them. Values are unique per append.

    Proves, per key:
      - one total order: every observed list is a prefix of the longest one;
      - no value twice in a list, no value that was never attempted or whose every attempt was
        refused by its compare;
      - every acknowledged append is in the final list (exactly once, by the above);
      - real time: a read that began after an append was acknowledged contains it; a read that
        ended before an append was sent does not; a read that began after another ended is at
        least as long (so, with one order, that one is its prefix); an append sent after another
        was acknowledged comes after it in the order."""
    problems = []
    by_key_appends = collections.defaultdict(list)
    by_key_reads = collections.defaultdict(list)
    for a in appends:
        by_key_appends[a.key].append(a)
    for r in reads:
        by_key_reads[r.key].append(r)
    longest = 0
    for key in sorted(set(by_key_appends) | set(by_key_reads)):
        n, key_problems = _check_list_key(key, by_key_appends[key], by_key_reads[key])
        longest = max(longest, n)
        problems += key_problems
    counts = collections.Counter(a.outcome for a in appends)
    summary = "%d keys, appends %d acknowledged, %d unknown, %d refused; %d lists read, " \
              "longest %d" % (len(set(by_key_appends) | set(by_key_reads)), counts["ok"],
                              counts["unknown"], counts["refused"], len(reads), longest)
    return _verdict(problems, summary)


def _check_list_key(key, appends, reads):
    problems = []
    possible = {a.value for a in appends if a.outcome != "refused"}
    attempted = {a.value for a in appends}
    order = max((r.values for r in reads), key=len, default=())
    pos = {v: i for i, v in enumerate(order)}
    for r in reads:
        vals = tuple(r.values)
        if len(set(vals)) != len(vals):
            dup = collections.Counter(vals).most_common(1)[0][0]
            problems.append("%s: %r appears twice in one read" % (key, dup))
        for v in vals:
            if v not in possible:
                problems.append("%s: %r appears but was %s" % (
                    key, v, "refused by every compare" if v in attempted else "never appended"))
                break
        if vals != tuple(order[:len(vals)]):
            i = next(i for i, (a, b) in enumerate(zip(vals, order)) if a != b)
            problems.append("%s: two lists disagree at position %d (%r, %r): no single order" % (
                key, i, vals[i], order[i]))
    finals = [r for r in reads if r.final]
    if finals:
        present = set(finals[-1].values)
        for a in appends:
            if a.outcome == "ok" and a.value not in present:
                problems.append("%s: acknowledged append %r is not in the final list" % (
                    key, a.value))
    elif any(a.outcome == "ok" for a in appends):
        problems.append("%s: no final read" % key)

    # Real time, on positions in the one order (lists out of it are reported above).
    acked = sorted((a for a in appends if a.outcome == "ok" and a.value in pos),
                   key=lambda a: a.ret)
    acked_rets = [a.ret for a in acked]
    best, best_pos = [], -1  # prefix maxima of positions, by acknowledgement time
    for a in acked:
        if pos[a.value] > best_pos:
            best_pos = pos[a.value]
            top = a
        best.append((best_pos, top))
    sent = sorted((a for a in appends if a.call is not None and a.value in pos),
                  key=lambda a: a.call)
    sent_calls = [a.call for a in sent]
    lowest = [None] * (len(sent) + 1)  # suffix minima of positions, by send time
    for i in range(len(sent) - 1, -1, -1):
        nxt = lowest[i + 1]
        lowest[i] = sent[i] if nxt is None or pos[sent[i].value] < pos[nxt.value] else nxt
    by_ret = sorted(reads, key=lambda r: r.ret)
    read_rets = [r.ret for r in by_ret]
    longest_before = []
    top = None
    for r in by_ret:
        if top is None or len(r.values) > len(top.values):
            top = r
        longest_before.append(top)

    for r in reads:
        n = len(r.values)
        i = bisect.bisect_left(acked_rets, r.call)
        if i > 0 and best[i - 1][0] >= n:
            problems.append("%s: a read of %d values misses %r, acknowledged before it began" % (
                key, n, best[i - 1][1].value))
        j = bisect.bisect_right(sent_calls, r.ret)
        if lowest[j] is not None and pos[lowest[j].value] < n:
            problems.append("%s: a read holds %r, appended only after the read returned" % (
                key, lowest[j].value))
        k = bisect.bisect_left(read_rets, r.call)
        if k > 0 and len(longest_before[k - 1].values) > n:
            problems.append("%s: a read of %d values began after a read of %d had returned" % (
                key, n, len(longest_before[k - 1].values)))
    for a in sent:
        i = bisect.bisect_left(acked_rets, a.call)
        if i > 0 and best[i - 1][0] > pos[a.value]:
            problems.append("%s: %r comes before %r, acknowledged before it was sent" % (
                key, a.value, best[i - 1][1].value))
    return len(order), problems
