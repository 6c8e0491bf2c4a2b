//! What answers a complete HTTP request head: an upgrade into a room, the chat page, the
//! counters, the room list, a health check, or an error status that says which rule was broken.

use protocol::deflate::{DeflateParameters, ServerDeflateConfig};
use protocol::frame::Role;
use protocol::handshake::server::{
    is_upgrade_attempt, validate_request, write_accept, write_refusal,
};
use protocol::http::{write_response, Request};

use super::config::Config;
use crate::page::CHAT_PAGE;

/// What the core does with a parsed request head.
#[derive(Debug)]
pub(super) enum Decision {
    /// Open a WebSocket in this room, answering with `response` (the 101).
    Upgrade {
        /// The room: the request path.
        room: String,
        /// The 101 response, with any interim response before it.
        response: Vec<u8>,
        /// The window (bits) our compressed frames must fit, when permessage-deflate was agreed.
        deflate_window_bits: Option<u8>,
    },
    /// Answer and close.
    Respond {
        /// The status, for the counters.
        status: u16,
        /// The whole response.
        response: Vec<u8>,
        /// Whether it refuses an upgrade (counted apart from plain HTTP answers).
        refuses_upgrade: bool,
    },
    /// Answer with the counters (rendered by the core, which has them).
    Metrics {
        /// `HEAD`: the head only.
        head_only: bool,
    },
    /// Answer with the rooms and their member counts.
    Rooms {
        /// `HEAD`: the head only.
        head_only: bool,
    },
}

/// Where a request came in, and what the core knows right now.
#[derive(Debug, Clone, Copy)]
pub(super) struct Context {
    /// It came in on the `--metrics-listen` port: only `/metrics` and `/healthz` are served.
    pub metrics_port: bool,
    /// WebSocket connections open now.
    pub open_websockets: usize,
}

