//! Proof that `loadgen` tells the truth: against servers whose faults are known exactly, it
//! must report exactly those faults.

mod loadgen_support;

use std::net::TcpListener;

use integration_tests::Server;
use loadgen_support::{fake, loadgen, number, stderr, url, Run};
use serde_json::Value;

#[test]
fn a_server_that_delays_every_broadcast_by_20ms_is_reported_at_20_to_25ms_and_never_below() {
    let server = fake(&["--delay-ms", "20"]);
    let (output, json) = Run::fanout(&url(&server))
        .clients(20)
        .senders(2)
        .rate(100)
        .duration("2s")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    let p50 = number(&json, &["delivery_latency_us", "p50"]);
    let min = number(&json, &["delivery_latency_us", "min"]);
    assert!((20_000..=25_000).contains(&p50), "p50 {p50} µs");
    assert!(
        min >= 20_000,
        "a delivery was reported at {min} µs, below the 20 ms delay"
    );
    assert_eq!(number(&json, &["deliveries", "lost"]), 0);
}

#[test]
fn a_500ms_stall_during_a_fixed_rate_run_shows_in_p99_9_and_max() {
    let server = fake(&["--stall-after-ms", "1000", "--stall-ms", "500"]);
    let (output, json) = Run::fanout(&url(&server))
        .clients(10)
        .senders(1)
        .rate(200)
        .duration("3s")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    let p99_9 = number(&json, &["delivery_latency_us", "p99_9"]);
    let max = number(&json, &["delivery_latency_us", "max"]);
    // Messages meant to be sent during the stall waited for it: measured from their intended
    // send time, the worst of them waited the whole 500 ms.
    assert!(max >= 450_000, "max {max} µs hides the stall");
    assert!(p99_9 >= 300_000, "p99.9 {p99_9} µs hides the stall");
    assert_eq!(number(&json, &["deliveries", "lost"]), 0);
}

#[test]
fn a_server_that_drops_one_delivery_in_a_hundred_is_reported_exactly() {
    let server = fake(&["--drop-every", "100"]);
    let (output, json) = Run::fanout(&url(&server))
        .clients(10)
        .senders(1)
        .rate(100)
        .duration("2s")
        .arg("--expect-self", "yes")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = number(&json, &["deliveries", "expected"]);
    assert_eq!(expected, 200 * 10);
    assert_eq!(number(&json, &["deliveries", "lost"]), expected / 100);
    assert_eq!(
        number(&json, &["deliveries", "received"]),
        expected - expected / 100
    );
    assert_eq!(number(&json, &["incomplete_messages"]), expected / 100);
}

#[test]
fn every_delivery_from_our_server_is_accounted_for() {
    let server = Server::start(&[]);
    let pid = server.pid().to_string();
    let (output, json) = Run::fanout(&url(&server))
        .clients(100)
        .senders(10)
        .rate(200)
        .duration("2s")
        .arg("--server-pid", &pid)
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    let sent = number(&json, &["messages", "sent"]);
    assert_eq!(sent, 400);
    assert_eq!(number(&json, &["deliveries", "expected"]), sent * 100);
    assert_eq!(number(&json, &["deliveries", "received"]), sent * 100);
    assert_eq!(number(&json, &["deliveries", "lost"]), 0);
    assert_eq!(number(&json, &["deliveries", "duplicated"]), 0);
    assert_eq!(number(&json, &["deliveries", "out_of_order"]), 0);
    assert_eq!(json["deliveries"]["self_echo"], Value::Bool(true));
    assert!(json["resources"]["server_cpu_s"].is_number());
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("delivery latency") && table.contains("lost 0"),
        "{table}"
    );
}

#[test]
fn a_server_that_leaves_the_sender_out_is_detected_and_nothing_counts_as_lost() {
    let server = Server::start(&["--no-echo-to-sender"]);
    let (output, json) = Run::fanout(&url(&server))
        .clients(20)
        .senders(2)
        .rate(100)
        .duration("1s")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(json["deliveries"]["self_echo"], Value::Bool(false));
    assert_eq!(number(&json, &["deliveries", "expected"]), 100 * 19);
    assert_eq!(number(&json, &["deliveries", "lost"]), 0);
}

#[test]
fn welcome_texts_are_counted_and_ignored() {
    let server = Server::start(&["--welcome", "hello"]);
    let (output, json) = Run::fanout(&url(&server))
        .clients(10)
        .rate(50)
        .duration("1s")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(number(&json, &["deliveries", "non_probe_messages"]), 10);
    assert_eq!(number(&json, &["deliveries", "lost"]), 0);
}

