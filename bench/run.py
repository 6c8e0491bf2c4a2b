#!/usr/bin/env python3
"""`make bench`: drive our server and the peers a user would pick instead with our loadgen,
side by side on this machine, and write bench-results/ (README.md with the tables, one JSON and
one .hgrm per run, SVG plots).

Fairness: every server runs pinned to core 0 (`taskset -c 0`), the loadgen pinned to core 1
with one thread; same clients, same payloads, same schedule. The loadgen samples the server's
CPU and RSS from /proc and its own CPU; a row where the loadgen was the bottleneck is marked.

Sections (`--only` runs some of them and keeps the other sections' files in --out; the README
is always written from every run file there):
  saturation   1,000 clients, 10 senders, the rate stepped up
  fanout       fixed-rate fan-out at 1k/5k/10k clients
  memory       RSS at 10,000 idle connections
  echo         our echo mode beside Bun's echo server
  tls          wss:// saturation and p99 at 1M deliveries/s offered; RSS at 10,000 idle TLS connections
  compression  permessage-deflate: server CPU per delivery and bytes on the wire, JSON chat messages
  flood        1,000 chatters at 100 msg/s with and without one client flooding the room
  redis        a room of 1,000 over 2 processes + redis-server against 1 process; the bus's
               latency; redis-benchmark's PUBLISH rate
  bun          shorthand for saturation,fanout,memory,echo with --servers ours,bun

Usage: bench/run.py [--quick | --smoke] [--out bench-results] [--only SECTION,...] [--servers NAME,...]
"""

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# BENCH_LOADGEN / BENCH_SERVER point at other builds (for example a branch's) without copying.
LOADGEN = Path(os.environ.get("BENCH_LOADGEN", ROOT / "target/release/loadgen"))
SERVER = Path(os.environ.get("BENCH_SERVER", ROOT / "target/release/server"))
PEERS = ROOT / "bench/peers"
PYTHON = ROOT / ".venv/bin/python"
BUN = PEERS / "bun/node_modules/.bin/bun"
FLOODER = PEERS / "rust/target/release/flooder"
TLS_DIR = ROOT / "target/bench-tls"
TLS_CERT = TLS_DIR / "cert.pem"
TLS_KEY = TLS_DIR / "key.pem"
SERVER_CORE = "0"
LOADGEN_CORE = "1"

SECTIONS = ("saturation", "fanout", "memory", "echo", "tls", "compression", "flood", "redis")
QUICK_SECTIONS = ("saturation", "fanout", "memory", "echo")

# How big the runs are: `full` is `make bench`, `quick` is `make bench-quick`, `smoke` is a check
# that every section's servers start and its loads run (a few hundred clients, seconds), whose
# figures are not measurements.
PROFILE = "full"


def size(full, quick, smoke):
    return {"full": full, "quick": quick, "smoke": smoke}[PROFILE]


def broadcast_servers():
    """The chat servers of the plain ws:// tables: how to start each (PORT is filled in),
    whether it speaks raw TCP, and how it is configured."""
    return {
        "ours": {
            # Ten senders stand for a room of chatters here, each sending hundreds of messages
            # a second: the per-client rate limit (100/s by default) is off in these rows and on,
            # at its defaults, in the flood row.
            "cmd": [str(SERVER), "--listen", "127.0.0.1:PORT", "--max-connections", "100000", "--max-message-rate", "0"],
            "setup": "server (this project), chat mode, defaults but for the per-client message rate limit (off: ten senders stand for a room): 1 MiB queue mark per client (1008 for a queue that stays over it), corked writev",
        },
        "raw-tcp": {
            "cmd": [str(PEERS / "rust/target/release/raw_tcp"), "PORT"],
            "raw": True,
            "setup": "newline-framed TCP fan-out, same loop design (mio, Rc-shared bytes, one writev per socket per turn), no WebSocket: the ceiling",
        },
        "bun": {
            "cmd": [str(BUN), str(PEERS / "bun/server.js"), "PORT"],
            "setup": "Bun.serve (uWebSockets inside): rooms by path through uWS pub/sub (ws.subscribe, server.publish: framed once per room, sender included, corked), backpressureLimit 1 MiB with closeOnBackpressureLimit, no permessage-deflate",
        },
        "tokio-broadcast": {
            "cmd": [str(PEERS / "rust/target/release/tungstenite_broadcast"), "PORT"],
            "setup": "tokio-tungstenite 0.28, tokio multi-thread runtime (default workers), tokio::sync::broadcast channel of 65,536, a writer task per client that feeds every waiting message and flushes once (lagging receivers skip)",
        },
        "tokio-mpsc": {
            "cmd": [str(PEERS / "rust/target/release/tungstenite_mpsc"), "PORT"],
            "setup": "tokio-tungstenite 0.28, tokio multi-thread runtime, an unbounded mpsc channel per client in a Mutex<HashMap>, message cloned into each; the writer feeds every waiting message and flushes once",
        },
        "node-ws": {
            "cmd": ["node", str(PEERS / "node-ws/server.js"), "PORT"],
            "setup": "Node.js ws 8, loop over wss.clients with a readyState check, defaults (no permessage-deflate)",
        },
        "python-websockets": {
            "cmd": [str(PYTHON), str(PEERS / "python-websockets/server.py"), "PORT"],
            "setup": "Python websockets (asyncio API), websockets.broadcast() over a set of connections, default event loop",
        },
    }


def echo_servers():
    return {
        "ours": {
            "cmd": broadcast_servers()["ours"]["cmd"] + ["--mode", "echo"],
            "setup": "server --mode echo",
        },
        "bun": {
            "cmd": broadcast_servers()["bun"]["cmd"] + ["--mode", "echo"],
            "setup": "Bun.serve, ws.send(message) back to the sender, same backpressure policy",
        },
    }


def tls_servers():
    """wss:// servers, all with the test certificate in target/bench-tls/."""
    tls = ["--tls-cert", str(TLS_CERT), "--tls-key", str(TLS_KEY)]
    return {
        "ours": {
            "cmd": broadcast_servers()["ours"]["cmd"] + tls,
            "tls": True,
            "setup": "server with --tls-cert/--tls-key (rustls in the loop, corked records)",
        },
        "ours-plain": {
            "cmd": broadcast_servers()["ours"]["cmd"],
            "setup": "the same server over plain ws://, for what encryption costs",
        },
        "bun": {
            "cmd": broadcast_servers()["bun"]["cmd"] + tls,
            "tls": True,
            "setup": "Bun.serve with the `tls` option (BoringSSL), same pub/sub rooms and backpressure policy",
        },
        "tokio-rustls": {
            "cmd": [str(PEERS / "rust/target/release/tungstenite_tls_broadcast"), "PORT", str(TLS_CERT), str(TLS_KEY)],
            "tls": True,
            "setup": "tokio-tungstenite 0.28 behind tokio-rustls (ring provider), tokio::sync::broadcast, batching writer task per client",
        },
        "node-ws": {
            "cmd": broadcast_servers()["node-ws"]["cmd"] + tls,
            "tls": True,
            "setup": "Node.js ws 8 on node:https (OpenSSL), broadcast loop over wss.clients",
        },
    }


def compression_servers():
    return {
        "ours": {
            "cmd": broadcast_servers()["ours"]["cmd"] + ["--compression", "on"],
            "setup": "server --compression on: one deflate per broadcast, shared (server_no_context_takeover), one loop-owned inflater (client_no_context_takeover)",
        },
        "ours-off": {
            "cmd": broadcast_servers()["ours"]["cmd"] + ["--compression", "off"],
            "setup": "server --compression off: the reference, extension declined",
        },
        "bun": {
            "cmd": broadcast_servers()["bun"]["cmd"] + ["--deflate"],
            "setup": "Bun.serve with perMessageDeflate: true (uWS; it answers with no context takeover both ways)",
        },
        "node-ws": {
            "cmd": broadcast_servers()["node-ws"]["cmd"] + ["--deflate"],
            "setup": "Node.js ws 8 with perMessageDeflate { threshold: 0 }: zlib per receiver, context takeover",
        },
        "python-websockets": {
            "cmd": broadcast_servers()["python-websockets"]["cmd"],
            "setup": "Python websockets, compression on by default (window bits 12, context takeover)",
        },
    }


# The flood row: WebSocket servers only (the flooder speaks WebSocket). tokio-mpsc and Python are
# left out to keep `make bench` near 20 minutes; add them with --servers.
FLOOD_SERVERS = ("ours", "bun", "tokio-broadcast", "node-ws")


class Started:
    """A process started for the runs (`self.process`), with its log file (`self.log`):
    killed and the log closed by `stop`, or on leaving a `with` block."""

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.stop()


class Server(Started):
    """A server under test, pinned to its core; stopped on exit."""

    def __init__(self, name, spec, log_dir):
        self.name = name
        self.spec = spec
        cmd = [part.replace("PORT", "0") for part in spec["cmd"]]
        if "--listen" in cmd:
            cmd[cmd.index("--listen") + 1] = "127.0.0.1:0"
        self.log_path = log_dir / f"{name}.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(["taskset", "-c", SERVER_CORE] + cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 20
        self.port = None
        self.banner = ""
        while time.time() < deadline and self.port is None:
            time.sleep(0.1)
            text = self.log_path.read_text()
            match = re.search(r"listening on (?:(?:wss?|https?)://)?[0-9.]+:(\d+)/?(.*)", text)
            if match:
                self.port = int(match.group(1))
                self.banner = match.group(2).strip()
            if self.process.poll() is not None:
                break
        if self.port is None:
            self.stop()
            raise RuntimeError(f"{name} did not start: {' '.join(cmd)}\n{self.log_path.read_text()[-1500:]}")

    @property
    def tls(self):
        return bool(self.spec.get("tls"))

    def url(self, path="/"):
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}{path}"

    def metrics(self, pattern):
        """The lines of GET /metrics that match `pattern` (our server only)."""
        context = None
        if self.tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5, context=context) as response:
                text = response.read().decode("utf-8", "replace")
        except OSError as error:
            return [f"# GET /metrics failed: {error}"]
        return [line for line in text.splitlines() if re.search(pattern, line)]


def loadgen_command(run, server, args, out_dir, name):
    cmd = [str(LOADGEN), run, "--url", server.url(), "--threads", "1", "--quiet",
           "--server-pid", str(server.process.pid), "--json", str(out_dir / f"{name}.json"), "--hgrm", str(out_dir / f"{name}.hgrm")] + args
    if server.spec.get("raw"):
        cmd.append("--raw")
    if server.tls:
        cmd.append("--insecure")  # the test certificate is self-signed
    shown = " ".join(["taskset -c", LOADGEN_CORE, "loadgen"] + cmd[1:]).replace(str(out_dir) + "/", "")
    return ["taskset", "-c", LOADGEN_CORE] + cmd, shown


