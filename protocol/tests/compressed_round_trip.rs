//! Property: with permessage-deflate negotiated, any sequence of messages, each compressed or
//! not, its compressed payload fragmented in any way with pings between the fragments,
//! encodes and decodes back to itself in both roles, whatever the reads, through one shared
//! inflater and whatever window the deflater was given.

use proptest::prelude::*;
use protocol::deflate::{Deflater, Inflater};
use protocol::frame::{encode_frame, encode_header_with_rsv1, OpCode, Role, MAX_HEADER_LEN};
use protocol::mask::apply_mask;
use protocol::message::{Decoder, Event, Incoming};

#[derive(Debug, Clone, PartialEq)]
enum Said {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Message {
    said: Said,
    compressed: bool,
    /// Where the (compressed) payload is cut into fragments.
    cuts: Vec<usize>,
}

fn text() -> impl Strategy<Value = String> {
    // Repetitive JSON-like text compresses; arbitrary text mostly does not: both matter.
    prop_oneof![
        ".{0,200}",
        (0usize..40, "[a-z]{1,8}").prop_map(|(count, word)| {
            (0..count)
                .map(|i| format!("{{\"user\":\"{word}\",\"seq\":{i}}}"))
                .collect::<String>()
        }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let said = prop_oneof![
        text().prop_map(Said::Text),
        proptest::collection::vec(any::<u8>(), 0..400).prop_map(Said::Binary),
        proptest::collection::vec(0u8..4, 0..2000).prop_map(Said::Binary),
        proptest::collection::vec(any::<u8>(), 0..125).prop_map(Said::Ping),
    ];
    (
        said,
        any::<bool>(),
        proptest::collection::vec(0usize..600, 0..4),
    )
        .prop_map(|(said, compressed, mut cuts)| {
            cuts.sort_unstable();
            Message {
                said,
                compressed,
                cuts,
            }
        })
}

fn frame(
    wire: &mut Vec<u8>,
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let mut header = [0u8; MAX_HEADER_LEN];
    let len = encode_header_with_rsv1(&mut header, fin, rsv1, opcode, payload.len() as u64, mask);
    wire.extend_from_slice(&header[..len]);
    let start = wire.len();
    wire.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut wire[start..], key, 0);
    }
}

fn encode(messages: &[Message], sender: Role, deflater: &mut Deflater) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut counter = 0u8;
    let mut mask = || {
        counter = counter.wrapping_add(41);
        (sender == Role::Client).then_some([counter, !counter, counter ^ 0x33, 7])
    };
    for message in messages {
        let (opcode, data): (OpCode, &[u8]) = match &message.said {
            Said::Text(text) => (OpCode::Text, text.as_bytes()),
            Said::Binary(bytes) => (OpCode::Binary, bytes),
            Said::Ping(bytes) => {
                encode_frame(&mut wire, true, OpCode::Ping, bytes, mask());
                continue;
            }
        };
        let mut compressed = Vec::new();
        let payload = if message.compressed {
            deflater.compress(data, &mut compressed);
            &compressed[..]
        } else {
            data
        };
        let mut bounds: Vec<usize> = message
            .cuts
            .iter()
            .map(|&cut| cut.min(payload.len()))
            .collect();
        bounds.push(payload.len());
        let mut start = 0;
        for (index, &end) in bounds.iter().enumerate() {
            let first = index == 0;
            let fin = index == bounds.len() - 1;
            let frame_opcode = if first { opcode } else { OpCode::Continuation };
            let rsv1 = first && message.compressed;
            frame(
                &mut wire,
                fin,
                rsv1,
                frame_opcode,
                &payload[start..end],
                mask(),
            );
            if first && !fin {
                encode_frame(&mut wire, true, OpCode::Ping, b"between", mask());
            }
            start = end;
        }
    }
    wire
}

fn decode(wire: &[u8], receiver: Role, read_size: usize) -> Vec<Said> {
    let mut decoder = Decoder::new(receiver, 1 << 20).with_deflate(true);
    let mut inflater = Inflater::new();
    let mut inflated = Vec::new();
    let mut said = Vec::new();
    let mut pending = Vec::new();
    for read in wire.chunks(read_size) {
        pending.extend_from_slice(read);
        let mut start = 0;
        loop {
            let (consumed, incoming) = decoder
                .decode_incoming(&mut pending[start..])
                .expect("valid frames");
            start += consumed;
            let event = match incoming {
                None => break,
                Some(Incoming::Event(event)) => event,
                Some(Incoming::Compressed(message)) => message
                    .inflate(&mut inflater, 1 << 20, &mut inflated)
                    .expect("valid compressed data"),
            };
            said.push(match event {
                Event::Text(text) => Said::Text(text.to_owned()),
                Event::Binary(bytes) => Said::Binary(bytes.to_vec()),
                Event::Ping(bytes) if bytes == b"between" => continue,
                Event::Ping(bytes) => Said::Ping(bytes.to_vec()),
                other => panic!("unexpected {other:?}"),
            });
        }
        pending.drain(..start);
    }
    said
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn compressed_messages_round_trip_in_both_roles(
        messages in proptest::collection::vec(message(), 0..8),
        window_bits in 8u8..=15,
        level in 0u32..=9,
        read_size in 1usize..700,
        client_sends in any::<bool>(),
    ) {
        let (sender, receiver) = if client_sends {
            (Role::Client, Role::Server)
        } else {
            (Role::Server, Role::Client)
        };
        let mut deflater = Deflater::with_level(window_bits, level);
        let wire = encode(&messages, sender, &mut deflater);
        let expected: Vec<Said> = messages.iter().map(|message| message.said.clone()).collect();
        prop_assert_eq!(decode(&wire, receiver, read_size), expected);
    }
}
