//! Exact delivery accounting, per receiver and per message: which messages of which sender a
//! receiver has seen, and, at the end, what it lost, got twice, got out of order or got
//! without expecting it.
//!
//! Pure: no clock, no socket. A receiver keeps one [`ReceiverBook`]; each probe delivered to it
//! is judged by [`ReceiverBook::record`] into a [`Verdict`]; at the end `settle`
//! compares what it saw with what it was owed and gives a [`Tally`]. Every copy after the first
//! is a duplicate however late it comes, and a duplicate is never counted as a delivery, so it
//! cannot hide a loss.
//!
//! Memory: per (receiver, sender), one bit per message from the oldest message not yet seen to
//! the newest seen; whole 64-message words below the first gap are dropped as they fill. A
//! receiver that loses nothing holds one word per sender.
//!
//! Layout: one receiver's state for all its senders is one array of 32-byte entries, the
//! first 64 bits of each sender's bitmap inline. A delivery in order, or out of order by
//! less than 64 messages, touches that one entry, nothing else; only messages 64 or more
//! past the oldest one not yet seen go to a heap "spill" for that sender.

use std::collections::VecDeque;

/// What a delivery of one probe to one receiver is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The first copy of this message at this receiver, in order.
    First,
    /// The first copy, but a later message of the same sender was already seen here.
    FirstOutOfOrder,
    /// A copy of a message this receiver already had: not a delivery.
    Duplicate,
}

impl Verdict {
    /// Whether this was the first copy (in order or not).
    pub(crate) fn is_first(self) -> bool {
        self != Verdict::Duplicate
    }
}

/// The sequence numbers one receiver has seen from one sender, and how many of them counted.
/// The bits past `window` live in the book's `spilled[slot]`. 32 bytes and aligned so: two
/// senders to a cache line, none across two.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(32))]
struct Seen {
    /// Every sequence below `base` has been seen.
    base: u64,
    /// Bit `i`: sequence `base + i` has been seen. Never all ones: when it fills, `base`
    /// moves on by 64 and the first spilled word (if any) takes its place.
    window: u64,
    /// One more than the highest sequence seen (0: none yet).
    highest_plus_one: u64,
    /// First copies of messages in the measured window.
    measured: u64,
}

impl Seen {
    /// The verdict on a first copy of `sequence`, noting it as the highest if it is.
    fn first(&mut self, sequence: u64) -> Verdict {
        if sequence < self.highest_plus_one {
            Verdict::FirstOutOfOrder
        } else {
            self.highest_plus_one = sequence + 1;
            Verdict::First
        }
    }
}

/// What one receiver has seen, per sender.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReceiverBook {
    /// Indexed by sender slot (the sender's index, or 0 in echo runs).
    senders: Vec<Seen>,
    /// Per sender slot, the bits past its window: bit `i` of word `w` says whether sequence
    /// `base + 64 (w + 1) + i` has been seen. Empty (and holding no memory) until a sender's
    /// message comes 64 or more past its oldest one not yet seen; a slot has an entry only
    /// once that happened to it or to a later slot.
    spilled: Vec<VecDeque<u64>>,
    /// Copies after the first.
    duplicated: u64,
    /// First copies that came after a later message of the same sender.
    out_of_order: u64,
}

/// What one receiver was owed by one sender: the messages it sent in the measured window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owed {
    /// The sender's slot.
    pub sender: u32,
    /// Messages the receiver should have got from it.
    pub messages: u64,
}

/// A receiver's final accounting, or a sum of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Deliveries owed.
    pub expected: u64,
    /// Owed deliveries that came (first copies).
    pub received: u64,
    /// Owed deliveries that never came.
    pub lost: u64,
    /// Copies after the first, however late.
    pub duplicated: u64,
    /// First copies that came after a later message of the same sender.
    pub out_of_order: u64,
    /// First copies of messages the receiver was not owed (another room's, its own when the
    /// server was said not to echo).
    pub unexpected: u64,
}

impl Tally {
    /// Adds another tally to this one.
    pub(crate) fn add(&mut self, other: &Tally) {
        self.expected += other.expected;
        self.received += other.received;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.unexpected += other.unexpected;
    }

    /// Whether anything went wrong for this receiver.
    pub(crate) fn has_anomaly(&self) -> bool {
        self.lost + self.duplicated + self.out_of_order + self.unexpected > 0
    }
}

