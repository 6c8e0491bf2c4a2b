//! `server`: a single-threaded WebSocket chat server, as a library so that tests and fuzzing
//! reach its socket-free [`core`]. The binary (`main.rs`) parses the command line and runs the
//! [`event_loop`], the thin mio shell around the core.
#![forbid(unsafe_code)]

pub mod bus;
pub mod cli;
pub mod core;
pub mod event_loop;
pub mod logging;
pub mod pacing;
pub mod page;
pub mod process;
pub mod redis_link;
pub mod tls;
