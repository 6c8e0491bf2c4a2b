//! Several loadgens, one run: two processes share one schedule (`--run-id`, `--sender-base`,
//! `--total-senders`, `--start-at`), recognise each other's probes, and `loadgen merge` gives
//! the accounting a single process of the same total size gives.

mod loadgen_support;

use std::process::Command;

use integration_tests::{binary, Server};
use loadgen_support::{fake, loadgen, number, read_json, spawn_loadgen, stderr, temp_dir, url};
use serde_json::Value;

#[test]
fn two_processes_merged_account_like_one_process_of_the_same_total_size() {
    let server = Server::start(&[]);
    let common = [
        "--rate",
        "200",
        "--duration",
        "1s",
        "--drain",
        "500ms",
        "--expect-self",
        "yes",
    ];
    // One process: 20 clients, 4 senders.
    let server_url = url(&server);
    let mut args = vec!["fanout", "--url", &server_url];
    args.extend(["--clients", "20", "--senders", "4"]);
    args.extend(common);
    let (output, single) = loadgen(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    // Not declared part of a multi-process run: no `merge` section.
    assert!(single["merge"].is_null(), "{single:#}");

    // Two processes: 10 clients and 2 senders each, one schedule.
    let dir = temp_dir();
    let start_at = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 3000)
        .to_string();
    let mut children = Vec::new();
    for (index, base) in ["0", "2"].iter().enumerate() {
        let mut args = vec!["fanout", "--url", &server_url];
        args.extend(["--clients", "10", "--senders", "2", "--sender-base", base]);
        args.extend([
            "--total-senders",
            "4",
            "--run-id",
            "5eed",
            "--start-at",
            &start_at,
        ]);
        args.extend(common);
        let path = dir.join(format!("part{index}.json"));
        children.push((spawn_loadgen(&args, &path), path));
    }
    let mut parts = Vec::new();
    for (child, path) in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let json = read_json(&path);
        // Declared part of a multi-process run: the `merge` section, last, on one line.
        let text = std::fs::read_to_string(&path).unwrap();
        let merge_line = text.lines().find(|line| line.starts_with("  \"merge\": "));
        assert!(merge_line.is_some_and(|line| line.ends_with('}')), "{text}");
        assert_eq!(number(&json, &["merge", "receivers"]), 10);
        // Each process saw the other's probes as deliveries of the run, not as foreign.
        assert_eq!(number(&json, &["deliveries", "foreign_probes"]), 0);
        assert_eq!(
            number(&json, &["deliveries", "from_other_processes"]),
            100 * 10
        );
        parts.push((path, json));
    }
    let merged_path = dir.join("merged.json");
    let output = Command::new(binary("loadgen"))
        .args(["merge"])
        .args(parts.iter().map(|(path, _)| path))
        .args(["--json", merged_path.to_str().unwrap()])
        .output()
        .unwrap();
    let merged = read_json(&merged_path);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "{}", stderr(&output));
    for path in [
        ["messages", "scheduled"],
        ["messages", "sent"],
        ["messages", "not_sent"],
        ["deliveries", "expected"],
        ["deliveries", "received"],
        ["deliveries", "lost"],
        ["deliveries", "duplicated"],
        ["deliveries", "unexpected"],
        ["connections", "ok"],
        ["completion_latency_us", "count"],
        ["delivery_latency_us", "count"],
    ] {
        assert_eq!(number(&merged, &path), number(&single, &path), "{path:?}");
    }
    assert_eq!(number(&merged, &["deliveries", "expected"]), 200 * 20);
    assert_eq!(number(&merged, &["deliveries", "lost"]), 0);
    // Histograms merged exactly: counts add up and the max is the larger of the two.
    let counts: u64 = parts
        .iter()
        .map(|(_, json)| number(json, &["delivery_latency_us", "count"]))
        .sum();
    assert_eq!(number(&merged, &["delivery_latency_us", "count"]), counts);
    let max = parts
        .iter()
        .map(|(_, json)| number(json, &["delivery_latency_us", "max"]))
        .max()
        .unwrap();
    assert_eq!(number(&merged, &["delivery_latency_us", "max"]), max);
    assert_eq!(merged["run"]["merged_reports"], 2);
}

