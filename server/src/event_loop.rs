//! The shell: one thread, one `mio::Poll`, the sockets. Everything that is not a system call
//! lives in the [core](crate::core); this file only moves bytes and readiness between the
//! kernel and it. One turn of the loop:
//!
//! 1. wait for readiness, at most until the core's next timer; tell the core the time;
//! 2. accept until `WouldBlock` (out of descriptors, accepting pauses for a moment, never a
//!    busy loop, and says so once per interval);
//! 3. read each ready socket until `WouldBlock` into the **one read buffer the loop owns**,
//!    within a byte budget per connection per flush pass (a connection over budget is read
//!    again when the next pass starts, so one flooding client cannot starve the rest),
//!    handing the bytes to the core;
//! 4. flush a slice of the pass: the next [`WRITES_PER_TURN`](crate::pacing::WRITES_PER_TURN)
//!    connections with frames queued each get **one `writev`** with all their frames
//!    (corking); the core says which sockets to watch for writability, shut down or close.
//!    While a pass is under way the loop polls without sleeping, so the messages that arrive
//!    meanwhile are read between slices ([`crate::pacing`] says why).
//!
//! With `--tls-cert`, every socket is TLS ([`crate::tls`]): ciphertext is read and decrypted
//! here, plaintext goes to the core, and the core's frames are encrypted on their way out.
//!
//! Signals: SIGINT and SIGTERM start the core's graceful shutdown (1001 to everyone, up to
//! 3 s); SIGHUP reloads the TLS certificate and key.

