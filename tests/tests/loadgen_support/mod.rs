//! Helpers shared by the loadgen tests: build and run a `loadgen` command line with `--json`
//! ([`Run`]), start a fake server, read numbers out of the report.
#![allow(dead_code)]

use std::process::{Command, Output};

use integration_tests::{binary, Server};
use serde_json::Value;

/// A loadgen command line, one option at a time:
/// `Run::fanout(&url).clients(10).rate(100).duration("1s").run()`.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    args: Vec<String>,
}

impl Run {
    /// `loadgen SUBCOMMAND` with nothing else.
    pub(crate) fn new(subcommand: &str) -> Run {
        Run {
            args: vec![subcommand.to_owned()],
        }
    }

    /// `loadgen fanout --url URL`.
    pub(crate) fn fanout(url: &str) -> Run {
        Run::new("fanout").arg("--url", url)
    }

    /// `loadgen echo --url URL`.
    pub(crate) fn echo(url: &str) -> Run {
        Run::new("echo").arg("--url", url)
    }

    /// `loadgen connect --url URL`.
    pub(crate) fn connect(url: &str) -> Run {
        Run::new("connect").arg("--url", url)
    }

    /// `--clients N`.
    pub(crate) fn clients(self, clients: u32) -> Run {
        self.arg("--clients", &clients.to_string())
    }

    /// `--senders N`.
    pub(crate) fn senders(self, senders: u32) -> Run {
        self.arg("--senders", &senders.to_string())
    }

    /// `--rate N` (messages per second).
    pub(crate) fn rate(self, per_second: u32) -> Run {
        self.arg("--rate", &per_second.to_string())
    }

    /// `--duration D`.
    pub(crate) fn duration(self, duration: &str) -> Run {
        self.arg("--duration", duration)
    }

    /// `--drain D`.
    pub(crate) fn drain(self, drain: &str) -> Run {
        self.arg("--drain", drain)
    }

    /// Any option with its value.
    pub(crate) fn arg(mut self, option: &str, value: &str) -> Run {
        self.args.extend([option.to_owned(), value.to_owned()]);
        self
    }

    /// An option without a value (`--compress`, `--insecure` ...).
    pub(crate) fn flag(mut self, option: &str) -> Run {
        self.args.push(option.to_owned());
        self
    }

    /// Runs it to the end with `--json` and `--quiet`: the output and the report.
    pub(crate) fn run(&self) -> (Output, Value) {
        loadgen(&self.args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Starts it with `--json` to `json_path` and `--quiet`; the caller waits for it.
    pub(crate) fn spawn(&self, json_path: &std::path::Path) -> std::process::Child {
        spawn_loadgen(
            &self.args.iter().map(String::as_str).collect::<Vec<_>>(),
            json_path,
        )
    }
}

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