def finish_report(out_dir, name, shown, started, result, extra):
    """Reads the loadgen's JSON, adds the command and `extra`, writes it back; None on failure."""
    json_path = out_dir / f"{name}.json"
    if result.returncode != 0 or not json_path.exists():
        message = f"loadgen failed ({result.returncode}): {result.stderr.strip()[-800:]}"
        print(f"  {name}: {message}", flush=True)
        record_failure(out_dir, name, f"{message}\n{shown}")
        return None
    report = json.loads(json_path.read_text())
    report["cmd"] = shown
    report["elapsed_s"] = time.time() - started
    report.update(extra or {})
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def loadgen(run, server, args, out_dir, name, extra=None):
    """Runs one loadgen pinned to its core; returns its JSON report (with `cmd` added)."""
    cmd, shown = loadgen_command(run, server, args, out_dir, name)
    started = time.time()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return finish_report(out_dir, name, shown, started, result, extra)


def record_failure(out_dir, name, text):
    (out_dir / f"{name}.failed").write_text(text.strip() + "\n")


def serve(name, spec, out_dir, key):
    """Starts a server, or records why it did not start under `key` and returns None."""
    try:
        return Server(name, spec, out_dir)
    except RuntimeError as error:
        print(f"  {key}: {str(error).splitlines()[0]}", flush=True)
        record_failure(out_dir, key, str(error))
        return None


def measure(key, announcement, name, spec, out_dir, run, args, extra=None, before=None):
    """One run: prints `announcement`, starts server `name` afresh from `spec`, runs loadgen
    `run` with `args` against it, and stops it. Returns the loadgen's report, or None when the
    server did not start or the loadgen failed (either recorded under `key`). `before(server)`,
    if given, runs first and returns more to add to the report beside `extra`."""
    print(announcement, flush=True)
    server = serve(name, spec, out_dir, key)
    if server is None:
        return None
    with server:
        added = dict(extra or {}, **(before(server) if before else {}))
        return loadgen(run, server, args, out_dir, key, extra=added or None)


# ---------------------------------------------------------------------------------------------
# Sections: each runs its loads and leaves one JSON (+ .hgrm) per run in out_dir, or a .failed
# file saying why a run could not be made. The README is built from those files alone.


def step_search(prefix, specs, names, rates, always, out_dir, duration):
    clients = size(1000, 1000, 200)
    """1,000 clients, 10 senders; the rate stepped up until deliveries/s stop growing or p99
    passes 100 ms. The rates in `always` are run in any case, for the comparisons at them."""
    for name in names:
        best = 0
        pending = list(rates)
        while pending:
            rate = pending.pop(0)
            key = f"{prefix}-{rate}r-{name}"
            report = measure(key, f"{prefix}: {clients} clients, 10 senders, {rate} msg/s -> {name}", name, specs[name], out_dir, "fanout", [
                "--clients", str(clients), "--senders", "10", "--rate", str(rate), "--duration", duration,
                "--drain", size("2s", "2s", "1s"), "--connect-rate", "5000",
            ])
            if not report:
                break
            row = summary(report)
            growing = row["per_second"] > best * 1.05
            best = max(best, row["per_second"])
            if not growing or (row["p99"] or 0) > 100_000:
                pending = [step for step in pending if step in always]


def saturation(names, out_dir):
    rates = size([50, 100, 200, 500, 1000, 2000, 3000, 4000, 5000, 6000, 8000], [500, 2000, 4000], [200, 2000])
    step_search("saturation", SPECS, names, rates, (2000,), out_dir, size("4s", "3s", "1s"))


def fanout(names, out_dir):
    client_counts = size([1000, 5000, 10000], [1000], [200])
    patterns = size([(1, 10), (10, 100)], [(10, 100)], [(10, 100)])
    duration = size("5s", "3s", "1s")
    for clients in client_counts:
        for senders, rate in patterns:
            for name in names:
                key = f"fanout-{clients}c-{senders}s-{rate}r-{name}"
                measure(key, f"fanout: {clients} clients, {senders} sender(s), {rate} msg/s -> {name}", name, SPECS[name], out_dir, "fanout", [
                    "--clients", str(clients), "--senders", str(senders), "--rate", str(rate),
                    "--duration", duration, "--drain", size("3s", "3s", "1s"), "--connect-rate", "5000", "--connect-timeout", "30s",
                ])


def idle_memory(prefix, specs, names, out_dir, connect_rate):
    """Server RSS with 10,000 idle connections, per connection."""
    clients = size(10000, 10000, 500)
    for name in names:
        if specs[name].get("raw"):
            continue
        key = f"{prefix}-{clients}-{name}"
        measure(key, f"{prefix}: {clients} idle connections -> {name}", name, specs[name], out_dir, "connect", [
            "--clients", str(clients), "--connect-rate", str(connect_rate), "--connect-timeout", "30s", "--hold", size("3s", "3s", "1s"),
        ], before=rss_before_clients)


def rss_before_clients(server):
    """The server's RSS once it has settled, before any client connects."""
    time.sleep(0.5)
    return {"server_rss_before_clients_bytes": rss(server.process.pid)}


def memory(names, out_dir):
    idle_memory("memory", SPECS, names, out_dir, 5000)


def echo(names, out_dir):
    """Echo servers (ours in --mode echo, Bun's echo): 100 clients, round trips."""
    rates = size([1000, 10000, 20000, 40000, 80000, 120000], [1000], [1000])
    for name in names:
        for rate in rates:
            key = f"echo-{rate}r-{name}"
            report = measure(key, f"echo: 100 clients, {rate} msg/s -> {name}", name, ECHO_SPECS[name], out_dir, "echo",
                             ["--clients", "100", "--rate", str(rate), "--duration", size("3s", "3s", "1s"), "--drain", size("2s", "2s", "1s")])
            if not report:
                break
            row = summary(report)
            if row["delivered_share"] < 0.98 or (row["p99"] or 0) > 100_000:
                break


def ensure_certificate():
    """The TLS rows' self-signed certificate for 127.0.0.1 and localhost, remade when it is
    older than 20 days (it is valid for 30)."""
    if TLS_CERT.exists() and TLS_KEY.exists() and time.time() - TLS_CERT.stat().st_mtime < 20 * 86400:
        return
    TLS_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run([
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-keyout", str(TLS_KEY), "-out", str(TLS_CERT),
    ], check=True, capture_output=True)


def tls(names, out_dir):
    """wss:// at 1,000 clients (sustained deliveries/s and p99 at 1M deliveries/s offered) and
    RSS at 10,000 idle TLS connections; ours in plain text beside it for what encryption costs."""
    ensure_certificate()
    # 1,500 and 3,000 too: on a machine where the TLS peers top out between 1M and 2M and
    # ours between 2M and 4M, the coarser steps made the ratio a matter of where they fell.
    rates = size([200, 500, 1000, 1500, 2000, 3000, 4000, 6000], [100, 1000], [100, 1000])
    step_search("tls-saturation", TLS_SPECS, names, rates, (1000,), out_dir, size("4s", "3s", "1s"))
    # TLS handshakes cost the server and the loadgen CPU: a gentler ramp than the plain rows.
    idle_memory("tls-memory", TLS_SPECS, [n for n in names if TLS_SPECS[n].get("tls")], out_dir, 2000)


# Chat messages for the compression rows: JSON with an English-like text around the probe,
# words drawn from a fixed list with a fixed seed, so every run and every server sees the same
# bytes and the text compresses about as well as chat does (not a run of one repeated letter).
WORDS = ("the a to and of in is it you that for on was with he as i his they be at one have this from or had by "
         "word but what some we can out other were all there when up use your how said an each she which do their "
         "time if will way about many then them write would like so these her long make thing see him two has look "
         "more day could go come did number sound no most people my over know water than call first who may down "
         "side been now find any new work part take get place made live where after back little only round man year "
         "came show every good me give our under name very through just form sentence great think say help low line "
         "differ turn cause much mean before move right boy old too same tell does set three want air well also play "
         "small end put home read hand port large spell add even land here must big high such follow act why ask men "
         "change went light kind off need house picture try us again animal point mother world near build self earth").split()
PROBE_BYTES = 56  # what {probe} becomes: loadgen's probe header (loadgen/src/probe.rs)


def chat_message(size, seed=7):
    """A `--message` template of about `size` bytes once {probe} is filled in."""
    words = random.Random(seed)
    head = '{"type":"chat","user":"reader-0042","room":"lobby","text":"'
    tail = '"}'
    budget = size - len(head) - len(tail) - PROBE_BYTES - 2
    before, after = [], []
    while len(" ".join(before)) + len(" ".join(after)) < budget:
        (before if len(before) <= len(after) else after).append(words.choice(WORDS))
    text = (" ".join(before) + " {probe} " + " ".join(after))
    excess = len(text) - len("{probe}") + PROBE_BYTES - (size - len(head) - len(tail))
    if excess > 0:
        text = text[:-excess]
    return head + text + tail


COMPRESSION_SIZES = {"300B": 300, "2KB": 2048}


def compression(names, out_dir):
    """1,000 receivers in one room, 10 senders at 20 msg/s in total (20,000 deliveries/s), JSON
    chat messages of about 300 B and 2 KB; the loadgen offers permessage-deflate (`--compress`)."""
    clients = size(1000, 1000, 200)
    for label, message_bytes in COMPRESSION_SIZES.items():
        template = chat_message(message_bytes)
        for name in names:
            key = f"compression-{label}-{name}"
            measure(key, f"compression: {clients} clients, 10 senders, 20 msg/s, {label} JSON -> {name}", name, COMPRESSION_SPECS[name], out_dir, "fanout", [
                "--clients", str(clients), "--senders", "10", "--rate", "20", "--duration", size("6s", "6s", "2s"), "--drain", size("3s", "3s", "1s"),
                "--connect-rate", "5000", "--compress", "--message", template,
                # The template is already the message's size; no '.' padding of the probe
                # (it would compress better than chat does).
                "--payload", str(PROBE_BYTES),
            ], extra={"message_template": template, "message_bytes_planned": message_bytes})


def flood(names, out_dir):
    """1,000 chatters in one room sending 100 msg/s in total for 8 s, once alone and once with
    one more client flooding the room with 64-byte messages as fast as it can for 5 s. The
    flooder shares the loadgen's core (both are clients). For ours, the rate limiter's lines of
    /metrics are kept."""
    clients = size(1000, 1000, 200)
    chatters = ["--clients", str(clients), "--senders", str(clients), "--rate", "100", "--duration", size("8s", "8s", "4s"), "--drain", size("3s", "3s", "1s"),
                "--connect-rate", "5000", "--connect-timeout", "30s"]
    flood_start, flood_seconds = size((2.5, 5), (2.5, 5), (1.5, 1.5))
    for name in names:
        for mode in ("quiet", "flooded"):
            key = f"flood-{mode}-{name}"
            print(f"flood: {clients} chatters at 100 msg/s, {'with' if mode == 'flooded' else 'without'} a flooder -> {name}", flush=True)
            spec = SPECS[name]
            if name == "ours":
                # The flood row runs our server at its defaults, rate limit included.
                cmd = [part for part in spec["cmd"]]
                at = cmd.index("--max-message-rate")
                del cmd[at:at + 2]
                spec = dict(spec, cmd=cmd, setup="server (this project), chat mode, every default: message rate limit 100/s, bursts of 100, close with 1008 past it")
            server = serve(name, spec, out_dir, key)
            if server is None:
                break
            with server:
                if mode == "quiet":
                    loadgen("fanout", server, chatters, out_dir, key)
                    continue
                cmd, shown = loadgen_command("fanout", server, chatters, out_dir, key)
                started = time.time()
                chatting = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                time.sleep(flood_start)  # the chatters are connected (0.2 s at 5,000/s) and chatting
                flooder_cmd = ["taskset", "-c", LOADGEN_CORE, str(FLOODER), server.url(), "--duration", str(flood_seconds), "--payload", "64"]
                flooded = subprocess.run(flooder_cmd, capture_output=True, text=True, timeout=60)
                try:
                    flooder = json.loads(flooded.stdout.strip().splitlines()[-1])
                except (IndexError, json.JSONDecodeError):
                    flooder = {"error": f"flooder exit {flooded.returncode}: {flooded.stderr.strip()[-300:]}"}
                flooder["cmd"] = " ".join(["taskset -c", LOADGEN_CORE, "flooder"] + flooder_cmd[4:])
                stdout, stderr = chatting.communicate(timeout=600)
                result = subprocess.CompletedProcess(cmd, chatting.returncode, stdout, stderr)
                extra = {"flooder": flooder}
                if name == "ours":
                    extra["rate_limiter_metrics"] = server.metrics(r"rate_limit")
                finish_report(out_dir, key, shown, started, result, extra)


