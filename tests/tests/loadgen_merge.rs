//! Several loadgens, one run: two processes share one schedule (`--run-id`, `--sender-base`,
//! `--total-senders`, `--start-at`), recognise each other's probes, and `loadgen merge` gives
//! the accounting a single process of the same total size gives.

mod loadgen_support;

use std::process::Command;

use integration_tests::{binary, Server};
use loadgen_support::{fake, number, read_json, stderr, temp_dir, url, Run};
use serde_json::Value;

/// Three seconds from now in ms since the Unix epoch: a `--start-at` every process can meet.
fn start_in_three_seconds() -> String {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 3000)
        .to_string()
}

/// Runs the processes of one run side by side, each writing `part<i>.json` in `dir`; returns
/// each report and its path once all succeeded.
fn run_together(runs: &[Run], dir: &std::path::Path) -> Vec<(Value, std::path::PathBuf)> {
    let children: Vec<_> = runs
        .iter()
        .enumerate()
        .map(|(index, run)| {
            let path = dir.join(format!("part{index}.json"));
            (run.spawn(&path), path)
        })
        .collect();
    children
        .into_iter()
        .map(|(child, path)| {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "{}", stderr(&output));
            (read_json(&path), path)
        })
        .collect()
}

/// `loadgen merge` of `reports` (plus `--json` to `merged` when given): its output and the
/// merged report.
fn merge<'a>(
    reports: impl IntoIterator<Item = &'a std::path::PathBuf>,
    merged: Option<&std::path::Path>,
) -> (std::process::Output, Value) {
    let mut command = Command::new(binary("loadgen"));
    command.arg("merge").args(reports);
    if let Some(path) = merged {
        command.args(["--json", path.to_str().unwrap()]);
    }
    let output = command.output().unwrap();
    (output, merged.map_or(Value::Null, read_json))
}

#[test]
fn two_processes_merged_account_like_one_process_of_the_same_total_size() {
    let server = Server::start(&[]);
    let common = Run::fanout(&url(&server))
        .rate(200)
        .duration("1s")
        .drain("500ms")
        .arg("--expect-self", "yes");
    // One process: 20 clients, 4 senders.
    let (output, single) = common.clone().clients(20).senders(4).run();
    assert!(output.status.success(), "{}", stderr(&output));
    // Not declared part of a multi-process run: no `merge` section.
    assert!(single["merge"].is_null(), "{single:#}");

    // Two processes: 10 clients and 2 senders each, one schedule.
    let dir = temp_dir();
    let start_at = start_in_three_seconds();
    let runs: Vec<Run> = ["0", "2"]
        .iter()
        .map(|base| {
            common
                .clone()
                .clients(10)
                .senders(2)
                .arg("--sender-base", base)
                .arg("--total-senders", "4")
                .arg("--run-id", "5eed")
                .arg("--start-at", &start_at)
        })
        .collect();
    let parts = run_together(&runs, &dir);
    for (json, path) in &parts {
        // Declared part of a multi-process run: the `merge` section, last, on one line.
        let text = std::fs::read_to_string(path).unwrap();
        let merge_line = text.lines().find(|line| line.starts_with("  \"merge\": "));
        assert!(merge_line.is_some_and(|line| line.ends_with('}')), "{text}");
        assert_eq!(number(json, &["merge", "receivers"]), 10);
        // Each process saw the other's probes as deliveries of the run, not as foreign.
        assert_eq!(number(json, &["deliveries", "foreign_probes"]), 0);
        assert_eq!(
            number(json, &["deliveries", "from_other_processes"]),
            100 * 10
        );
    }
    let (output, merged) = merge(
        parts.iter().map(|(_, path)| path),
        Some(&dir.join("merged.json")),
    );
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
        .map(|(json, _)| number(json, &["delivery_latency_us", "count"]))
        .sum();
    assert_eq!(number(&merged, &["delivery_latency_us", "count"]), counts);
    let max = parts
        .iter()
        .map(|(json, _)| number(json, &["delivery_latency_us", "max"]))
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
        let child = Run::fanout(&url(&server))
            .clients(3)
            .rate(20)
            .duration("500ms")
            .drain("100ms")
            .arg("--run-id", run_id)
            .arg("--total-senders", "1")
            .spawn(&path);
        assert!(child.wait_with_output().unwrap().status.success());
        paths.push(path);
    }
    let (output, _) = merge(&paths, None);
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
    let (output, _) = Run::fanout("ws://127.0.0.1:1/")
        .arg("--sender-base", "2")
        .senders(2)
        .run();
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
    let start_at = start_in_three_seconds();
    let runs: Vec<Run> = ["0", "1"]
        .iter()
        .zip(&urls)
        .map(|(base, url)| {
            Run::fanout(url)
                .clients(5)
                .senders(1)
                .arg("--sender-base", base)
                .arg("--total-senders", "2")
                .arg("--run-id", "abc")
                .arg("--start-at", &start_at)
                .rate(100)
                .duration("1s")
                .drain("500ms")
                .arg("--interval", "250ms")
        })
        .collect();
    let parts = run_together(&runs, &dir);
    let csv_path = dir.join("merged.csv");
    let output = Command::new(binary("loadgen"))
        .arg("merge")
        .args(parts.iter().map(|(_, path)| path))
        .args(["--json", dir.join("merged.json").to_str().unwrap()])
        .args(["--csv", csv_path.to_str().unwrap()])
        .output()
        .unwrap();
    let merged = read_json(&dir.join("merged.json"));
    let csv = std::fs::read_to_string(&csv_path).unwrap_or_default();
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
    // The CSV has the same rows.
    assert!(csv.starts_with("start_s,end_s,"), "{csv}");
    assert_eq!(csv.lines().count(), merged_rows.len() + 1, "{csv}");
    assert_eq!(
        merged_rows
            .iter()
            .map(|row| number(row, &["scheduled"]))
            .sum::<u64>(),
        100
    );
}
