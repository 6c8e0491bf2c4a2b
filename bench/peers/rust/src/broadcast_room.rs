//! A chat room on tokio-tungstenite with `tokio::sync::broadcast`: one channel for the room, a
//! task per client that forwards the channel to its socket, feeding every message already
//! waiting before one flush. The stronger of the two designs its users write.
//!
//! A receiver that falls more than [`CAPACITY`] messages behind loses the oldest ones
//! (`RecvError::Lagged`): that is this design's slow-consumer policy.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

/// How many messages a receiver may fall behind before it loses the oldest.
pub const CAPACITY: usize = 65536;

/// The room: every client subscribes to it and sends into it.
pub fn room() -> broadcast::Sender<Message> {
    broadcast::channel::<Message>(CAPACITY).0
}

/// Serves one client of `room` over `stream` (its transport's handshake, if any, done): the
/// WebSocket handshake, then the client's text and binary messages into the room and the
/// room's messages out to it, until it closes.
pub async fn serve_client<S>(stream: S, room: broadcast::Sender<Message>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Ok(socket) = tokio_tungstenite::accept_async(stream).await else { return };
    let (mut sink, mut source) = socket.split();
    let mut inbox = room.subscribe();
    // Feed everything already waiting, then flush once: one write for many frames, as a
    // performance-minded user of this design writes it.
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
}