#[test]
fn echo_runs_measure_each_clients_own_round_trip() {
    let server = Server::start(&["--mode", "echo"]);
    let (output, json) = Run::echo(&url(&server))
        .clients(20)
        .rate(200)
        .duration("1s")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(number(&json, &["messages", "sent"]), 200);
    assert_eq!(number(&json, &["deliveries", "received"]), 200);
    assert_eq!(number(&json, &["deliveries", "lost"]), 0);
}

#[test]
fn a_connection_storm_reports_handshakes_and_survivors() {
    let server = Server::start(&[]);
    let (output, json) = Run::connect(&url(&server))
        .clients(200)
        .arg("--connect-rate", "2000")
        .arg("--hold", "500ms")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(number(&json, &["connections", "ok"]), 200);
    assert_eq!(number(&json, &["connections", "open_at_end"]), 200);
    assert_eq!(number(&json, &["handshake_us", "count"]), 200);
}

#[test]
fn an_unreachable_url_is_a_clear_error_and_exit_1() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (output, _) = Run::fanout(&format!("ws://127.0.0.1:{port}/"))
        .clients(3)
        .duration("1s")
        .run();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("no client could connect") && message.contains("connection refused"),
        "{message}"
    );
}

#[test]
fn a_server_that_answers_404_is_a_clear_error_and_exit_1() {
    let server = fake(&["--status", "404"]);
    let (output, _) = Run::fanout(&url(&server)).clients(3).duration("1s").run();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("handshake: HTTP 404 (3)"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_server_that_closes_mid_run_is_counted_and_the_run_still_reports() {
    let server = fake(&["--close-after-ms", "700"]);
    let (output, json) = Run::fanout(&url(&server))
        .clients(10)
        .rate(100)
        .duration("2s")
        .drain("500ms")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(number(&json, &["connections", "close_codes", "1001"]), 10);
    assert_eq!(number(&json, &["connections", "open_at_end"]), 0);
    assert!(number(&json, &["deliveries", "lost"]) > 0);
}

#[test]
fn bad_command_lines_get_a_message_and_exit_2() {
    for (args, says) in [
        (
            vec![
                "fanout",
                "--url",
                "wss://127.0.0.1:1/",
                "--ca-file",
                "/nonexistent/ca.pem",
            ],
            "--ca-file",
        ),
        (
            vec!["fanout", "--url", "http://127.0.0.1:1/"],
            "not a ws:// or wss:// URL",
        ),
        (
            vec!["fanout", "--url", "ws://127.0.0.1:1/", "--payload", "10"],
            "--payload",
        ),
        (
            vec![
                "fanout",
                "--url",
                "ws://127.0.0.1:1/",
                "--senders",
                "5",
                "--clients",
                "2",
            ],
            "--senders",
        ),
        (
            vec!["fanout", "--url", "ws://127.0.0.1:1/", "--rooms", "3"],
            "{room}",
        ),
        (
            vec!["fanout", "--url", "ws://127.0.0.1:1/", "--duration", "soon"],
            "duration",
        ),
        (vec!["fanout", "--no-such-option"], "no-such-option"),
    ] {
        let (output, _) = loadgen(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains(says),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn rooms_spread_the_clients_and_each_message_is_expected_only_in_its_room() {
    let server = Server::start(&[]);
    let url = format!("ws://{}/room{{room}}", server.address);
    let (output, json) = Run::fanout(&url)
        .clients(20)
        .arg("--rooms", "2")
        .senders(2)
        .rate(100)
        .duration("1s")
        .arg("--first-message", "hello")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    // Two rooms of 10: each message is expected by the 10 members of its sender's room.
    assert_eq!(number(&json, &["messages", "sent"]), 100);
    assert_eq!(number(&json, &["deliveries", "expected"]), 100 * 10);
    assert_eq!(number(&json, &["deliveries", "lost"]), 0);
    assert_eq!(number(&json, &["deliveries", "unexpected"]), 0);
    // Each client's first message went to the members of its room already there, itself
    // included: at least 20 deliveries (each its own), at most 20 x 10; none is a probe.
    let non_probe = number(&json, &["deliveries", "non_probe_messages"]);
    assert!(
        (20..=200).contains(&non_probe),
        "{non_probe} first messages delivered"
    );
}
