//! How the loop divides its time between reading and writing, without a socket: the flush
//! pass in slices, and the read budget per connection per pass.
//!
//! At 1,000 receivers a **flush pass** (one write to every connection with frames queued) takes
//! the kernel milliseconds: on loopback, each `write` also runs the receiver's TCP input. If a
//! turn wrote the whole pass before reading again, a message read just after the pass began
//! would wait for all of it, then for its own place in the next one: up to two passes. So the
//! loop writes a slice of [`WRITES_PER_TURN`] connections per turn and reads between slices. A
//! new message joins the queues of the connections not yet written and leaves with what they
//! already hold; the ones already written get it on the next pass. A message now waits for at
//! most one pass, and a connection is still written once per pass with everything queued for
//! it (fewer writes than before, when messages arrive during a pass).
//!
//! Reading between slices must not give a flooding client more than it had: its budget,
//! [`READ_BUDGET_PER_PASS`] bytes, is per pass, not per turn. A connection that used it is read
//! again when the next pass starts (it keeps its bytes in the kernel meanwhile, which pushes
//! back on its sender).

/// Connections written per turn before the loop polls for new input again: one `epoll_wait`
/// (that finds little, and returns at once) per 16 writes, and a message read at most 16
/// writes after it arrived.
pub const WRITES_PER_TURN: usize = 16;

/// Bytes read from one connection in one pass before the others get their go.
pub const READ_BUDGET_PER_PASS: usize = 256 * 1024;

/// The current pass and what is left of it.
#[derive(Debug, Default)]
pub struct Passes {
    /// Counts passes from 1 to 255, then again from 1 (0 marks an entry of no pass).
    number: u8,
    /// Entries of the flush queue this pass still has to take; 0: the pass is over.
    left: usize,
    /// Per connection key, what it read in the pass named in the entry ([`Used`]): 4 bytes a
    /// key, as there is one per connection (the idle-connection memory counts every byte).
    used: Vec<Used>,
    /// Connections that used their budget, to read when the next pass starts.
    deferred: Vec<usize>,
}

/// One connection's reading: the pass (top 8 bits), whether it waits in `deferred` (bit 23),
/// bytes read in that pass (low 23 bits: a budget and one read past it fit many times).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Used(u32);

const DEFERRED: u32 = 1 << 23;
const BYTES: u32 = DEFERRED - 1;

impl Used {
    fn new(pass: u8) -> Used {
        Used(u32::from(pass) << 24)
    }

    fn pass(self) -> u8 {
        (self.0 >> 24) as u8
    }

    fn bytes(self) -> usize {
        (self.0 & BYTES) as usize
    }

    fn deferred(self) -> bool {
        self.0 & DEFERRED != 0
    }
}

impl Passes {
    /// Called at the top of every turn: when the last pass is over, a new one starts, and the
    /// connections deferred by the last one are returned to be read first. Empty otherwise.
    pub fn start_turn(&mut self) -> Vec<usize> {
        if self.left > 0 {
            return Vec::new();
        }
        // An entry of an earlier pass is reset when next used. When the numbers start again,
        // every entry is cleared first, so none left from 255 passes ago passes for current.
        self.number = match self.number.checked_add(1) {
            Some(next) => next,
            None => {
                self.used.fill(Used::default());
                1
            }
        };
        std::mem::take(&mut self.deferred)
    }

    /// Whether the loop has something to do without waiting, given the flush queue's length:
    /// a pass under way, deferred reads for the next one, or connections queued while the last
    /// pass went on (behind it), which the next pass writes.
    pub fn busy(&self, queue_len: usize) -> bool {
        self.left > 0 || !self.deferred.is_empty() || queue_len > 0
    }

    /// A new connection took `key`: it starts with a whole budget, whatever the connection
    /// that had the key before it read in this pass.
    pub fn forget(&mut self, key: usize) {
        if let Some(used) = self.used.get_mut(key) {
            *used = Used::default();
        }
    }

    /// How many flush-queue entries to take this turn, given the queue's length now. The
    /// first slice of a pass fixes the pass: what is queued at that moment.
    pub fn slice(&mut self, queue_len: usize) -> usize {
        if self.left == 0 {
            self.left = queue_len;
        }
        self.left.min(WRITES_PER_TURN)
    }

    /// The flush took `taken` entries of the queue.
    pub fn took(&mut self, taken: usize) {
        self.left = self.left.saturating_sub(taken);
    }

    /// What connection `key` may still read in this pass. At 0, it has been deferred to the
    /// next pass.
    pub fn budget(&mut self, key: usize) -> usize {
        let used = self.current(key);
        let left = READ_BUDGET_PER_PASS.saturating_sub(used.bytes());
        if left == 0 && !used.deferred() {
            used.0 |= DEFERRED;
            self.deferred.push(key);
        }
        left
    }

