//! A run says when it went wrong: the verdict line, `--fail-on invalid`, thresholds, messages
//! not sent, undelivered messages as latency lower bounds, interrupts, limits checked first.

mod loadgen_support;

use std::process::Command;
use std::time::Duration;

use integration_tests::{binary, Server};
use loadgen_support::{fake, number, read_json, reasons, stderr, temp_dir, url, Run};

#[test]
fn a_healthy_run_is_valid_and_exits_0() {
    let server = Server::start(&[]);
    let (output, json) = Run::fanout(&url(&server))
        .clients(10)
        .rate(50)
        .duration("1s")
        .arg("--fail-on", "invalid")
        .arg("--threshold", "lost==0")
        .arg("--threshold", "p99<10s")
        .run();
    // A loaded machine may make the schedule late (that is a real reason to distrust a run);
    // the run must otherwise be valid.
    let why = reasons(&json);
    if !why.contains("schedule not kept") && !why.contains("saturated") {
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert_eq!(json["verdict"]["valid"], true, "{why}");
    }
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("verdict"), "{table}");
    assert_eq!(json["thresholds"][0]["passed"], true);
    assert_eq!(json["schema_version"], 4);
    assert_eq!(json["run"]["arrival"], "kernel", "the default arrival time");
    assert!(table.contains("(arrival: kernel receive time)"), "{table}");
    assert!(json["loadgen"]["command_line"][1] == "fanout");
    assert!(number(&json, &["loadgen", "started_at_unix_ms"]) > 1_600_000_000_000);
}

#[test]
fn a_server_killed_mid_run_makes_the_run_invalid_with_messages_not_sent() {
    let mut server = Server::start(&[]);
    let dir = temp_dir();
    let json_path = dir.join("report.json");
    let child = Run::fanout(&url(&server))
        .clients(20)
        .senders(2)
        .rate(100)
        .duration("3s")
        .drain("500ms")
        .arg("--fail-on", "invalid")
        .spawn(&json_path);
    std::thread::sleep(Duration::from_millis(1500));
    server.child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let json = read_json(&json_path);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert_eq!(json["verdict"]["valid"], false);
    let why = reasons(&json);
    assert!(why.contains("server gone"), "{why}");
    assert!(why.contains("not sent"), "{why}");
    let scheduled = number(&json, &["messages", "scheduled"]);
    let sent = number(&json, &["messages", "sent"]);
    assert_eq!(scheduled, 300);
    assert_eq!(number(&json, &["messages", "not_sent"]), scheduled - sent);
    assert!(sent < scheduled);
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("verdict           invalid: "), "{table}");
}

#[test]
fn refused_connections_make_the_run_invalid() {
    let server = fake(&["--max-clients", "20"]);
    let (output, json) = Run::fanout(&url(&server))
        .clients(30)
        .rate(50)
        .duration("1s")
        .arg("--fail-on", "invalid")
        .run();
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert_eq!(
        number(&json, &["connections", "failures", "handshake: HTTP 503"]),
        10
    );
    assert!(reasons(&json).contains("10 of 30 connections failed or were refused"));
}

#[test]
fn a_crossed_threshold_exits_4_and_says_which() {
    let server = fake(&["--drop-every", "50"]);
    let (output, json) = Run::fanout(&url(&server))
        .clients(5)
        .rate(100)
        .duration("1s")
        .arg("--threshold", "lost==0")
        .arg("--threshold", "lost<50%")
        .run();
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert_eq!(json["thresholds"][0]["passed"], false);
    assert_eq!(json["thresholds"][1]["passed"], true);
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("lost==0: CROSSED (10)"), "{table}");
}