class RedisServer(Started):
    """A local redis-server for the cluster rows, pinned to the servers' core (the cluster gets
    the same one core as a single process: the rows show what the bus costs, not what more
    cores give), on a free port, nothing saved to disk; stopped on exit."""

    def __init__(self, log_dir):
        import socket
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.log = open(log_dir / "redis-server.log", "w")
        self.process = subprocess.Popen(["taskset", "-c", SERVER_CORE, "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no", "--daemonize", "no"], stdout=self.log, stderr=self.log)
        deadline = time.time() + 10
        while time.time() < deadline:
            if subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True).stdout.strip() == "PONG":
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"


def cpu_seconds(pid):
    """User plus system CPU time of a process, from /proc (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cluster_loadgen(servers, redis_server, args, out_dir, name):
    """One loadgen over every server's URL (clients spread round robin by the loadgen); the
    CPU of each server process and of redis-server over the run is added to the report."""
    cmd, shown = loadgen_command("fanout", servers[0], args, out_dir, name)
    at = cmd.index("--url")
    for server in reversed(servers[1:]):
        cmd[at + 2:at + 2] = ["--url", server.url()]
    shown = shown.replace(f"--url {servers[0].url()}", " ".join(f"--url {server.url()}" for server in servers))
    pids = {server.name: server.process.pid for server in servers}
    if redis_server:
        pids["redis-server"] = redis_server.process.pid
    before = {who: cpu_seconds(pid) for who, pid in pids.items()}
    started = time.time()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    extra = {"cluster_cpu_s": {who: cpu_seconds(pid) - before[who] for who, pid in pids.items()}}
    if len(servers) > 1:
        extra["bus_metrics"] = {server.name: server.metrics(r"^ws_bus_") for server in servers}
    return finish_report(out_dir, name, shown, started, result, extra)


REDIS_RATES = (100, 500, 1000)


def redis(names, out_dir):
    """Rooms that span processes through Redis pub/sub (issue 14).

    - One room of 1,000 clients, 10 senders, at 100, 500 and 1,000 messages/s (100k, 500k and
      1M deliveries/s offered): on 1 process (`1proc`), and spread round robin over 2 processes
      joined by a local redis-server (`2proc`, the loadgen with two `--url`s). Both processes
      and redis-server share the servers' one core, so the difference is what the bus costs.
    - The latency the bus adds: 2 processes, 1 sender on the first process at 100 msg/s; the
      receivers on the first get it locally, those on the second through Redis; the loadgen's
      per-URL figures give both.
    - Redis's own publishes/s on this machine: `redis-benchmark ... publish CHANNEL PAYLOAD` with no pipeline
      and with 16 commands in flight per connection, 50 connections, 64-byte payloads, with
      no subscriber and with 2 (what two server processes cost Redis per message)."""
    if "ours" not in names:
        return
    if shutil.which("redis-server") is None:
        subprocess.run([str(ROOT / "scripts/redis-server.sh")], check=False)
    clients = size(1000, 1000, 100)
    duration = size("5s", "3s", "1s")
    rates = size(REDIS_RATES, (500,), (100,))
    base = SPECS["ours"]
    common = ["--clients", str(clients), "--duration", duration, "--drain", size("3s", "3s", "1s"),
              "--connect-rate", "5000", "--connect-timeout", "30s"]
    for rate in rates:
        key = f"redis-1proc-{rate}r-ours"
        print(f"redis: {clients} clients on 1 process, 10 senders, {rate} msg/s", flush=True)
        server = serve("ours", base, out_dir, key)
        if server is not None:
            with server:
                cluster_loadgen([server], None, common + ["--senders", "10", "--rate", str(rate)], out_dir, key)
        key = f"redis-2proc-{rate}r-ours"
        print(f"redis: {clients} clients over 2 processes + redis-server, 10 senders, {rate} msg/s", flush=True)
        run_cluster(key, out_dir, common + ["--senders", "10", "--rate", str(rate)])
    key = "redis-buslatency-ours"
    print(f"redis: {clients} clients over 2 processes, 1 sender on the first, 100 msg/s (the bus's latency)", flush=True)
    run_cluster(key, out_dir, common + ["--senders", "1", "--rate", "100"])
    publish_rate(out_dir)


def run_cluster(key, out_dir, args):
    try:
        with RedisServer(out_dir) as redis_server:
            servers = []
            try:
                for index in (1, 2):
                    spec = dict(SPECS["ours"], cmd=SPECS["ours"]["cmd"] + ["--redis", redis_server.url, "--node-id", str(index)])
                    server = serve(f"ours-node{index}", spec, out_dir, key)
                    if server is None:
                        return
                    servers.append(server)
                deadline = time.time() + 10
                while time.time() < deadline and not all(any(line.endswith(" 1") for line in server.metrics(r"^ws_bus_connected ")) for server in servers):
                    time.sleep(0.1)
                cluster_loadgen(servers, redis_server, args, out_dir, key)
            finally:
                for server in servers:
                    server.stop()
    except RuntimeError as error:
        print(f"  {key}: {error}", flush=True)
        record_failure(out_dir, key, str(error))


def publish_rate(out_dir):
    """redis-benchmark running PUBLISH (it has no built-in publish test: the command is given):
    Redis's own rate here, unpipelined and 16 in flight per connection, with no subscriber and
    with 2 subscribers on the channel (what 2 server processes cost Redis per message)."""
    key = "redis-publish-ours"
    if shutil.which("redis-benchmark") is None:
        record_failure(out_dir, key, "redis-benchmark is missing (Debian's redis-tools)")
        return
    requests = size(200000, 100000, 20000)
    payload = "x" * 64
    figures = {}
    try:
        with RedisServer(out_dir) as redis_server:
            for pipeline, subscribers in ((1, 0), (16, 0), (16, 2)):
                listeners = [subprocess.Popen(["redis-cli", "-p", str(redis_server.port), "subscribe", "fanout:bench"],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(subscribers)]
                try:
                    time.sleep(0.3 if subscribers else 0)
                    cmd = ["taskset", "-c", LOADGEN_CORE, "redis-benchmark", "-p", str(redis_server.port), "-n", str(requests),
                           "-c", "50", "-P", str(pipeline), "--csv", "publish", "fanout:bench", payload]
                    print(f"redis: redis-benchmark publish, pipeline {pipeline}, {subscribers} subscriber(s)", flush=True)
                    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
                finally:
                    for listener in listeners:
                        listener.kill()
                        listener.wait()
                rows = [line for line in result.stdout.splitlines() if line.startswith('"publish')]
                if result.returncode != 0 or not rows:
                    record_failure(out_dir, key, f"redis-benchmark failed ({result.returncode}): {(result.stderr or result.stdout).strip()[-300:]}")
                    return
                cells = [cell.strip('"') for cell in rows[0].split('","')]
                shown = " ".join(cmd[3:]).replace(payload, "<64 bytes>")
                figures[f"P{pipeline}-S{subscribers}"] = {"cmd": shown, "pipeline": pipeline, "subscribers": subscribers,
                                                          "requests_per_s": float(cells[1]), "p50_ms": float(cells[4]), "p99_ms": float(cells[6])}
    except (RuntimeError, ValueError, IndexError) as error:
        record_failure(out_dir, key, str(error))
        return
    (out_dir / f"{key}.json").write_text(json.dumps({"publish": figures}, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# Reading the run files back.


def rss(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def loadgen_bound(report):
    """The loadgen used over 90% of its core or fell behind its own schedule. (Its `warnings`
    also name the server's failures, which are not the loadgen's limit: only the schedule and
    saturation ones count here.)"""
    resources = report["resources"]
    busy = resources["loadgen_cpu_s"] / resources["wall_s"] if resources["wall_s"] else 0
    return busy > 0.9 or any(re.search(r"schedule|saturated|fell behind", warning) for warning in report.get("warnings") or [])


def wire_bytes(report):
    """Bytes the clients read off the wire (frames as sent, compressed or not), if this loadgen
    reports them: the first numeric field whose name speaks of the wire and of receiving."""
    found = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, path + [key.lower()])
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            joined = ".".join(path)
            if "wire" in joined and re.search(r"receiv|recv|read|inbound|(^|[._])in($|[._])", joined):
                found.append(node)
    walk(report, [])
    return found[0] if found else None


def summary(report):
    """The figures a table row needs."""
    delivery = report.get("delivery_latency_us") or {}
    completion = report.get("completion_latency_us") or {}  # fanout runs only
    deliveries = report["deliveries"]
    resources = report["resources"]
    connections = report["connections"]
    wall = resources["wall_s"] or 1
    return {
        "expected": deliveries["expected"],
        "received": deliveries["received"],
        "lost": deliveries["lost"],
        "delivered_share": deliveries["received"] / deliveries["expected"] if deliveries["expected"] else 0,
        "per_second": deliveries["per_second"],
        "p50": delivery.get("p50"), "p99": delivery.get("p99"), "p99_9": delivery.get("p99_9"), "max": delivery.get("max"),
        "c50": completion.get("p50"), "c99": completion.get("p99"), "cmax": completion.get("max"),
        "server_cpu": (resources["server_cpu_s"] or 0) / wall,
        "server_cpu_s": resources["server_cpu_s"] or 0,
        "loadgen_cpu": resources["loadgen_cpu_s"] / wall,
        "loadgen_bound": loadgen_bound(report),
        "connected": connections["ok"],
        "disconnected": max(0, connections["ok"] - connections.get("open_at_end", connections["ok"])),
        "close_codes": connections.get("close_codes", {}),
        "wire_bytes": wire_bytes(report),
        "peak_rss": resources.get("server_rss_max_bytes") or 0,
    }


PATTERNS = [
    ("saturation", r"saturation-(\d+)r-(.+)", lambda m: ((m[2], int(m[1])), m[2])),
    ("fanout", r"fanout-(\d+)c-(\d+)s-(\d+)r-(.+)", lambda m: ((int(m[1]), int(m[2]), int(m[3]), m[4]), m[4])),
    ("memory", r"memory-(\d+)-(.+)", lambda m: (m[2], m[2])),
    ("echo", r"echo-(\d+)r-(.+)", lambda m: ((m[2], int(m[1])), m[2])),
    ("tls", r"tls-saturation-(\d+)r-(.+)", lambda m: (("saturation", m[2], int(m[1])), m[2])),
    ("tls", r"tls-memory-(\d+)-(.+)", lambda m: (("memory", m[2]), m[2])),
    ("compression", r"compression-(300B|2KB)-(.+)", lambda m: ((m[1], m[2]), m[2])),
    ("flood", r"flood-(quiet|flooded)-(.+)", lambda m: ((m[2], m[1]), m[2])),
    ("redis", r"redis-(1proc|2proc)-(\d+)r-(.+)", lambda m: ((m[1], int(m[2])), m[3])),
    ("redis", r"redis-(buslatency|publish)-(.+)", lambda m: ((m[1],), m[2])),
]


def classify(stem):
    """(section, key, server name) of a run file's stem, or None."""
    for section, pattern, make_key in PATTERNS:
        match = re.fullmatch(pattern, stem)
        if match:
            key, name = make_key(match)
            return section, key, name
    return None


