//! Broadcast chat server on tokio-tungstenite, the design most tutorials show: a task per
//! client with an unbounded mpsc channel each, senders kept in a shared map; a message is
//! cloned into every channel. Multi-threaded runtime with tokio's defaults.
//!
//! Usage: tungstenite_mpsc PORT

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

type Peers = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(8080);
    let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    eprintln!("listening on ws://{}/ (tokio-tungstenite, mpsc per client)", listener.local_addr().unwrap());
    let peers: Peers = Arc::default();
    let mut next_id = 0u64;
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let peers = peers.clone();
        tokio::spawn(async move {
            let Ok(socket) = tokio_tungstenite::accept_async(stream).await else { return };
            let (mut sink, mut source) = socket.split();
            let (sender, mut inbox) = mpsc::unbounded_channel::<Message>();
            peers.lock().unwrap().insert(id, sender);
            // Feed everything already waiting, then flush once (one write for many frames).
            let writer = tokio::spawn(async move {
                while let Some(first) = inbox.recv().await {
                    if sink.feed(first).await.is_err() {
                        break;
                    }
                    while let Ok(message) = inbox.try_recv() {
                        if sink.feed(message).await.is_err() {
                            return;
                        }
                    }
                    if sink.flush().await.is_err() {
                        break;
                    }
                }
            });
            while let Some(Ok(message)) = source.next().await {
                if message.is_text() || message.is_binary() {
                    for peer in peers.lock().unwrap().values() {
                        let _ = peer.send(message.clone());
                    }
                } else if message.is_close() {
                    break;
                }
            }
            peers.lock().unwrap().remove(&id);
            writer.abort();
        });
    }
}
