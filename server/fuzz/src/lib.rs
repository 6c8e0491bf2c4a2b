//! The server core's fuzzing harness: the simulated shell of the core's tests and the
//! operation interpreter, for the fuzz targets in `fuzz_targets/`. The same two files are
//! compiled into `server/tests/core_ops.rs`, which replays the committed seeds in `cargo test`.
#![forbid(unsafe_code)]

use server::core::{
    Accepted, Config, Core, Flags, Millis, Mode, Output, Phase, RateLimit, RateLimitPolicy, SlowConsumer,
    SWEEP_EVERY, TICK,
};

#[path = "../../src/core/tests/sim.rs"]
pub mod sim;

pub mod ops;
