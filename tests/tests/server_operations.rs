//! What an operator runs into (issue 18, "the operator's rough edges"), against the real
//! server: where `/metrics` is served, the process figures, `--listen` forms, `FANOUT_*`
//! environment variables, JSON logs, connection ids, the open-files limit, trusted proxies.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use integration_tests::{binary, free_port, http_request, Client, Received, Server};
use serde_json::Value;

/// Starts the server with exactly `args` (its `--listen` included).
fn start(args: &[&str], environment: &[(&str, &str)]) -> (Server, Vec<String>) {
    Server::start_logged(Command::new(binary("server")), args, environment)
}

fn get(address: SocketAddr, path: &str) -> integration_tests::HttpResponse {
    http_request(address, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
}

fn chats(address: SocketAddr) {
    let mut client = Client::connect(address, "/operator");
    client.send_text("hello operator");
    assert_eq!(
        client.recv_message(),
        Received::Text("hello operator".into())
    );
}

#[test]
fn metrics_listen_serves_metrics_and_healthz_on_its_own_address() {
    let (server, _) = start(
        &["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"],
        &[],
    );
    // Port 0 is learnt from the log line that follows the listening line.
    let line = server
        .log_lines_until("metrics on http://", Duration::from_secs(10))
        .pop()
        .unwrap_or_default();
    let metrics_address: SocketAddr = line
        .split("metrics on http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|address| address.parse().ok())
        .unwrap_or_else(|| panic!("no metrics address in {line:?}"));
    let _member = Client::connect(server.address, "/room");
    let metrics = get(metrics_address, "/metrics");
    assert_eq!(metrics.status, 200);
    let body = String::from_utf8(metrics.body).unwrap();
    assert!(body.contains("\nws_connections 1\n"), "{body}");
    assert_eq!(get(metrics_address, "/healthz").status, 200);
    // Only the counters and the health check there: no page, no rooms, no WebSocket.
    assert_eq!(get(metrics_address, "/").status, 404);
    assert_eq!(get(metrics_address, "/rooms").status, 404);
    assert!(Client::connect_with(metrics_address, "/room", &[]).is_err());
    assert_eq!(get(server.address, "/healthz").status, 200);
    chats(server.address);
}

#[test]
fn metrics_listen_at_a_chosen_port_serves_metrics_there() {
    let port = free_port();
    let metrics_listen = format!("127.0.0.1:{port}");
    let (server, _) = start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            &metrics_listen,
        ],
        &[],
    );
    let metrics_address: SocketAddr = metrics_listen.parse().unwrap();
    let metrics = get(metrics_address, "/metrics");
    assert_eq!(metrics.status, 200);
    assert!(String::from_utf8_lossy(&metrics.body).contains("ws_connections_total"));
    chats(server.address);
}

#[test]
fn metrics_listen_off_says_so_at_start_and_the_server_serves_on() {
    let (server, start_up) = start(&["--listen", "127.0.0.1:0", "--metrics-listen", "off"], &[]);
    let later = server.log_lines_until("metrics off", Duration::from_secs(5));
    assert!(
        later
            .iter()
            .chain(&start_up)
            .any(|line| line.contains("metrics off")),
        "{start_up:?} {later:?}"
    );
    assert_eq!(get(server.address, "/healthz").status, 200);
    chats(server.address);
}

#[test]

fn with_metrics_elsewhere_or_off_the_main_port_answers_get_metrics_with_404() {
    for metrics_listen in ["127.0.0.1:0", "off"] {
        let (server, _) = start(
            &[
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                metrics_listen,
            ],
            &[],
        );
        let response = get(server.address, "/metrics");
        assert_eq!(
            response.status, 404,
            "--metrics-listen {metrics_listen}: {}",
            response.head
        );
    }
}

#[test]
fn metrics_show_the_process_resident_memory_and_open_files() {
    let server = Server::start(&[]);
    let _members: Vec<Client> = (0..10)
        .map(|_| Client::connect(server.address, "/fds"))
        .collect();
    let resident = server.metric("process_resident_memory_bytes");
    let open_fds = server.metric("process_open_fds");
    assert!(resident > 1e6, "process_resident_memory_bytes {resident}");
    // Within a factor of two of what /proc says now (the figure is read when asked).
    let rss = server.rss_bytes() as f64;
    assert!(
        resident > rss / 2.0 && resident < rss * 2.0,
        "{resident} vs {rss}"
    );
    // Ten WebSockets, the listener, the poller, the signal pipe, the /metrics socket.
    let in_proc = std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .unwrap()
        .count() as f64;
    assert!(open_fds >= 13.0, "process_open_fds {open_fds}");
    assert!(
        (open_fds - in_proc).abs() <= 3.0,
        "{open_fds} vs {in_proc} in /proc"
    );
    for name in [
        "process_cpu_seconds_total",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            server.metrics().iter().any(|(metric, _)| metric == name),
            "{name} missing"
        );
    }
}