impl ReceiverBook {
    /// Judges one delivered probe: `slot` is the sender's slot, `measured` whether the message
    /// belongs to the measured window (not the warmup).
    pub(crate) fn record(&mut self, slot: usize, sequence: u64, measured: bool) -> Verdict {
        if self.senders.len() <= slot {
            self.senders.resize_with(slot + 1, Seen::default);
        }
        let seen = &mut self.senders[slot];
        let verdict = if sequence < seen.base {
            Verdict::Duplicate
        } else if sequence - seen.base < 64 {
            let bit = 1u64 << (sequence - seen.base);
            if seen.window & bit != 0 {
                Verdict::Duplicate
            } else {
                seen.window |= bit;
                let verdict = seen.first(sequence);
                while seen.window == u64::MAX {
                    seen.base += 64;
                    seen.window = self
                        .spilled
                        .get_mut(slot)
                        .and_then(VecDeque::pop_front)
                        .unwrap_or(0);
                }
                verdict
            }
        } else {
            if self.spilled.len() <= slot {
                self.spilled.resize_with(slot + 1, VecDeque::new);
            }
            let spill = &mut self.spilled[slot];
            let offset = sequence - seen.base - 64;
            let word = (offset / 64) as usize;
            let bit = 1u64 << (offset % 64);
            if spill.len() <= word {
                spill.resize(word + 1, 0);
            }
            if spill[word] & bit != 0 {
                Verdict::Duplicate
            } else {
                // The window is not full (it never is), so nothing moves.
                spill[word] |= bit;
                seen.first(sequence)
            }
        };
        match verdict {
            Verdict::Duplicate => self.duplicated += 1,
            Verdict::FirstOutOfOrder => self.out_of_order += 1,
            Verdict::First => {}
        }
        if verdict.is_first() && measured {
            seen.measured += 1;
        }
        verdict
    }

    /// What settling needs of this book: first copies per sender, duplicates, out of order.
    /// Small, so that it can travel in a report to be merged with other processes' books.
    pub(crate) fn counts(&self) -> ReceiverCounts {
        ReceiverCounts {
            measured: self.senders.iter().map(|seen| seen.measured).collect(),
            duplicated: self.duplicated,
            out_of_order: self.out_of_order,
        }
    }

    /// Compares what was seen with what was owed (see [`ReceiverCounts::settle`]).
    #[cfg(test)]
    pub(crate) fn settle(&self, owed: &[Owed]) -> Tally {
        self.counts().settle(owed)
    }
}

/// A receiver's book reduced to what settling needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReceiverCounts {
    /// First copies in the measured window, per sender slot.
    pub measured: Vec<u64>,
    /// Copies after the first.
    pub duplicated: u64,
    /// First copies that came after a later message of the same sender.
    pub out_of_order: u64,
}

impl ReceiverCounts {
    /// Compares what was seen with what was owed. `owed` lists each sender the receiver should
    /// have heard, once; first copies from any other sender are unexpected.
    pub(crate) fn settle(&self, owed: &[Owed]) -> Tally {
        let mut tally = Tally {
            duplicated: self.duplicated,
            out_of_order: self.out_of_order,
            ..Tally::default()
        };
        for debt in owed {
            let got = self
                .measured
                .get(debt.sender as usize)
                .copied()
                .unwrap_or(0);
            let counted = got.min(debt.messages);
            tally.expected += debt.messages;
            tally.received += counted;
            tally.lost += debt.messages - counted;
            tally.unexpected += got - counted;
        }
        for (slot, measured) in self.measured.iter().enumerate() {
            if !owed.iter().any(|debt| debt.sender as usize == slot) {
                tally.unexpected += measured;
            }
        }
        tally
    }
}

