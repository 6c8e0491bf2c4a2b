//! WebSocket URLs (RFC 6455 §3): `ws://host[:port][/path][?query]`.

use crate::Error;

/// A parsed `ws://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// The host name or address, without brackets for IPv6.
    pub host: String,
    /// The port: 80 unless the URL says otherwise.
    pub port: u16,
    /// Path and query, the request target; `/` when the URL has no path.
    pub target: String,
}

impl WsUrl {
    /// Parses a `ws://` URL. A `wss://` URL is [`Error::TlsNotSupported`]; anything else that
    /// is not a `ws://` URL is [`Error::InvalidUrl`]. Fragments are not allowed (§3).
    pub fn parse(url: &str) -> Result<WsUrl, Error> {
        let lower = url
            .get(..6)
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if lower.starts_with("wss://") {
            return Err(Error::TlsNotSupported);
        }
        if !lower.starts_with("ws://") || url.contains('#') {
            return Err(Error::InvalidUrl);
        }
        let rest = &url[5..];
        let (authority, target) = match rest.find(['/', '?']) {
            Some(index) if rest.as_bytes()[index] == b'/' => {
                (&rest[..index], rest[index..].to_owned())
            }
            Some(index) => (&rest[..index], format!("/{}", &rest[index..])),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') || target.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(Error::InvalidUrl);
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or(Error::InvalidUrl)?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty()
            || host
                .bytes()
                .any(|b| !(b.is_ascii_alphanumeric() || b".-_:".contains(&b)))
        {
            return Err(Error::InvalidUrl);
        }
        let port = match port {
            None => 80,
            Some(port) => port.parse().map_err(|_| Error::InvalidUrl)?,
        };
        Ok(WsUrl {
            host: host.to_owned(),
            port,
            target,
        })
    }

    /// The value of the `Host` header (§4.1): the host, and the port unless it is 80.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// `host:port`, for resolving and connecting.
    pub fn socket_address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_path_and_query() {
        let url = WsUrl::parse("ws://127.0.0.1:8080/rust?x=1").unwrap();
        assert_eq!(url.host, "127.0.0.1");
        assert_eq!(url.port, 8080);
        assert_eq!(url.target, "/rust?x=1");
        assert_eq!(url.host_header(), "127.0.0.1:8080");
        assert_eq!(url.socket_address(), "127.0.0.1:8080");
    }

    #[test]
    fn defaults_to_port_80_and_path_slash() {
        let url = WsUrl::parse("WS://example.com").unwrap();
        assert_eq!((url.port, url.target.as_str()), (80, "/"));
        assert_eq!(url.host_header(), "example.com");
        assert_eq!(WsUrl::parse("ws://example.com?q").unwrap().target, "/?q");
    }

    #[test]
    fn parses_bracketed_ipv6() {
        let url = WsUrl::parse("ws://[::1]:9000/").unwrap();
        assert_eq!(url.host, "::1");
        assert_eq!(url.socket_address(), "[::1]:9000");
    }

    #[test]
    fn wss_says_tls_is_not_supported() {
        assert_eq!(
            WsUrl::parse("wss://example.com/"),
            Err(Error::TlsNotSupported)
        );
    }

    #[test]
    fn rejects_what_is_not_a_ws_url() {
        for bad in [
            "http://example.com/",
            "ws://",
            "ws://host:99999/",
            "ws://host:x/",
            "ws://a/#frag",
            "ws://user@host/",
            "example.com",
        ] {
            assert_eq!(WsUrl::parse(bad), Err(Error::InvalidUrl), "{bad}");
        }
    }
}