use std::io::{self, IoSlice, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::core::{Accepted, Core, Millis, Output};
use crate::pacing::Passes;
use crate::process;
use crate::redis_link::RedisLinks;
use crate::tls::{TlsAcceptor, TlsBuffers, TlsRead, TlsSession};

const LISTENER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
const METRICS_LISTENER: Token = Token(usize::MAX - 3);

/// Room for one large read beyond the bytes a connection may have kept.
const READ_BUFFER_LEN: usize = 64 * 1024;
/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How often running out of descriptors is logged (with a count), at most.
const FD_LOG_EVERY: Duration = Duration::from_secs(10);

/// What the shell needs beyond the core's configuration.
pub struct ShellConfig {
    /// Where WebSocket and page requests are accepted.
    pub listen: SocketAddr,
    /// Where `/metrics` is served on its own, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// TLS on the main port, if configured.
    pub tls: Option<TlsAcceptor>,
    /// Where Redis is, when the bus is on (the core must have it enabled).
    pub redis: Option<SocketAddr>,
    /// SO_REUSEPORT on the main listener, so that several processes share its port.
    pub reuse_port: bool,
}

/// The server: its sockets and its core.
pub struct EventLoop {
    poll: Poll,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    signals: Signals,
    core: Core,
    /// Sockets by the core's key for them.
    sockets: Vec<Option<TcpStream>>,
    trusted_proxies: Vec<IpAddr>,
    tls: Option<TlsAcceptor>,
    /// TLS state by key, for sockets of the main port when TLS is on (empty otherwise).
    tls_sessions: Vec<Option<Box<TlsSession>>>,
    /// The buffers every TLS connection borrows in turn (sessions own none while idle).
    tls_buffers: TlsBuffers,
    /// The TLS sockets written in this flush, whose writability interest may change.
    tls_flushed: Vec<usize>,
    /// Plaintext decrypted from one read of a TLS socket, on its way to the core.
    tls_plaintext: Vec<u8>,
    /// The one read buffer: every socket is read into it.
    read_buffer: Vec<u8>,
    /// The flush pass in slices, and the read budgets per pass.
    passes: Passes,
    started: Instant,
    accept_paused_until: Option<Millis>,
    /// Accepts refused for lack of descriptors since the last log line about it.
    fd_exhausted_unlogged: u64,
    fd_logged_at: Option<Millis>,
    /// The sockets to Redis, when the bus is on.
    redis: Option<RedisLinks>,
}

impl EventLoop {
    /// Binds the listening sockets and sets up signal handling.
    pub fn bind(shell: ShellConfig, core: Core) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut listener = if shell.reuse_port {
            bind_reuse_port(shell.listen)?
        } else {
            TcpListener::bind(shell.listen)?
        };
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let metrics_listener = match shell.metrics_listen {
            Some(address) => {
                let mut listener = TcpListener::bind(address)?;
                poll.registry()
                    .register(&mut listener, METRICS_LISTENER, Interest::READABLE)?;
                Some(listener)
            }
            None => None,
        };
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let read_buffer = vec![0; READ_BUFFER_LEN + core.config().max_request_size];
        let mut core = core;
        core.set_process_stats_source(Box::new(process::stats));
        Ok(EventLoop {
            poll,
            listener,
            metrics_listener,
            signals,
            core,
            sockets: Vec::new(),
            trusted_proxies: shell.trusted_proxies,
            tls_buffers: TlsBuffers::new(shell.tls.is_some()),
            tls: shell.tls,
            tls_sessions: Vec::new(),
            tls_flushed: Vec::new(),
            tls_plaintext: Vec::new(),
            read_buffer,
            passes: Passes::default(),
            started: Instant::now(),
            accept_paused_until: None,
            fd_exhausted_unlogged: 0,
            fd_logged_at: None,
            redis: shell.redis.map(RedisLinks::new),
        })
    }

    /// Whether the main port speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address `/metrics` is served on, when it has its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// Runs until a signal asks it to stop and the clients have had their close.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if !self.passes.busy(self.core.flush_queue_len()) {
                let mut wake = self.core.poll_timeout();
                if let Some(until) = self.accept_paused_until {
                    wake = wake.min(until);
                }
                Duration::from_millis(wake.0.saturating_sub(self.clock().0).max(1))
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
            let now = self.clock();
            self.core.handle_timeout(now);
            self.apply_outputs();
            if let Some(redis) = self.redis.as_mut() {
                redis.apply_outputs(self.poll.registry(), &mut self.core, now);
            }

            for key in self.passes.start_turn() {
                self.read(key, false, now);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(false, now),
                    METRICS_LISTENER => self.accept(true, now),
                    SIGNALS => self.on_signal(now),
                    token if RedisLinks::link_of(token).is_some() => {
                        if let (Some(redis), Some(link)) =
                            (self.redis.as_mut(), RedisLinks::link_of(token))
                        {
                            redis.on_event(
                                link,
                                event,
                                self.poll.registry(),
                                &mut self.core,
                                &mut self.read_buffer,
                                now,
                            );
                        }
                    }
                    Token(key) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            let may_stop_short = !event.is_read_closed() && !event.is_error();
                            self.read(key, may_stop_short, now);
                        }
                        if event.is_writable() {
                            self.on_writable(key);
                        }
                    }
                }
            }
            if self.accept_paused_until.is_some_and(|until| now >= until) {
                self.accept_paused_until = None;
                self.accept(false, now);
            }
            // Redis first: it relays to the other nodes while we write to our own clients.
            if let Some(redis) = self.redis.as_mut() {
                redis.write(self.poll.registry(), &mut self.core, now);
            }
            self.flush();
            if self.core.is_finished() {
                info!(
                    "shut down with {} connection(s) still open",
                    self.core.connection_count()
                );
                return Ok(());
            }
        }
    }

    fn clock(&self) -> Millis {
        Millis(self.started.elapsed().as_millis() as u64)
    }

    /// Carries out what the core asked for.
    fn apply_outputs(&mut self) {
        while let Some(output) = self.core.poll_output() {
            if self.tls_session(key_of(output)).is_some() {
                self.apply_tls_output(output);
                continue;
            }
            match output {
                Output::Writable { key, on } => {
                    if let Some(socket) = self.sockets.get_mut(key).and_then(Option::as_mut) {
                        watch_writable(&self.poll, socket, key, on);
                    }
                }
                Output::ShutdownWrite(key) => {
                    if let Some(socket) = self.sockets.get_mut(key).and_then(Option::as_mut) {
                        let _ = socket.shutdown(Shutdown::Write);
                    }
                }
                Output::Close(key) => {
                    if let Some(mut socket) = self.sockets.get_mut(key).and_then(Option::take) {
                        let _ = self.poll.registry().deregister(&mut socket);
                    }
                }
            }
        }
    }

    fn tls_session(&mut self, key: usize) -> Option<&mut TlsSession> {
        self.tls_sessions
            .get_mut(key)
            .and_then(Option::as_deref_mut)
    }

    /// An output for a TLS socket: writability is watched while the core's queue or rustls's
    /// records wait; shutting down writing sends close_notify first, once records are out.
    fn apply_tls_output(&mut self, output: Output) {
        let key = key_of(output);
        let Some((socket, session)) = tls_pair(&mut self.sockets, &mut self.tls_sessions, key)
        else {
            return;
        };
        match output {
            Output::Writable { on, .. } => session.core_wants_writable = on,
            Output::ShutdownWrite(_) => {
                session.send_close_notify(&mut self.tls_buffers);
                match session.write_backlog(socket) {
                    Ok(true) => {
                        let _ = socket.shutdown(Shutdown::Write);
                    }
                    Ok(false) => session.shutdown_pending = true,
                    Err(_) => {}
                }
            }
            Output::Close(_) => {
                // Best effort: the records of a last answer that fit now still leave.
                let _ = session.write_backlog(socket);
                self.tls_sessions[key] = None;
                if let Some(mut socket) = self.sockets[key].take() {
                    let _ = self.poll.registry().deregister(&mut socket);
                }
                return;
            }
        }
        self.update_tls_interest(key);
    }

    /// Watches a TLS socket for writability exactly while something waits to go out.
    fn update_tls_interest(&mut self, key: usize) {
        let Some((socket, session)) = tls_pair(&mut self.sockets, &mut self.tls_sessions, key)
        else {
            return;
        };
        let want = session.core_wants_writable || session.has_backlog();
        if want != session.writable_registered {
            session.writable_registered = want;
            watch_writable(&self.poll, socket, key, want);
        }
    }

    fn on_writable(&mut self, key: usize) {
        if let Some((socket, session)) = tls_pair(&mut self.sockets, &mut self.tls_sessions, key) {
            match session.write_backlog(socket) {
                Ok(true) if session.shutdown_pending => {
                    session.shutdown_pending = false;
                    let _ = socket.shutdown(Shutdown::Write);
                }
                Ok(_) => {}
                Err(_) => {
                    self.core.handle_error(key);
                    self.apply_outputs();
                    return;
                }
            }
            self.update_tls_interest(key);
        }
        self.core.handle_writable(key);
    }

    // --- accept ---

    fn accept(&mut self, metrics_port: bool, now: Millis) {
        if self.core.is_shutting_down() || self.accept_paused_until.is_some() && !metrics_port {
            return;
        }
        loop {
            let listener = if metrics_port {
                match &self.metrics_listener {
                    Some(listener) => listener,
                    None => return,
                }
            } else {
                &self.listener
            };
            match listener.accept() {
                Ok((mut socket, peer)) => {
                    let accepted = Accepted {
                        metrics_port,
                        trusted_proxy: self.trusted_proxies.contains(&peer.ip()),
                    };
                    let Some(key) = self.core.handle_accept(now, accepted) else {
                        debug!("refused {peer} at accept (handshake limit or shutting down)");
                        continue; // dropping the socket closes it
                    };
                    self.passes.forget(key);
                    // Frames are corked by the core already; Nagle would only add delay.
                    let _ = socket.set_nodelay(true);
                    if let Err(error) =
                        self.poll
                            .registry()
                            .register(&mut socket, Token(key), Interest::READABLE)
                    {
                        warn!("cannot register a socket from {peer}: {error}");
                        self.core.handle_error(key);
                        self.apply_outputs();
                        continue;
                    }
                    if self.sockets.len() <= key {
                        self.sockets.resize_with(key + 1, || None);
                    }
                    self.sockets[key] = Some(socket);
                    if let (Some(tls), false) = (&self.tls, metrics_port) {
                        match tls.session() {
                            Ok(session) => {
                                if self.tls_sessions.len() <= key {
                                    self.tls_sessions.resize_with(key + 1, || None);
                                }
                                self.tls_sessions[key] = Some(session);
                            }
                            Err(error) => {
                                warn!("cannot start TLS for {peer}: {error}");
                                self.core.handle_error(key);
                                self.apply_outputs();
                                continue;
                            }
                        }
                    }
                    debug!(
                        "accepted {peer} as connection #{}{}",
                        self.core.connection_id(key).unwrap_or(0),
                        if metrics_port { " (metrics port)" } else { "" }
                    );
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) if is_out_of_descriptors(&error) => {
                    self.core.note_accept_fd_exhausted();
                    self.fd_exhausted_unlogged += 1;
                    if self
                        .fd_logged_at
                        .is_none_or(|at| now >= at.after(FD_LOG_EVERY))
                    {
                        warn!(
                            "accept: {error} ({} time(s) since the last report); serving the {} open connection(s), accepting again every {} ms",
                            self.fd_exhausted_unlogged,
                            self.core.connection_count(),
                            ACCEPT_PAUSE.as_millis()
                        );
                        self.fd_exhausted_unlogged = 0;
                        self.fd_logged_at = Some(now);
                    }
                    self.accept_paused_until = Some(now.after(ACCEPT_PAUSE));
                    return;
                }
                Err(error) => {
                    // ECONNABORTED and the like concern one connection, not the listener.
                    debug!("accept: {error}");
                }
            }
        }
    }

    // --- read ---

    /// Reads a connection until `WouldBlock`, its budget, or (when `may_stop_short`) a short
    /// read. A read that returns less than the buffer holds took everything the TCP socket had,
    /// and new bytes raise a new edge; skipping the read that would say `WouldBlock` saves a
    /// system call per message. Not when the event says the peer closed its side: then the
    /// end of stream must be read now, as no further edge will announce it.
    fn read(&mut self, key: usize, may_stop_short: bool, now: Millis) {
        if self.tls_session(key).is_some() {
            return self.read_tls(key, now);
        }
        loop {
            // Over its budget for this pass: read again when the next one starts.
            if self.passes.budget(key) == 0 {
                return;
            }
            let Some(kept) = self.core.take_pending(key, &mut self.read_buffer) else {
                return;
            };
            let Some(socket) = self.sockets.get_mut(key).and_then(Option::as_mut) else {
                return;
            };
            match socket.read(&mut self.read_buffer[kept..]) {
                Ok(0) => {
                    self.core.handle_eof(key, now);
                    self.apply_outputs();
                    return;
                }
                Ok(read) => {
                    let short = kept + read < self.read_buffer.len();
                    self.core
                        .handle_read(key, &mut self.read_buffer[..kept + read], kept, now);
                    self.apply_outputs();
                    self.passes.charge(key, read);
                    if may_stop_short && short {
                        return;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    debug!(
                        "connection #{}: read: {error}",
                        self.core.connection_id(key).unwrap_or(0)
                    );
                    self.core.handle_error(key);
                    self.apply_outputs();
                    return;
                }
            }
        }
    }

    /// Reads a TLS socket: ciphertext until `WouldBlock` or the budget, each read decrypted
    /// and its plaintext handed to the core; handshake records written back at once.
    fn read_tls(&mut self, key: usize, now: Millis) {
        loop {
            // The core wants nothing more read once its peer finished sending; over its budget
            // for this pass, it is read again when the next one starts.
            if !self.core.wants_read(key) || self.passes.budget(key) == 0 {
                return;
            }
            let Some((socket, session)) = tls_pair(&mut self.sockets, &mut self.tls_sessions, key)
            else {
                return;
            };
            self.tls_plaintext.clear();
            let outcome = match session.read_records(
                socket,
                &mut self.tls_buffers,
                &mut self.tls_plaintext,
            ) {
                Ok(outcome) => outcome,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    debug!(
                        "connection #{}: tls: {error}",
                        self.core.connection_id(key).unwrap_or(0)
                    );
                    self.core.note_tls_failure();
                    self.core.handle_error(key);
                    self.apply_outputs();
                    return;
                }
            };
            let peer_closed = session.take_peer_closed();
            self.update_tls_interest(key);
            if !self.hand_plaintext(key, now) {
                return;
            }
            if peer_closed {
                // close_notify: the peer finished sending.
                self.core.handle_eof(key, now);
                self.apply_outputs();
                return;
            }
            match outcome {
                TlsRead::Progress(read) => self.passes.charge(key, read),
                TlsRead::WouldBlock => return,
                TlsRead::Eof => {
                    self.core.handle_eof(key, now);
                    self.apply_outputs();
                    return;
                }
            }
        }
    }

    /// Hands the plaintext of one TLS read to the core, after the bytes the connection kept.
    /// Returns whether the connection still wants to be read.
    fn hand_plaintext(&mut self, key: usize, now: Millis) -> bool {
        let mut offset = 0;
        while offset < self.tls_plaintext.len() {
            let Some(kept) = self.core.take_pending(key, &mut self.read_buffer) else {
                return false;
            };
            let length = (self.read_buffer.len() - kept).min(self.tls_plaintext.len() - offset);
            self.read_buffer[kept..kept + length]
                .copy_from_slice(&self.tls_plaintext[offset..offset + length]);
            offset += length;
            self.core
                .handle_read(key, &mut self.read_buffer[..kept + length], kept, now);
            self.apply_outputs();
        }
        self.core.connection(key).is_some()
    }

    // --- flush: a slice of the pass per turn, one writev per connection ---

    fn flush(&mut self) {
        let slice = self.passes.slice(self.core.flush_queue_len());
        let sockets = &mut self.sockets;
        let tls_sessions = &mut self.tls_sessions;
        let tls_buffers = &mut self.tls_buffers;
        let mut tls_flushed = std::mem::take(&mut self.tls_flushed);
        let taken = self.core.flush_next(slice, |key, slices: &[IoSlice<'_>]| {
            let Some(socket) = sockets.get_mut(key).and_then(Option::as_mut) else {
                return Err(io::ErrorKind::NotConnected.into());
            };
            match tls_sessions.get_mut(key).and_then(Option::as_deref_mut) {
                Some(session) => {
                    tls_flushed.push(key);
                    session.write_plaintext(socket, slices, tls_buffers)
                }
                None => socket.write_vectored(slices),
            }
        });
        self.passes.took(taken);
        self.apply_outputs();
        for &key in &tls_flushed {
            self.update_tls_interest(key);
        }
        tls_flushed.clear();
        self.tls_flushed = tls_flushed;
    }

    // --- signals ---

    fn on_signal(&mut self, now: Millis) {
        let mut received: Vec<i32> = self.signals.pending().collect();
        if received.contains(&SIGHUP) {
            received.retain(|&signal| signal != SIGHUP);
            match self.tls.as_mut().map(TlsAcceptor::reload) {
                Some(Ok(())) => {
                    info!("SIGHUP: TLS certificate and key reloaded; open connections keep theirs")
                }
                Some(Err(error)) => {
                    warn!("SIGHUP: TLS reload failed, keeping the old certificate: {error}")
                }
                None => info!("SIGHUP: nothing to reload (no TLS)"),
            }
        }
        if received.is_empty() {
            return;
        }
        if self.core.is_shutting_down() {
            info!("second signal: exiting now");
            std::process::exit(0);
        }
        info!(
            "signal {}: closing {} connection(s) with 1001",
            received[0],
            self.core.connection_count()
        );
        let _ = self.poll.registry().deregister(&mut self.listener);
        self.core.handle_shutdown(now);
        self.apply_outputs();
    }
}

