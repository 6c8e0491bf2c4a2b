//! The bus on virtual time, against a fake Redis: the test reads the core's commands from
//! [`Core::bus_transmit`] and answers with RESP bytes, as a Redis server would.

use std::collections::HashMap;
use std::io::IoSlice;
use std::time::Duration;

use protocol::frame::{encode_frame, OpCode};

use super::*;
use crate::bus::resp::{decode, encode_command, Decoded, Limits, Value};
use crate::core::{Accepted, Config, Core, Millis};

const NODE: u64 = 0xA1;
const OTHER_NODE: u64 = 0xB2;

/// A core with the bus on, its sockets in memory.
struct Harness {
    core: Core,
    now: Millis,
    /// Bytes each connection was sent.
    written: HashMap<usize, Vec<u8>>,
}

/// A frame the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    compressed: bool,
    opcode: u8,
    payload: Vec<u8>,
}

impl Harness {
    fn new(max_buffered_bytes: usize, login: Vec<Vec<Vec<u8>>>) -> Harness {
        let mut core = Core::new(Config::default());
        core.enable_bus(BusConfig {
            node_id: NODE,
            login,
            max_buffered_bytes,
        });
        Harness {
            core,
            now: Millis(0),
            written: HashMap::new(),
        }
    }

    /// A harness whose links are both connected and ready.
    fn connected() -> Harness {
        Harness::connected_with(1 << 20)
    }

    /// [`Harness::connected`], with at most `max_buffered_bytes` waiting for Redis.
    fn connected_with(max_buffered_bytes: usize) -> Harness {
        let mut harness = Harness::new(max_buffered_bytes, Vec::new());
        assert_eq!(
            harness.bus_outputs(),
            [
                BusOutput::Connect(Link::Publish),
                BusOutput::Connect(Link::Subscribe)
            ]
        );
        harness
            .core
            .handle_bus_connected(Link::Publish, harness.now);
        harness
            .core
            .handle_bus_connected(Link::Subscribe, harness.now);
        assert!(harness.core.bus_connected());
        harness
    }

    fn bus_outputs(&mut self) -> Vec<BusOutput> {
        std::iter::from_fn(|| self.core.poll_bus_output()).collect()
    }

    fn advance(&mut self, by: Duration) {
        self.now = self.now.after(by);
        self.core.handle_timeout(self.now);
    }

