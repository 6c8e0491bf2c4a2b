//! Issue 10's acceptance for fairness, over real sockets: 1,000 chatters in one room (driven
//! by `loadgen fanout`: 10 senders, 100 messages/s in all, 8 s) while one more client floods
//! the same room with 64-byte messages as fast as its socket takes them, for 5 s. The chatters
//! lose nothing and none is disconnected; the flooder is closed with 1008 (rate limit) or,
//! under `--rate-limit drop`, kept and its excess counted.
//!
//! Latency is not asserted here (that is the bench's business), but the chatters' p99 with
//! and without the flooder is printed on stderr (`cargo test -- --nocapture` shows it).

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use integration_tests::{binary, wait_until, Client, Received, Server};
use protocol::frame::{encode_frame, OpCode};
use serde_json::Value;

/// The runs here load both cores: one at a time, even when the test harness runs tests in
/// parallel.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const CHATTERS: u64 = 1000;
const FLOOD_FOR: Duration = Duration::from_secs(5);

/// A `loadgen fanout` run in progress.
struct Chatters {
    child: Child,
    json_path: std::path::PathBuf,
}

impl Chatters {
    fn start(server: &Server) -> Chatters {
        let json_path = std::env::temp_dir().join(format!(
            "flood-chatters-{}-{}.json",
            std::process::id(),
            server.address.port()
        ));
        let child = Command::new(binary("loadgen"))
            .args([
                "fanout",
                "--url",
                &format!("ws://{}/flood", server.address),
                "--clients",
                &CHATTERS.to_string(),
                "--senders",
                "10",
                "--rate",
                "100",
                "--duration",
                "8s",
                "--quiet",
                "--json",
                json_path.to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("loadgen runs");
        Chatters { child, json_path }
    }

    /// Waits for the run to end; asserts the chatters lost nothing and none was disconnected;
    /// returns their delivery p99 in microseconds.
    fn finish(self, what: &str) -> u64 {
        let output = self.child.wait_with_output().expect("loadgen ends");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{what}: loadgen failed: {stderr}");
        let json: Value = serde_json::from_str(
            &std::fs::read_to_string(&self.json_path).expect("loadgen wrote its JSON"),
        )
        .unwrap();
        let _ = std::fs::remove_file(&self.json_path);
        let number = |section: &str, field: &str| {
            json[section][field]
                .as_u64()
                .unwrap_or_else(|| panic!("{section}.{field} missing in {json:#}"))
        };
        assert_eq!(number("connections", "ok"), CHATTERS, "{what}");
        assert_eq!(number("connections", "open_at_end"), CHATTERS, "{what}");
        assert_eq!(
            json["connections"]["lost_while_open"],
            serde_json::json!({}),
            "{what}: chatters were disconnected"
        );
        assert_eq!(
            json["connections"]["close_codes"],
            serde_json::json!({}),
            "{what}: chatters were closed"
        );
        assert_eq!(number("messages", "sent"), 800, "{what}");
        let expected = number("deliveries", "expected");
        assert_eq!(expected, 800 * CHATTERS, "{what}");
        assert_eq!(number("deliveries", "lost"), 0, "{what}");
        assert_eq!(number("deliveries", "received"), expected, "{what}");
        assert_eq!(number("deliveries", "duplicated"), 0, "{what}");
        assert_eq!(number("deliveries", "out_of_order"), 0, "{what}");
        number("delivery_latency_us", "p99")
    }
}

/// A close frame's code and reason, and when it came (after the flood began).
type CloseFrame = (Option<u16>, String, Duration);

/// What the flooder saw.
#[derive(Debug)]
struct FloodReport {
    frames_written: u64,
    /// The close frame it got, if any.
    close: Option<CloseFrame>,
    /// Whether the server ended the TCP connection.
    ended: bool,
}

/// One client in the room writing masked 64-byte text messages as fast as its socket takes
/// them for [`FLOOD_FOR`], and reading (and throwing away) whatever comes back until told to
/// stop.
struct Flooder {
    stop_reading: Arc<AtomicBool>,
    writer: JoinHandle<u64>,
    reader: JoinHandle<(Option<CloseFrame>, bool)>,
}

impl Flooder {
    fn start(server: &Server) -> Flooder {
        let mut client = Client::connect(server.address, "/flood");
        let mut socket = client.stream.try_clone().unwrap();
        let closed = Arc::new(AtomicBool::new(false));
        let stop_reading = Arc::new(AtomicBool::new(false));
        let writer = {
            let closed = closed.clone();
            std::thread::spawn(move || {
                let mut burst = Vec::new();
                for index in 0..256u32 {
                    let payload = format!("{:064}", index);
                    encode_frame(
                        &mut burst,
                        true,
                        OpCode::Text,
                        payload.as_bytes(),
                        Some(index.to_le_bytes()),
                    );
                }
                let until = Instant::now() + FLOOD_FOR;
                let mut written = 0u64;
                while Instant::now() < until
                    && !closed.load(Ordering::Relaxed)
                    && socket.write_all(&burst).is_ok()
                {
                    written += 256;
                }
                written
            })
        };
        let began = Instant::now();
        let reader = {
            let stop = stop_reading.clone();
            std::thread::spawn(move || {
                let mut close = None;
                while !stop.load(Ordering::Relaxed) {
                    match client.recv_timeout(Duration::from_millis(100)) {
                        Some(Received::Close(code, reason)) => {
                            closed.store(true, Ordering::Relaxed);
                            close = Some((code, reason, began.elapsed()));
                        }
                        Some(Received::Eof) => return (close, true),
                        _ => {}
                    }
                }
                (close, false)
            })
        };
        Flooder {
            stop_reading,
            writer,
            reader,
        }
    }

    fn finish(self) -> FloodReport {
        let frames_written = self.writer.join().expect("the flooder's writer");
        self.stop_reading.store(true, Ordering::Relaxed);
        let (close, ended) = self.reader.join().expect("the flooder's reader");
        FloodReport {
            frames_written,
            close,
            ended,
        }
    }
}

/// Runs the chatters and, once all of them are in the room, the flooder beside them. Returns
/// the chatters' p99 and the flooder, still reading (what the server says to it is not over
/// until the caller has looked).
fn chatters_beside_a_flooder(server: &Server, what: &str) -> (u64, Flooder) {
    let chatters = Chatters::start(server);
    wait_until("the chatters are in the room", || {
        server.metric("ws_connections") >= CHATTERS as f64
    });
    let flooder = Flooder::start(server);
    let p99 = chatters.finish(what);
    (p99, flooder)
}

#[test]
fn a_flooder_is_closed_for_its_rate_while_1000_chatters_lose_nothing() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let server = Server::start(&[]);
    let baseline_p99 = Chatters::start(&server).finish("without the flooder");

    let (flood_p99, flooder) = chatters_beside_a_flooder(&server, "beside the flooder");
    let report = flooder.finish();
    eprintln!(
        "flood acceptance (--rate-limit close): chatters' delivery p99 {baseline_p99} µs without the flooder, {flood_p99} µs with it; the flooder wrote {} frames and got {:?}",
        report.frames_written, report.close
    );
    match &report.close {
        Some((Some(1008), reason, _)) => assert!(reason.contains("rate limit"), "{reason}"),
        other => panic!("the flooder was not closed with 1008: {other:?} ({report:?})"),
    }
    assert_eq!(server.metric("ws_rate_limited_closes_total"), 1.0);
    assert_eq!(server.metric("ws_slow_consumer_closes_total"), 0.0);
}

#[test]
fn under_rate_limit_drop_a_flooder_stays_connected_and_its_excess_is_counted() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let server = Server::start(&["--rate-limit", "drop"]);
    let (flood_p99, flooder) = chatters_beside_a_flooder(&server, "beside the flooder (drop)");
    // The chatters have left; the flooder, done flooding, is still there.
    wait_until("only the flooder is left", || {
        server.metric("ws_connections") == 1.0
    });
    let report = flooder.finish();
    let dropped = server.metric("ws_rate_limited_messages_dropped_total");
    eprintln!(
        "flood acceptance (--rate-limit drop): chatters' delivery p99 {flood_p99} µs with the flooder; the flooder wrote {} frames, {dropped} were dropped",
        report.frames_written
    );
    assert!(
        report.close.is_none() && !report.ended,
        "the flooder was closed: {report:?}"
    );
    assert!(dropped > 0.0);
    assert_eq!(server.metric("ws_rate_limited_closes_total"), 0.0);
    assert_eq!(server.metric("ws_slow_consumer_closes_total"), 0.0);
}