def load_results(out_dir):
    """Every run file in out_dir, by section: {section: {key: (summary, report)}}, plus the
    runs that failed: [(stem, text)]."""
    results = {section: {} for section in SECTIONS}
    for path in sorted(out_dir.glob("*.json")):
        found = classify(path.stem)
        if not found:
            continue
        section, key, _ = found
        report = json.loads(path.read_text())
        if section == "redis" and key[0] == "publish":
            row = report
        elif section == "memory" or (section == "tls" and key[0] == "memory"):
            baseline = report.get("server_rss_before_clients_bytes", 0)
            peak = report["resources"]["server_rss_max_bytes"] or 0
            connected = report["connections"]["ok"]
            row = {"baseline": baseline, "peak": peak, "connected": connected,
                   "per_connection": (peak - baseline) / connected if connected else None,
                   "loadgen_bound": loadgen_bound(report)}
        else:
            row = summary(report)
        results[section][key] = (row, report)
    failures = [(path.stem, path.read_text().strip()) for path in sorted(out_dir.glob("*.failed"))]
    return results, failures


def sustained_step(rows, name):
    """(deliveries/s, row) of the best saturation step of `name` with >= 98% delivered and
    p99 under 1 s; (0, None) if none."""
    best = (0, None)
    for (server, _), (row, _) in rows.items():
        if server == name and row["delivered_share"] >= 0.98 and (row["p99"] or 1e12) < 1_000_000 and row["per_second"] > best[0]:
            best = (row["per_second"], row)
    return best


def sustained(rows, name):
    return sustained_step(rows, name)[0]


def steps_of(results, section):
    """Saturation-shaped rows {(name, rate): entry} of a section (`saturation` or `tls`)."""
    if section == "tls":
        return {(key[1], key[2]): entry for key, entry in results["tls"].items() if key[0] == "saturation"}
    return results["saturation"]


def memory_of(results, section):
    """Idle-memory rows {name: entry} of a section (`memory` or `tls`)."""
    if section == "tls":
        return {key[1]: entry for key, entry in results["tls"].items() if key[0] == "memory"}
    return results["memory"]


# ---------------------------------------------------------------------------------------------
# Formatting.


def fmt_us(value):
    if value is None:
        return "-"
    if value < 1000:
        return f"{value} µs"
    if value < 1_000_000:
        return f"{value / 1000:.2f} ms"
    return f"{value / 1e6:.2f} s"


def fmt_rate(per_second):
    """50k, 1M, 2.5M."""
    if per_second >= 1_000_000:
        return f"{per_second / 1e6:g}M"
    return f"{per_second / 1e3:g}k"


def fmt_bytes(value):
    if value is None:
        return "-"
    if value < 10_000:
        return f"{value:,.0f} B"
    if value < 10 * 2**20:
        return f"{value / 1024:,.0f} KiB"
    return f"{value / 2**20:,.1f} MiB"


def ratio(name, ours, theirs, digits=2, missing="-", own=("ours",)):
    """Ours / theirs as a table prints it: 1 on our own row, `missing` when either is unknown."""
    if name in own:
        return "1"
    if not ours or not theirs:
        return missing
    return f"{ours / theirs:.{digits}f}"


def latency_cells(row, keys=("p50", "p99", "p99_9", "max")):
    return " | ".join(fmt_us(row[key]) for key in keys)


def cpu_cells(row):
    return f"{row['server_cpu'] * 100:.0f}% | {row['loadgen_cpu'] * 100:.0f}%"


def bound_mark(*rows):
    return " (loadgen-bound)" if any(row and row.get("loadgen_bound") for row in rows) else ""


def ordered(names, order):
    known = [name for name in dict.fromkeys(order) if name in names]
    return known + sorted(name for name in names if name not in known)


# ---------------------------------------------------------------------------------------------
# Who wins each row, and the targets.


def comparisons(results):
    """Every row where ours meets peers: (row, kind, {name: (value, row)}, lower_is_better).
    Only servers that delivered at least 98% of what they were sent compete on latency."""
    rows = []
    saturation_rows = results["saturation"]
    competitors = {name for name, _ in saturation_rows if name != "raw-tcp"}
    if "ours" in competitors and len(competitors) > 1:
        rows.append(("Sustained deliveries/s, 1,000 clients", {n: sustained_step(saturation_rows, n) for n in competitors}, False))
    for rate in sorted({rate for _, rate in saturation_rows}):
        entries = {name: (row["p99"], row) for (name, step), (row, _) in saturation_rows.items()
                   if step == rate and name != "raw-tcp" and row["delivered_share"] >= 0.98}
        if "ours" in entries and len(entries) > 1:
            rows.append((f"p99 delivery at {fmt_rate(rate * 1000)} deliveries/s offered", entries, True))
    for clients, senders, rate in sorted({key[:3] for key in results["fanout"]}):
        entries = {key[3]: (row["c99"], row) for key, (row, _) in results["fanout"].items()
                   if key[:3] == (clients, senders, rate) and key[3] != "raw-tcp" and row["delivered_share"] >= 0.98}
        if "ours" in entries and len(entries) > 1:
            rows.append((f"p99 completion, {clients:,} clients, {senders} @ {rate}/s", entries, True))
    entries = {name: (row["per_connection"], row) for name, (row, _) in results["memory"].items() if row["per_connection"]}
    if "ours" in entries and len(entries) > 1:
        rows.append(("RSS per idle connection (10,000)", entries, True))
    for rate in sorted({rate for _, rate in results["echo"]}):
        entries = {name: (row["p99"], row) for (name, step), (row, _) in results["echo"].items() if step == rate and row["delivered_share"] >= 0.98}
        if "ours" in entries and len(entries) > 1:
            rows.append((f"Echo p99 round trip at {rate:,} msg/s", entries, True))
    tls_steps = {key: entry for key, entry in steps_of(results, "tls").items() if key[0] != "ours-plain"}
    tls_names = {name for name, _ in tls_steps}
    if "ours" in tls_names and len(tls_names) > 1:
        rows.append(("TLS: sustained deliveries/s, 1,000 clients", {n: sustained_step(tls_steps, n) for n in tls_names}, False))
        entries = {name: (row["p99"], row) for (name, rate), (row, _) in tls_steps.items() if rate == 1000 and row["delivered_share"] >= 0.98}
        if "ours" in entries and len(entries) > 1:
            rows.append(("TLS: p99 delivery at 1M deliveries/s offered", entries, True))
    entries = {name: (row["per_connection"], row) for name, (row, _) in memory_of(results, "tls").items() if row["per_connection"]}
    if "ours" in entries and len(entries) > 1:
        rows.append(("TLS: RSS per idle connection (10,000)", entries, True))
    for label in COMPRESSION_SIZES:
        entries = {name: (cpu_per_delivery(row), row) for (size, name), (row, _) in results["compression"].items()
                   if size == label and name != "ours-off" and row["delivered_share"] >= 0.98 and cpu_per_delivery(row)}
        if "ours" in entries and len(entries) > 1:
            rows.append((f"Compression: server CPU per delivery, {label} JSON", entries, True))
    entries = {}
    for name in {key[0] for key in results["flood"]}:
        quiet, flooded = results["flood"].get((name, "quiet")), results["flood"].get((name, "flooded"))
        if quiet and flooded and flooded[0]["lost"] == 0 and flooded[0]["disconnected"] == 0 and quiet[0]["p99"]:
            entries[name] = ((flooded[0]["p99"] or 0) / quiet[0]["p99"], flooded[0])
    if "ours" in entries and len(entries) > 1:
        rows.append(("Flood: chatters' p99 with a flooder / without (none lost or disconnected)", entries, True))
    return rows


def cpu_per_delivery(row):
    """Server CPU seconds per delivered message, in microseconds."""
    return row["server_cpu_s"] / row["received"] * 1e6 if row["received"] else None


def fmt_value(title, value):
    if value is None:
        return "-"
    if title.startswith("Flood"):
        return f"{value:.2f}x"
    if "sustained" in title.lower():
        return f"{value:,.0f}/s"
    if "RSS" in title:
        return fmt_bytes(value)
    if "CPU per delivery" in title:
        return f"{value:.2f} µs"
    return fmt_us(value)


def headline(results):
    """Who wins each row, said plainly."""
    rows = comparisons(results)
    if not rows:
        return []
    lines = ["## Who wins each row", "",
             "Each row compares ours with the best peer *in that row* (among peers that delivered at least 98% of what they were sent). "
             "raw-tcp is the ceiling, not a competitor, and is left out here.", "",
             "| row | winner | ours | best peer | ours / best peer |", "| --- | --- | --- | --- | --- |"]
    tally = {"ours": 0, "peers": 0, "ties": 0}
    peer_wins = []
    for title, entries, lower in rows:
        pick = min if lower else max
        winner = pick(entries, key=lambda name: entries[name][0] if entries[name][0] is not None else (1e30 if lower else -1))
        peers = {name: entry for name, entry in entries.items() if name != "ours"}
        best = pick(peers, key=lambda name: peers[name][0] if peers[name][0] is not None else (1e30 if lower else -1))
        ours_value, ours_row = entries["ours"]
        best_value, best_row = peers[best]
        if ours_value and best_value and 0.95 <= ours_value / best_value <= 1.05:
            # One run each: a difference of a few percent is not a win.
            winner = f"even (ours and {best} within 5%)"
            tally["ties"] += 1
        else:
            tally["ours" if winner == "ours" else "peers"] += 1
        if winner != "ours" and not winner.startswith("even"):
            peer_wins.append(f"{title} ({winner})")
        mark = bound_mark(ours_row, best_row)
        share = f"{ours_value / best_value:.2f}" if ours_value and best_value else "-"
        lines.append(f"| {title}{mark} | **{winner}** | {fmt_value(title, ours_value)} | {best}: {fmt_value(title, best_value)} | {share} |")
    lines += ["", f"Ours wins {tally['ours']} of {len(rows)} rows; a peer wins {tally['peers']}"
              + (f" ({'; '.join(peer_wins)})" if peer_wins else "")
              + (f"; {tally['ties']} even" if tally["ties"] else "")
              + ". A row marked loadgen-bound says more about the loadgen than about the servers.", ""]
    return lines


