//! Helpers shared by the integration tests: start a binary, speak WebSocket over a blocking socket.
