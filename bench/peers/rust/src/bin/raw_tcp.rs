//! The ceiling: fan-out of newline-framed text over plain TCP, no WebSocket at all, with the
//! same loop design as `server` (one thread, mio, slab, bytes shared with `Rc`, one `writev`
//! per socket per turn). Every complete line a client sends goes to every client, the sender
//! included. No WebSocket server on this machine can beat it.
//!
//! Usage: raw_tcp PORT

use std::collections::VecDeque;
use std::io::{IoSlice, Read, Write};
use std::rc::Rc;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);

struct Client {
    socket: mio::net::TcpStream,
    partial: Vec<u8>,
    queue: VecDeque<Rc<[u8]>>,
    front_written: usize,
    scheduled: bool,
    writable: bool,
}

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(8080);
    let mut poll = Poll::new().unwrap();
    let mut listener = TcpListener::bind(([127, 0, 0, 1], port).into()).expect("bind");
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE).unwrap();
    eprintln!("listening on ws://{}/ (raw tcp fan-out, newline framed)", listener.local_addr().unwrap());
    let mut clients: Slab<Client> = Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut to_flush: Vec<usize> = Vec::new();
    loop {
        poll.poll(&mut events, None).unwrap();
        for event in events.iter() {
            if event.token() == LISTENER {
                while let Ok((mut socket, _)) = listener.accept() {
                    let _ = socket.set_nodelay(true);
                    let entry = clients.vacant_entry();
                    poll.registry().register(&mut socket, Token(entry.key()), Interest::READABLE).unwrap();
                    entry.insert(Client { socket, partial: Vec::new(), queue: VecDeque::new(), front_written: 0, scheduled: false, writable: false });
                }
                continue;
            }
            let key = event.token().0;
            if event.is_writable() {
                if let Some(client) = clients.get_mut(key) {
                    if !client.scheduled {
                        client.scheduled = true;
                        to_flush.push(key);
                    }
                }
            }
            if !(event.is_readable() || event.is_read_closed()) {
                continue;
            }
            loop {
                let Some(client) = clients.get_mut(key) else { break };
                let kept = client.partial.len();
                buffer[..kept].copy_from_slice(&client.partial);
                match client.socket.read(&mut buffer[kept..]) {
                    Ok(0) => {
                        let mut gone = clients.remove(key);
                        let _ = poll.registry().deregister(&mut gone.socket);
                        break;
                    }
                    Ok(read) => {
                        let len = kept + read;
                        let end = buffer[..len].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                        client.partial.clear();
                        client.partial.extend_from_slice(&buffer[end..len]);
                        if end > 0 {
                            let lines: Rc<[u8]> = Rc::from(&buffer[..end]);
                            for (other, receiver) in clients.iter_mut() {
                                receiver.queue.push_back(lines.clone());
                                if !receiver.scheduled {
                                    receiver.scheduled = true;
                                    to_flush.push(other);
                                }
                            }
                        }
                        if len < buffer.len() {
                            break;
                        }
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        let mut gone = clients.remove(key);
                        let _ = poll.registry().deregister(&mut gone.socket);
                        break;
                    }
                }
            }
        }
        for key in to_flush.drain(..) {
            let Some(client) = clients.get_mut(key) else { continue };
            client.scheduled = false;
            let mut failed = false;
            while !client.queue.is_empty() {
                let slices: Vec<IoSlice<'_>> = client
                    .queue
                    .iter()
                    .take(1024)
                    .enumerate()
                    .map(|(i, chunk)| IoSlice::new(if i == 0 { &chunk[client.front_written..] } else { chunk }))
                    .collect();
                let offered: usize = slices.iter().map(|s| s.len()).sum();
                match client.socket.write_vectored(&slices) {
                    Ok(mut written) => {
                        drop(slices);
                        let full = written == offered;
                        while written > 0 {
                            let left = client.queue[0].len() - client.front_written;
                            if written >= left {
                                written -= left;
                                client.queue.pop_front();
                                client.front_written = 0;
                            } else {
                                client.front_written += written;
                                written = 0;
                            }
                        }
                        if !full {
                            break;
                        }
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                let mut gone = clients.remove(key);
                let _ = poll.registry().deregister(&mut gone.socket);
                continue;
            }
            let want = !client.queue.is_empty();
            if want != client.writable {
                client.writable = want;
                let interest = if want { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
                let _ = poll.registry().reregister(&mut client.socket, Token(key), interest);
            }
        }
    }
}
