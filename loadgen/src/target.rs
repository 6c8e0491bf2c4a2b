//! The servers a run connects to: each `--url` parsed (RFC 6455 §3), resolved, with the request
//! target of every room. Clients are spread over them round robin, all in one logical room.

use std::net::{SocketAddr, ToSocketAddrs};

use protocol::url::WsUrl;

/// One server to connect to.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Where to connect.
    pub address: SocketAddr,
    /// The `Host` header.
    pub host_header: String,
    /// The name the server's certificate must carry (and the SNI sent), `wss://` only.
    pub server_name: Option<rustls::pki_types::ServerName<'static>>,
    /// `wss://`: TLS first.
    pub tls: bool,
    /// The request target of each room.
    pub room_targets: Vec<String>,
}

/// Parses and resolves a `ws://` or `wss://` URL; `{room}` in its path is replaced by each
/// room's number.
pub(crate) fn parse_target(url: &str, rooms: u32) -> Result<Target, String> {
    let lower = url
        .get(..6)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let tls = lower.starts_with("wss://");
    let (parsed, explicit_port) = if tls {
        let rest = &url[6..];
        let parsed = WsUrl::parse(&format!("ws://{rest}")).map_err(|_| {
            format!("`{url}` is not a ws:// or wss:// URL (expected wss://host[:port][/path])")
        })?;
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let explicit = authority
            .rsplit_once(']')
            .map_or(authority, |(_, after)| after)
            .contains(':');
        (parsed, explicit)
    } else {
        let parsed = WsUrl::parse(url).map_err(|_| {
            format!("`{url}` is not a ws:// or wss:// URL (expected ws://host[:port][/path])")
        })?;
        (parsed, true)
    };
    let mut parsed = parsed;
    if tls && !explicit_port {
        parsed.port = 443;
    }
    if rooms > 1 && !parsed.target.contains("%7Broom%7D") && !parsed.target.contains("{room}") {
        return Err(format!(
            "--rooms needs a {{room}} placeholder in the URL, e.g. ws://host:8080/room{{room}} (`{url}` has none)"
        ));
    }
    let address = parsed
        .socket_address()
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve {}: {error}", parsed.host))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", parsed.host))?;
    let host_header = if tls && parsed.port == 443 {
        parsed.host_header().trim_end_matches(":443").to_owned()
    } else {
        parsed.host_header()
    };
    let room_targets = (0..rooms)
        .map(|room| {
            parsed
                .target
                .replace("{room}", &room.to_string())
                .replace("%7Broom%7D", &room.to_string())
        })
        .collect();
    let server_name = if tls {
        Some(crate::tls::server_name(&parsed.host)?)
    } else {
        None
    };
    Ok(Target {
        server_name,
        address,
        host_header,
        tls,
        room_targets,
    })
}

/// Which target a client connects to: round robin, rooms spread over every target so that a
/// room spans all of them.
pub(crate) fn target_of(client: u32, rooms: u32, targets: usize) -> usize {
    (client / rooms.max(1)) as usize % targets.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_and_wss_urls_resolve_with_their_default_ports() {
        let plain = parse_target("ws://127.0.0.1/chat", 1).unwrap();
        assert_eq!(plain.address.port(), 80);
        assert!(!plain.tls);
        let secure = parse_target("wss://localhost/chat?x=1", 1).unwrap();
        assert_eq!(secure.address.port(), 443);
        assert_eq!(secure.host_header, "localhost");
        assert!(secure.server_name.is_some());
        assert_eq!(secure.room_targets, vec!["/chat?x=1".to_owned()]);
        assert!(secure.tls);
        let explicit = parse_target("wss://127.0.0.1:8443/", 1).unwrap();
        assert_eq!(explicit.address.port(), 8443);
        assert_eq!(explicit.host_header, "127.0.0.1:8443");
    }

    #[test]
    fn rooms_need_the_placeholder_and_fill_it() {
        assert!(parse_target("ws://127.0.0.1/", 2).is_err());
        let target = parse_target("ws://127.0.0.1/room{room}", 3).unwrap();
        assert_eq!(target.room_targets, vec!["/room0", "/room1", "/room2"]);
        assert!(parse_target("http://127.0.0.1/", 1).is_err());
    }

    #[test]
    fn every_room_spans_every_target() {
        // 2 rooms over 2 targets: room = client % 2, target = client / 2 % 2.
        let pairs: Vec<(u32, usize)> = (0..8).map(|c| (c % 2, target_of(c, 2, 2))).collect();
        for room in 0..2 {
            for target in 0..2 {
                assert!(pairs.contains(&(room, target)), "{pairs:?}");
            }
        }
        assert_eq!(target_of(5, 1, 3), 2);
    }
}