    /// A client joins `room`, with or without permessage-deflate.
    fn join(&mut self, room: &str, deflate: bool) -> usize {
        let key = self
            .core
            .handle_accept(self.now, Accepted::default())
            .expect("accepted");
        let mut request = format!(
            "GET {room} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        if deflate {
            request.push_str("Sec-WebSocket-Extensions: permessage-deflate\r\n");
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        self.core.handle_read(key, &mut bytes, 0, self.now);
        self.flush();
        let written = self.written.get_mut(&key).expect("a handshake answer");
        let end = written
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .expect("a whole head")
            + 4;
        assert!(written.starts_with(b"HTTP/1.1 101"));
        written.drain(..end);
        key
    }

    /// A client sends a text message.
    fn send_text(&mut self, key: usize, text: &str) {
        let mut bytes = Vec::new();
        encode_frame(
            &mut bytes,
            true,
            OpCode::Text,
            text.as_bytes(),
            Some([1, 2, 3, 4]),
        );
        self.core.handle_read(key, &mut bytes, 0, self.now);
        self.flush();
    }

    /// A client's socket goes away.
    fn leave(&mut self, key: usize) {
        self.core.handle_error(key);
        while self.core.poll_output().is_some() {}
    }

    fn flush(&mut self) {
        let written = &mut self.written;
        self.core.flush(|key, slices: &[IoSlice<'_>]| {
            let out = written.entry(key).or_default();
            let mut total = 0;
            for slice in slices {
                out.extend_from_slice(slice);
                total += slice.len();
            }
            Ok(total)
        });
        while self.core.poll_output().is_some() {}
    }

    /// The frames a client got since the last call.
    fn received(&mut self, key: usize) -> Vec<Sent> {
        let bytes = std::mem::take(self.written.entry(key).or_default());
        let mut frames = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let first = bytes[at];
            let (len, header) = match bytes[at + 1] & 0x7f {
                126 => (
                    usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]])),
                    4,
                ),
                127 => panic!("no test frame is that long"),
                len => (usize::from(len), 2),
            };
            frames.push(Sent {
                compressed: first & 0x40 != 0,
                opcode: first & 0x0f,
                payload: bytes[at + header..at + header + len].to_vec(),
            });
            at += header + len;
        }
        frames
    }

    fn texts(&mut self, key: usize) -> Vec<String> {
        self.received(key)
            .into_iter()
            .map(|frame| {
                assert!(!frame.compressed);
                String::from_utf8(frame.payload).unwrap()
            })
            .collect()
    }

    /// The commands the core wrote to a link since the last call, as argument lists; the
    /// fake socket takes every byte.
    fn commands(&mut self, link: Link) -> Vec<Vec<Vec<u8>>> {
        let bytes = self.core.bus_transmit(link).to_vec();
        self.core.bus_transmitted(link, bytes.len());
        let mut commands = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let Ok(Decoded::Complete(used, Value::Array(Some(parts)))) =
                decode(&bytes[at..], Limits::default())
            else {
                panic!("not a command: {:?}", String::from_utf8_lossy(&bytes[at..]));
            };
            commands.push(
                parts
                    .iter()
                    .map(|part| part.as_bytes().unwrap().to_vec())
                    .collect(),
            );
            at += used;
        }
        commands
    }

    /// Redis sends bytes on a link.
    fn redis_sends(&mut self, link: Link, bytes: &[u8]) {
        self.core.handle_bus_bytes(link, bytes, self.now);
        self.flush();
    }

    fn metrics(&self) -> BusMetrics {
        self.core.bus_metrics().unwrap().clone()
    }
}

fn command(arguments: &[&[u8]]) -> Vec<Vec<u8>> {
    arguments.iter().map(|argument| argument.to_vec()).collect()
}

/// The push Redis sends a subscriber for a `PUBLISH`.
fn message_push(room: &str, node_id: u64, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut envelope = Vec::new();
    Envelope {
        node_id,
        opcode,
        room,
        payload,
    }
    .encode(&mut envelope);
    let mut push = Vec::new();
    encode_command(&mut push, &[b"message", &channel_name(room), &envelope]);
    push
}

#[test]
fn a_rooms_first_local_member_subscribes_and_its_last_unsubscribes() {
    let mut harness = Harness::connected();
    let alice = harness.join("/rust", false);
    let bob = harness.join("/rust", false);
    let carol = harness.join("/go", false);
    assert_eq!(
        harness.commands(Link::Subscribe),
        [
            command(&[b"SUBSCRIBE", b"fanout:room:/rust"]),
            command(&[b"SUBSCRIBE", b"fanout:room:/go"]),
        ]
    );
    harness.redis_sends(Link::Subscribe, b"*3\r\n$9\r\nsubscribe\r\n$17\r\nfanout:room:/rust\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$15\r\nfanout:room:/go\r\n:2\r\n");
    assert_eq!(harness.core.bus_subscriptions(), 2);
    harness.leave(alice);
    assert!(harness.commands(Link::Subscribe).is_empty());
    harness.leave(bob);
    harness.leave(carol);
    assert_eq!(
        harness.commands(Link::Subscribe),
        [
            command(&[b"UNSUBSCRIBE", b"fanout:room:/rust"]),
            command(&[b"UNSUBSCRIBE", b"fanout:room:/go"]),
        ]
    );
    assert!(harness.commands(Link::Publish).is_empty());
}