/// A listener with SO_REUSEPORT (and SO_REUSEADDR), for processes sharing one port.
fn bind_reuse_port(address: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Watches a socket for readability, and for writability too when `on`.
fn watch_writable(poll: &Poll, socket: &mut TcpStream, key: usize, on: bool) {
    let interest = if on {
        Interest::READABLE | Interest::WRITABLE
    } else {
        Interest::READABLE
    };
    let _ = poll.registry().reregister(socket, Token(key), interest);
}

/// A TLS connection's socket and session, borrowed together.
fn tls_pair<'a>(
    sockets: &'a mut [Option<TcpStream>],
    sessions: &'a mut [Option<Box<TlsSession>>],
    key: usize,
) -> Option<(&'a mut TcpStream, &'a mut TlsSession)> {
    let socket = sockets.get_mut(key)?.as_mut()?;
    let session = sessions.get_mut(key)?.as_deref_mut()?;
    Some((socket, session))
}

fn key_of(output: Output) -> usize {
    match output {
        Output::Writable { key, .. } | Output::ShutdownWrite(key) | Output::Close(key) => key,
    }
}

fn is_out_of_descriptors(error: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM: the process or the system is out of a resource.
    matches!(error.raw_os_error(), Some(24 | 23 | 105 | 12))
}
