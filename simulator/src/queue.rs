//! The pending-event set of the simulation.
//!
//! A min-heap keyed on `(time, sequence)`, the classic event list of
//! discrete-event simulation (Law, *Simulation Modeling and Analysis*, ch. 1).
//! The sequence number is the order in which events were scheduled, so events
//! due at the same instant come out first-scheduled first. That makes ties
//! deterministic without depending on the heap's internal layout, which is
//! what lets the same seed give byte-identical results. A heap costs
//! `O(log n)` per operation; the set holds one event per busy worker plus the
//! next arrival, so `n` stays small and a calendar queue would not pay off.
//!
//! The heap is 4-ary (each node has four children), which halves its depth
//! against a binary heap, and the two keys are packed into one integer
//! (time in the high bits), so that each comparison is a single integer
//! compare: a `u64` while times fit in 48 bits, a `u128` otherwise (see
//! [`EventQueue`]). Keys are unique, so the order events leave in is fully
//! determined by the keys, whatever the heap's shape.
//!
//! One event may wait outside the heap, in the lane
//! ([`EventQueue::push_lane`]): a chain of events of which at most one is
//! pending at a time, such as an open-loop source's next arrival, then
//! costs one comparison per pop instead of a trip through the heap. The
//! lane changes nothing about the order events leave in.
//!
//! The entry a pop returns stays at the root until the next push or pop
//! ([`EventQueue::pop`]): handling an event often schedules the next one of
//! its kind (an endpoint that finishes a try starts the next in line), and
//! that push then takes the root's place and sifts down, one pass through
//! the heap instead of two.

use crate::time::Nanos;

/// Children per node.
const ARITY: usize = 4;

/// Bits of a narrow key that hold the sequence number.
const SEQ_BITS: u32 = 16;

/// Sequence numbers a narrow key can hold.
const SEQ_LIMIT: u64 = 1 << SEQ_BITS;

/// Due times a narrow key can hold: below about 78 hours (one less than
/// what fits, so that no key is [`Key::SPARE`]).
const NARROW_TIMES: Nanos = (1 << (64 - SEQ_BITS)) - 1;

/// A key: due time, then sequence number, in one integer.
trait Key: Copy + Ord {
    /// Larger than any event's key.
    const SPARE: Self;
    fn time(self) -> Nanos;
}

/// Narrow: time in the high 48 bits, sequence in the low 16.
impl Key for u64 {
    const SPARE: u64 = u64::MAX;
    #[inline]
    fn time(self) -> Nanos {
        self >> SEQ_BITS
    }
}

/// Wide: time in the high 64 bits, sequence in the low 64.
impl Key for u128 {
    const SPARE: u128 = u128::MAX;
    #[inline]
    fn time(self) -> Nanos {
        (self >> 64) as Nanos
    }
}

/// Events ordered by due time, then by scheduling order.
///
/// Keys are narrow (`u64`, compared in one instruction) while every due
/// time fits in 48 bits. Sequence numbers then run out every 2^16 events:
/// only their order among the events pending matters, so they are dealt
/// again from 0 in that order. A time too large for a narrow key, or too
/// many events pending to renumber, moves the queue to wide keys (`u128`)
/// for good. Either way the events leave in the same order.
#[derive(Debug)]
pub struct EventQueue<E> {
    narrow: Heap<u64, E>,
    wide: Option<Box<Heap<u128, E>>>,
    /// The due times narrow keys take: those below [`NARROW_TIMES`] while
    /// the queue is narrow, none once it is wide.
    narrow_times: Nanos,
    /// The next sequence number.
    scheduled: u64,
    /// The time of the last event popped: nothing may be scheduled before
    /// it (checked in debug builds, where tests run).
    #[cfg(debug_assertions)]
    popped: Nanos,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            narrow: Heap::default(),
            wide: None,
            narrow_times: NARROW_TIMES,
            scheduled: 0,
            #[cfg(debug_assertions)]
            popped: 0,
        }
    }
}

