//! Rooms across server processes through a real `redis-server`: two `server` processes with
//! `--redis`, clients on both, one room.

use std::collections::HashMap;
use std::time::Duration;

use integration_tests::redis::RedisServer;
use integration_tests::{wait_until, Client, Received, Server};

const QUIET: Duration = Duration::from_millis(300);
const ROOM: &str = "/cluster";

/// Two servers on one Redis, each with its node id.
fn two_servers(redis: &RedisServer) -> (Server, Server) {
    let url = redis.url();
    let first = Server::start(&["--redis", &url, "--node-id", "a1"]);
    let second = Server::start(&["--redis", &url, "--node-id", "b2"]);
    (first, second)
}

/// Waits until a server has subscribed its one room's channel (Redis counted it).
fn wait_subscribed(server: &Server) {
    wait_until("the server subscribed its room on redis", || {
        server.metric("ws_bus_connected") == 1.0 && server.metric("ws_bus_subscriptions") == 1.0
    });
}

/// Reads text messages until `count` have come, then checks that nothing more comes.
fn receive_texts(client: &mut Client, count: usize) -> Vec<String> {
    let mut texts = Vec::new();
    while texts.len() < count {
        match client.recv_message() {
            Received::Text(text) => texts.push(text),
            other => panic!("expected a text message, got {other:?}"),
        }
    }
    assert_eq!(
        client.recv_timeout(QUIET),
        None,
        "more than {count} messages"
    );
    texts
}

#[test]
fn every_message_reaches_every_member_on_both_servers_exactly_once() {
    let redis = RedisServer::start();
    let (first, second) = two_servers(&redis);
    let mut members: Vec<Client> = (0..3)
        .map(|_| Client::connect(first.address, ROOM))
        .chain((0..3).map(|_| Client::connect(second.address, ROOM)))
        .collect();
    wait_subscribed(&first);
    wait_subscribed(&second);

    const PER_MEMBER: usize = 10;
    for round in 0..PER_MEMBER {
        for (index, member) in members.iter_mut().enumerate() {
            member.send_text(&format!("member {index} message {round}"));
        }
    }
    let expected = members.len() * PER_MEMBER;
    for (index, member) in members.iter_mut().enumerate() {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for text in receive_texts(member, expected) {
            *counts.entry(text).or_default() += 1;
        }
        assert_eq!(counts.len(), expected, "member {index} missed messages");
        assert!(
            counts.values().all(|&count| count == 1),
            "member {index} got duplicates"
        );
    }
    for server in [&first, &second] {
        assert_eq!(server.metric("ws_bus_published_total"), 30.0);
        assert_eq!(server.metric("ws_bus_received_total"), 30.0);
        assert_eq!(server.metric("ws_bus_own_echoes_total"), 30.0);
        assert_eq!(server.metric("ws_bus_not_delivered_total"), 0.0);
    }
}

#[test]
fn a_room_with_no_member_left_on_a_server_is_unsubscribed_there() {
    let redis = RedisServer::start();
    let (first, second) = two_servers(&redis);
    let mut alice = Client::connect(first.address, ROOM);
    let bob = Client::connect(second.address, ROOM);
    wait_subscribed(&first);
    wait_subscribed(&second);
    drop(bob);
    wait_until("the second server unsubscribed", || {
        second.metric("ws_bus_subscriptions") == 0.0
    });
    alice.send_text("anyone?");
    assert_eq!(alice.recv_message(), Received::Text("anyone?".into()));
    wait_until("the first server published", || {
        first.metric("ws_bus_published_total") == 1.0
    });
    assert_eq!(second.metric("ws_bus_received_total"), 0.0);
}

#[test]
fn a_redis_restart_mid_run_leaves_both_servers_serving_and_cross_server_delivery_resumes() {
    let mut redis = RedisServer::start();
    let (first, second) = two_servers(&redis);
    let mut alice = Client::connect(first.address, ROOM);
    let mut anna = Client::connect(first.address, ROOM);
    let mut bob = Client::connect(second.address, ROOM);
    wait_subscribed(&first);
    wait_subscribed(&second);
    alice.send_text("before");
    for member in [&mut alice, &mut anna, &mut bob] {
        assert_eq!(member.recv_message(), Received::Text("before".into()));
    }

    redis.kill();
    wait_until("both servers saw redis go", || {
        first.metric("ws_bus_connected") == 0.0 && second.metric("ws_bus_connected") == 0.0
    });
    // Local delivery goes on; the other server's member does not get it, and it is counted.
    alice.send_text("during");
    assert_eq!(alice.recv_message(), Received::Text("during".into()));
    assert_eq!(anna.recv_message(), Received::Text("during".into()));
    bob.send_text("alone");
    assert_eq!(bob.recv_message(), Received::Text("alone".into()));
    assert_eq!(bob.recv_timeout(QUIET), None);
    assert_eq!(alice.recv_timeout(QUIET), None);
    assert!(first.metric("ws_bus_not_delivered_total") >= 1.0);
    assert!(second.metric("ws_bus_not_delivered_total") >= 1.0);

    redis.restart();
    wait_subscribed(&first);
    wait_subscribed(&second);
    alice.send_text("after");
    for member in [&mut alice, &mut anna, &mut bob] {
        assert_eq!(member.recv_message(), Received::Text("after".into()));
    }
    bob.send_text("back");
    for member in [&mut alice, &mut anna, &mut bob] {
        assert_eq!(member.recv_message(), Received::Text("back".into()));
    }
    for server in [&first, &second] {
        assert!(server.metric("ws_bus_reconnects_total") >= 1.0);
        let metrics = server.metrics();
        assert!(metrics
            .iter()
            .any(|(name, _)| name == "ws_bus_connect_failures_total"));
    }
    assert_eq!(alice.recv_timeout(QUIET), None);
    assert_eq!(bob.recv_timeout(QUIET), None);
}

#[test]
fn a_server_started_while_redis_is_down_serves_its_rooms_and_joins_the_bus_later() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    redis.kill();
    let url = format!("redis://127.0.0.1:{port}");
    let first = Server::start(&["--redis", &url, "--node-id", "a1"]);
    let mut alice = Client::connect(first.address, ROOM);
    let mut anna = Client::connect(first.address, ROOM);
    alice.send_text("local");
    assert_eq!(anna.recv_message(), Received::Text("local".into()));
    wait_until("a failed attempt is counted", || {
        first.metric("ws_bus_connect_failures_total") >= 1.0
    });
    assert_eq!(first.metric("ws_bus_connected"), 0.0);
    assert_eq!(first.metric("ws_bus_not_delivered_total"), 1.0);

    redis.restart();
    let second = Server::start(&["--redis", &url, "--node-id", "b2"]);
    let mut bob = Client::connect(second.address, ROOM);
    wait_subscribed(&first);
    wait_subscribed(&second);
    bob.send_text("hello from the other side");
    assert_eq!(alice.recv_message(), Received::Text("local".into()));
    for member in [&mut alice, &mut anna, &mut bob] {
        assert_eq!(
            member.recv_message(),
            Received::Text("hello from the other side".into())
        );
    }
}