def targets(results, quick):
    """The goals of the issues, each against the best peer of its own row."""
    lines = ["## Where we stand against the targets", ""]
    if quick:
        return lines + ["(Quick subset: the targets are judged on the full `make bench` only.)", ""]
    rows = []
    saturation_rows = results["saturation"]
    peers = {name for name, _ in saturation_rows if name not in ("ours", "raw-tcp")}
    ours, raw = sustained(saturation_rows, "ours"), sustained(saturation_rows, "raw-tcp")
    if ours and raw:
        rows.append(("sustained deliveries/s at 1,000 clients >= 90% of the raw TCP ceiling",
                     f"{ours:,.0f} vs {raw:,.0f}: {ours / raw * 100:.0f}%", ours >= 0.9 * raw))
    if ours and peers:
        best = max(peers, key=lambda name: sustained(saturation_rows, name))
        theirs = sustained(saturation_rows, best)
        rows.append((f"... and >= 1.5x the best peer ({best})", f"{ours:,.0f} vs {theirs:,.0f}: {ours / max(theirs, 1):.1f}x", ours >= 1.5 * theirs))
    for rate in sorted({rate for _, rate in saturation_rows}):
        mine = saturation_rows.get(("ours", rate))
        if not mine:
            continue
        mine = mine[0]
        raw_row = saturation_rows.get(("raw-tcp", rate))
        if rate == 2000 and raw_row and mine["p99"] and raw_row[0]["p99"]:
            rows.append(("p99 delivery at 2M deliveries/s offered <= 1.5x the raw ceiling's",
                         f"{fmt_us(mine['p99'])} vs {fmt_us(raw_row[0]['p99'])}: {mine['p99'] / raw_row[0]['p99']:.2f}x", mine["p99"] <= 1.5 * raw_row[0]["p99"]))
        candidates = [(name, saturation_rows[(name, rate)][0]) for name in peers if (name, rate) in saturation_rows]
        candidates = [(name, row) for name, row in candidates if row["delivered_share"] >= 0.98 and row["p99"]]
        if not candidates or not mine["p99"]:
            continue
        name, best = min(candidates, key=lambda item: item[1]["p99"])
        # Half the best peer's p99 is the goal where the servers are the limit: the loadgen had
        # room to spare and a server used at least 90% of its core. Elsewhere: at most the peer's.
        server_bound = not (mine["loadgen_bound"] or best["loadgen_bound"]) and max(mine["server_cpu"], best["server_cpu"]) >= 0.9
        factor = 0.5 if server_bound else 1.0
        goal = "<= half the best peer's" if server_bound else "<= the best peer's"
        rows.append((f"p99 delivery at {fmt_rate(rate * 1000)} deliveries/s offered {goal} ({name})",
                     f"{fmt_us(mine['p99'])} vs {fmt_us(best['p99'])}: {mine['p99'] / best['p99']:.2f}x", mine["p99"] <= factor * best["p99"]))
    for senders, rate in [(10, 100), (1, 10)]:
        mine = results["fanout"].get((10000, senders, rate, "ours"))
        candidates = [(key[3], row["c99"]) for key, (row, _) in results["fanout"].items()
                      if key[:3] == (10000, senders, rate) and key[3] not in ("ours", "raw-tcp") and row["delivered_share"] >= 0.98 and row["c99"]]
        if mine and candidates:
            name, best = min(candidates, key=lambda item: item[1])
            value = mine[0]["c99"]
            rows.append((f"p99 completion at 10,000 clients ({senders} @ {rate}/s) <= half the best peer's ({name})",
                         f"{fmt_us(value)} vs {fmt_us(best)}: {value / best:.2f}x", value <= 0.5 * best))
    memory_rows = results["memory"]
    if "ours" in memory_rows and memory_rows["ours"][0]["per_connection"]:
        per = memory_rows["ours"][0]["per_connection"]
        rows.append(("RSS per idle connection <= 128 bytes", f"{per:,.0f} B", per <= 128))
        candidates = [(name, row["per_connection"]) for name, (row, _) in memory_rows.items() if name != "ours" and row["per_connection"]]
        if candidates:
            name, best = min(candidates, key=lambda item: item[1])
            rows.append((f"... and <= a tenth of the best peer's ({name})", f"{per:,.0f} B vs {best:,.0f} B: {per / best:.3f}x", per <= 0.1 * best))
    tls_steps = steps_of(results, "tls")
    tls_peers = {name for name, _ in tls_steps if name not in ("ours", "ours-plain")}
    ours_tls = sustained(tls_steps, "ours")
    if ours_tls and tls_peers:
        best = max(tls_peers, key=lambda name: sustained(tls_steps, name))
        theirs = sustained(tls_steps, best)
        rows.append((f"TLS: sustained deliveries/s >= 2x the best TLS peer's ({best})",
                     f"{ours_tls:,.0f} vs {theirs:,.0f}: {ours_tls / max(theirs, 1):.1f}x", ours_tls >= 2 * theirs))
        mine = tls_steps.get(("ours", 1000))
        candidates = [(name, tls_steps[(name, 1000)][0]) for name in tls_peers if (name, 1000) in tls_steps]
        candidates = [(name, row) for name, row in candidates if row["delivered_share"] >= 0.98 and row["p99"]]
        if mine and mine[0]["p99"] and candidates:
            name, best_row = min(candidates, key=lambda item: item[1]["p99"])
            rows.append((f"TLS: p99 at 1M deliveries/s offered <= half the best TLS peer's ({name})",
                         f"{fmt_us(mine[0]['p99'])} vs {fmt_us(best_row['p99'])}: {mine[0]['p99'] / best_row['p99']:.2f}x", mine[0]["p99"] <= 0.5 * best_row["p99"]))
    tls_memory = memory_of(results, "tls")
    if "ours" in tls_memory and tls_memory["ours"][0]["per_connection"]:
        per = tls_memory["ours"][0]["per_connection"]
        rows.append(("TLS: RSS per idle TLS connection <= 2 KB", f"{per:,.0f} B", per <= 2048))
    for label in COMPRESSION_SIZES:
        on, off = results["compression"].get((label, "ours")), results["compression"].get((label, "ours-off"))
        node = results["compression"].get((label, "node-ws"))
        if on and off and cpu_per_delivery(on[0]) and cpu_per_delivery(off[0]):
            a, b = cpu_per_delivery(on[0]), cpu_per_delivery(off[0])
            rows.append((f"Compression ({label}): CPU per delivery with compression <= 1.25x ours without", f"{a:.2f} µs vs {b:.2f} µs: {a / b:.2f}x", a <= 1.25 * b))
        if on and node and cpu_per_delivery(on[0]) and cpu_per_delivery(node[0]):
            a, b = cpu_per_delivery(on[0]), cpu_per_delivery(node[0])
            rows.append((f"Compression ({label}): CPU per delivery <= a fifth of Node ws's with compression", f"{a:.2f} µs vs {b:.2f} µs: {a / b:.2f}x", a <= 0.2 * b))
    quiet, flooded = results["flood"].get(("ours", "quiet")), results["flood"].get(("ours", "flooded"))
    if quiet and flooded:
        q, f = quiet[0], flooded[0]
        rows.append(("Flood: the chatters lose nothing and none is disconnected",
                     f"{f['lost']:,} lost, {f['disconnected']:,} disconnected", f["lost"] == 0 and f["disconnected"] == 0))
        if q["p99"] and f["p99"]:
            rows.append(("Flood: the chatters' p99 within 2x of the run without the flooder",
                         f"{fmt_us(f['p99'])} vs {fmt_us(q['p99'])}: {f['p99'] / q['p99']:.2f}x", f["p99"] <= 2 * q["p99"]))
        flooder = flooded[1].get("flooder", {})
        # Met only when the rate limiter itself counted the flooder (a close or dropped messages);
        # a close for another reason (slow consumer) does not count.
        throttled = any(re.search(r"\s([1-9]\d*)(\.\d+)?$", line)
                        for line in flooded[1].get("rate_limiter_metrics", []) if not line.startswith("#"))
        rows.append(("Flood: the flooder is closed or throttled, and /metrics shows it",
                     f"{flooder.get('ending', '-')}; " + "; ".join(line for line in flooded[1].get("rate_limiter_metrics", []) if not line.startswith("#")), throttled))
    lost_rows = [row for key, (row, _) in results["fanout"].items() if key[3] == "ours"]
    lost_rows += [row for (name, _), (row, _) in results["saturation"].items() if name == "ours"]
    if lost_rows:
        lost = sum(row["lost"] for row in lost_rows)
        rows.append(("zero lost deliveries in every saturation and fan-out row of ours", f"{lost:,} lost in {len(lost_rows)} rows", lost == 0))
    lines += ["| target | measured | met |", "| --- | --- | --- |"]
    lines += [f"| {target} | {figure} | {'yes' if met else '**no**'} |" for target, figure, met in rows]
    lines.append("")
    analysis = Path(__file__).resolve().parent / "analysis.md"
    if analysis.exists():
        lines += analysis.read_text().splitlines() + [""]
    return lines


# ---------------------------------------------------------------------------------------------
# The README.


def machine():
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release(), "system": platform.system()}