#[test]
fn messages_never_delivered_count_as_lost_and_as_a_latency_lower_bound() {
    // Every broadcast after the first 300 ms is held for 5 s: longer than the run lasts.
    let server = fake(&["--stall-after-ms", "300", "--stall-ms", "5000"]);
    let (output, json) = Run::fanout(&url(&server))
        .clients(5)
        .rate(100)
        .duration("1s")
        .drain("500ms")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    let lost = number(&json, &["deliveries", "lost"]);
    assert!(lost > 0);
    assert_eq!(number(&json, &["deliveries", "undelivered_at_end"]), lost);
    let received_max = number(&json, &["delivery_latency_us", "max"]);
    let bounded_max = number(&json, &["delivery_latency_with_undelivered_us", "max"]);
    let bounded_p99 = number(&json, &["delivery_latency_with_undelivered_us", "p99"]);
    // The oldest undelivered message had waited at least the drain when the run stopped.
    assert!(bounded_max >= 500_000, "{bounded_max}");
    assert!(
        bounded_p99 > received_max,
        "{bounded_p99} vs {received_max}"
    );
    // The rate divides by the real time deliveries took, at least the measured window.
    let elapsed = json["deliveries"]["elapsed_s"].as_f64().unwrap();
    assert!(elapsed >= 1.0, "{elapsed}");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("with undelivered  p50"), "{table}");
    assert!(table.contains("still missing at the end"), "{table}");
}

#[test]
fn sigint_stops_sending_prints_the_summary_and_writes_the_files_marked_interrupted() {
    let server = Server::start(&[]);
    let dir = temp_dir();
    let json_path = dir.join("report.json");
    let hgrm_path = dir.join("report.hgrm");
    let child = Run::fanout(&url(&server))
        .clients(10)
        .rate(100)
        .duration("30s")
        .arg("--hgrm", hgrm_path.to_str().unwrap())
        .spawn(&json_path);
    std::thread::sleep(Duration::from_millis(1500));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let json = read_json(&json_path);
    let hgrm = std::fs::read_to_string(&hgrm_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    assert_eq!(json["interrupted"], true);
    assert!(reasons(&json).contains("interrupted"));
    let sent = number(&json, &["messages", "sent"]);
    assert!(sent > 0 && sent < 3000, "{sent}");
    // Messages the interrupt cancelled are not "not sent": they were never due.
    assert_eq!(number(&json, &["messages", "not_sent"]), 0);
    assert!(hgrm.contains("Total count"), "{hgrm}");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("[interrupted]") && table.contains("verdict"),
        "{table}"
    );
}

#[test]
fn an_unwritable_output_is_refused_before_the_run() {
    let (output, _) = Run::connect("ws://127.0.0.1:1/")
        .arg("--hgrm", "/nonexistent-dir/out.hgrm")
        .run();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--hgrm /nonexistent-dir/out.hgrm"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_open_files_soft_limit_is_raised_and_a_run_that_cannot_fit_is_refused() {
    let server = Server::start(&[]);
    let loadgen = binary("loadgen");
    // Soft limit 100, hard limit untouched: 300 clients fit once the soft limit is raised.
    let output = Command::new("sh")
        .args([
            "-c",
            &format!(
                "ulimit -Sn 100 && exec {} connect --url {} --clients 300 --connect-rate 3000 --hold 200ms --quiet",
                loadgen.display(),
                url(&server)
            ),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("300 ok, 0 failed"), "{table}");
    // Hard limit 100: 300 clients cannot fit, and the run is refused before it starts.
    let output = Command::new("sh")
        .args([
            "-c",
            &format!(
                "ulimit -n 100 && exec {} connect --url {} --clients 300 --quiet",
                loadgen.display(),
                url(&server)
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("open files"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn connect_reports_only_what_it_measures_and_its_hgrm_holds_the_handshakes() {
    let server = Server::start(&[]);
    let dir = temp_dir();
    let hgrm_path = dir.join("handshakes.hgrm");
    let (output, json) = Run::connect(&url(&server))
        .clients(40)
        .arg("--hold", "200ms")
        .arg("--hgrm", hgrm_path.to_str().unwrap())
        .run();
    let hgrm = std::fs::read_to_string(&hgrm_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(json["messages"].is_null() && json["deliveries"].is_null());
    assert!(json["run"]["rate_per_s"].is_null() && json["run"]["payload_bytes"].is_null());
    assert!(hgrm.contains("Total count    =           40"), "{hgrm}");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(!table.contains("deliver"), "{table}");
}