#[test]
fn a_local_message_is_delivered_at_once_and_published_once_with_our_node_id() {
    let mut harness = Harness::connected();
    let alice = harness.join("/rust", false);
    let bob = harness.join("/rust", false);
    harness.send_text(alice, "hello");
    // Local members have it before Redis has even been written to.
    assert_eq!(harness.texts(alice), ["hello"]);
    assert_eq!(harness.texts(bob), ["hello"]);
    let published = harness.commands(Link::Publish);
    assert_eq!(published.len(), 1);
    assert_eq!(published[0][0], b"PUBLISH");
    assert_eq!(published[0][1], b"fanout:room:/rust");
    let envelope = Envelope::decode(&published[0][2]).unwrap();
    assert_eq!(
        envelope,
        Envelope {
            node_id: NODE,
            opcode: OpCode::Text,
            room: "/rust",
            payload: b"hello"
        }
    );
    assert_eq!(harness.metrics().published, 1);
    // Redis answers with the receiver count; the message is confirmed.
    harness.redis_sends(Link::Publish, b":2\r\n");
    assert_eq!(harness.metrics().not_delivered, 0);
}

#[test]
fn our_own_echo_from_the_bus_is_ignored() {
    let mut harness = Harness::connected();
    let alice = harness.join("/", false);
    harness.send_text(alice, "mine");
    assert_eq!(harness.texts(alice), ["mine"]);
    harness.redis_sends(
        Link::Subscribe,
        &message_push("/", NODE, OpCode::Text, b"mine"),
    );
    assert!(harness.texts(alice).is_empty());
    assert_eq!(harness.metrics().own_echoes, 1);
    assert_eq!(harness.metrics().received, 0);
}

#[test]
fn a_message_from_another_node_is_framed_once_and_shared_by_the_local_members() {
    let mut harness = Harness::connected();
    let plain = harness.join("/", false);
    let deflate_one = harness.join("/", true);
    let deflate_two = harness.join("/", true);
    let elsewhere = harness.join("/other", false);
    let long = "a chat message long enough to pass the compression threshold, ".repeat(4);
    let frames_before = harness.core.metrics().frames_delivered;
    harness.redis_sends(
        Link::Subscribe,
        &message_push("/", OTHER_NODE, OpCode::Text, long.as_bytes()),
    );
    assert_eq!(harness.texts(plain), std::slice::from_ref(&long));
    let one = harness.received(deflate_one);
    let two = harness.received(deflate_two);
    assert_eq!(one.len(), 1);
    assert!(one[0].compressed);
    assert!(one[0].payload.len() < long.len());
    assert_eq!(one, two);
    // One compressed frame for both deflate receivers, as in a local broadcast.
    assert_eq!(harness.core.metrics().frames_compressed, 1);
    assert_eq!(harness.core.metrics().frames_delivered - frames_before, 3);
    assert!(harness.received(elsewhere).is_empty());
    assert_eq!(harness.metrics().received, 1);
    // Nothing from the bus goes back to the bus.
    assert!(harness.commands(Link::Publish).is_empty());
}

#[test]
fn bus_bytes_cut_anywhere_deliver_the_same_messages() {
    let mut harness = Harness::connected();
    let alice = harness.join("/", false);
    let mut stream = Vec::new();
    for index in 0..3 {
        stream.extend(message_push(
            "/",
            OTHER_NODE,
            OpCode::Text,
            format!("m{index}").as_bytes(),
        ));
    }
    for byte in &stream {
        harness.redis_sends(Link::Subscribe, std::slice::from_ref(byte));
    }
    assert_eq!(harness.texts(alice), ["m0", "m1", "m2"]);
}

