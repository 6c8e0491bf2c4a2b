//! Well-behaved clients that keep chatting through a server while a test does something
//! hostile to it: a case passes only if they lose nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{Client, ClientStream, Received, WAIT};

/// Clients in one room (plain or TLS): the first sends a numbered message every 10 ms, and
/// every one of them checks that each number arrives, in order. Stopped with
/// [`Chatters::finish`].
pub struct Chatters {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    handle: JoinHandle<ChatReport>,
}

/// What the chatters saw.
#[derive(Debug)]
pub struct ChatReport {
    /// Messages sent (each one received by every chatter unless `problems` says otherwise).
    pub sent: u64,
    /// What went wrong: the first message missing, out of order or wrong. Empty when none.
    pub problems: Vec<String>,
    /// The longest a message took to reach all of them.
    pub worst_latency: Duration,
}

impl Chatters {
    /// Starts chatting between `clients` (all joined to the same room) on a thread of theirs.
    pub fn start<S: ClientStream + Send + 'static>(mut clients: Vec<Client<S>>) -> Chatters {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (flag, counter) = (stop.clone(), sent.clone());
        let handle = std::thread::spawn(move || {
            let mut report = ChatReport {
                sent: 0,
                problems: Vec::new(),
                worst_latency: Duration::ZERO,
            };
            while !flag.load(Ordering::Relaxed) {
                let text = format!("chat {}", report.sent);
                let sent_at = Instant::now();
                clients[0].send_text(&text);
                report.sent += 1;
                for (index, client) in clients.iter_mut().enumerate() {
                    match client.recv_message() {
                        Received::Text(got) if got == text => {}
                        other => {
                            report
                                .problems
                                .push(format!("chatter {index} expected {text:?}, got {other:?}"));
                            return report;
                        }
                    }
                }
                report.worst_latency = report.worst_latency.max(sent_at.elapsed());
                counter.store(report.sent, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
            report
        });
        Chatters { stop, sent, handle }
    }

    /// Lets them exchange 20 messages (or stop trying after [`WAIT`]), stops them, and asserts
    /// that nothing was lost and that at least `at_least` messages went round.
    pub fn finish(self, at_least: u64) -> ChatReport {
        let deadline = Instant::now() + WAIT;
        while self.sent.load(Ordering::Relaxed) < 20
            && Instant::now() < deadline
            && !self.handle.is_finished()
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop.store(true, Ordering::Relaxed);
        let report = self.handle.join().expect("the chatters' thread");
        assert!(
            report.problems.is_empty(),
            "well-behaved clients lost messages: {:?}",
            report.problems
        );
        assert!(
            report.sent >= at_least,
            "the chatters hardly chatted (fewer than {at_least}): {report:?}"
        );
        report
    }
}
