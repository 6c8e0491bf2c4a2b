//! Broadcast chat server on tokio-tungstenite with `tokio::sync::broadcast`: one channel for
//! the room, a task per client that forwards the channel to its socket, feeding every message
//! already waiting before one flush. The stronger of the two designs its users write.
//! Multi-threaded runtime with tokio's defaults.
//!
//! A receiver that falls more than `CAPACITY` messages behind loses the oldest ones
//! (`RecvError::Lagged`): that is this design's slow-consumer policy.
//!
//! Usage: tungstenite_broadcast PORT

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

const CAPACITY: usize = 65536;

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(8080);
    let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    eprintln!("listening on ws://{}/ (tokio-tungstenite, tokio::sync::broadcast)", listener.local_addr().unwrap());
    let (room, _) = broadcast::channel::<Message>(CAPACITY);
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let room = room.clone();
        tokio::spawn(async move {
            let Ok(socket) = tokio_tungstenite::accept_async(stream).await else { return };
            let (mut sink, mut source) = socket.split();
            let mut inbox = room.subscribe();
            // Feed everything already waiting, then flush once: one write for many frames,
            // as a performance-minded user of this design writes it.
            let writer = tokio::spawn(async move {
                loop {
                    let first = match inbox.recv().await {
                        Ok(message) => message,
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    };
                    if sink.feed(first).await.is_err() {
                        break;
                    }
                    loop {
                        match inbox.try_recv() {
                            Ok(message) => {
                                if sink.feed(message).await.is_err() {
                                    return;
                                }
                            }
                            Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                            Err(_) => break,
                        }
                    }
                    if sink.flush().await.is_err() {
                        break;
                    }
                }
            });
            while let Some(Ok(message)) = source.next().await {
                if message.is_text() || message.is_binary() {
                    let _ = room.send(message);
                } else if message.is_close() {
                    break;
                }
            }
            writer.abort();
        });
    }
}