#[test]
fn listen_takes_localhost_and_a_bare_port() {
    let port = free_port();
    let (server, _) = start(&["--listen", &format!("localhost:{port}")], &[]);
    assert_eq!(server.address.port(), port);
    assert!(server.address.ip().is_loopback(), "{}", server.address);
    chats(server.address);
    drop(server);

    let port = free_port();
    let (server, _) = start(&["--listen", &format!(":{port}")], &[]);
    assert_eq!(server.address.port(), port);
    chats(SocketAddr::from(([127, 0, 0, 1], port)));
}

#[test]
fn options_come_from_fanout_environment_variables_and_the_command_line_wins() {
    let (server, _) = start(
        &["--listen", "127.0.0.1:0"],
        &[("FANOUT_MAX_MESSAGE_SIZE", "10")],
    );
    let mut client = Client::connect(server.address, "/env");
    client.send_text("ten bytes!");
    assert_eq!(client.recv_message(), Received::Text("ten bytes!".into()));
    client.send_text("eleven byte");
    assert!(matches!(
        client.recv_message(),
        Received::Close(Some(1009), _)
    ));
    drop(server);

    let (server, _) = start(
        &["--listen", "127.0.0.1:0", "--max-message-size", "100"],
        &[("FANOUT_MAX_MESSAGE_SIZE", "10")],
    );
    let mut client = Client::connect(server.address, "/env");
    client.send_text("eleven byte");
    assert_eq!(client.recv_message(), Received::Text("eleven byte".into()));

    // A bad value in the environment is a bad command line: a message and exit 2.
    let output = Command::new(binary("server"))
        .env("FANOUT_MAX_MESSAGE_SIZE", "lots")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("lots"));
}