def versions():
    def run(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError:
            return "not found"
    lock = (PEERS / "rust/Cargo.lock").read_text() if (PEERS / "rust/Cargo.lock").exists() else ""

    def crate(name):
        match = re.search(r'name = "' + re.escape(name) + r'"\nversion = "([^"]+)"', lock)
        return match.group(1) if match else "?"

    def npm(package_json):
        try:
            return json.loads(package_json.read_text())["version"]
        except (OSError, KeyError, json.JSONDecodeError):
            return "not installed"
    return {
        "rustc": run(["rustc", "--version"]),
        "tokio": crate("tokio"),
        "tokio-tungstenite": crate("tokio-tungstenite"),
        "rustls": crate("rustls"),
        "node": run(["node", "--version"]),
        "ws": npm(PEERS / "node-ws/node_modules/ws/package.json"),
        "bun": run([str(BUN), "--version"]) if BUN.exists() else "not installed",
        "python": run([str(PYTHON), "--version"]),
        "websockets": run([str(PYTHON), "-c", "import websockets; print(websockets.__version__)"]),
        "openssl": run(["openssl", "version"]),
    }


def table_head(add, *columns):
    """A Markdown table's header row and its separator."""
    add("| " + " | ".join(columns) + " |")
    add("| " + " | ".join("---" for _ in columns) + " |")


def heading(add, title, *paragraphs):
    """A README section's title and its opening paragraphs, each followed by a blank line."""
    for text in (title,) + paragraphs:
        add(text)
        add("")


def setup_table(add, title, specs, names):
    if not names:
        return
    table_head(add, title, "setup")
    for name in names:
        add(f"| {name} | {specs[name]['setup'] if name in specs else '-'} |")
    add("")


def best_and_by_rate(steps):
    """Each server's sustained step, and the steps by rate."""
    best = {}
    by_rate = {}
    for (name, rate), (row, _) in steps.items():
        if row["delivered_share"] >= 0.98 and (row["p99"] or 1e12) < 1_000_000 and row["per_second"] > best.get(name, (0, None))[0]:
            best[name] = (row["per_second"], row)
        by_rate.setdefault(rate, {})[name] = row
    return best, by_rate


def write_saturation(add, results):
    steps = results["saturation"]
    if not steps:
        return
    names = ordered({name for name, _ in steps}, SERVER_ORDER)
    best, by_rate = best_and_by_rate(steps)
    heading(add, "## Saturation: highest sustained deliveries per second",
            "1,000 clients, 10 senders, the total rate stepped up until deliveries per second stop growing or p99 passes 100 ms. "
            "*Sustained* is the best step with at least 98% delivered and p99 under 1 s.")
    ours_best = best.get("ours", (0, None))[0]
    ours_2m = by_rate.get(2000, {}).get("ours")
    table_head(add, "server", "sustained deliveries/s", "ours / theirs", "p99 at that rate", "p99 at 2M/s offered", "ours / theirs", "delivered at 2M/s", "server CPU at 2M/s", "loadgen CPU at 2M/s")
    for name in names:
        rate_best, row = best.get(name, (0, None))
        row2 = by_rate.get(2000, {}).get(name)
        if not row2:
            add(f"| {name} | {rate_best:,.0f} | {ratio(name, ours_best, rate_best, missing='')} | {fmt_us(row['p99']) if row else '-'} | - | - | - | - | - |")
            continue
        add(f"| {name} | {rate_best:,.0f} | {ratio(name, ours_best, rate_best, missing='')} | {fmt_us(row['p99']) if row else '-'} | "
            f"{fmt_us(row2['p99'])}{bound_mark(row2)} | {ratio(name, ours_2m and ours_2m['p99'], row2['p99'])} | "
            f"{row2['delivered_share'] * 100:.1f}% | {cpu_cells(row2)} |")
    raw_best = best.get("raw-tcp", (0, None))[0]
    if raw_best and ours_best:
        add("")
        add(f"Our share of the raw TCP ceiling: **{ours_best / raw_best * 100:.0f}%** ({ours_best:,.0f} / {raw_best:,.0f} deliveries/s).")
    add("")
    add("p99 delivery latency at every offered rate, side by side (ours / theirs in brackets; `-` where a server was not run at that rate, having saturated below it):")
    add("")
    table_head(add, "offered deliveries/s", *names)
    for rate in sorted(by_rate):
        cells = []
        ours_row = by_rate[rate].get("ours")
        for name in names:
            row = by_rate[rate].get(name)
            if not row:
                cells.append("-")
                continue
            share = "" if name == "ours" or not (ours_row and ours_row["p99"] and row["p99"]) else f" ({ours_row['p99'] / row['p99']:.2f})"
            delivered = "" if row["delivered_share"] >= 0.98 else f", {row['delivered_share'] * 100:.0f}% delivered"
            cells.append(f"{fmt_us(row['p99'])}{share}{delivered}{' LB' if row['loadgen_bound'] else ''}")
        add(f"| {rate * 1000:,} | " + " | ".join(cells) + " |")
    add("")
    add("LB: loadgen-bound.")
    add("")
    add("Every step:")
    add("")
    table_head(add, "server", "offered msg/s", "offered deliveries/s", "delivered/s", "delivered", "p50", "p99", "p99.9", "max", "server CPU", "loadgen CPU")
    for (name, rate), (row, _) in sorted(steps.items(), key=lambda item: (names.index(item[0][0]), item[0][1])):
        add(f"| {name} | {rate:,} | {rate * 1000:,} | {row['per_second']:,.0f}{bound_mark(row)} | {row['delivered_share'] * 100:.1f}% | {latency_cells(row)} | {cpu_cells(row)} |")
    add("")


def write_fanout(add, results):
    rows = results["fanout"]
    if not rows:
        return
    heading(add, "## Fan-out at a fixed rate", "One room, 64-byte messages; `rate` is messages per second from all senders together. Ratio: ours / theirs on p99 completion.")
    table_head(add, "clients", "senders @ total rate", "server", "delivery p50", "p99", "p99.9", "max", "completion p50", "p99", "ours / theirs", "max", "lost", "server CPU", "loadgen CPU")
    names = ordered({key[3] for key in rows}, SERVER_ORDER)
    for clients, senders, rate in sorted({key[:3] for key in rows}):
        ours = rows.get((clients, senders, rate, "ours"), (None, None))[0]
        for name in names:
            entry = rows.get((clients, senders, rate, name))
            if not entry:
                continue
            row = entry[0]
            add(f"| {clients:,} | {senders} @ {rate}/s | {name}{bound_mark(row)} | {latency_cells(row)} | {latency_cells(row, ('c50', 'c99'))} | "
                f"{ratio(name, ours and ours['c99'], row['c99'])} | {fmt_us(row['cmax'])} | {row['lost']:,} of {row['expected']:,} | {cpu_cells(row)} |")
    add("")


def write_memory_table(add, rows, title, intro):
    if not rows:
        return
    heading(add, title, intro)
    table_head(add, "server", "connected", "RSS before", "RSS with 10,000", "per connection", "ours / theirs")
    ours = rows.get("ours", ({},))[0].get("per_connection")
    for name in ordered(set(rows), SERVER_ORDER):
        row = rows[name][0]
        per = row["per_connection"]
        if per is None:
            add(f"| {name} | {row['connected']:,} | - | - | - | - |")
            continue
        add(f"| {name} | {row['connected']:,} | {row['baseline'] / 2**20:.1f} MiB | {row['peak'] / 2**20:.1f} MiB | {per:,.0f} B | {ratio(name, ours, per, digits=3)} |")
    add("")


def write_echo(add, results):
    rows = results["echo"]
    if not rows:
        return
    heading(add, "## Echo", "100 clients, each sends on the schedule and measures the round trip of its own echo: our server in `--mode echo` beside Bun's echo server. Ratio: ours / theirs on p99.")
    table_head(add, "offered msg/s", "server", "delivered/s", "delivered", "p50", "p99", "ours / theirs", "p99.9", "max", "server CPU", "loadgen CPU")
    for rate in sorted({rate for _, rate in rows}):
        ours = rows.get(("ours", rate), (None,))[0]
        for name in ordered({name for name, _ in rows}, SERVER_ORDER):
            entry = rows.get((name, rate))
            if not entry:
                continue
            row = entry[0]
            add(f"| {rate:,} | {name} | {row['per_second']:,.0f}{bound_mark(row)} | {row['delivered_share'] * 100:.1f}% | {fmt_us(row['p50'])} | {fmt_us(row['p99'])} | "
                f"{ratio(name, ours and ours['p99'], row['p99'])} | {fmt_us(row['p99_9'])} | {fmt_us(row['max'])} | {cpu_cells(row)} |")
    add("")


def write_tls(add, results):
    steps = steps_of(results, "tls")
    memory_rows = memory_of(results, "tls")
    if not steps and not memory_rows:
        return
    heading(add, "## TLS (wss://)",
            "1,000 clients, 10 senders, 64-byte messages over wss:// with a self-signed P-256 certificate (`loadgen --insecure`); the rate stepped up as in the saturation table. "
            "`ours-plain` is our server over ws:// at the same steps: the difference is what encryption costs. The loadgen decrypts every delivery, so it is the limit sooner than in plain text.")
    names = ordered({name for name, _ in steps}, ["ours", "ours-plain"] + SERVER_ORDER + ["tokio-rustls"])
    best, by_rate = best_and_by_rate(steps)
    if steps:
        ours_best = best.get("ours", (0, None))[0]
        ours_1m = by_rate.get(1000, {}).get("ours")
        table_head(add, "server", "sustained deliveries/s", "ours / theirs", "p99 at 1M/s offered", "ours / theirs", "delivered at 1M/s", "server CPU at 1M/s", "loadgen CPU at 1M/s")
        for name in names:
            rate_best = best.get(name, (0, None))[0]
            row = by_rate.get(1000, {}).get(name)
            cells = (f"{fmt_us(row['p99'])}{bound_mark(row)} | {ratio(name, ours_1m and ours_1m['p99'], row['p99'])} | {row['delivered_share'] * 100:.1f}% | {cpu_cells(row)}"
                     if row else "- | - | - | - | -")
            add(f"| {name} | {rate_best:,.0f} | {ratio(name, ours_best, rate_best, missing='')} | {cells} |")
        plain_best = best.get("ours-plain", (0, None))[0]
        plain_1m = by_rate.get(1000, {}).get("ours-plain")
        if ours_best and plain_best:
            add("")
            cost = f"What encryption costs us: over TLS we sustain **{ours_best / plain_best * 100:.0f}%** of our plain-text rate ({ours_best:,.0f} / {plain_best:,.0f} deliveries/s)"
            if ours_1m and plain_1m and ours_1m["p99"] and plain_1m["p99"]:
                cost += f"; p99 at 1M/s offered {fmt_us(ours_1m['p99'])} against {fmt_us(plain_1m['p99'])} in plain text ({ours_1m['p99'] / plain_1m['p99']:.2f}x)"
                cpu = [row["server_cpu_s"] / row["received"] * 1e6 for row in (ours_1m, plain_1m) if row["received"]]
                if len(cpu) == 2:
                    cost += f"; server CPU per delivery {cpu[0]:.2f} µs against {cpu[1]:.2f} µs"
            add(cost + bound_mark(ours_1m, plain_1m) + ".")
        add("")
        add("Every step:")
        add("")
        table_head(add, "server", "offered deliveries/s", "delivered/s", "delivered", "p50", "p99", "p99.9", "max", "server CPU", "loadgen CPU")
        for (name, rate), (row, _) in sorted(steps.items(), key=lambda item: (names.index(item[0][0]), item[0][1])):
            add(f"| {name} | {rate * 1000:,} | {row['per_second']:,.0f}{bound_mark(row)} | {row['delivered_share'] * 100:.1f}% | {latency_cells(row)} | {cpu_cells(row)} |")
        add("")
    write_memory_table(add, memory_rows, "### Memory: 10,000 idle TLS connections",
                       "RSS of the server process before the clients connect and at its peak with 10,000 idle wss:// connections (TLS handshakes at 2,000/s).")


def write_compression(add, results):
    rows = results["compression"]
    if not rows:
        return
    heading(add, "## Compression (permessage-deflate)",
            "1,000 receivers in one room, 10 senders at 20 messages/s in total (20,000 deliveries/s), JSON chat messages of about 300 B and about 2 KB "
            "(English-like words around the probe); the loadgen offers permessage-deflate (`--compress`) and inflates what comes back. "
            "*CPU per delivery* is the server's CPU time over the run divided by the deliveries received; *wire* is what the clients read, frames and all. "
            "`ours-off` is our server with `--compression off`, the reference.")
    table_head(add, "message", "server", "CPU per delivery", "ours / theirs", "wire bytes per delivery", "wire / payload", "delivered", "delivery p99", "server CPU", "loadgen CPU")
    for label in COMPRESSION_SIZES:
        ours = rows.get((label, "ours"), (None,))[0]
        for name in ordered({name for size, name in rows if size == label}, ["ours", "ours-off"] + SERVER_ORDER):
            row, report = rows[(label, name)]
            cpu = cpu_per_delivery(row)
            payload = report.get("message_bytes_planned") or COMPRESSION_SIZES[label]
            wire = row["wire_bytes"] / row["received"] if row["wire_bytes"] and row["received"] else None
            add(f"| {label} | {name}{bound_mark(row)} | {f'{cpu:.2f} µs' if cpu else '-'} | {ratio(name, ours and cpu_per_delivery(ours), cpu)} | "
                f"{fmt_bytes(wire)} | {f'{wire / payload:.2f}' if wire else '-'} | {row['delivered_share'] * 100:.1f}% | {fmt_us(row['p99'])} | {cpu_cells(row)} |")
    add("")
    if not any(row["wire_bytes"] for row, _ in rows.values()):
        add("(The loadgen used for this run reports no wire byte count, so that column is empty.)")
        add("")


def write_flood(add, results):
    rows = results["flood"]
    if not rows:
        return
    heading(add, "## Flood: one abusive client in a room of chatters")
    sample = next(iter(rows.values()))[1]
    chatters, seconds = sample["run"]["clients"], sample["run"]["duration_s"]
    flooder_seconds = next((re.search(r"--duration (\S+)", report["flooder"]["cmd"])[1] for _, report in rows.values() if "cmd" in report.get("flooder", {})), "?")
    add(f"{chatters:,} chatters in one room send {sample['run']['rate_per_s']:g} messages/s in total for {seconds:g} s (loadgen). In the *flooded* run one more client "
        f"(`bench/peers/rust` `flooder`) joins the room once they chat and writes 64-byte messages as fast as the socket takes them for {flooder_seconds} s, reading and "
        "discarding what comes back. It runs on the loadgen's core. Each server is started afresh for each run. "
        "Ratio: the chatters' delivery p99 flooded / quiet (the goal for ours: at most 2).")
    add("")
    table_head(add, "server", "lost (quiet / flooded)", "disconnected (quiet / flooded)", "delivery p99 quiet", "p99 flooded", "flooded / quiet", "flooder sent", "flood messages relayed to the chatters", "flooder's connection", "server CPU flooded", "loadgen CPU flooded")
    for name in ordered({name for name, _ in rows}, SERVER_ORDER):
        quiet, flooded = rows.get((name, "quiet")), rows.get((name, "flooded"))
        q = quiet[0] if quiet else None
        f = flooded[0] if flooded else None
        flooder = flooded[1].get("flooder", {}) if flooded else {}
        sent = f"{flooder['sent']:,} ({flooder['rate_per_s']:,.0f}/s)" if "sent" in flooder else flooder.get("error", "-")
        ending = flooder.get("ending", "-")
        if "ended_after_s" in flooder and not flooder.get("still_open"):
            ending += f" after {flooder['ended_after_s']:.2f} s"
        share = f"{f['p99'] / q['p99']:.2f}" if q and f and q["p99"] and f["p99"] else "-"
        relayed = f"{flooded[1]['deliveries'].get('non_probe_messages', 0):,}" if flooded else "-"
        def count(row, field):
            return f"{row[field]:,}" if row else "-"
        add(f"| {name}{bound_mark(f)} | {count(q, 'lost')} / {count(f, 'lost')} | {count(q, 'disconnected')} / {count(f, 'disconnected')} | "
            f"{fmt_us(q and q['p99'])} | {fmt_us(f and f['p99'])} | {share} | {sent} | {relayed} | {ending} | {cpu_cells(f) if f else '- | -'} |")
    add("")
    flooded = rows.get(("ours", "flooded"))
    if flooded and flooded[1].get("rate_limiter_metrics"):
        add("Our server's rate limiter in `/metrics` after the flooded run:")
        add("")
        add("```")
        for line in flooded[1]["rate_limiter_metrics"]:
            add(line)
        add("```")
        add("")


def write_redis(add, results):
    rows = results["redis"]
    if not rows:
        heading(add, "## Rooms across processes (Redis)", "Not measured in this run (`bench/run.py --only redis`).")
        return
    heading(add, "## Rooms across processes (Redis pub/sub)")
    clients = next(iter(rows.values()))[1].get("run", {}).get("clients", 1000)
    add(f"One room of {clients:,} clients, 10 senders. *1 process*: our server alone. *2 processes*: two of our servers with `--redis` and a local redis-server, "
        "the loadgen's clients spread round robin over both (two `--url`s); each message is delivered locally at once and published once, "
        "the other process frames it once for its members. Both processes and redis-server share the servers' one core (the same CPU as 1 process), "
        "so the rows show what the bus costs, not what more cores give. *CPU* is the sum of the processes' CPU over the run (from /proc).")
    add("")
    table_head(add, "deliveries/s offered", "setup", "deliveries/s", "delivered", "delivery p50", "p99", "p99.9", "CPU (servers + redis)", "loadgen CPU")
    for rate in sorted({key[1] for key in rows if key[0] in ("1proc", "2proc")}):
        for setup in ("1proc", "2proc"):
            entry = rows.get((setup, rate))
            if not entry:
                continue
            row, report = entry
            cpu = report.get("cluster_cpu_s") or {}
            wall = report["resources"]["wall_s"] or 1
            cpu_text = " + ".join(f"{value / wall * 100:.0f}%" for value in cpu.values()) or "-"
            clients = report["run"]["clients"]
            add(f"| {rate * clients:,} | {'1 process' if setup == '1proc' else '2 processes + redis'}{bound_mark(row)} | {fmt_rate(row['per_second'])} | "
                f"{row['delivered_share'] * 100:.1f}% | {latency_cells(row, ('p50', 'p99', 'p99_9'))} | {cpu_text} | {row['loadgen_cpu'] * 100:.0f}% |")
    add("")
    latency = rows.get(("buslatency",))
    if latency:
        row, report = latency
        per_url = report.get("per_url") or []
        add("**The latency the bus adds**: 1 sender on the first process at 100 messages/s; its receivers on the first process get each message locally, "
            "those on the second through Redis (PUBLISH, Redis, the subscriber's read, framing once, the writes).")
        add("")
        if len(per_url) == 2:
            local, remote = (entry.get("delivery_latency_us") or {} for entry in per_url)
            table_head(add, "receivers", "delivery p50", "p99", "p99.9", "max")
            add(f"| on the sender's process (local) | {fmt_us(local.get('p50'))} | {fmt_us(local.get('p99'))} | {fmt_us(local.get('p99_9'))} | {fmt_us(local.get('max'))} |")
            add(f"| on the other process (through Redis) | {fmt_us(remote.get('p50'))} | {fmt_us(remote.get('p99'))} | {fmt_us(remote.get('p99_9'))} | {fmt_us(remote.get('max'))} |")
            if local.get("p50") and remote.get("p50"):
                add(f"| the bus adds | {fmt_us(remote['p50'] - local['p50'])} | {fmt_us(remote['p99'] - local['p99'])} | | |")
        else:
            add("(This loadgen reports no per-URL figures (`per_url`): it predates several `--url`s, so the two sides cannot be told apart.)")
        add("")
    publish = rows.get(("publish",))
    if publish:
        figures = publish[0].get("publish", {})
        add("**Redis's own PUBLISH rate** on this machine (`redis-benchmark` running `PUBLISH`, 50 connections, 64-byte payloads; redis-server on the servers' core, redis-benchmark on the loadgen's):")
        add("")
        for entry in figures.values():
            add(f"- pipeline {entry['pipeline']}, {entry['subscribers']} subscriber(s): {entry['requests_per_s']:,.0f} publishes/s "
                f"(p50 {entry['p50_ms']} ms, p99 {entry['p99_ms']} ms): `{entry['cmd']}`")
        add("")
        add("Each chat message is one PUBLISH, whatever the room size; Redis sends it once to each subscribed process, which frames it once for all its members. "
            "So N processes of 1,000 members each turn one PUBLISH into N x 1,000 deliveries, and Redis becomes the limit only when the messages per second across all rooms "
            "approach the rates above (divided by the number of subscribed processes for the fan-out Redis itself does).")
        add("")


def write_plots(out_dir, results):
    try:
        import matplotlib
        matplotlib.use("svg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plots skipped: matplotlib is missing", flush=True)
        return []
    written = []
    fanout_clients = sorted({key[0] for key in results["fanout"] if key[1:3] == (10, 100)})
    if fanout_clients:
        clients = fanout_clients[-1]
        figure, axes = plt.subplots(figsize=(8, 5))
        for name in ordered({key[3] for key in results["fanout"]}, SERVER_ORDER):
            path = out_dir / f"fanout-{clients}c-10s-100r-{name}.hgrm"
            if not path.exists():
                continue
            xs, ys = [], []
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3 and not line.startswith("#") and parts[0][0].isdigit():
                    percentile = float(parts[1])
                    if percentile < 1.0:
                        xs.append(1 / (1 - percentile))
                        ys.append(float(parts[0]))
            if xs:
                axes.plot(xs, ys, label=name)
        axes.set_xscale("log")
        axes.set_yscale("log")
        ticks = [1, 2, 10, 100, 1000, 10000]
        axes.set_xticks(ticks, ["0%", "50%", "90%", "99%", "99.9%", "99.99%"])
        axes.set_xlabel("percentile")
        axes.set_ylabel("delivery latency (ms)")
        axes.set_title(f"Delivery latency, {clients:,} clients, 10 senders, 100 msg/s")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
        figure.tight_layout()
        figure.savefig(out_dir / "latency-percentiles.svg")
        written.append("latency-percentiles.svg")
        plt.close(figure)

    # Saturation: what got delivered, and at what p99, against what was offered. Overlapping
    # curves (ours and the raw ceiling track each other) get their own line style and marker.
    styles = {"ours": ("-", "o"), "raw-tcp": ("--", "s"), "bun": (":", "P"), "tokio-broadcast": ("-.", "^"),
              "tokio-mpsc": (":", "v"), "node-ws": ("-", "D"), "python-websockets": ("--", "x")}
    for section, file_name, title in (("saturation", "saturation.svg", "Saturation: 1,000 clients, 10 senders, 64-byte messages"),
                                      ("tls", "tls-saturation.svg", "TLS saturation: 1,000 wss:// clients, 10 senders, 64-byte messages")):
        steps = steps_of(results, section)
        if not steps:
            continue
        figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
        for name in ordered({name for name, _ in steps}, SERVER_ORDER):
            points = sorted((rate * 1000, row["per_second"], row["p99"]) for (server, rate), (row, _) in steps.items() if server == name)
            line, marker = styles.get(name, ("-", "o"))
            offered = [p[0] / 1e6 for p in points]
            left.plot(offered, [p[1] / 1e6 for p in points], linestyle=line, marker=marker, label=name)
            right.plot(offered, [(p[2] or 0) / 1000 for p in points], linestyle=line, marker=marker, label=name)
        left.set_xlabel("offered deliveries per second (millions)")
        left.set_ylabel("delivered per second (millions)")
        left.set_title("Delivered against offered")
        right.set_xlabel("offered deliveries per second (millions)")
        right.set_ylabel("p99 delivery latency (ms)")
        right.set_yscale("log")
        right.set_title("p99 against offered")
        for axes in (left, right):
            axes.grid(True, which="both", alpha=0.3)
            axes.legend()
        figure.suptitle(title)
        figure.tight_layout()
        figure.savefig(out_dir / file_name)
        written.append(file_name)
        plt.close(figure)
    return written


def write_readme(out_dir, runs, quick, results, failures, plots):
    lines = []
    add = lines.append
    info = machine()
    vers = versions()
    add("# Benchmark results")
    add("")
    if runs:
        for run in runs:
            add(f"- Written by `{run['command']}` on {run['finished']} ({run['minutes']:.1f} minutes): {', '.join(run['sections'])}." + (" **Quick subset.**" if run.get("quick") else "") + (" **Smoke check of the harness: a few hundred clients for a second or two; these figures are not measurements.**" if run.get("smoke") else ""))
        add("")
    add(f"- **Machine:** {info['cpu']}, {info['cores']} cores, {info['system']} {info['kernel']} (a VM; loopback only).")
    add(f"- **Fairness:** every server pinned to core {SERVER_CORE} (`taskset -c {SERVER_CORE}`), the loadgen to core {LOADGEN_CORE} with one thread (`taskset -c {LOADGEN_CORE} loadgen --threads 1`). "
        "Multi-threaded peers (tokio, Bun, Node's TLS) therefore get one core, like everyone else. Same clients, same payloads, same open-loop schedule.")
    add(f"- **Versions:** {vers['rustc']}; tokio {vers['tokio']}, tokio-tungstenite {vers['tokio-tungstenite']}, rustls {vers['rustls']} (peer); Bun {vers['bun']}; "
        f"Node.js {vers['node']}, ws {vers['ws']}; {vers['python']}, websockets {vers['websockets']}; {vers['openssl']}.")
    add("- **Latency** is measured from each message's intended send time (no coordinated omission) to its arrival: when the kernel received the bytes that completed it "
        "(`loadgen --arrival kernel`, the default since schema 4: the loadgen's own delay in reaching one socket among a thousand is left out, for every server alike). "
        "*Delivery*: per receiver; *completion*: the last receiver of each message. "
        "Ratios are ours / theirs: below 1 is better for latency and memory, above 1 for throughput.")
    add("- A row marked **loadgen-bound** is one where the loadgen used over 90% of its core or fell behind its schedule: there the figure says more about the loadgen than about the server.")
    add("")
    for line in headline(results):
        add(line)
    for line in targets(results, quick):
        add(line)
    heading(add, "## How each server was set up")
    plain = {key[3] for key in results["fanout"]} | {name for name, _ in results["saturation"]} | set(results["memory"]) | {name for name, _ in results["flood"]}
    setup_table(add, "server", SPECS, ordered(plain, SERVER_ORDER))
    setup_table(add, "echo server", ECHO_SPECS, ordered({name for name, _ in results["echo"]}, SERVER_ORDER))
    setup_table(add, "TLS server", TLS_SPECS, ordered({key[1] for key in results["tls"]}, list(TLS_SPECS)))
    setup_table(add, "compression server", COMPRESSION_SPECS, ordered({name for _, name in results["compression"]}, list(COMPRESSION_SPECS)))

    write_saturation(add, results)
    write_fanout(add, results)
    write_memory_table(add, results["memory"], "## Memory: 10,000 idle WebSocket connections",
                       "RSS of the server process (not the kernel's socket buffers) before the clients connect and at its peak while they are connected and idle.")
    write_echo(add, results)
    write_tls(add, results)
    write_compression(add, results)
    write_flood(add, results)

    if failures:
        heading(add, "## Runs that could not be made", "A server that did not start or a loadgen that failed leaves no figure, only this (the first lines of what it said):")
        for stem, text in failures:
            first = " / ".join(line for line in text.splitlines()[:3] if line.strip())[:300]
            add(f"- `{stem}`: {first}")
        add("")
    write_redis(add, results)

    if plots:
        heading(add, "## Plots")
        for plot in plots:
            add(f"![{plot}]({plot})")
            add("")

    heading(add, "## Raw data and commands", "Every run left `<run>.json` (the loadgen's `--json`) and `<run>.hgrm` here; each JSON holds the exact command under `cmd` (the flood rows also the flooder's under `flooder.cmd`). For example:")
    add("```")
    shown = 0
    for section in ("saturation", "fanout", "tls", "compression", "flood"):
        for _, (_, report) in list(results[section].items())[:1]:
            add(report.get("cmd", ""))
            shown += 1
    add("```")
    (out_dir / "README.md").write_text("\n".join(lines) + "\n")


SPECS = broadcast_servers()
ECHO_SPECS = echo_servers()
TLS_SPECS = tls_servers()
COMPRESSION_SPECS = compression_servers()
SERVER_ORDER = ["ours", "ours-plain", "ours-off", "raw-tcp", "bun", "tokio-broadcast", "tokio-rustls", "tokio-mpsc", "node-ws", "python-websockets"]


def previous_runs(out_dir):
    """The runs that wrote the files in out_dir (runs.json), or, for results written before
    runs.json existed, the one `Written by` line of their README."""
    runs_path = out_dir / "runs.json"
    if runs_path.exists():
        return json.loads(runs_path.read_text())
    readme = out_dir / "README.md"
    match = re.search(r"Written by `([^`]+)` on (\S+ \S+ UTC) \(([0-9.]+) minutes\)", readme.read_text()) if readme.exists() else None
    if not match:
        return []
    return [{"command": match[1], "finished": match[2], "minutes": float(match[3]), "sections": list(QUICK_SECTIONS),
             "quick": "quick" in match[1], "smoke": False}]


SECTION_RUNS = {"saturation": saturation, "fanout": fanout, "memory": memory, "echo": echo, "tls": tls,
                "compression": compression, "flood": flood, "redis": redis}


def section_servers(section, requested):
    quick = PROFILE == "quick"
    """Which servers a section runs: the requested ones it knows, in its own order."""
    if section == "saturation":
        known = ["ours", "raw-tcp", "bun"] if quick else list(SPECS)
    elif section == "fanout":
        known = list(SPECS)
    elif section == "memory":
        known = ["ours"] if quick else [name for name in SPECS if not SPECS[name].get("raw")]
    elif section == "echo":
        known = list(ECHO_SPECS)
    elif section == "tls":
        known = list(TLS_SPECS)
    elif section == "compression":
        known = list(COMPRESSION_SPECS)
    elif section == "flood":
        known = list(FLOOD_SERVERS) if requested is None else list(SPECS)
    elif section == "redis":
        known = ["ours"]
    else:
        known = []
    if requested is None:
        return known
    # ours-plain / ours-off go with ours.
    wanted = set(requested) | ({"ours-plain", "ours-off"} if "ours" in requested else set())
    return [name for name in known if name in wanted and not (section == "flood" and SPECS[name].get("raw"))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="sections: " + ", ".join(SECTIONS) + ", bun")
    parser.add_argument("--quick", action="store_true", help="a small subset of saturation, fanout, memory and echo, about 2 minutes")
    parser.add_argument("--smoke", action="store_true", help="check that every section's servers start and its loads run: a few hundred clients, "
                        "runs of a second or two; the figures are not measurements (use another --out)")
    parser.add_argument("--out", default=str(ROOT / "bench-results"))
    parser.add_argument("--only", help="comma-separated sections to run; the others' files in --out are kept")
    parser.add_argument("--servers", help="comma-separated subset of servers (ours-plain and ours-off come with ours): " + ",".join(SERVER_ORDER))
    parser.add_argument("--plan", action="store_true", help="print which sections would run against which servers, and stop")
    parser.add_argument("--replot", action="store_true", help="only rewrite the README and the plots from the files already in --out")
    args = parser.parse_args()
    global PROFILE
    PROFILE = "smoke" if args.smoke else "quick" if args.quick else "full"
    if args.smoke and Path(args.out).resolve() == (ROOT / "bench-results").resolve():
        parser.error("--smoke writes no measurements: give it another --out (e.g. target/bench-smoke)")
    out_dir = Path(args.out)
    requested = None if args.servers is None else [name.strip() for name in args.servers.split(",") if name.strip()]
    if requested is not None:
        unknown = [name for name in requested if name not in SERVER_ORDER]
        if unknown:
            parser.error(f"unknown server(s): {', '.join(unknown)}")
    if args.only:
        sections = []
        for name in (part.strip() for part in args.only.split(",")):
            if name == "bun":
                sections += ["saturation", "fanout", "memory", "echo"]
                requested = sorted(set(requested or []) | {"ours", "bun"})
            elif name in SECTIONS:
                sections.append(name)
            else:
                parser.error(f"unknown section {name} (one of {', '.join(SECTIONS)}, bun)")
        sections = [section for section in SECTIONS if section in sections]
    else:
        sections = list(QUICK_SECTIONS if args.quick else SECTIONS)
    runs_path = out_dir / "runs.json"

    if args.plan:
        for section in sections:
            print(f"{section}: {', '.join(section_servers(section, requested)) or '(nothing: not built yet)'}")
        return
    if not args.replot:
        if shutil.which("taskset") is None:
            sys.exit("bench: taskset is missing (util-linux)")
        out_dir.mkdir(parents=True, exist_ok=True)
        plan = {section: section_servers(section, requested) for section in sections}
        if not args.only:
            stale = list(out_dir.glob("*.json")) + list(out_dir.glob("*.hgrm")) + list(out_dir.glob("*.log")) + list(out_dir.glob("*.svg")) + list(out_dir.glob("*.failed"))
        else:
            # Only the files of the sections and servers about to be run.
            stale = []
            for path in list(out_dir.glob("*.json")) + list(out_dir.glob("*.hgrm")) + list(out_dir.glob("*.failed")):
                found = classify(path.stem)
                if found and found[0] in plan and found[2] in plan[found[0]]:
                    stale.append(path)
        for path in stale:
            path.unlink()
        started = datetime.now(timezone.utc)
        for section in sections:
            SECTION_RUNS[section](plan[section], out_dir)
        finished = datetime.now(timezone.utc)
        command = {"full": "make bench", "quick": "make bench-quick", "smoke": "bench/run.py --smoke"}[PROFILE] if not args.only else "bench/run.py " + " ".join(sys.argv[1:])
        runs = previous_runs(out_dir) if args.only else []
        for run in runs:
            run["sections"] = [section for section in run["sections"] if section not in sections]
        runs = [run for run in runs if run["sections"]]
        runs.append({"command": command, "finished": finished.strftime("%Y-%m-%d %H:%M UTC"), "minutes": (finished - started).total_seconds() / 60,
                     "sections": sections, "quick": args.quick, "smoke": args.smoke})
        runs_path.write_text(json.dumps(runs, indent=2) + "\n")
    runs = previous_runs(out_dir)
    quick = any(run.get("quick") or run.get("smoke") for run in runs)
    results, failures = load_results(out_dir)
    plots = write_plots(out_dir, results)
    write_readme(out_dir, runs, quick, results, failures, plots)
    print(f"bench: wrote {out_dir}/README.md", flush=True)


if __name__ == "__main__":
    main()