#[test]
fn bus_messages_that_are_not_ours_are_counted_not_delivered() {
    let mut harness = Harness::connected();
    let alice = harness.join("/", false);
    // Room inside the envelope does not match the channel.
    let mut envelope = Vec::new();
    Envelope {
        node_id: OTHER_NODE,
        opcode: OpCode::Text,
        room: "/elsewhere",
        payload: b"x",
    }
    .encode(&mut envelope);
    let mut push = Vec::new();
    encode_command(&mut push, &[b"message", b"fanout:room:/", &envelope]);
    harness.redis_sends(Link::Subscribe, &push);
    let mut push = Vec::new();
    encode_command(
        &mut push,
        &[b"message", b"fanout:room:/", b"not an envelope"],
    );
    harness.redis_sends(Link::Subscribe, &push);
    assert!(harness.texts(alice).is_empty());
    assert_eq!(harness.metrics().invalid, 2);
}

#[test]
fn while_redis_is_down_local_delivery_goes_on_and_lost_messages_are_counted() {
    let mut harness = Harness::connected();
    let alice = harness.join("/", false);
    let bob = harness.join("/", false);
    harness.send_text(alice, "in flight");
    harness.commands(Link::Publish);
    harness.core.handle_bus_down(Link::Publish, harness.now);
    harness.core.handle_bus_down(Link::Subscribe, harness.now);
    assert_eq!(
        harness.bus_outputs(),
        [
            BusOutput::Disconnect(Link::Publish),
            BusOutput::Disconnect(Link::Subscribe)
        ]
    );
    assert!(!harness.core.bus_connected());
    // The message written but never confirmed is counted as not delivered.
    assert_eq!(harness.metrics().not_delivered, 1);
    harness.send_text(alice, "during the outage");
    harness.send_text(bob, "me too");
    assert_eq!(
        harness.texts(bob),
        ["in flight", "during the outage", "me too"]
    );
    assert_eq!(harness.metrics().not_delivered, 3);
    assert_eq!(harness.metrics().published, 1);
    let rendered = {
        let mut out = String::new();
        harness.core.render_bus_metrics(&mut out);
        out
    };
    assert!(rendered.contains("ws_bus_connected 0\n"));
    assert!(rendered.contains("ws_bus_not_delivered_total 3\n"));
}

#[test]
fn after_a_reconnect_every_room_with_local_members_is_subscribed_again() {
    let mut harness = Harness::connected();
    let rooms = ["/a", "/b", "/c"];
    let members: Vec<usize> = rooms.iter().map(|room| harness.join(room, false)).collect();
    harness.commands(Link::Subscribe);
    harness.core.handle_bus_down(Link::Subscribe, harness.now);
    harness.bus_outputs();
    // A room emptied and one created during the outage.
    harness.leave(members[1]);
    let late = harness.join("/d", false);
    harness.advance(BACKOFF_CAP);
    assert_eq!(harness.bus_outputs(), [BusOutput::Connect(Link::Subscribe)]);
    harness
        .core
        .handle_bus_connected(Link::Subscribe, harness.now);
    let commands = harness.commands(Link::Subscribe);
    assert_eq!(commands.len(), 1);
    let mut channels: Vec<Vec<u8>> = commands[0][1..].to_vec();
    channels.sort();
    assert_eq!(commands[0][0], b"SUBSCRIBE");
    assert_eq!(
        channels,
        [
            b"fanout:room:/a".to_vec(),
            b"fanout:room:/c".to_vec(),
            b"fanout:room:/d".to_vec()
        ]
    );
    assert_eq!(harness.metrics().reconnects, 1);
    harness.redis_sends(
        Link::Subscribe,
        &message_push("/d", OTHER_NODE, OpCode::Text, b"back"),
    );
    assert_eq!(harness.texts(late), ["back"]);
}

