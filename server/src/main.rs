//! `server`: a single-threaded WebSocket chat server. See `event_loop.rs` for the data path.
#![forbid(unsafe_code)]

mod cli;
mod connection;
mod event_loop;
mod metrics;
mod page;
mod room;
mod write_queue;

use std::process::ExitCode;

use clap::Parser;
use log::{error, info};

use crate::cli::Args;
use crate::event_loop::EventLoop;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // clap prints a usage message and exits with code 2 on a bad command line.
    let args = Args::parse();
    let summary = format!(
        "mode {:?}, max message {} B, max queued {} B per client ({:?} when full), max connections {}, ping every {:?}, idle timeout {:?}, handshake timeout {:?}",
        args.mode,
        args.max_message_size,
        args.max_queued_bytes,
        args.slow_consumer,
        args.max_connections,
        args.ping_interval,
        args.idle_timeout,
        args.handshake_timeout,
    );
    let listen = args.listen;
    let event_loop = match EventLoop::bind(args) {
        Ok(event_loop) => event_loop,
        Err(error) => {
            error!("cannot listen on {listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    match event_loop.local_addr() {
        Ok(address) => info!("listening on ws://{address}/ ({summary})"),
        Err(error) => error!("listening, but the address is unknown: {error}"),
    }
    match event_loop.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error!("event loop failed: {error}");
            ExitCode::FAILURE
        }
    }
}
