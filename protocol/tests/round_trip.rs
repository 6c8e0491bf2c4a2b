//! Property: any sequence of messages, fragmented in any way, with control frames mixed in
//! between fragments, encodes and decodes back to itself in both roles, whatever the reads.

mod support;

use proptest::prelude::*;
use protocol::frame::{encode_frame, OpCode, Role};
use support::{fragments, mask_keys, Receiver, Said};

#[derive(Debug, Clone)]
struct Plan {
    /// A text, a binary or a ping.
    item: Said,
    /// Where the data message is cut into fragments (sorted positions).
    cuts: Vec<usize>,
    /// Pings inserted after the first fragment.
    interleaved_pings: Vec<Vec<u8>>,
}

fn plan() -> impl Strategy<Value = Plan> {
    let item = prop_oneof![
        ".{0,40}".prop_map(Said::Text),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Said::Binary),
        proptest::collection::vec(any::<u8>(), 0..125).prop_map(Said::Ping),
    ];
    (
        item,
        proptest::collection::vec(0usize..300, 0..4),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..2),
    )
        .prop_map(|(item, mut cuts, interleaved_pings)| {
            cuts.sort_unstable();
            Plan {
                item,
                cuts,
                interleaved_pings,
            }
        })
}

fn encode(plans: &[Plan], sender: Role, mask_seed: u8) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut mask = mask_keys(sender, mask_seed);
    for plan in plans {
        let (opcode, payload): (OpCode, &[u8]) = match &plan.item {
            Said::Text(text) => (OpCode::Text, text.as_bytes()),
            Said::Binary(bytes) => (OpCode::Binary, bytes),
            Said::Ping(bytes) => {
                encode_frame(&mut wire, true, OpCode::Ping, bytes, mask());
                continue;
            }
            other => unreachable!("plans hold no {other:?}"),
        };
        for fragment in fragments(opcode, payload, &plan.cuts) {
            let (fin, opcode) = (fragment.fin, fragment.opcode);
            encode_frame(&mut wire, fin, opcode, fragment.payload, mask());
            if fragment.first && !fin {
                for ping in &plan.interleaved_pings {
                    encode_frame(&mut wire, true, OpCode::Ping, ping, mask());
                }
            }
        }
    }
    wire
}

fn expected(plans: &[Plan]) -> Vec<Said> {
    let mut items = Vec::new();
    for plan in plans {
        match &plan.item {
            Said::Ping(_) => items.push(plan.item.clone()),
            data => {
                // Pings interleaved between fragments arrive before the message completes.
                let fragmented = !plan.cuts.is_empty();
                if fragmented {
                    items.extend(plan.interleaved_pings.iter().cloned().map(Said::Ping));
                }
                items.push(data.clone());
            }
        }
    }
    items
}

fn decode(wire: &[u8], receiver: Role, read_size: usize) -> Vec<Said> {
    let mut receiver = Receiver::new(receiver);
    let said = receiver.receive_in_reads(wire, read_size);
    assert_eq!(receiver.pending_len(), 0, "bytes left over");
    said
}

proptest! {
    #[test]
    fn any_fragmented_conversation_round_trips_in_both_roles(
        plans in proptest::collection::vec(plan(), 0..6),
        read_size in 1usize..200,
        mask_seed in any::<u8>(),
    ) {
        let expected = expected(&plans);
        for (sender, receiver) in [(Role::Client, Role::Server), (Role::Server, Role::Client)] {
            let wire = encode(&plans, sender, mask_seed);
            prop_assert_eq!(&decode(&wire, receiver, read_size), &expected);
        }
    }
}