#[test]
fn failed_attempts_back_off_with_jitter_up_to_the_cap() {
    let mut harness = Harness::new(1 << 20, Vec::new());
    harness.bus_outputs();
    harness
        .core
        .handle_bus_connected(Link::Subscribe, harness.now);
    let mut waits = Vec::new();
    for _ in 0..10 {
        harness.core.handle_bus_down(Link::Publish, harness.now);
        assert_eq!(
            harness.bus_outputs(),
            [BusOutput::Disconnect(Link::Publish)]
        );
        let failed_at = harness.now;
        // Step through virtual time, 10 ms at a time, until the retry is asked for.
        loop {
            harness.advance(Duration::from_millis(10));
            let outputs = harness.bus_outputs();
            if outputs.contains(&BusOutput::Connect(Link::Publish)) {
                break;
            }
            assert!(harness.now.0 - failed_at.0 <= BACKOFF_CAP.as_millis() as u64 + 10);
        }
        waits.push(harness.now.0 - failed_at.0);
    }
    // Between half and all of a backoff that doubles from 100 ms, never past the cap.
    let mut backoff = BACKOFF_START.as_millis() as u64;
    for &wait in &waits {
        assert!(wait >= backoff / 2 && wait <= backoff + 10, "{waits:?}");
        backoff = (backoff * 2).min(BACKOFF_CAP.as_millis() as u64);
    }
    assert!(waits[9] >= BACKOFF_CAP.as_millis() as u64 / 2);
    assert_eq!(harness.metrics().connect_failures, 10);
}

#[test]
fn a_connect_that_never_completes_times_out_and_is_retried() {
    let mut harness = Harness::new(1 << 20, Vec::new());
    harness.bus_outputs();
    harness.advance(CONNECT_TIMEOUT);
    assert_eq!(
        harness.bus_outputs(),
        [
            BusOutput::Disconnect(Link::Publish),
            BusOutput::Disconnect(Link::Subscribe)
        ]
    );
    assert!(harness.core.poll_timeout() <= harness.now.after(BACKOFF_START));
}

#[test]
fn a_full_buffer_to_redis_drops_messages_and_counts_them() {
    let mut harness = Harness::connected_with(200);
    let alice = harness.join("/", false);
    // Redis reads nothing: the buffer fills.
    for index in 0..10 {
        harness.send_text(alice, &format!("message {index:02} with some length"));
    }
    assert_eq!(harness.texts(alice).len(), 10);
    let metrics = harness.metrics();
    assert!(metrics.dropped > 0);
    assert_eq!(metrics.published + metrics.dropped, 10);
    assert!(harness.core.bus_transmit(Link::Publish).len() <= 200);
    // Once Redis reads, there is room again.
    harness.commands(Link::Publish);
    harness.send_text(alice, "after");
    assert_eq!(harness.metrics().dropped, metrics.dropped);
}

#[test]
fn login_sends_auth_and_select_first_and_a_refusal_fails_the_link() {
    let login = vec![command(&[b"AUTH", b"secret"]), command(&[b"SELECT", b"2"])];
    let mut harness = Harness::new(1 << 20, login.clone());
    harness.bus_outputs();
    let alice = harness.join("/", false);
    harness
        .core
        .handle_bus_connected(Link::Subscribe, harness.now);
    let commands = harness.commands(Link::Subscribe);
    assert_eq!(commands[..2], login[..]);
    assert_eq!(commands[2], command(&[b"SUBSCRIBE", b"fanout:room:/"]));
    assert!(!harness.core.bus_connected());
    harness.redis_sends(Link::Subscribe, b"+OK\r\n+OK\r\n");
    harness
        .core
        .handle_bus_connected(Link::Publish, harness.now);
    harness.redis_sends(Link::Publish, b"+OK\r\n+OK\r\n");
    assert!(harness.core.bus_connected());
    harness.core.handle_bus_down(Link::Publish, harness.now);
    harness.advance(BACKOFF_START);
    harness.bus_outputs();
    harness
        .core
        .handle_bus_connected(Link::Publish, harness.now);
    harness.redis_sends(
        Link::Publish,
        b"-WRONGPASS invalid username-password pair\r\n",
    );
    assert_eq!(
        harness.bus_outputs(),
        [BusOutput::Disconnect(Link::Publish)]
    );
    assert!(!harness.core.bus_connected());
    harness.send_text(alice, "local only");
    assert_eq!(harness.texts(alice), ["local only"]);
}
