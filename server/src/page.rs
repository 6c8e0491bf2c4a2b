//! The browser chat page served on `GET /`: one HTML file with its script, in the binary.

/// The page: it connects to the room named by its own URL path.
pub const CHAT_PAGE: &str = include_str!("page.html");
