//! Helpers shared by the loadgen tests: run `loadgen` with `--json`, start a fake server, read
//! numbers out of the report.
#![allow(dead_code)]

use std::process::{Command, Output};

use integration_tests::{binary, Server};
use serde_json::Value;

/// Runs `loadgen` with `args` plus `--json`, `--quiet`; returns the process output and the
/// parsed JSON (Null when none was written).
pub(crate) fn loadgen(args: &[&str]) -> (Output, Value) {
    let dir = temp_dir();
    let json_path = dir.join("report.json");
    let output = Command::new(binary("loadgen"))
        .args(args)
        .args(["--quiet", "--json", json_path.to_str().unwrap()])
        .output()
        .expect("loadgen runs");
    let json = std::fs::read_to_string(&json_path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    let _ = std::fs::remove_dir_all(&dir);
    (output, json)
}

/// A fresh directory under the system's temporary directory.
pub(crate) fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "loadgen-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `fake_server` with `args`.
pub(crate) fn fake(args: &[&str]) -> Server {
    Server::start_with(Command::new(binary("fake_server")), args)
}

/// The server's `ws://` URL.
pub(crate) fn url(server: &Server) -> String {
    format!("ws://{}/", server.address)
}

/// The unsigned number at `path` in the report; panics with the report when it is missing.
pub(crate) fn number(json: &Value, path: &[&str]) -> u64 {
    let mut value = json;
    for key in path {
        value = &value[*key];
    }
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{path:?} missing in {json:#}"))
}

/// The process's stderr as text.
pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Starts `loadgen` with `args` plus `--quiet` and `--json` to `json_path`, stdout and stderr
/// piped; the caller waits for it.
pub(crate) fn spawn_loadgen(args: &[&str], json_path: &std::path::Path) -> std::process::Child {
    Command::new(binary("loadgen"))
        .args(args)
        .args(["--quiet", "--json", json_path.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("loadgen starts")
}

/// Reads a JSON report, Null when there is none.
pub(crate) fn read_json(path: &std::path::Path) -> Value {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null)
}

/// The reasons of the report's verdict, joined.
pub(crate) fn reasons(json: &Value) -> String {
    json["verdict"]["reasons"]
        .as_array()
        .map(|reasons| {
            reasons
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}
