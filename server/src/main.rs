//! `server`: a single-threaded WebSocket chat server. See `core/mod.rs` for the state and the
//! policies, `event_loop.rs` for the system calls.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use log::{error, info, warn};

use server::cli::{Args, MetricsListen};
use server::core::{BusConfig, Core, Mode, RateLimitPolicy, SlowConsumer};
use server::event_loop::{EventLoop, ShellConfig};
use server::tls::TlsAcceptor;
use server::{logging, process};

fn main() -> ExitCode {
    process::mark_start();
    // clap prints a usage message and exits with code 2 on a bad command line.
    let args = Args::parse();
    logging::init(args.log_format);

    match process::raise_open_files_limit() {
        Ok(limit) => {
            // Each WebSocket is one descriptor; the listeners, the poller and the signal pipe
            // take a few more.
            let room_for = (limit as usize).saturating_sub(16);
            if args.max_connections + args.max_handshakes as usize > room_for {
                warn!(
                    "--max-connections {} (plus --max-handshakes {}) is more than this process can open: the open-files limit is {limit}; past it, accepting pauses",
                    args.max_connections, args.max_handshakes
                );
            }
        }
        Err(error) => warn!("cannot read or raise the open-files limit: {error}"),
    }

    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => match TlsAcceptor::load(cert, key) {
            Ok(acceptor) => Some(acceptor),
            Err(error) => {
                // The same exit code as any other bad command line.
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    let redis = args.redis_address();
    let redis_socket = match &redis {
        Some(address) => match resolve_redis(address) {
            Ok(socket) => Some(socket),
            Err(error) => {
                eprintln!("error: --redis {address}: {error}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let shell = ShellConfig {
        listen: args.listen,
        metrics_listen: match args.metrics_listen {
            Some(MetricsListen::At(address)) => Some(address),
            Some(MetricsListen::Off) | None => None,
        },
        trusted_proxies: args.trusted_proxy.clone(),
        tls,
        redis: redis_socket,
        reuse_port: args.reuse_port,
    };
    let config = args.core_config();
    let mut core = Core::new(config);
    if let Some(address) = &redis {
        let node_id = args.node_id.unwrap_or_else(random_node_id);
        info!(
            "bus: redis at {address} ({}), node id {node_id:016x}; rooms are shared with every process on it",
            redis_socket.map_or(String::new(), |socket| socket.to_string())
        );
        core.enable_bus(BusConfig {
            node_id,
            login: address.login_commands(),
            max_buffered_bytes: args.redis_buffer,
        });
    }
    let event_loop = match EventLoop::bind(shell, core) {
        Ok(event_loop) => event_loop,
        Err(error) => {
            error!("cannot listen on {}: {error}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    match event_loop.local_addr() {
        Ok(address) => {
            let scheme = if event_loop.is_tls() { "wss" } else { "ws" };
            info!("listening on {scheme}://{address}/ {}", summary(&args));
        }
        Err(error) => error!("listening, but the address is unknown: {error}"),
    }
    match (event_loop.metrics_addr(), args.metrics_listen) {
        (Some(address), _) => info!("metrics on http://{address}/metrics"),
        (None, Some(MetricsListen::Off)) => info!("metrics off"),
        _ => {}
    }
    match event_loop.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error!("event loop failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The Redis host's address, resolved once at start (IPv4 first).
fn resolve_redis(address: &server::bus::RedisAddress) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let resolved: Vec<std::net::SocketAddr> = (address.host.as_str(), address.port)
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve {}: {error}", address.host))?
        .collect();
    resolved
        .iter()
        .find(|socket| socket.is_ipv4())
        .or(resolved.first())
        .copied()
        .ok_or_else(|| format!("{} resolves to no address", address.host))
}

/// A random node id: 8 bytes of /dev/urandom, or the process id and the time without it.
fn random_node_id() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    match std::fs::File::open("/dev/urandom").and_then(|mut file| file.read_exact(&mut bytes)) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos() as u64);
            nanos ^ (u64::from(std::process::id()) << 32)
        }
    }
}

/// The start-up line's account of the settings, in words.
fn summary(args: &Args) -> String {
    let mode = match args.mode {
        Mode::Chat if args.no_echo_to_sender => "chat mode (rooms by path, sender left out)",
        Mode::Chat => "chat mode (rooms by path)",
        Mode::Echo => "echo mode",
    };
    let slow = match args.slow_consumer {
        SlowConsumer::Close => "closed with 1008",
        SlowConsumer::Drop => "dropped messages",
    };
    let rate = if args.max_message_rate == 0 {
        "no message rate limit".to_owned()
    } else {
        format!(
            "at most {} messages/s per client (bursts of {}, then {})",
            args.max_message_rate,
            args.max_message_burst,
            match args.rate_limit {
                RateLimitPolicy::Close => "closed with 1008",
                RateLimitPolicy::Drop => "dropped",
            }
        )
    };
    format!(
        "in {mode}: messages up to {} bytes; {rate}; a client whose queue stays over {} bytes for {:?} is a slow consumer ({slow}); up to {} connections and {} handshakes at once; ping after {:?} of silence, close after {:?}; handshakes must finish in {:?}",
        args.max_message_size,
        args.max_queued_bytes,
        args.slow_consumer_timeout,
        args.max_connections,
        args.max_handshakes,
        args.ping_interval,
        args.idle_timeout,
        args.handshake_timeout,
    )
}