/// Decides what answers a complete request head.
pub(super) fn route(request: &Request<'_>, config: &Config, context: Context) -> Decision {
    let refuse = |status: u16, why: &str| {
        let mut response = Vec::new();
        write_refusal(&mut response, status, why);
        Decision::Respond {
            status,
            response,
            refuses_upgrade: true,
        }
    };
    let interim = expects_continue(request);
    if request.target.len() > config.max_target_len {
        return respond_error(
            414,
            &format!(
                "the request target is longer than {} bytes",
                config.max_target_len
            ),
            is_upgrade_attempt(request),
        );
    }
    if let Err(why) = check_host(request) {
        return respond_error(400, why, is_upgrade_attempt(request));
    }
    let path = match target_path(request) {
        Ok(path) => path,
        Err(why) => return respond_error(400, why, is_upgrade_attempt(request)),
    };

    if is_upgrade_attempt(request) && !context.metrics_port {
        if request.headers.count("sec-websocket-key") > 1 {
            return refuse(400, "more than one Sec-WebSocket-Key header");
        }
        let upgrade = match validate_request(request) {
            Ok(upgrade) => upgrade,
            Err(error) => return refuse(error.http_status().unwrap_or(400), &error.to_string()),
        };
        if !config.allowed_origins.is_empty()
            && !upgrade.origin.is_some_and(|origin| {
                config
                    .allowed_origins
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(origin))
            })
        {
            return refuse(403, "origin not allowed");
        }
        if context.open_websockets >= config.max_connections {
            return refuse(503, "server at its connection limit");
        }
        let deflate_config = ServerDeflateConfig {
            enabled: config.compression,
            ..ServerDeflateConfig::default()
        };
        let deflate = upgrade.negotiate_deflate(&deflate_config);
        let extension_header = deflate.as_ref().map(DeflateParameters::header_value);
        let extra: Vec<(&str, &str)> = extension_header
            .as_deref()
            .map(|value| (protocol::extensions::HEADER_NAME, value))
            .into_iter()
            .collect();
        let mut response = Vec::new();
        if interim {
            response.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        write_accept(&mut response, &upgrade, None, &extra);
        return Decision::Upgrade {
            room: path.to_owned(),
            response,
            deflate_window_bits: deflate.map(|agreed| agreed.window_bits_for(Role::Server)),
        };
    }

    let head_only = request.method == "HEAD";
    let mut response = Vec::new();
    if interim {
        response.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let status = if request.method != "GET" && !head_only {
        write_answer(
            &mut response,
            405,
            &[("Allow", "GET, HEAD")],
            "text/plain; charset=utf-8",
            b"405 Method Not Allowed: only GET and HEAD are served here\n",
            false,
        );
        405
    } else if path == "/healthz" {
        write_answer(
            &mut response,
            200,
            &[("Cache-Control", "no-cache")],
            "text/plain; charset=utf-8",
            b"ok\n",
            head_only,
        );
        200
    } else if path == "/metrics" && (context.metrics_port || config.metrics_on_main_port) {
        return Decision::Metrics { head_only };
    } else if path == "/metrics" {
        // Served elsewhere or nowhere: not a room either.
        write_answer(
            &mut response,
            404,
            &[],
            "text/plain; charset=utf-8",
            b"404 Not Found: /metrics is not served on this port\n",
            head_only,
        );
        404
    } else if path == "/rooms" && !context.metrics_port && config.mode == super::Mode::Chat {
        return Decision::Rooms { head_only };
    } else if !context.metrics_port && config.serve_page && is_room_path(path) {
        write_answer(
            &mut response,
            200,
            &[("Cache-Control", "no-cache")],
            "text/html; charset=utf-8",
            CHAT_PAGE.as_bytes(),
            head_only,
        );
        200
    } else {
        write_answer(
            &mut response,
            404,
            &[],
            "text/plain; charset=utf-8",
            b"404 Not Found\n",
            head_only,
        );
        404
    };
    Decision::Respond {
        status,
        response,
        refuses_upgrade: false,
    }
}

/// An error status with a one-line body that says which rule was broken.
fn respond_error(status: u16, why: &str, refuses_upgrade: bool) -> Decision {
    let mut response = Vec::new();
    write_refusal(&mut response, status, why);
    Decision::Respond {
        status,
        response,
        refuses_upgrade,
    }
}

/// RFC 9112 §3.2: an HTTP/1.1 request has exactly one `Host`.
fn check_host(request: &Request<'_>) -> Result<(), &'static str> {
    match request.headers.count("host") {
        0 if request.minor_version >= 1 => Err("an HTTP/1.1 request needs a Host header"),
        0 | 1 => Ok(()),
        _ => Err("more than one Host header"),
    }
}

/// The path of the request target (RFC 9112 §3.2): origin-form `/room?x`, or absolute-form
/// `http://host/room`, which a server must accept. Anything else (`*`, `room`, `?q`) names no
/// room and is refused.
pub fn target_path<'a>(request: &Request<'a>) -> Result<&'a str, &'static str> {
    let target = request.target;
    let without_query = |text: &'a str| text.split(['?', '#']).next().unwrap_or("");
    if target.starts_with('/') {
        return Ok(without_query(target));
    }
    for scheme in ["http://", "https://", "ws://", "wss://"] {
        let Some(rest) = target
            .get(..scheme.len())
            .filter(|prefix| prefix.eq_ignore_ascii_case(scheme))
            .map(|_| &target[scheme.len()..])
        else {
            continue;
        };
        let path_start = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if path_start == 0 {
            return Err("the absolute-form request target has no host");
        }
        let path = without_query(&rest[path_start..]);
        return Ok(if path.is_empty() { "/" } else { path });
    }
    Err("the request target must be a path starting with / (or an absolute http:// URL)")
}

/// Whether the client waits for `100 Continue` (RFC 9110 §10.1.1).
fn expects_continue(request: &Request<'_>) -> bool {
    request.minor_version >= 1
        && request
            .headers
            .get_str("expect")
            .is_some_and(|value| value.trim().eq_ignore_ascii_case("100-continue"))
}

/// The chat page is served on every path a room could have: `/`, `/rust`, `/a/b`. Paths that
/// look like files (`/favicon.ico`) are not rooms.
fn is_room_path(path: &str) -> bool {
    path.starts_with('/') && !path.rsplit('/').next().unwrap_or("").contains('.')
}

/// Writes a response; for `HEAD`, its head only, whose `Content-Length` still says what a
/// `GET` would carry (RFC 9110 §9.3.2).
pub(super) fn write_answer(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &str)],
    content_type: &str,
    body: &[u8],
    head_only: bool,
) {
    write_response(out, status, headers, content_type, body);
    if head_only {
        out.truncate(out.len() - body.len());
    }
}