#[test]
fn help_names_the_environment_variable_of_every_option() {
    let output = Command::new(binary("server"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    let options: Vec<&str> = help
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("--"))
        .map(|line| line.split([' ', '<']).next().unwrap())
        .filter(|option| !matches!(*option, "help" | "version"))
        .collect();
    assert!(options.len() > 20, "{options:?}");
    for option in options {
        let name = format!("[env: FANOUT_{}", option.to_uppercase().replace('-', "_"));
        // A secret (--redis-password) names its variable without showing its value.
        assert!(
            help.contains(&format!("{name}=")) || help.contains(&format!("{name}]")),
            "--{option}: no {name}]"
        );
    }
}

#[test]
fn log_format_json_prints_one_json_object_per_line() {
    let (server, start_up) = start(
        &["--listen", "127.0.0.1:0", "--log-format", "json"],
        &[("RUST_LOG", "debug")],
    );
    chats(server.address);
    let later = server.log_lines_until("peer finished sending", Duration::from_secs(10));
    let lines: Vec<&String> = start_up.iter().chain(&later).collect();
    assert!(lines.len() >= 3, "{lines:?}");
    for line in lines {
        let object: Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"));
        for field in ["ts", "level", "target", "msg"] {
            assert!(object[field].is_string(), "{field} missing in {line}");
        }
    }
    let listening: Value = serde_json::from_str(start_up.last().unwrap()).unwrap();
    assert_eq!(listening["level"], "INFO");
    assert!(listening["msg"]
        .as_str()
        .unwrap()
        .starts_with("listening on ws://"));
}

#[test]
fn connection_ids_in_the_logs_are_unique_across_reconnects() {
    let (server, _) = start(&["--listen", "127.0.0.1:0"], &[("RUST_LOG", "debug")]);
    let mut ids = Vec::new();
    for round in 0..5 {
        chats(server.address);
        // The slab key of the closed connection is free again; its id must not come back.
        let lines = server.log_lines_until("peer finished sending", Duration::from_secs(10));
        let accepted: Vec<u64> = lines
            .iter()
            .filter(|line| line.contains("accepted 127.0.0.1:"))
            .filter_map(|line| line.split(" as connection #").nth(1))
            .map(|id| id.split_whitespace().next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(accepted.len(), 1, "round {round}: {lines:?}");
        ids.extend(accepted);
    }
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "ids {ids:?}");
}

#[test]
fn the_open_files_soft_limit_is_raised_to_the_hard_limit() {
    let mut command = Command::new("sh");
    command.args([
        "-c",
        "ulimit -S -n 256 && exec \"$0\" \"$@\"",
        binary("server").to_str().unwrap(),
    ]);
    let (server, _) = Server::start_logged(command, &["--listen", "127.0.0.1:0"], &[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (soft, hard) = (fields[3], fields[4]);
    assert_ne!(soft, "256", "{line}");
    assert_eq!(soft, hard, "{line}");
    assert_eq!(
        server.metric("process_max_fds").to_string(),
        soft.to_string(),
        "{line}"
    );
}

#[test]
fn max_connections_above_the_open_files_limit_is_warned_about_at_start() {
    let mut command = Command::new("sh");
    command.args([
        "-c",
        "ulimit -n 64 && exec \"$0\" \"$@\"",
        binary("server").to_str().unwrap(),
    ]);
    let (server, start_up) = Server::start_logged(
        command,
        &["--listen", "127.0.0.1:0", "--max-connections", "1000"],
        &[],
    );
    assert!(
        start_up
            .iter()
            .any(|line| line.contains("WARN") && line.contains("open-files limit is 64")),
        "{start_up:?}"
    );
    chats(server.address);
}

#[test]
fn a_trusted_proxy_names_the_forwarded_client_in_the_logs_and_others_do_not() {
    for (trusted, expected) in [(true, true), (false, false)] {
        let mut args = vec!["--listen", "127.0.0.1:0"];
        if trusted {
            args.extend(["--trusted-proxy", "127.0.0.1"]);
        }
        let (server, _) = start(&args, &[("RUST_LOG", "debug")]);
        let _client = Client::connect_with(
            server.address,
            "/proxied",
            &[("X-Forwarded-For", "203.0.113.7, 10.0.0.1")],
        )
        .unwrap();
        let lines = server.log_lines_until("websocket open", Duration::from_secs(10));
        let open = lines.last().cloned().unwrap_or_default();
        assert!(open.contains("websocket open"), "{lines:?}");
        assert_eq!(
            open.contains("203.0.113.7"),
            expected,
            "trusted {trusted}: {open}"
        );
    }
}

#[test]
fn the_start_up_line_says_the_settings_in_words() {
    let (_server, start_up) = start(&["--listen", "127.0.0.1:0"], &[]);
    let line = start_up.last().unwrap();
    for words in ["chat mode", "messages up to 1048576 bytes", "slow consumer"] {
        assert!(line.contains(words), "{words:?} not in {line}");
    }
    // No Rust debug names such as `Chat` or `Close` in it.
    for debug_name in ["Chat", "Echo", "Close", "Drop", "Some("] {
        assert!(!line.contains(debug_name), "{debug_name:?} in {line}");
    }
}

#[test]

fn metrics_on_their_own_port_are_served_while_silent_sockets_hold_every_handshake_slot() {
    let port = free_port();
    let metrics_listen = format!("127.0.0.1:{port}");
    let (server, _) = start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--max-handshakes",
            "10",
            "--metrics-listen",
            &metrics_listen,
        ],
        &[],
    );
    let metrics_address: SocketAddr = metrics_listen.parse().unwrap();
    let silent: Vec<std::net::TcpStream> = (0..10)
        .map(|_| std::net::TcpStream::connect(server.address).unwrap())
        .collect();
    // Until the server has accepted all ten, /metrics may still get a slot: wait until it
    // says ten handshakes are in progress, or is refused.
    let mut last = None;
    for _ in 0..100 {
        let mut stream = std::net::TcpStream::connect(metrics_address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = std::io::Write::write_all(&mut stream, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut answer = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stream, &mut answer);
        let text = String::from_utf8_lossy(&answer).into_owned();
        assert!(
            text.starts_with("HTTP/1.1 200"),
            "/metrics on its own port was refused while silent sockets hold the handshake slots: {text:?}"
        );
        if text.contains("\nws_handshakes_in_progress 10\n") {
            last = Some(text);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        last.is_some(),
        "the server never had ten handshakes in progress"
    );
    drop(silent);
}

#[test]
fn running_out_of_descriptors_is_logged_once_per_interval_with_a_count() {
    let mut command = Command::new("sh");
    command.args([
        "-c",
        "ulimit -n 64 && exec \"$0\" \"$@\"",
        binary("server").to_str().unwrap(),
    ]);
    let (server, _) = Server::start_logged(command, &["--listen", "127.0.0.1:0"], &[]);
    // Past 64 descriptors, accept fails; the server retries every 100 ms for the second the
    // sockets wait, which is ten or more failures, and logs them once.
    let waiting: Vec<std::net::TcpStream> = (0..100)
        .map(|_| std::net::TcpStream::connect(server.address).unwrap())
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    drop(waiting);
    let lines = server.log_lines_until("no such line", Duration::from_millis(500));
    let reports: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains("accept:"))
        .collect();
    assert_eq!(reports.len(), 1, "{lines:?}");
    assert!(
        reports[0].contains("time(s) since the last report"),
        "{}",
        reports[0]
    );
    chats(server.address);
    assert!(server.metric("ws_accept_fd_exhausted_total") >= 2.0);
}
