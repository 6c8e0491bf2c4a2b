//! `--url` repeated: clients spread round robin over the URLs, all in one logical room, and the
//! report broken down per URL.

mod loadgen_support;

use std::net::TcpListener;

use loadgen_support::{fake, number, stderr, Run};

#[test]
fn clients_spread_over_two_urls_of_one_room_and_each_url_is_reported() {
    // One broadcast server reached by two URLs: one logical room.
    let server = fake(&[]);
    let first = format!("ws://{}/a", server.address);
    let second = format!("ws://{}/b", server.address);
    let (output, json) = Run::fanout(&first)
        .arg("--url", &second)
        .clients(10)
        .senders(2)
        .rate(100)
        .duration("1s")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(number(&json, &["deliveries", "expected"]), 100 * 10);
    assert_eq!(number(&json, &["deliveries", "lost"]), 0);
    let per_url = json["per_url"].as_array().expect("per_url");
    assert_eq!(per_url.len(), 2);
    for (entry, url) in per_url.iter().zip([&first, &second]) {
        assert_eq!(entry["url"], url.as_str());
        assert_eq!(number(entry, &["connections_ok"]), 5);
        assert_eq!(number(entry, &["deliveries", "expected"]), 100 * 5);
        assert_eq!(number(entry, &["deliveries", "received"]), 100 * 5);
        assert_eq!(number(entry, &["delivery_latency_us", "count"]), 100 * 5);
    }
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains(&format!("url 2             {second}: 5 ok")),
        "{table}"
    );
}

#[test]
fn a_dead_url_among_live_ones_shows_its_failures_apart() {
    let server = fake(&[]);
    let live = format!("ws://{}/", server.address);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("ws://127.0.0.1:{port}/");
    let (output, json) = Run::connect(&live)
        .arg("--url", &dead)
        .clients(6)
        .arg("--hold", "200ms")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    let per_url = json["per_url"].as_array().expect("per_url");
    assert_eq!(number(&per_url[0], &["connections_ok"]), 3);
    assert_eq!(number(&per_url[0], &["connections_failed"]), 0);
    assert_eq!(number(&per_url[1], &["connections_ok"]), 0);
    assert_eq!(number(&per_url[1], &["connections_failed"]), 3);
    assert_eq!(json["verdict"]["valid"], false);
}
