//! The pending-event set of the simulation.
//!
//! A binary min-heap keyed on `(time, sequence)`, the classic event list of
//! discrete-event simulation (Law, *Simulation Modeling and Analysis*, ch. 1).
//! The sequence number is the order in which events were scheduled, so events
//! due at the same instant come out first-scheduled first. That makes ties
//! deterministic without depending on the heap's internal layout, which is
//! what lets the same seed give byte-identical results. A heap costs
//! `O(log n)` per operation; the set holds one event per busy worker plus the
//! next arrival, so `n` stays small and a calendar queue would not pay off.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::time::Nanos;

/// Events ordered by due time, then by scheduling order.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    scheduled: u64,
}

#[derive(Debug)]
struct Entry<E> {
    at: Nanos,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    /// Reversed, so that the max-heap yields the earliest entry.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue { heap: BinaryHeap::new(), scheduled: 0 }
    }
}

impl<E> EventQueue<E> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedule `event` at virtual time `at`.
    pub fn push(&mut self, at: Nanos, event: E) {
        self.heap.push(Entry { at, seq: self.scheduled, event });
        self.scheduled += 1;
    }

    /// Remove and return the earliest event and its time.
    pub fn pop(&mut self) -> Option<(Nanos, E)> {
        self.heap.pop().map(|e| (e.at, e.event))
    }

    /// Time of the earliest event.
    pub fn next_time(&self) -> Option<Nanos> {
        self.heap.peek().map(|e| e.at)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
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
}