#[cfg(test)]
impl ReceiverBook {
    /// Words of memory held, for tests of the memory bound.
    fn words_held(&self) -> usize {
        self.senders.len() + self.spilled.iter().map(VecDeque::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owed(sender: u32, messages: u64) -> Owed {
        Owed { sender, messages }
    }

    /// Each row: the deliveries (sender, sequence) in arrival order, what was owed, the
    /// verdicts and the tally.
    #[test]
    fn every_verdict_and_tally() {
        use Verdict::*;
        struct Case {
            name: &'static str,
            deliveries: &'static [(usize, u64)],
            owed: &'static [(u32, u64)],
            verdicts: &'static [Verdict],
            tally: Tally,
        }
        let tally = |expected, received, lost, duplicated, out_of_order, unexpected| Tally {
            expected,
            received,
            lost,
            duplicated,
            out_of_order,
            unexpected,
        };
        let cases = [
            Case {
                name: "all delivered in order",
                deliveries: &[(0, 0), (0, 1), (0, 2)],
                owed: &[(0, 3)],
                verdicts: &[First, First, First],
                tally: tally(3, 3, 0, 0, 0, 0),
            },
            Case {
                name: "one lost",
                deliveries: &[(0, 0), (0, 2)],
                owed: &[(0, 3)],
                verdicts: &[First, First],
                tally: tally(3, 2, 1, 0, 0, 0),
            },
            Case {
                name: "the latest delivered twice",
                deliveries: &[(0, 0), (0, 1), (0, 1)],
                owed: &[(0, 2)],
                verdicts: &[First, First, Duplicate],
                tally: tally(2, 2, 0, 1, 0, 0),
            },
            Case {
                name: "an old message delivered again late does not hide a loss",
                deliveries: &[(0, 0), (0, 2), (0, 3), (0, 0)],
                owed: &[(0, 4)],
                verdicts: &[First, First, First, Duplicate],
                tally: tally(4, 3, 1, 1, 0, 0),
            },
            Case {
                name: "three copies are two duplicates",
                deliveries: &[(0, 5), (0, 5), (0, 5)],
                owed: &[(0, 6)],
                verdicts: &[First, Duplicate, Duplicate],
                tally: tally(6, 1, 5, 2, 0, 0),
            },
            Case {
                name: "out of order but all there",
                deliveries: &[(0, 1), (0, 0), (0, 2)],
                owed: &[(0, 3)],
                verdicts: &[First, FirstOutOfOrder, First],
                tally: tally(3, 3, 0, 0, 1, 0),
            },
            Case {
                name: "out of order then duplicated",
                deliveries: &[(0, 2), (0, 0), (0, 0), (0, 1)],
                owed: &[(0, 3)],
                verdicts: &[First, FirstOutOfOrder, Duplicate, FirstOutOfOrder],
                tally: tally(3, 3, 0, 1, 2, 0),
            },
            Case {
                name: "a sender it was not owed is unexpected",
                deliveries: &[(0, 0), (1, 0)],
                owed: &[(0, 1)],
                verdicts: &[First, First],
                tally: tally(1, 1, 0, 0, 0, 1),
            },
            Case {
                name: "senders are kept apart",
                deliveries: &[(0, 0), (1, 0), (1, 1), (0, 1)],
                owed: &[(0, 2), (1, 2)],
                verdicts: &[First, First, First, First],
                tally: tally(4, 4, 0, 0, 0, 0),
            },
            Case {
                name: "nothing came",
                deliveries: &[],
                owed: &[(0, 2), (3, 5)],
                verdicts: &[],
                tally: tally(7, 0, 7, 0, 0, 0),
            },
        ];
        for case in cases {
            let mut book = ReceiverBook::default();
            let verdicts: Vec<Verdict> = case
                .deliveries
                .iter()
                .map(|&(slot, sequence)| book.record(slot, sequence, true))
                .collect();
            assert_eq!(verdicts, case.verdicts, "{}", case.name);
            let owed: Vec<Owed> = case.owed.iter().map(|&(s, m)| owed(s, m)).collect();
            assert_eq!(book.settle(&owed), case.tally, "{}", case.name);
        }
    }

    #[test]
    fn warmup_messages_are_judged_but_not_counted_as_deliveries() {
        let mut book = ReceiverBook::default();
        assert_eq!(book.record(0, 0, false), Verdict::First);
        assert_eq!(book.record(0, 0, false), Verdict::Duplicate);
        assert_eq!(book.record(0, 1, true), Verdict::First);
        let tally = book.settle(&[owed(0, 1)]);
        assert_eq!((tally.received, tally.lost, tally.duplicated), (1, 0, 1));
    }

    #[test]
    fn a_duplicate_is_found_however_late_it_comes() {
        let mut book = ReceiverBook::default();
        for sequence in 0..10_000 {
            assert_eq!(book.record(0, sequence, true), Verdict::First);
        }
        assert_eq!(book.record(0, 3, true), Verdict::Duplicate);
        assert_eq!(book.record(0, 9_999, true), Verdict::Duplicate);
        // Nothing lost: the words below the newest are dropped as they fill.
        assert!(book.words_held() <= 1, "{} words", book.words_held());
    }

    #[test]
    fn a_gap_keeps_later_messages_judged_exactly() {
        let mut book = ReceiverBook::default();
        for sequence in 1..1_000 {
            book.record(0, sequence, true);
        }
        assert_eq!(book.record(0, 500, true), Verdict::Duplicate);
        assert_eq!(book.record(0, 0, true), Verdict::FirstOutOfOrder);
        assert!(book.words_held() <= 1);
        let tally = book.settle(&[owed(0, 1_000)]);
        assert_eq!(
            (tally.received, tally.lost, tally.out_of_order),
            (1_000, 0, 1)
        );
    }

    #[test]
    fn a_gap_wider_than_the_window_spills_and_comes_back() {
        let mut book = ReceiverBook::default();
        // Message 0 is late: 1 to 299 go past the 64-message window.
        for sequence in 1..300 {
            assert_eq!(book.record(2, sequence, true), Verdict::First);
        }
        assert!(book.words_held() >= 5, "{} words", book.words_held());
        for sequence in [1, 63, 64, 65, 200, 299] {
            assert_eq!(
                book.record(2, sequence, true),
                Verdict::Duplicate,
                "{sequence}"
            );
        }
        // A message far ahead, then ones just below it.
        assert_eq!(book.record(2, 1_000, true), Verdict::First);
        assert_eq!(book.record(2, 1_000, true), Verdict::Duplicate);
        assert_eq!(book.record(2, 999, true), Verdict::FirstOutOfOrder);
        // The late one fills the window: everything up to 299 is dropped at once.
        assert_eq!(book.record(2, 0, true), Verdict::FirstOutOfOrder);
        assert_eq!(book.record(2, 0, true), Verdict::Duplicate);
        assert_eq!(book.record(2, 150, true), Verdict::Duplicate);
        for sequence in 300..999 {
            assert_eq!(book.record(2, sequence, true), Verdict::FirstOutOfOrder);
        }
        // All of 0 to 1,000 seen: one word per sender slot (three slots) is left.
        assert_eq!(book.words_held(), 3);
        assert_eq!(book.record(2, 1_001, true), Verdict::First);
        let tally = book.settle(&[owed(2, 1_002)]);
        assert_eq!(
            (
                tally.received,
                tally.lost,
                tally.duplicated,
                tally.out_of_order
            ),
            (1_002, 0, 9, 701)
        );
    }

    /// The book judges like the plainest model, a set of everything seen, on deliveries
    /// that are late, early, lost and repeated.
    #[test]
    fn the_book_judges_like_a_set_of_everything_seen() {
        use std::collections::HashSet;
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut random = move |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        for round in 0..20 {
            let mut book = ReceiverBook::default();
            let mut seen: HashSet<(usize, u64)> = HashSet::new();
            let mut highest = [0u64; 3];
            let mut next = [0u64; 3];
            for _ in 0..5_000 {
                let slot = random(3) as usize;
                let sequence = match random(10) {
                    // Mostly in order, sometimes skipping some.
                    0..=5 => next[slot] + random(2 + round),
                    // Late by up to a few hundred, or any time before.
                    6 | 7 => next[slot].saturating_sub(random(300)),
                    8 => random(next[slot] + 1),
                    // Early by up to a few hundred.
                    _ => next[slot] + random(300),
                };
                next[slot] = next[slot].max(sequence + 1);
                let expected = if !seen.insert((slot, sequence)) {
                    Verdict::Duplicate
                } else if sequence < highest[slot] {
                    Verdict::FirstOutOfOrder
                } else {
                    highest[slot] = sequence + 1;
                    Verdict::First
                };
                assert_eq!(
                    book.record(slot, sequence, true),
                    expected,
                    "round {round}, {slot}/{sequence}"
                );
            }
            // Memory: a bit per message from the oldest not seen to the newest seen.
            let bound: u64 = (0..3)
                .map(|slot| {
                    let oldest = (0..).find(|s| !seen.contains(&(slot, *s))).unwrap();
                    (highest[slot].saturating_sub(oldest)) / 64 + 2
                })
                .sum();
            assert!(book.words_held() as u64 <= bound, "round {round}");
        }
    }

    #[test]
    fn tallies_add_up() {
        let mut sum = Tally::default();
        let one = Tally {
            expected: 3,
            received: 2,
            lost: 1,
            duplicated: 4,
            out_of_order: 5,
            unexpected: 6,
        };
        sum.add(&one);
        sum.add(&one);
        assert_eq!(sum.lost, 2);
        assert_eq!(sum.unexpected, 12);
        assert!(sum.has_anomaly());
        assert!(!Tally::default().has_anomaly());
    }
}
