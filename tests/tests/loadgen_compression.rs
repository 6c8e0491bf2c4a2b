//! `--compress`: permessage-deflate offered as a browser offers it, compressed deliveries
//! inflated and counted, bytes on the wire reported beside payload bytes.

mod loadgen_support;

use loadgen_support::{fake, number, stderr, url, Run};

#[test]
fn a_compressing_server_is_measured_through_inflation_with_wire_and_payload_bytes() {
    let server = fake(&["--deflate"]);
    let (output, json) = Run::fanout(&url(&server))
        .flag("--compress")
        .clients(10)
        .senders(2)
        .rate(100)
        .duration("1s")
        .arg("--payload", "512")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(number(&json, &["bytes", "compressed_connections"]), 10);
    assert_eq!(number(&json, &["deliveries", "expected"]), 100 * 10);
    assert_eq!(number(&json, &["deliveries", "received"]), 100 * 10);
    assert_eq!(number(&json, &["deliveries", "lost"]), 0);
    let payload = number(&json, &["bytes", "received_payload"]);
    let wire = number(&json, &["bytes", "received_wire"]);
    assert_eq!(payload, 100 * 10 * 512);
    // 512-byte probes are mostly padding: compressed they are a small part of their size.
    assert!(wire * 4 < payload, "wire {wire} for payload {payload}");
    let sent_payload = number(&json, &["bytes", "sent_payload"]);
    assert_eq!(sent_payload, 100 * 512);
    assert!(number(&json, &["bytes", "sent_wire"]) < sent_payload);
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("permessage-deflate agreed on 10 of 10 connections"),
        "{table}"
    );
}

#[test]
fn a_server_that_declines_compression_is_measured_uncompressed() {
    let server = fake(&[]);
    let (output, json) = Run::fanout(&url(&server))
        .flag("--compress")
        .clients(5)
        .rate(50)
        .duration("1s")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(number(&json, &["bytes", "compressed_connections"]), 0);
    assert_eq!(number(&json, &["deliveries", "lost"]), 0);
    assert_eq!(number(&json, &["bytes", "received_payload"]), 50 * 5 * 64);
}
