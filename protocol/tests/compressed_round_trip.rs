//! Property: with permessage-deflate negotiated, any sequence of messages, each compressed or
//! not, its compressed payload fragmented in any way with pings between the fragments,
//! encodes and decodes back to itself in both roles, whatever the reads, through one shared
//! inflater and whatever window the deflater was given.

mod support;

use proptest::prelude::*;
use protocol::deflate::Deflater;
use protocol::frame::{encode_frame, encode_frame_with_rsv1, OpCode, Role};
use support::{fragments, mask_keys, Receiver, Said};

#[derive(Debug, Clone)]
struct Message {
    /// A text, a binary or a ping.
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

fn encode(messages: &[Message], sender: Role, deflater: &mut Deflater) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut mask = mask_keys(sender, 0);
    for message in messages {
        let (opcode, data): (OpCode, &[u8]) = match &message.said {
            Said::Text(text) => (OpCode::Text, text.as_bytes()),
            Said::Binary(bytes) => (OpCode::Binary, bytes),
            Said::Ping(bytes) => {
                encode_frame(&mut wire, true, OpCode::Ping, bytes, mask());
                continue;
            }
            other => unreachable!("messages hold no {other:?}"),
        };
        let mut compressed = Vec::new();
        let payload = if message.compressed {
            deflater.compress(data, &mut compressed);
            &compressed[..]
        } else {
            data
        };
        for fragment in fragments(opcode, payload, &message.cuts) {
            let (fin, opcode) = (fragment.fin, fragment.opcode);
            let rsv1 = fragment.first && message.compressed;
            encode_frame_with_rsv1(&mut wire, fin, rsv1, opcode, fragment.payload, mask());
            if fragment.first && !fin {
                encode_frame(&mut wire, true, OpCode::Ping, b"between", mask());
            }
        }
    }
    wire
}

fn decode(wire: &[u8], receiver: Role, read_size: usize) -> Vec<Said> {
    let mut said = Receiver::with_deflate(receiver).receive_in_reads(wire, read_size);
    said.retain(|said| *said != Said::Ping(b"between".to_vec()));
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
