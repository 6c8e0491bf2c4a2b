//! `loadgen` finds every probe wherever a server puts it, and accounts for every delivery per
//! receiver: servers that batch, wrap, and deliver an old message twice while dropping it
//! elsewhere.

mod loadgen_support;

use loadgen_support::{fake, number, stderr, url, Run};

#[test]
fn a_server_that_batches_queued_messages_with_newlines_loses_nothing() {
    let server = fake(&["--batch-ms", "20"]);
    let (output, json) = Run::fanout(&url(&server))
        .clients(10)
        .senders(2)
        .rate(200)
        .duration("1s")
        .drain("500ms")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = number(&json, &["deliveries", "expected"]);
    assert_eq!(expected, 200 * 10);
    assert_eq!(number(&json, &["deliveries", "received"]), expected);
    assert_eq!(number(&json, &["deliveries", "lost"]), 0);
    assert_eq!(number(&json, &["deliveries", "duplicated"]), 0);
    assert!(
        number(&json, &["deliveries", "multi_probe_messages"]) > 0,
        "no message carried several probes: {json:#}"
    );
}

#[test]
fn a_server_that_wraps_every_message_in_json_loses_nothing() {
    let server = fake(&["--wrap-json"]);
    let (output, json) = Run::fanout(&url(&server))
        .clients(10)
        .senders(1)
        .rate(100)
        .duration("1s")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(number(&json, &["deliveries", "expected"]), 100 * 10);
    assert_eq!(number(&json, &["deliveries", "received"]), 100 * 10);
    assert_eq!(number(&json, &["deliveries", "lost"]), 0);
    assert_eq!(number(&json, &["deliveries", "non_probe_messages"]), 0);
}

#[test]
fn an_old_message_delivered_twice_to_one_receiver_does_not_hide_its_loss_at_another() {
    let server = fake(&["--duplicate-old", "10"]);
    let (output, json) = Run::fanout(&url(&server))
        .clients(5)
        .senders(1)
        .rate(100)
        .duration("1s")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(number(&json, &["deliveries", "expected"]), 100 * 5);
    assert_eq!(number(&json, &["deliveries", "lost"]), 1);
    assert_eq!(number(&json, &["deliveries", "duplicated"]), 1);
    assert_eq!(number(&json, &["deliveries", "received"]), 100 * 5 - 1);
    assert_eq!(number(&json, &["deliveries", "receivers_with_loss"]), 1);
    let listed = json["deliveries"]["per_receiver"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("lost 1, duplicated 1"), "{table}");
}
