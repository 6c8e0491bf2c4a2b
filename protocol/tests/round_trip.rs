//! Property: any sequence of messages, fragmented in any way, with control frames mixed in
//! between fragments, encodes and decodes back to itself in both roles, whatever the reads.

use proptest::prelude::*;
use protocol::frame::{encode_frame, OpCode, Role};
use protocol::message::{Decoder, Event};

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Plan {
    item: Item,
    /// Where the data message is cut into fragments (sorted positions).
    cuts: Vec<usize>,
    /// Pings inserted after the first fragment.
    interleaved_pings: Vec<Vec<u8>>,
}

fn plan() -> impl Strategy<Value = Plan> {
    let item = prop_oneof![
        ".{0,40}".prop_map(Item::Text),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Item::Binary),
        proptest::collection::vec(any::<u8>(), 0..125).prop_map(Item::Ping),
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
    let mut counter = mask_seed;
    let mut mask = || {
        counter = counter.wrapping_add(37);
        match sender {
            Role::Client => Some([counter, counter ^ 0x5a, counter.wrapping_mul(3), 0x11]),
            Role::Server => None,
        }
    };
    for plan in plans {
        let (opcode, payload): (OpCode, &[u8]) = match &plan.item {
            Item::Text(text) => (OpCode::Text, text.as_bytes()),
            Item::Binary(bytes) => (OpCode::Binary, bytes),
            Item::Ping(bytes) => {
                encode_frame(&mut wire, true, OpCode::Ping, bytes, mask());
                continue;
            }
        };
        let mut bounds: Vec<usize> = plan
            .cuts
            .iter()
            .map(|&cut| cut.min(payload.len()))
            .collect();
        bounds.push(payload.len());
        let mut start = 0;
        for (index, &end) in bounds.iter().enumerate() {
            let fin = index == bounds.len() - 1;
            let frame_opcode = if index == 0 {
                opcode
            } else {
                OpCode::Continuation
            };
            encode_frame(&mut wire, fin, frame_opcode, &payload[start..end], mask());
            if index == 0 && !fin {
                for ping in &plan.interleaved_pings {
                    encode_frame(&mut wire, true, OpCode::Ping, ping, mask());
                }
            }
            start = end;
        }
    }
    wire
}

fn expected(plans: &[Plan]) -> Vec<Item> {
    let mut items = Vec::new();
    for plan in plans {
        match &plan.item {
            Item::Ping(_) => items.push(plan.item.clone()),
            data => {
                // Pings interleaved between fragments arrive before the message completes.
                let fragmented = !plan.cuts.is_empty();
                if fragmented {
                    items.extend(plan.interleaved_pings.iter().cloned().map(Item::Ping));
                }
                items.push(data.clone());
            }
        }
    }
    items
}

fn decode(wire: &[u8], receiver: Role, read_size: usize) -> Vec<Item> {
    let mut decoder = Decoder::new(receiver, 1 << 20);
    let mut items = Vec::new();
    let mut pending = Vec::new();
    for read in wire.chunks(read_size) {
        pending.extend_from_slice(read);
        let mut start = 0;
        loop {
            let (consumed, event) = decoder.decode(&mut pending[start..]).expect("valid frames");
            start += consumed;
            match event {
                Some(Event::Text(text)) => items.push(Item::Text(text.to_owned())),
                Some(Event::Binary(bytes)) => items.push(Item::Binary(bytes.to_vec())),
                Some(Event::Ping(bytes)) => items.push(Item::Ping(bytes.to_vec())),
                Some(other) => panic!("unexpected {other:?}"),
                None => break,
            }
        }
        pending.drain(..start);
    }
    assert!(pending.is_empty(), "bytes left over");
    items
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
