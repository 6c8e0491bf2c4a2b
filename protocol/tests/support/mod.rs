//! What this crate's integration tests share: what a peer said, owned; a message cut into
//! fragments; varying mask keys; and the receive loop of a caller (one decoder, with an inflater
//! when permessage-deflate is negotiated) fed one read at a time, keeping only the bytes of a
//! frame cut in two, as a socket's caller does.

// Each test file is a crate of its own and uses part of this.
#![allow(dead_code)]

use protocol::deflate::Inflater;
use protocol::frame::{OpCode, Role};
use protocol::message::{Decoder, Event, Incoming};

/// The message limit of every decoder here: more than any test sends.
pub(crate) const MAX_MESSAGE: usize = 1 << 20;

/// An event, owned, so that a test can collect and compare them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Said {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>),
}

impl Said {
    pub(crate) fn from_event(event: Event<'_>) -> Said {
        match event {
            Event::Text(text) => Said::Text(text.to_owned()),
            Event::Binary(bytes) => Said::Binary(bytes.to_vec()),
            Event::Ping(bytes) => Said::Ping(bytes.to_vec()),
            Event::Pong(bytes) => Said::Pong(bytes.to_vec()),
            Event::Close(close) => Said::Close(close.code.map(|code| code.0)),
        }
    }
}

/// One frame of a message cut into fragments (RFC 6455 §5.4).
pub(crate) struct Fragment<'a> {
    pub(crate) first: bool,
    pub(crate) fin: bool,
    /// The message's opcode on the first frame, `Continuation` on the others.
    pub(crate) opcode: OpCode,
    pub(crate) payload: &'a [u8],
}

/// `payload` as a message of `opcode` cut at `cuts` (sorted positions, clamped to the payload;
/// none: one frame).
pub(crate) fn fragments<'a>(
    opcode: OpCode,
    payload: &'a [u8],
    cuts: &[usize],
) -> Vec<Fragment<'a>> {
    let mut bounds: Vec<usize> = cuts.iter().map(|&cut| cut.min(payload.len())).collect();
    bounds.push(payload.len());
    let mut start = 0;
    let mut fragments = Vec::new();
    for (index, &end) in bounds.iter().enumerate() {
        fragments.push(Fragment {
            first: index == 0,
            fin: index == bounds.len() - 1,
            opcode: if index == 0 {
                opcode
            } else {
                OpCode::Continuation
            },
            payload: &payload[start..end],
        });
        start = end;
    }
    fragments
}

/// A new mask key at each call for a client sender (RFC 6455 §5.3), none for a server.
pub(crate) fn mask_keys(sender: Role, seed: u8) -> impl FnMut() -> Option<[u8; 4]> {
    let mut counter = seed;
    move || {
        counter = counter.wrapping_add(37);
        (sender == Role::Client).then_some([counter, counter ^ 0x5a, counter.wrapping_mul(3), 0x11])
    }
}

/// The receive side of one peer.
pub(crate) struct Receiver {
    pub(crate) decoder: Decoder,
    /// Present when permessage-deflate is negotiated: compressed messages are inflated.
    inflater: Option<Inflater>,
    inflated: Vec<u8>,
    /// What the last read left: a frame cut in two.
    pending: Vec<u8>,
}

impl Receiver {
    /// Through `Decoder::decode`, with no extension.
    pub(crate) fn new(role: Role) -> Self {
        Receiver {
            decoder: Decoder::new(role, MAX_MESSAGE),
            inflater: None,
            inflated: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// Through `Decoder::decode_incoming`, permessage-deflate negotiated, one inflater.
    pub(crate) fn with_deflate(role: Role) -> Self {
        Receiver {
            decoder: Decoder::new(role, MAX_MESSAGE).with_deflate(true),
            inflater: Some(Inflater::new()),
            ..Receiver::new(role)
        }
    }

    /// Decodes one read: every event it completes, in order; keeps what is cut.
    pub(crate) fn receive(&mut self, read: &[u8]) -> Vec<Said> {
        self.pending.extend_from_slice(read);
        let mut said = Vec::new();
        let mut start = 0;
        loop {
            let bytes = &mut self.pending[start..];
            let (consumed, event) = match &mut self.inflater {
                None => self.decoder.decode(bytes).expect("valid frames"),
                Some(inflater) => {
                    let (consumed, incoming) =
                        self.decoder.decode_incoming(bytes).expect("valid frames");
                    let event = match incoming {
                        None => None,
                        Some(Incoming::Event(event)) => Some(event),
                        Some(Incoming::Compressed(message)) => Some(
                            message
                                .inflate(inflater, MAX_MESSAGE, &mut self.inflated)
                                .expect("valid compressed data"),
                        ),
                    };
                    (consumed, event)
                }
            };
            start += consumed;
            match event {
                Some(event) => said.push(Said::from_event(event)),
                None => break,
            }
        }
        self.pending.drain(..start);
        said
    }

    /// `wire` in reads of `read_size` bytes.
    pub(crate) fn receive_in_reads(&mut self, wire: &[u8], read_size: usize) -> Vec<Said> {
        let mut said = Vec::new();
        for read in wire.chunks(read_size) {
            said.extend(self.receive(read));
        }
        said
    }

    /// Bytes kept from the last read: a frame cut in two.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }
}
