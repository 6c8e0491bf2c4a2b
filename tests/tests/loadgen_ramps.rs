//! `--connection-stages`: receivers join and leave over the run, and the accounting stays
//! exact: a receiver is owed what was sent while it was a member, a planned leave closes with
//! 1000 and is not a failure, and the time series shows the connections rising and falling.

mod loadgen_support;

use integration_tests::Server;
use loadgen_support::{fake, number, reasons, stderr, url, Run};

#[test]
fn receivers_ramped_up_and_down_are_accounted_exactly_and_leave_cleanly() {
    let server = Server::start(&[]);
    let (output, json) = Run::fanout(&url(&server))
        .clients(30)
        .senders(2)
        .rate(100)
        .duration("3s")
        .drain("500ms")
        .arg("--connection-stages", "1s:28,1s:28,1s:0")
        .arg("--interval", "250ms")
        .arg("--expect-self", "yes")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(number(&json, &["deliveries", "expected"]) > 0, "{json:#}");
    for field in ["lost", "duplicated", "unexpected"] {
        assert_eq!(number(&json, &["deliveries", field]), 0, "{field}");
    }
    assert_eq!(
        number(&json, &["deliveries", "received"]),
        number(&json, &["deliveries", "expected"])
    );
    assert_eq!(number(&json, &["connections", "ok"]), 30);
    assert_eq!(number(&json, &["connections", "left_as_planned"]), 28);
    assert_eq!(number(&json, &["connections", "open_at_end"]), 2);
    assert_eq!(
        json["connections"]["lost_while_open"],
        serde_json::json!({})
    );
    // Planned leaves are not failures.
    let why = reasons(&json);
    for failure in ["failed", "server gone", "lost", "not sent"] {
        assert!(!why.contains(failure), "{why}");
    }
    // The connections rise to every client, then fall back to the senders.
    let open: Vec<u64> = json["intervals"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|row| row["open_connections"].as_u64())
        .collect();
    let peak = open.iter().position(|&count| count == 30);
    let peak = peak.unwrap_or_else(|| panic!("never 30 open: {open:?}"));
    assert!(open[0] < 30, "{open:?}");
    assert!(
        open[..peak].windows(2).all(|pair| pair[0] <= pair[1]),
        "{open:?}"
    );
    assert!(
        open[peak..].windows(2).all(|pair| pair[0] >= pair[1]),
        "{open:?}"
    );
    assert_eq!(open.last(), Some(&2), "{open:?}");
}

#[test]
fn a_server_that_joins_a_receiver_after_its_101_loses_nothing_within_the_join_grace() {
    // Members join the room 50 ms after their 101: messages sent meanwhile never reach them.
    // They are within the 100 ms join grace, so they are not owed; what comes in the rest of
    // the grace is counted apart, not as unexpected. The server never answers a close, so the
    // receivers leave after waiting for it, still as planned.
    let server = fake(&["--join-after-ms", "50"]);
    let (output, json) = Run::fanout(&url(&server))
        .clients(12)
        .senders(2)
        .rate(400)
        .duration("2s")
        .drain("500ms")
        .arg("--connection-stages", "500ms:10,1s:10,500ms:0")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(number(&json, &["deliveries", "expected"]) > 0, "{json:#}");
    for field in ["lost", "duplicated", "unexpected"] {
        assert_eq!(number(&json, &["deliveries", field]), 0, "{field}");
    }
    assert!(number(&json, &["deliveries", "outside_membership"]) > 0);
    assert_eq!(number(&json, &["connections", "left_as_planned"]), 10);
    assert_eq!(
        json["connections"]["lost_while_open"],
        serde_json::json!({})
    );
}

#[test]
fn a_connection_ramp_beyond_the_receivers_is_a_usage_error() {
    let (output, _) = Run::fanout("ws://127.0.0.1:1/")
        .clients(10)
        .senders(2)
        .arg("--connection-stages", "1s:20,1s:0")
        .run();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("peaks at 20 receivers"),
        "{}",
        stderr(&output)
    );
}
