//! The shell's side of the bus: the two TCP connections to Redis (publish and subscribe, see
//! `core/bus.rs`), nonblocking, in the loop's own `mio::Poll`, each with its own token. The
//! core decides when to connect and what to send; this file only connects, reads, writes.
//!
//! A nonblocking connect is complete when the socket becomes writable and has no pending
//! error and a peer address (mio's `TcpStream::connect` documents this); then the core is
//! told, and sends `AUTH`/`SELECT` first.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use log::debug;
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::core::{BusOutput, Core, Link, Millis};

/// The publish link's token.
pub const PUBLISH_TOKEN: Token = Token(usize::MAX - 4);
/// The subscribe link's token.
pub const SUBSCRIBE_TOKEN: Token = Token(usize::MAX - 5);

struct LinkSocket {
    stream: TcpStream,
    connected: bool,
    writable_registered: bool,
}

/// The sockets of both links.
pub struct RedisLinks {
    address: SocketAddr,
    sockets: [Option<LinkSocket>; 2],
}

fn token(link: Link) -> Token {
    match link {
        Link::Publish => PUBLISH_TOKEN,
        Link::Subscribe => SUBSCRIBE_TOKEN,
    }
}

fn slot(link: Link) -> usize {
    match link {
        Link::Publish => 0,
        Link::Subscribe => 1,
    }
}

impl RedisLinks {
    /// No socket yet: the core asks for them.
    pub fn new(address: SocketAddr) -> Self {
        RedisLinks {
            address,
            sockets: [None, None],
        }
    }

    /// The link a token belongs to, if it is one of ours.
    pub fn link_of(token: Token) -> Option<Link> {
        match token {
            PUBLISH_TOKEN => Some(Link::Publish),
            SUBSCRIBE_TOKEN => Some(Link::Subscribe),
            _ => None,
        }
    }

    /// Carries out what the core asked for: connects and disconnects.
    pub fn apply_outputs(&mut self, registry: &Registry, core: &mut Core, now: Millis) {
        while let Some(output) = core.poll_bus_output() {
            match output {
                BusOutput::Connect(link) => {
                    self.close(link, registry);
                    match self.connect(link, registry) {
                        Ok(socket) => self.sockets[slot(link)] = Some(socket),
                        Err(error) => {
                            debug!("redis: connect to {}: {error}", self.address);
                            core.handle_bus_down(link, now);
                        }
                    }
                }
                BusOutput::Disconnect(link) => self.close(link, registry),
            }
        }
    }

    fn connect(&self, link: Link, registry: &Registry) -> io::Result<LinkSocket> {
        let mut stream = TcpStream::connect(self.address)?;
        registry.register(
            &mut stream,
            token(link),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(LinkSocket {
            stream,
            connected: false,
            writable_registered: true,
        })
    }

    fn close(&mut self, link: Link, registry: &Registry) {
        if let Some(mut socket) = self.sockets[slot(link)].take() {
            let _ = registry.deregister(&mut socket.stream);
        }
    }

    /// Readiness on a link's socket: the end of a connect, bytes to read, room to write.
    pub fn on_event(
        &mut self,
        link: Link,
        event: &Event,
        registry: &Registry,
        core: &mut Core,
        buffer: &mut [u8],
        now: Millis,
    ) {
        let Some(socket) = self.sockets[slot(link)].as_mut() else {
            return;
        };
        if !socket.connected {
            if !(event.is_writable() || event.is_error() || event.is_write_closed()) {
                return;
            }
            match (socket.stream.take_error(), socket.stream.peer_addr()) {
                (Ok(None), Ok(_)) => {
                    socket.connected = true;
                    let _ = socket.stream.set_nodelay(true);
                    core.handle_bus_connected(link, now);
                }
                (Ok(None), Err(error)) if error.kind() == io::ErrorKind::NotConnected => {
                    return; // not yet: a spurious event
                }
                (Ok(Some(error)) | Err(error), _) | (_, Err(error)) => {
                    debug!("redis {link:?} link: connect: {error}");
                    core.handle_bus_down(link, now);
                    self.apply_outputs(registry, core, now);
                    return;
                }
            }
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.read(link, core, buffer, now);
        }
        self.apply_outputs(registry, core, now);
    }

    /// Reads until `WouldBlock`, handing each batch to the core.
    fn read(&mut self, link: Link, core: &mut Core, buffer: &mut [u8], now: Millis) {
        loop {
            let Some(socket) = self.sockets[slot(link)].as_mut() else {
                return;
            };
            match socket.stream.read(buffer) {
                Ok(0) => {
                    debug!("redis {link:?} link: closed by redis");
                    core.handle_bus_down(link, now);
                    return;
                }
                Ok(read) => core.handle_bus_bytes(link, &buffer[..read], now),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    debug!("redis {link:?} link: read: {error}");
                    core.handle_bus_down(link, now);
                    return;
                }
            }
        }
    }

    /// Writes what the core has for each connected link; watches for writability while some
    /// is left.
    pub fn write(&mut self, registry: &Registry, core: &mut Core, now: Millis) {
        for link in Link::ALL {
            let Some(socket) = self.sockets[slot(link)].as_mut() else {
                continue;
            };
            if !socket.connected {
                continue;
            }
            loop {
                let bytes = core.bus_transmit(link);
                if bytes.is_empty() {
                    break;
                }
                match socket.stream.write(bytes) {
                    Ok(written) => core.bus_transmitted(link, written),
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(error) => {
                        debug!("redis {link:?} link: write: {error}");
                        core.handle_bus_down(link, now);
                        break;
                    }
                }
            }
            let want = !core.bus_transmit(link).is_empty();
            if let Some(socket) = self.sockets[slot(link)].as_mut() {
                if want != socket.writable_registered {
                    socket.writable_registered = want;
                    let interest = if want {
                        Interest::READABLE | Interest::WRITABLE
                    } else {
                        Interest::READABLE
                    };
                    let _ = registry.reregister(&mut socket.stream, token(link), interest);
                }
            }
        }
        self.apply_outputs(registry, core, now);
    }
}