#[test]
fn reports_of_different_runs_are_not_merged() {
    let server = Server::start(&[]);
    let dir = temp_dir();
    let mut paths = Vec::new();
    for run_id in ["a1", "b2"] {
        let path = dir.join(format!("{run_id}.json"));
        let child = spawn_loadgen(
            &[
                "fanout",
                "--url",
                &url(&server),
                "--clients",
                "3",
                "--rate",
                "20",
                "--duration",
                "500ms",
                "--drain",
                "100ms",
                "--run-id",
                run_id,
                "--total-senders",
                "1",
            ],
            &path,
        );
        assert!(child.wait_with_output().unwrap().status.success());
        paths.push(path);
    }
    let output = Command::new(binary("loadgen"))
        .arg("merge")
        .args(&paths)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("not one run"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn sharing_a_schedule_without_the_total_number_of_senders_is_a_usage_error() {
    let (output, _) = loadgen(&[
        "fanout",
        "--url",
        "ws://127.0.0.1:1/",
        "--sender-base",
        "2",
        "--senders",
        "2",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--total-senders"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn per_url_and_per_interval_figures_merge_across_processes() {
    // One broadcast server reached by two URLs, one per process: one logical room.
    let server = fake(&[]);
    let urls = [
        format!("ws://{}/a", server.address),
        format!("ws://{}/b", server.address),
    ];
    let dir = temp_dir();
    let start_at = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 3000)
        .to_string();
    let mut children = Vec::new();
    for (index, (base, url)) in ["0", "1"].iter().zip(&urls).enumerate() {
        let args = [
            "fanout",
            "--url",
            url,
            "--clients",
            "5",
            "--senders",
            "1",
            "--sender-base",
            base,
            "--total-senders",
            "2",
            "--run-id",
            "abc",
            "--start-at",
            &start_at,
            "--rate",
            "100",
            "--duration",
            "1s",
            "--drain",
            "500ms",
            "--interval",
            "250ms",
        ];
        let path = dir.join(format!("part{index}.json"));
        children.push((spawn_loadgen(&args, &path), path));
    }
    let mut parts = Vec::new();
    for (child, path) in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        parts.push((read_json(&path), path));
    }
    let merged_path = dir.join("merged.json");
    let output = Command::new(binary("loadgen"))
        .arg("merge")
        .args(parts.iter().map(|(_, path)| path))
        .args(["--json", merged_path.to_str().unwrap()])
        .output()
        .unwrap();
    let merged = read_json(&merged_path);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(number(&merged, &["deliveries", "lost"]), 0);

    // Per URL: each process's URL, its receivers settled against every sender of the run.
    let per_url = merged["per_url"].as_array().expect("per_url");
    assert_eq!(per_url.len(), 2);
    for ((entry, url), (part, _)) in per_url.iter().zip(&urls).zip(&parts) {
        assert_eq!(entry["url"], url.as_str());
        assert_eq!(number(entry, &["connections_ok"]), 5);
        assert_eq!(number(entry, &["deliveries", "expected"]), 100 * 5);
        assert_eq!(number(entry, &["deliveries", "received"]), 100 * 5);
        assert_eq!(number(entry, &["deliveries", "lost"]), 0);
        // Its histogram is the process's own, merged exactly.
        for statistic in ["count", "max"] {
            assert_eq!(
                number(entry, &["delivery_latency_us", statistic]),
                number(part, &["delivery_latency_us", statistic]),
                "{statistic}"
            );
        }
    }

    // Intervals aligned by the shared start: deliveries add up, connections add up.
    let rows = |json: &Value| json["intervals"]["rows"].as_array().unwrap().clone();
    let merged_rows = rows(&merged);
    assert_eq!(merged["intervals"]["interval_s"], 0.25);
    let delivered = |rows: &[Value]| -> u64 {
        rows.iter()
            .map(|row| row["delivered"].as_u64().unwrap())
            .sum()
    };
    let parts_delivered: u64 = parts.iter().map(|(part, _)| delivered(&rows(part))).sum();
    assert_eq!(delivered(&merged_rows), parts_delivered);
    assert_eq!(parts_delivered, 100 * 10);
    for (index, row) in merged_rows.iter().enumerate() {
        let sum: u64 = parts
            .iter()
            .map(|(part, _)| rows(part)[index]["delivered"].as_u64().unwrap())
            .sum();
        assert_eq!(row["delivered"].as_u64().unwrap(), sum, "row {index}");
    }
    assert_eq!(merged_rows[1]["open_connections"], 10);
    assert_eq!(
        merged_rows
            .iter()
            .map(|row| number(row, &["scheduled"]))
            .sum::<u64>(),
        100
    );
}
