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
//! against a binary heap, and the two keys are packed into one `u128`
//! (time in the high half), so that each comparison is a single integer
//! compare. Keys are unique, so the order events leave in is fully
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

/// The key of a spare entry: larger than any event's key (which would need
/// 2^64 events scheduled before it).
const SPARE: u128 = u128::MAX;

/// Events ordered by due time, then by scheduling order.
#[derive(Debug)]
pub struct EventQueue<E> {
    /// The heap in its first `len` entries; every entry after them is a
    /// spare (its key is [`SPARE`]), and there are at least `ARITY - 1` of
    /// them once anything was pushed, so that a node with a child always
    /// has all four children in the vector: a missing child reads as a
    /// spare, which never wins, and sifting down needs no case for a
    /// partial set of children.
    heap: Vec<Entry<E>>,
    len: usize,
    /// One entry kept outside the heap.
    lane: Option<Entry<E>>,
    scheduled: u64,
    /// Whether the root was popped already and is only waiting to be
    /// replaced (the rest of the heap is in order without it).
    taken: bool,
}

#[derive(Debug, Clone, Copy)]
struct Entry<E> {
    /// Due time in the high 64 bits, sequence number in the low 64.
    key: u128,
    event: E,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue { heap: Vec::new(), len: 0, lane: None, scheduled: 0, taken: false }
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
        let entry = self.entry(at, event);
        self.push_entry(entry);
    }

    /// Schedule `event` at virtual time `at`, in the lane: the same as
    /// [`EventQueue::push`], but cheaper for an event that is the only one
    /// of its chain (an event already in the lane moves to the heap).
    #[inline]
    pub fn push_lane(&mut self, at: Nanos, event: E) {
        let entry = self.entry(at, event);
        if let Some(earlier) = self.lane.replace(entry) {
            self.push_entry(earlier);
        }
    }

    #[inline]
    fn entry(&mut self, at: Nanos, event: E) -> Entry<E> {
        let key = (u128::from(at) << 64) | u128::from(self.scheduled);
        self.scheduled += 1;
        Entry { key, event }
    }

    #[inline]
    fn push_entry(&mut self, entry: Entry<E>) {
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
            self.heap.push(Entry { key: SPARE, event });
        }
    }

    /// Remove and return the earliest event and its time.
    #[inline]
    pub fn pop(&mut self) -> Option<(Nanos, E)> {
        if self.taken {
            self.remove_root();
        }
        // Compared in place: the lane's entry is copied out only when it
        // leaves. (With the heap empty, its root is a spare, or absent.)
        if let Some(lane) = &self.lane {
            if self.heap.first().is_none_or(|top| lane.key < top.key) {
                let (key, event) = (lane.key, lane.event);
                self.lane = None;
                return Some(((key >> 64) as Nanos, event));
            }
        }
        if self.len == 0 {
            return None;
        }
        // The root leaves the heap when the next push or pop replaces it.
        let top = *self.heap.first()?;
        self.taken = true;
        Some(((top.key >> 64) as Nanos, top.event))
    }

    /// Take out the root that a pop returned, the last entry filling in.
    fn remove_root(&mut self) {
        self.taken = false;
        self.len -= 1;
        let Some(last) = self.heap.get_mut(self.len) else { return };
        let moving = *last;
        last.key = SPARE;
        if self.len > 0 {
            self.sift_down(moving);
        }
    }

    /// Put `moving` in the root's place, which is free, and sift it down:
    /// the least child moves up into the hole, until `moving` fits.
    #[inline]
    fn sift_down(&mut self, moving: Entry<E>) {
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

    /// Time of the earliest event.
    pub fn next_time(&self) -> Option<Nanos> {
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
        Some((key >> 64) as Nanos)
    }

    pub fn len(&self) -> usize {
        self.len - usize::from(self.taken) + usize::from(self.lane.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        q.push(now, "third");
        q.push(4, "earlier");
        let rest: Vec<_> = std::iter::from_fn(|| q.pop()).map(|(_, e)| e).collect();
        assert_eq!(rest, ["earlier", "second", "third"]);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn matches_a_sorted_reference_under_random_use() {
        // Interleaved pushes and pops against an ordered map of (time, seq).
        let mut q = EventQueue::new();
        let mut reference = std::collections::BTreeMap::new();
        let (mut x, mut seq, mut now) = (0x2545_f491_4f6c_dd1du64, 0u64, 0u64);
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 5 < 3 {
                let at = now + x % 64;
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
}