/// Events are small plain values, moved by copying as the heap reorders.
impl<E: Copy> EventQueue<E> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedule `event` at virtual time `at`.
    #[inline]
    pub fn push(&mut self, at: Nanos, event: E) {
        #[cfg(debug_assertions)]
        assert!(
            at >= self.popped,
            "an event scheduled at {at} ns, in the past of {} ns",
            self.popped
        );
        if let Some(key) = self.narrow_key(at) {
            return self.narrow.push_entry(Entry { key, event });
        }
        let key = self.wide_key(at);
        self.widened().push_entry(Entry { key, event });
    }

    /// Schedule `event` at virtual time `at`, in the lane: the same as
    /// [`EventQueue::push`], but cheaper for an event that is the only one
    /// of its chain (an event already in the lane moves to the heap).
    #[inline(always)]
    pub fn push_lane(&mut self, at: Nanos, event: E) {
        #[cfg(debug_assertions)]
        assert!(
            at >= self.popped,
            "an event scheduled at {at} ns, in the past of {} ns",
            self.popped
        );
        if let Some(key) = self.narrow_key(at) {
            return self.narrow.push_lane(Entry { key, event });
        }
        let key = self.wide_key(at);
        self.widened().push_lane(Entry { key, event });
    }

    /// The narrow key of an event at `at`, when the queue is narrow and
    /// stays so.
    #[inline]
    fn narrow_key(&mut self, at: Nanos) -> Option<u64> {
        if at >= self.narrow_times || (self.scheduled == SEQ_LIMIT && !self.renumber()) {
            return None;
        }
        let key = (at << SEQ_BITS) | self.scheduled;
        self.scheduled += 1;
        Some(key)
    }

    #[inline]
    fn wide_key(&mut self, at: Nanos) -> u128 {
        let key = (u128::from(at) << 64) | u128::from(self.scheduled);
        self.scheduled += 1;
        key
    }

    /// Deal the narrow sequence numbers again from 0, in the order of the
    /// events pending; false (changing nothing) when too many are pending
    /// for that to free enough numbers.
    #[cold]
    fn renumber(&mut self) -> bool {
        let (mut entries, mut lane) = self.narrow.take_all();
        let pending = entries.len() + usize::from(lane.is_some());
        if pending as u64 >= SEQ_LIMIT / 2 {
            self.narrow.put_back((entries, lane));
            return false;
        }
        let renumbered = |key: u64, seq: usize| (key >> SEQ_BITS << SEQ_BITS) | seq as u64;
        // The lane's entry takes its number in its place among the heap's.
        let lane_at = lane.as_ref().map_or(pending, |l| entries.partition_point(|e| e.key < l.key));
        for (i, e) in entries.iter_mut().enumerate() {
            e.key = renumbered(e.key, i + usize::from(i >= lane_at));
        }
        if let Some(l) = &mut lane {
            l.key = renumbered(l.key, lane_at);
        }
        self.scheduled = pending as u64;
        self.narrow.put_back((entries, lane));
        true
    }

    /// The wide heap, after moving every narrow entry into it.
    #[cold]
    fn widened(&mut self) -> &mut Heap<u128, E> {
        let (narrow, narrow_times) = (&mut self.narrow, &mut self.narrow_times);
        self.wide.get_or_insert_with(|| {
            // Narrow sequence numbers keep their order, and are all below
            // the next one.
            let widen = |e: Entry<u64, E>| Entry {
                key: (u128::from(e.key.time()) << 64) | u128::from(e.key & (SEQ_LIMIT - 1)),
                event: e.event,
            };
            let (heap, lane) = narrow.take_all();
            let mut wide = Heap::default();
            for e in heap {
                wide.push_entry(widen(e));
            }
            wide.lane = lane.map(widen);
            *narrow_times = 0;
            Box::new(wide)
        })
    }

    /// Remove and return the earliest event and its time.
    #[inline]
    pub fn pop(&mut self) -> Option<(Nanos, E)> {
        // (Once the queue is wide, the narrow heap stays empty.)
        let popped = match self.narrow.pop() {
            None => self.wide.as_mut()?.pop(),
            popped => popped,
        };
        #[cfg(debug_assertions)]
        if let Some((at, _)) = popped {
            self.popped = at;
        }
        popped
    }

    /// Time of the earliest event.
    pub fn next_time(&self) -> Option<Nanos> {
        match &self.wide {
            None => self.narrow.next_time(),
            Some(wide) => wide.next_time(),
        }
    }

    pub fn len(&self) -> usize {
        match &self.wide {
            None => self.narrow.len(),
            Some(wide) => wide.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A heap of events with keys of type `K`, and its lane.
#[derive(Debug)]
struct Heap<K, E> {
    /// The heap in its first `len` entries; every entry after them is a
    /// spare (its key is [`Key::SPARE`]), and there are at least
    /// `ARITY - 1` of them once anything was pushed, so that a node with a
    /// child always has all four children in the vector: a missing child
    /// reads as a spare, which never wins, and sifting down needs no case
    /// for a partial set of children.
    heap: Vec<Entry<K, E>>,
    len: usize,
    /// One entry kept outside the heap.
    lane: Option<Entry<K, E>>,
    /// Whether the root was popped already and is only waiting to be
    /// replaced (the rest of the heap is in order without it).
    taken: bool,
}

#[derive(Debug, Clone, Copy)]
struct Entry<K, E> {
    key: K,
    event: E,
}

/// Every entry of a heap, and its lane's.
type Pending<K, E> = (Vec<Entry<K, E>>, Option<Entry<K, E>>);

impl<K, E> Default for Heap<K, E> {
    fn default() -> Self {
        Heap { heap: Vec::new(), len: 0, lane: None, taken: false }
    }
}

impl<K: Key, E: Copy> Heap<K, E> {
    #[inline(always)]
    fn push_lane(&mut self, entry: Entry<K, E>) {
        if let Some(earlier) = self.lane.replace(entry) {
            self.push_entry(earlier);
        }
    }

    #[inline]
    fn push_entry(&mut self, entry: Entry<K, E>) {
        if self.taken {
            // The popped root's place is free: sift down from there.
            self.taken = false;
            self.sift_down(entry);
            return;
        }
        let mut i = self.len;
        self.len += 1;
        if self.heap.len() < self.len + ARITY - 1 {
            self.grow(entry.event);
        }
        // Sift up: parents with a larger key move down into the hole.
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if self.heap[parent].key <= entry.key {
                break;
            }
            self.heap[i] = self.heap[parent];
            i = parent;
        }
        self.heap[i] = entry;
    }

    /// Add spares until there are `ARITY - 1` after the heap (any event
    /// will do as theirs: a spare's is never read).
    #[cold]
    fn grow(&mut self, event: E) {
        while self.heap.len() < self.len + ARITY - 1 {
            self.heap.push(Entry { key: K::SPARE, event });
        }
    }

    /// Remove and return the earliest event and its time.
    #[inline]
    fn pop(&mut self) -> Option<(Nanos, E)> {
        if self.taken {
            self.remove_root();
        }
        // Compared in place: the lane's entry is copied out only when it
        // leaves. (With the heap empty, its root is a spare, or absent.)
        if let Some(lane) = &self.lane {
            if self.heap.first().is_none_or(|top| lane.key < top.key) {
                let (key, event) = (lane.key, lane.event);
                self.lane = None;
                return Some((key.time(), event));
            }
        }
        if self.len == 0 {
            return None;
        }
        // The root leaves the heap when the next push or pop replaces it.
        let top = *self.heap.first()?;
        self.taken = true;
        Some((top.key.time(), top.event))
    }

    /// Take out the root that a pop returned, the last entry filling in.
    fn remove_root(&mut self) {
        self.taken = false;
        self.len -= 1;
        let Some(last) = self.heap.get_mut(self.len) else { return };
        let moving = *last;
        last.key = K::SPARE;
        if self.len > 0 {
            self.sift_down(moving);
        }
    }

    /// Put `moving` in the root's place, which is free, and sift it down:
    /// the least child moves up into the hole, until `moving` fits.
    #[inline]
    fn sift_down(&mut self, moving: Entry<K, E>) {
        let heap = &mut self.heap[..];
        let mut i = 0;
        loop {
            let first = i * ARITY + 1;
            // All four children, spares included: one bounds check, and a
            // fixed number of comparisons.
            let Some([a, b, c, d]) = heap.get(first..first + ARITY) else { break };
            // The least of them, as a tournament without branches: which
            // child wins is a coin toss to the branch predictor. (Keys are
            // unique, so there are no ties to break.)
            let (ab, cd) = (b.key < a.key, d.key < c.key);
            let (x, kx) = (usize::from(ab), if ab { b.key } else { a.key });
            let (y, ky) = (2 + usize::from(cd), if cd { d.key } else { c.key });
            let right = ky < kx;
            let (child, least) = if right { (y, ky) } else { (x, kx) };
            if moving.key <= least {
                break;
            }
            heap[i] = heap[first + child];
            i = first + child;
        }
        heap[i] = moving;
    }

    /// Empty the heap and lane, giving back their entries, the heap's in
    /// order.
    fn take_all(&mut self) -> Pending<K, E> {
        if self.taken {
            self.remove_root();
        }
        let mut entries: Vec<_> = self.heap.drain(..).take(self.len).collect();
        entries.sort_unstable_by_key(|e| e.key);
        self.len = 0;
        (entries, self.lane.take())
    }

    /// Refill the empty heap and lane from [`Heap::take_all`]'s entries,
    /// with keys in the same order as when taken.
    fn put_back(&mut self, (entries, lane): Pending<K, E>) {
        let Some(spare) = entries.first().or(lane.as_ref()).map(|e| e.event) else { return };
        // Entries in order make a heap as they are.
        self.len = entries.len();
        self.heap = entries;
        self.grow(spare);
        self.lane = lane;
    }

    /// Time of the earliest event.
    fn next_time(&self) -> Option<Nanos> {
        let heap = &self.heap[..self.len];
        // With the root taken, the earliest in the heap is one of its children.
        let top = if self.taken {
            heap.iter().take(ARITY + 1).skip(1).min_by_key(|e| e.key)
        } else {
            heap.first()
        };
        let key = match (&self.lane, top) {
            (Some(a), Some(b)) => a.key.min(b.key),
            (a, b) => a.as_ref().or(b)?.key,
        };
        Some(key.time())
    }

    fn len(&self) -> usize {
        self.len - usize::from(self.taken) + usize::from(self.lane.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_order() {
        let mut q = EventQueue::new();
        for (at, name) in [(30, "c"), (10, "a"), (50, "e"), (20, "b"), (40, "d")] {
            q.push(at, name);
        }
        assert_eq!(q.next_time(), Some(10));
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, [(10, "a"), (20, "b"), (30, "c"), (40, "d"), (50, "e")]);
        assert!(q.is_empty());
    }

    #[test]
    fn ties_leave_in_scheduling_order() {
        let mut q = EventQueue::new();
        for i in 0..100 {
            q.push(if i % 2 == 0 { 7 } else { 3 }, i);
        }
        let order: Vec<i32> = std::iter::from_fn(|| q.pop()).map(|(_, i)| i).collect();
        let odd = (0..100).filter(|i| i % 2 == 1);
        let even = (0..100).filter(|i| i % 2 == 0);
        assert_eq!(order, odd.chain(even).collect::<Vec<_>>());
    }

    #[test]
    fn interleaved_pushes_keep_order() {
        // An event scheduled during processing, at the current instant, runs
        // after the events already due at that instant.
        let mut q = EventQueue::new();
        q.push(5, "first");
        q.push(5, "second");
        let (now, _) = q.pop().unwrap();
        q.push(6, "later");
        q.push(now, "third");
        let rest: Vec<_> = std::iter::from_fn(|| q.pop()).map(|(_, e)| e).collect();
        assert_eq!(rest, ["second", "third", "later"]);
        assert_eq!(q.len(), 0);
    }

    /// Interleaved pushes and pops against an ordered map of (time, seq):
    /// `ops` operations, times from `start` on, pushed up to `spread` ahead
    /// of the latest popped, with pushes `push_in` times out of 5.
    fn check_against_reference(ops: usize, start: Nanos, spread: u64, push_in: u64) {
        let mut q = EventQueue::new();
        let mut reference = std::collections::BTreeMap::new();
        let (mut x, mut seq, mut now) = (0x2545_f491_4f6c_dd1du64, 0u64, start);
        for _ in 0..ops {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 5 < push_in {
                let at = now + x % spread;
                if x % 7 == 0 {
                    q.push_lane(at, seq);
                } else {
                    q.push(at, seq);
                }
                reference.insert((at, seq), seq);
                seq += 1;
            } else {
                let want = reference.pop_first().map(|((at, _), e)| (at, e));
                assert_eq!(q.pop(), want);
                if let Some((at, _)) = want {
                    now = at;
                }
            }
            assert_eq!(q.len(), reference.len());
            assert_eq!(q.next_time(), reference.keys().next().map(|k| k.0));
        }
    }

    #[test]
    fn matches_a_sorted_reference_under_random_use() {
        check_against_reference(20_000, 0, 64, 3);
    }

    #[test]
    fn keeps_order_across_renumbering() {
        // Many more events than narrow sequence numbers, with many ties.
        const { assert!(400_000 > 6 * SEQ_LIMIT) };
        check_against_reference(400_000, 0, 16, 3);
    }

    #[test]
    fn keeps_order_when_times_outgrow_narrow_keys() {
        check_against_reference(20_000, NARROW_TIMES - 100_000, 64, 3);
        check_against_reference(20_000, u64::MAX - 1_000_000, 64, 3);
    }

    #[test]
    fn keeps_order_with_too_many_pending_to_renumber() {
        // Pushes outnumber pops until over half the sequence numbers are pending.
        check_against_reference(150_000, 0, 1_000, 4);
    }
}
