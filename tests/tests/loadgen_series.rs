//! `--stages` ramps the rate as k6 does; `--interval` and `--csv` give a time series of the run
//! whose rows add up to the totals.

mod loadgen_support;

use loadgen_support::{fake, number, stderr, temp_dir, url, Run};
use serde_json::Value;

fn rows(json: &Value) -> Vec<Value> {
    json["intervals"]["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn sum(rows: &[Value], key: &str) -> u64 {
    rows.iter().map(|row| row[key].as_u64().unwrap()).sum()
}

#[test]
fn stages_ramp_the_schedule_and_the_time_series_shows_it() {
    let server = fake(&[]);
    let dir = temp_dir();
    let csv = dir.join("series.csv");
    let (output, json) = Run::fanout(&url(&server))
        .clients(4)
        .arg("--stages", "1s:200,1s:200,1s:0")
        .arg("--interval", "500ms")
        .arg("--csv", csv.to_str().unwrap())
        .drain("500ms")
        .run();
    let text = std::fs::read_to_string(&csv).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "{}", stderr(&output));
    // 0 -> 200/s over 1 s is 100 messages, then 200 for 1 s, then 100 on the way down.
    assert_eq!(number(&json, &["messages", "scheduled"]), 400);
    let rows = rows(&json);
    let scheduled: Vec<u64> = rows
        .iter()
        .map(|row| row["scheduled"].as_u64().unwrap())
        .collect();
    assert_eq!(scheduled[..6], [25, 75, 100, 100, 75, 25], "{rows:?}");
    assert_eq!(sum(&rows, "sent"), 400);
    assert_eq!(
        sum(&rows, "delivered"),
        number(&json, &["deliveries", "received"])
    );
    assert!(rows[0]["p99_us"].is_u64() && rows[0]["open_connections"] == 4);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "start_s,end_s,scheduled,sent,delivered,lost,p50_us,p99_us,max_us,open_connections"
    );
    assert_eq!(lines.len(), rows.len() + 1);
    assert!(lines[3].starts_with("1.000,1.500,100,100,"), "{text}");
}

#[test]
fn deliveries_lost_are_counted_in_the_interval_their_message_was_meant_for() {
    let server = fake(&["--close-after-ms", "700"]);
    let (output, json) = Run::fanout(&url(&server))
        .clients(4)
        .rate(100)
        .duration("2s")
        .drain("300ms")
        .arg("--interval", "500ms")
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = rows(&json);
    assert_eq!(sum(&rows, "lost"), number(&json, &["deliveries", "lost"]));
    // After the server closed every connection, nothing of the last second arrived.
    for row in rows
        .iter()
        .filter(|row| row["start_s"].as_f64().unwrap() >= 1.0)
    {
        assert_eq!(row["delivered"], 0, "{row}");
        if row["scheduled"].as_u64().unwrap() > 0 {
            assert_eq!(row["sent"], 0, "{row}");
        }
    }
}
