//! What the Rust peers of `make bench` share: the tokio-tungstenite room on
//! `tokio::sync::broadcast`, served over plain TCP (`tungstenite_broadcast`) or TLS
//! (`tungstenite_tls_broadcast`).

pub mod broadcast_room;