    /// Connection `key` read `bytes`.
    pub fn charge(&mut self, key: usize, bytes: usize) {
        let used = self.current(key);
        let total = (used.bytes() + bytes).min(BYTES as usize) as u32;
        used.0 = (used.0 & !BYTES) | total;
    }

    /// What `key` used in this pass (nothing, if its entry is from an earlier one).
    fn current(&mut self, key: usize) -> &mut Used {
        if self.used.len() <= key {
            // In steps of 1,024 keys: doubling would leave up to a key's worth unused per key.
            self.used
                .reserve_exact((key + 1 - self.used.len()).max(1024));
            self.used.resize(key + 1, Used::default());
        }
        let number = self.number;
        let used = &mut self.used[key];
        if used.pass() != number {
            *used = Used::new(number);
        }
        used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_covers_what_was_queued_at_its_first_slice_and_no_more() {
        let mut passes = Passes::default();
        assert!(passes.start_turn().is_empty());
        assert_eq!(passes.slice(40), WRITES_PER_TURN);
        passes.took(WRITES_PER_TURN);
        assert!(
            passes.busy(0),
            "24 of the pass's 40 are still to be written"
        );
        // Connections queued meanwhile (the queue grew to 60) do not lengthen this pass.
        assert!(passes.start_turn().is_empty());
        assert_eq!(passes.slice(60 - 16), WRITES_PER_TURN);
        passes.took(WRITES_PER_TURN);
        assert!(passes.start_turn().is_empty());
        assert_eq!(passes.slice(60 - 32), 8);
        passes.took(8);
        assert!(!passes.busy(0));
        assert!(
            passes.busy(20),
            "connections queued behind the pass keep the loop awake for the next one"
        );
        // The next pass takes what is queued then.
        passes.start_turn();
        assert_eq!(passes.slice(20), WRITES_PER_TURN);
    }

    #[test]
    fn an_idle_loop_starts_a_pass_every_turn() {
        let mut passes = Passes::default();
        for _ in 0..3 {
            passes.start_turn();
            assert_eq!(passes.slice(0), 0);
            passes.took(0);
            assert!(!passes.busy(0));
        }
    }

    #[test]
    fn the_read_budget_is_per_pass_however_many_turns_it_has() {
        let mut passes = Passes::default();
        passes.start_turn();
        passes.slice(100); // a long pass: several turns
        passes.took(WRITES_PER_TURN);
        let mut read = 0;
        for _turn in 0..5 {
            assert!(passes.start_turn().is_empty());
            let budget = passes.budget(7);
            let bytes = budget.min(100 * 1024);
            passes.charge(7, bytes);
            read += bytes;
            passes.took(WRITES_PER_TURN);
        }
        assert_eq!(
            read, READ_BUDGET_PER_PASS,
            "five turns of one pass read one budget"
        );
        assert_eq!(passes.budget(7), 0);
        assert_eq!(passes.budget(7), 0, "asking again defers it once");
        // Another connection has its own budget.
        assert_eq!(passes.budget(8), READ_BUDGET_PER_PASS);
        // The pass ends; the next one reads the deferred connection first, with a new budget.
        passes.took(100);
        assert_eq!(passes.start_turn(), vec![7]);
        assert_eq!(passes.budget(7), READ_BUDGET_PER_PASS);
        assert!(!passes.busy(0));
    }

    #[test]
    fn a_budget_used_255_passes_ago_does_not_count_in_a_pass_of_the_same_number() {
        let mut passes = Passes::default();
        passes.start_turn();
        passes.charge(3, READ_BUDGET_PER_PASS);
        assert_eq!(passes.budget(3), 0);
        // The pass numbers go round (255 of them); the entry must not come back to life.
        for _ in 0..255 {
            passes.start_turn();
            assert_eq!(passes.slice(0), 0);
        }
        assert_eq!(passes.budget(3), READ_BUDGET_PER_PASS);
        assert_eq!(passes.budget(4), READ_BUDGET_PER_PASS);
    }

    #[test]
    fn a_new_connection_on_a_reused_key_starts_with_a_whole_budget() {
        let mut passes = Passes::default();
        passes.start_turn();
        passes.charge(9, READ_BUDGET_PER_PASS);
        assert_eq!(passes.budget(9), 0);
        passes.forget(9); // closed; a new connection is accepted on key 9 in the same pass
        assert_eq!(passes.budget(9), READ_BUDGET_PER_PASS);
    }
}
