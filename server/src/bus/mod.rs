//! The bus between server processes: Redis pub/sub. What is sans-IO lives here (the RESP2
//! codec, the `redis://` address, the envelope a message travels in); the state of the links
//! is in the core (`core/bus.rs`), the sockets in the shell (`event_loop.rs`).

pub mod address;
pub mod envelope;
pub mod resp;

pub use address::RedisAddress;
pub use envelope::Envelope;
