//! `loadgen` speaks a server's own protocol: `--message` templates with `{probe}`, and
//! per-client placeholders in the first message and headers.

mod loadgen_support;

use integration_tests::Server;
use loadgen_support::{number, stderr, temp_dir, url, Run};

#[test]
fn a_fanout_template_carries_every_probe_inside_the_servers_envelope() {
    let server = Server::start(&[]);
    let (output, json) = Run::fanout(&url(&server))
        .clients(10)
        .senders(2)
        .rate(100)
        .duration("1s")
        .arg(
            "--message",
            r#"{"type":"say","room":"{room}","from":"{sender}","text":"{probe}"}"#,
        )
        .arg(
            "--first-message",
            r#"{"type":"join","user":"user-{client}"}"#,
        )
        .arg("--header", "X-User: user-{client}")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(number(&json, &["messages", "sent"]), 100);
    assert_eq!(number(&json, &["deliveries", "expected"]), 100 * 10);
    assert_eq!(number(&json, &["deliveries", "received"]), 100 * 10);
    assert_eq!(number(&json, &["deliveries", "lost"]), 0);
    // The join messages reached members already in the room; none holds a probe.
    assert!(number(&json, &["deliveries", "non_probe_messages"]) >= 10);
}

#[test]
fn an_echo_template_from_a_file_measures_every_round_trip() {
    let server = Server::start(&["--mode", "echo"]);
    let dir = temp_dir();
    let template = dir.join("message.json");
    std::fs::write(&template, "{\"echo\":\"{probe}\",\"client\":{client}}\n").unwrap();
    let (output, json) = Run::echo(&url(&server))
        .clients(10)
        .rate(100)
        .duration("1s")
        .arg("--message-file", template.to_str().unwrap())
        .run();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(number(&json, &["messages", "sent"]), 100);
    assert_eq!(number(&json, &["deliveries", "received"]), 100);
    assert_eq!(number(&json, &["deliveries", "lost"]), 0);
}

#[test]
fn a_template_without_a_probe_is_a_usage_error() {
    let (output, _) = Run::fanout("ws://127.0.0.1:1/")
        .arg("--message", "hello")
        .run();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("{probe}"), "{}", stderr(&output));
}
