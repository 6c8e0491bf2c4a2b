//! Broadcast chat server on tokio-tungstenite with `tokio::sync::broadcast` (the room is
//! `bench_peers::broadcast_room`): a writer task per client that feeds every waiting message
//! and flushes once. Multi-threaded runtime with tokio's defaults.
//!
//! Usage: tungstenite_broadcast PORT

use bench_peers::broadcast_room;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(8080);
    let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    eprintln!("listening on ws://{}/ (tokio-tungstenite, tokio::sync::broadcast)", listener.local_addr().unwrap());
    let room = broadcast_room::room();
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(broadcast_room::serve_client(stream, room.clone()));
    }
}
