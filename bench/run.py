#!/usr/bin/env python3
"""`make bench`: drive our server and the peers a user would pick instead with our loadgen,
side by side on this machine, and write bench-results/ (README.md with the tables, one JSON and
one .hgrm per run, SVG plots).

Fairness: every server runs pinned to core 0 (`taskset -c 0`), the loadgen pinned to core 1
with one thread; same clients, same payloads, same schedule. The loadgen samples the server's
CPU and RSS from /proc and its own CPU; a row where the loadgen was the bottleneck is marked.

Usage: bench/run.py [--quick] [--out bench-results]
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOADGEN = ROOT / "target/release/loadgen"
PEERS = ROOT / "bench/peers"
PYTHON = ROOT / ".venv/bin/python"
SERVER_CORE = "0"
LOADGEN_CORE = "1"


def server_commands():
    """Each server: how to start it (PORT is filled in), whether it speaks raw TCP, and how it
    is configured."""
    return {
        "ours": {
            "cmd": [str(ROOT / "target/release/server"), "--listen", "127.0.0.1:PORT", "--max-connections", "100000"],
            "raw": False,
            "setup": "server (this project), chat mode, defaults: 1 MiB queue cap per client (close 1008 past it), corked writev",
        },
        "raw-tcp": {
            "cmd": [str(PEERS / "rust/target/release/raw_tcp"), "PORT"],
            "raw": True,
            "setup": "newline-framed TCP fan-out, same loop design (mio, Rc-shared bytes, one writev per socket per turn), no WebSocket: the ceiling",
        },
        "tokio-broadcast": {
            "cmd": [str(PEERS / "rust/target/release/tungstenite_broadcast"), "PORT"],
            "raw": False,
            "setup": "tokio-tungstenite 0.28, tokio multi-thread runtime (default workers), tokio::sync::broadcast channel of 65,536, a writer task per client that feeds every waiting message and flushes once (lagging receivers skip)",
        },
        "tokio-mpsc": {
            "cmd": [str(PEERS / "rust/target/release/tungstenite_mpsc"), "PORT"],
            "raw": False,
            "setup": "tokio-tungstenite 0.28, tokio multi-thread runtime, an unbounded mpsc channel per client in a Mutex<HashMap>, message cloned into each; the writer feeds every waiting message and flushes once",
        },
        "node-ws": {
            "cmd": ["node", str(PEERS / "node-ws/server.js"), "PORT"],
            "raw": False,
            "setup": "Node.js ws 8, loop over wss.clients with a readyState check, defaults (no permessage-deflate)",
        },
        "python-websockets": {
            "cmd": [str(PYTHON), str(PEERS / "python-websockets/server.py"), "PORT"],
            "raw": False,
            "setup": "Python websockets (asyncio API), websockets.broadcast() over a set of connections, default event loop",
        },
    }


class Server:
    """A server under test, pinned to its core; stopped on exit."""

    def __init__(self, name, spec, log_dir):
        self.name = name
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
            match = re.search(r"listening on ws://[0-9.]+:(\d+)/(.*)", text)
            if match:
                self.port = int(match.group(1))
                self.banner = match.group(2).strip()
            if self.process.poll() is not None:
                break
        if self.port is None:
            self.stop()
            raise RuntimeError(f"{name} did not start: {self.log_path.read_text()[-2000:]}")

    def url(self):
        return f"ws://127.0.0.1:{self.port}/"

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.stop()


def loadgen(run, server, args, out_dir, name):
    """Runs one loadgen pinned to its core; returns its JSON report (with `cmd` added)."""
    json_path = out_dir / f"{name}.json"
    hgrm_path = out_dir / f"{name}.hgrm"
    cmd = [str(LOADGEN), run, "--url", server.url(), "--threads", "1", "--quiet",
           "--server-pid", str(server.process.pid), "--json", str(json_path), "--hgrm", str(hgrm_path)] + args
    if SPECS[server.name]["raw"]:
        cmd.append("--raw")
    shown = " ".join(["taskset -c", LOADGEN_CORE, "loadgen"] + cmd[1:]).replace(str(out_dir) + "/", "")
    started = time.time()
    result = subprocess.run(["taskset", "-c", LOADGEN_CORE] + cmd, capture_output=True, text=True, timeout=600)
    if result.returncode != 0 or not json_path.exists():
        print(f"  {name}: loadgen failed ({result.returncode}): {result.stderr.strip()[-500:]}", flush=True)
        return None
    report = json.loads(json_path.read_text())
    report["cmd"] = shown
    report["elapsed_s"] = time.time() - started
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def loadgen_bound(report):
    resources = report["resources"]
    busy = resources["loadgen_cpu_s"] / resources["wall_s"] if resources["wall_s"] else 0
    return busy > 0.9 or bool(report.get("warnings"))


def summary(report):
    """The figures a table row needs."""
    delivery = report["delivery_latency_us"]
    completion = report["completion_latency_us"]
    deliveries = report["deliveries"]
    resources = report["resources"]
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
        "loadgen_cpu": resources["loadgen_cpu_s"] / wall,
        "loadgen_bound": loadgen_bound(report),
        "connected": report["connections"]["ok"],
    }


def fanout_matrix(servers, out_dir, quick):
    client_counts = [1000] if quick else [1000, 5000, 10000]
    patterns = [(10, 100)] if quick else [(1, 10), (10, 100)]
    duration = "3s" if quick else "5s"
    results = {}
    for clients in client_counts:
        for senders, rate in patterns:
            for name in servers:
                key = f"fanout-{clients}c-{senders}s-{rate}r-{name}"
                print(f"fanout: {clients} clients, {senders} sender(s), {rate} msg/s -> {name}", flush=True)
                with Server(name, SPECS[name], out_dir) as server:
                    report = loadgen("fanout", server, [
                        "--clients", str(clients), "--senders", str(senders), "--rate", str(rate),
                        "--duration", duration, "--drain", "3s", "--connect-rate", "5000", "--connect-timeout", "30s",
                    ], out_dir, key)
                if report:
                    results[(clients, senders, rate, name)] = (summary(report), report["cmd"])
    return results


def saturation(servers, out_dir, quick):
    """1,000 clients, 10 senders; the rate stepped up until deliveries/s stop growing or p99
    passes 100 ms. 2,000 msg/s (2M deliveries/s offered) is always one of the steps."""
    rates = [500, 2000, 4000] if quick else [50, 100, 200, 500, 1000, 2000, 3000, 4000, 5000, 6000, 8000]
    results = {}
    for name in servers:
        best = 0
        pending = list(rates)
        while pending:
            rate = pending.pop(0)
            key = f"saturation-{rate}r-{name}"
            print(f"saturation: 1000 clients, 10 senders, {rate} msg/s -> {name}", flush=True)
            with Server(name, SPECS[name], out_dir) as server:
                report = loadgen("fanout", server, [
                    "--clients", "1000", "--senders", "10", "--rate", str(rate), "--duration", "3s" if quick else "4s",
                    "--drain", "2s", "--connect-rate", "5000",
                ], out_dir, key)
            if not report:
                break
            row = summary(report)
            results[(name, rate)] = (row, report["cmd"])
            growing = row["per_second"] > best * 1.05
            best = max(best, row["per_second"])
            if not growing or (row["p99"] or 0) > 100_000:
                # Saturated. The 2M/s step is still run, for the p99-at-2M/s comparison.
                pending = [2000] if 2000 in pending else []
    return results


def memory(servers, out_dir, quick):
    """Server RSS with 10,000 idle WebSocket connections, per connection."""
    results = {}
    for name in servers:
        if SPECS[name]["raw"]:
            continue
        print(f"memory: 10000 idle connections -> {name}", flush=True)
        with Server(name, SPECS[name], out_dir) as server:
            time.sleep(0.5)
            baseline = rss(server.process.pid)
            report = loadgen("connect", server, [
                "--clients", "10000", "--connect-rate", "5000", "--connect-timeout", "30s", "--hold", "3s",
            ], out_dir, f"memory-10000-{name}")
        if report:
            report["server_rss_before_clients_bytes"] = baseline
            json_path = out_dir / f"memory-10000-{name}.json"
            json_path.write_text(json.dumps(report, indent=2) + "\n")
            peak = report["resources"]["server_rss_max_bytes"] or 0
            connected = report["connections"]["ok"]
            results[name] = {
                "baseline": baseline, "peak": peak, "connected": connected,
                "per_connection": (peak - baseline) / connected if connected else None, "cmd": report["cmd"],
            }
    return results


def echo(out_dir, quick):
    """Our server in echo mode (the peers are broadcast servers): 100 clients."""
    results = {}
    spec = dict(SPECS["ours"])
    spec["cmd"] = spec["cmd"] + ["--mode", "echo"]
    rates = [1000] if quick else [1000, 10000, 20000, 40000, 80000, 120000]
    for rate in rates:
        print(f"echo: 100 clients, {rate} msg/s -> ours", flush=True)
        with Server("ours", spec, out_dir) as server:
            report = loadgen("echo", server, ["--clients", "100", "--rate", str(rate), "--duration", "3s", "--drain", "2s"],
                             out_dir, f"echo-{rate}r-ours")
        if not report:
            break
        row = summary(report)
        results[rate] = (row, report["cmd"])
        if row["delivered_share"] < 0.98 or (row["p99"] or 0) > 100_000:
            break
    return results


def rss(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


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
    ws_version = json.loads((PEERS / "node-ws/node_modules/ws/package.json").read_text())["version"]
    return {
        "rustc": run(["rustc", "--version"]),
        "tokio": crate("tokio"),
        "tokio-tungstenite": crate("tokio-tungstenite"),
        "node": run(["node", "--version"]),
        "ws": ws_version,
        "python": run([str(PYTHON), "--version"]),
        "websockets": run([str(PYTHON), "-c", "import websockets; print(websockets.__version__)"]),
    }


def fmt_us(value):
    if value is None:
        return "-"
    if value < 1000:
        return f"{value} µs"
    if value < 1_000_000:
        return f"{value / 1000:.2f} ms"
    return f"{value / 1e6:.2f} s"


def ratio(name, ours, theirs, digits=2, missing="-"):
    """Ours / theirs as a table prints it: 1 on our own row, `missing` when either is unknown."""
    if name == "ours":
        return "1"
    if not ours or not theirs:
        return missing
    return f"{ours / theirs:.{digits}f}"


def latency_cells(row, keys=("p50", "p99", "p99_9", "max")):
    return " | ".join(fmt_us(row[key]) for key in keys)


def cpu_cells(row):
    return f"{row['server_cpu'] * 100:.0f}% | {row['loadgen_cpu'] * 100:.0f}%"


def write_plots(out_dir, fanout_results, saturation_results, servers, quick):
    try:
        import matplotlib
        matplotlib.use("svg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plots skipped: matplotlib is missing", flush=True)
        return []
    written = []
    clients = 1000 if quick else 10000
    figure, axes = plt.subplots(figsize=(8, 5))
    for name in servers:
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
    styles = {"ours": ("-", "o"), "raw-tcp": ("--", "s"), "tokio-broadcast": ("-.", "^"),
              "tokio-mpsc": (":", "v"), "node-ws": ("-", "D"), "python-websockets": ("--", "x")}
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    for name in servers:
        points = sorted((rate * 1000, row["per_second"], row["p99"]) for (server, rate), (row, _) in saturation_results.items() if server == name)
        if not points:
            continue
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
    figure.suptitle("Saturation: 1,000 clients, 10 senders, 64-byte messages")
    figure.tight_layout()
    figure.savefig(out_dir / "saturation.svg")
    written.append("saturation.svg")
    plt.close(figure)
    return written


def targets(servers, fanout_results, saturation_results, memory_results, quick):
    """The targets of the brief, each with the figure this run measured and whether it is met."""
    lines = ["## Where we stand against the targets", ""]
    if quick:
        return lines + ["(Quick subset: the targets are judged on the full `make bench` only.)", ""]
    def sustained(name):
        best = 0
        for (server, _), (row, _) in saturation_results.items():
            if server == name and row["delivered_share"] >= 0.98 and (row["p99"] or 1e12) < 1_000_000:
                best = max(best, row["per_second"])
        return best
    def at_2m(name):
        entry = saturation_results.get((name, 2000))
        return entry[0]["p99"] if entry else None
    peers = [n for n in servers if n not in ("ours", "raw-tcp")]
    rows = []
    ours, raw = sustained("ours"), sustained("raw-tcp")
    best_peer = max(peers, key=sustained) if peers else None
    if ours and raw and best_peer:
        rows.append(("sustained deliveries/s at 1,000 clients >= 90% of the raw TCP ceiling",
                     f"{ours:,.0f} vs {raw:,.0f}: {ours / raw * 100:.0f}%", ours >= 0.9 * raw))
        rows.append((f"... and >= 1.5x the best peer ({best_peer})",
                     f"{ours:,.0f} vs {sustained(best_peer):,.0f}: {ours / max(sustained(best_peer), 1):.1f}x", ours >= 1.5 * sustained(best_peer)))
    ours_2m, raw_2m = at_2m("ours"), at_2m("raw-tcp")
    peer_2m = [(n, at_2m(n)) for n in peers if at_2m(n)]
    if ours_2m and raw_2m:
        rows.append(("p99 delivery at 2M deliveries/s offered <= 1.5x the raw ceiling's",
                     f"{fmt_us(ours_2m)} vs {fmt_us(raw_2m)}: {ours_2m / raw_2m:.2f}x", ours_2m <= 1.5 * raw_2m))
    if ours_2m and peer_2m:
        name, best = min(peer_2m, key=lambda item: item[1])
        rows.append((f"... and <= half the best peer's ({name})", f"{fmt_us(ours_2m)} vs {fmt_us(best)}: {ours_2m / best:.2f}x", ours_2m <= 0.5 * best))
    for senders, rate in [(10, 100), (1, 10)]:
        ours_c = fanout_results.get((10000, senders, rate, "ours"))
        peer_c = [(n, fanout_results[(10000, senders, rate, n)][0]["c99"]) for n in peers if (10000, senders, rate, n) in fanout_results]
        if ours_c and peer_c:
            name, best = min(peer_c, key=lambda item: item[1] or 1e18)
            value = ours_c[0]["c99"]
            rows.append((f"p99 completion at 10,000 clients ({senders} @ {rate}/s) <= half the best peer's ({name})",
                         f"{fmt_us(value)} vs {fmt_us(best)}: {value / best:.2f}x", value <= 0.5 * best))
    if "ours" in memory_results and memory_results["ours"]["per_connection"]:
        per = memory_results["ours"]["per_connection"]
        rows.append(("RSS per idle connection <= 128 bytes", f"{per:,.0f} B", per <= 128))
    lost_rows = [(key, row) for key, (row, _) in fanout_results.items() if key[3] == "ours"]
    lost_rows += [((name, rate), row) for (name, rate), (row, _) in saturation_results.items() if name == "ours"]
    lost = sum(row["lost"] for _, row in lost_rows)
    rows.append(("zero lost deliveries in every row of ours", f"{lost:,} lost in {len(lost_rows)} rows", lost == 0))
    lines += ["| target | measured | met |", "| --- | --- | --- |"]
    lines += [f"| {target} | {figure} | {'yes' if met else '**no**'} |" for target, figure, met in rows]
    lines.append("")
    analysis = Path(__file__).resolve().parent / "analysis.md"
    if analysis.exists():
        lines += analysis.read_text().splitlines() + [""]
    return lines


def write_readme(out_dir, started, finished, command, quick, servers, fanout_results, saturation_results, memory_results, echo_results, plots):
    lines = []
    add = lines.append
    info = machine()
    vers = versions()
    add("# Benchmark results")
    add("")
    add(f"Written by `{command}` on {finished.strftime('%Y-%m-%d %H:%M UTC')} ({(finished - started).total_seconds() / 60:.1f} minutes)." + (" **Quick subset.**" if quick else ""))
    add("")
    add(f"- **Machine:** {info['cpu']}, {info['cores']} cores, {info['system']} {info['kernel']} (a VM; loopback only).")
    add(f"- **Fairness:** every server pinned to core {SERVER_CORE} (`taskset -c {SERVER_CORE}`), the loadgen to core {LOADGEN_CORE} with one thread (`taskset -c {LOADGEN_CORE} loadgen --threads 1`). "
        "Multi-threaded peers (tokio) therefore get one core, like everyone else. Same clients, same 64-byte text payload, same open-loop schedule.")
    add(f"- **Versions:** {vers['rustc']}; tokio {vers['tokio']}, tokio-tungstenite {vers['tokio-tungstenite']}; Node.js {vers['node']}, ws {vers['ws']}; {vers['python']}, websockets {vers['websockets']}.")
    add("- **Latency** is measured from each message's intended send time (no coordinated omission). *Delivery*: per receiver; *completion*: the last receiver of each message. "
        "Ratios are ours / theirs: below 1 is better for latency and memory, above 1 for throughput.")
    add("- A row marked **loadgen-bound** is one where the loadgen used over 90% of its core or fell behind its schedule: there the figure says more about the loadgen than about the server.")
    add("")
    for line in targets(servers, fanout_results, saturation_results, memory_results, quick):
        add(line)
    add("## How each server was set up")
    add("")
    add("| server | setup |")
    add("| --- | --- |")
    for name in servers:
        add(f"| {name} | {SPECS[name]['setup']} |")
    add("")

    if saturation_results:
        add("## Saturation: highest sustained deliveries per second")
        add("")
        add("1,000 clients, 10 senders, the total rate stepped up until deliveries per second stop growing or p99 passes 100 ms. "
            "*Sustained* is the best step with at least 98% delivered and p99 under 1 s.")
        add("")
        best = {}
        at_2m = {}
        for (name, rate), (row, _) in saturation_results.items():
            if row["delivered_share"] >= 0.98 and (row["p99"] or 1e12) < 1_000_000:
                if row["per_second"] > best.get(name, (0, None))[0]:
                    best[name] = (row["per_second"], row)
            if rate == 2000:
                at_2m[name] = row
        ours_best = best.get("ours", (0, None))[0]
        ours_2m = at_2m.get("ours")
        add("| server | sustained deliveries/s | ours / theirs | p99 at that rate | p99 at 2M/s offered | ours / theirs | delivered at 2M/s | server CPU at 2M/s | loadgen CPU at 2M/s |")
        add("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for name in [n for n in servers if any(server == n for server, _ in saturation_results)]:
            sustained, row = best.get(name, (0, None))
            row2 = at_2m.get(name)
            mark = " (loadgen-bound)" if (row2 and row2["loadgen_bound"]) else ""
            if not row2:
                add(f"| {name} | {sustained:,.0f} | - | - | - | - | - | - | - |")
                continue
            add(f"| {name} | {sustained:,.0f} | {ratio(name, ours_best, sustained, missing='')} | {fmt_us(row['p99']) if row else '-'} | "
                f"{fmt_us(row2['p99'])}{mark} | {ratio(name, ours_2m and ours_2m['p99'], row2['p99'])} | "
                f"{row2['delivered_share'] * 100:.1f}% | {cpu_cells(row2)} |")
        raw_best = best.get("raw-tcp", (0, None))[0]
        if raw_best and ours_best:
            add("")
            add(f"Our share of the raw TCP ceiling: **{ours_best / raw_best * 100:.0f}%** ({ours_best:,.0f} / {raw_best:,.0f} deliveries/s).")
        add("")
        add("Every step:")
        add("")
        add("| server | offered msg/s | offered deliveries/s | delivered/s | delivered | p50 | p99 | p99.9 | max | server CPU | loadgen CPU |")
        add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for (name, rate), (row, _) in sorted(saturation_results.items(), key=lambda item: (servers.index(item[0][0]), item[0][1])):
            mark = " (loadgen-bound)" if row["loadgen_bound"] else ""
            add(f"| {name} | {rate:,} | {rate * 1000:,} | {row['per_second']:,.0f}{mark} | {row['delivered_share'] * 100:.1f}% | {latency_cells(row)} | {cpu_cells(row)} |")
        add("")

    if fanout_results:
        add("## Fan-out at a fixed rate")
        add("")
        add("One room, 64-byte messages; `rate` is messages per second from all senders together. Ratio: ours / theirs on p99 completion.")
        add("")
        add("| clients | senders @ total rate | server | delivery p50 | p99 | p99.9 | max | completion p50 | p99 | ours / theirs | max | lost | server CPU | loadgen CPU |")
        add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        keys = sorted({(c, s, r) for (c, s, r, _) in fanout_results})
        for clients, senders, rate in keys:
            ours = fanout_results.get((clients, senders, rate, "ours"), (None, None))[0]
            for name in servers:
                entry = fanout_results.get((clients, senders, rate, name))
                if not entry:
                    continue
                row = entry[0]
                mark = " (loadgen-bound)" if row["loadgen_bound"] else ""
                add(f"| {clients:,} | {senders} @ {rate}/s | {name}{mark} | {latency_cells(row)} | {latency_cells(row, ('c50', 'c99'))} | "
                    f"{ratio(name, ours and ours['c99'], row['c99'])} | {fmt_us(row['cmax'])} | {row['lost']:,} of {row['expected']:,} | {cpu_cells(row)} |")
        add("")

    if memory_results:
        add("## Memory: 10,000 idle WebSocket connections")
        add("")
        add("RSS of the server process (not the kernel's socket buffers) before the clients connect and at its peak while they are connected and idle.")
        add("")
        add("| server | RSS before | RSS with 10,000 | per connection | ours / theirs |")
        add("| --- | --- | --- | --- | --- |")
        ours = memory_results.get("ours", {}).get("per_connection")
        for name in servers:
            row = memory_results.get(name)
            if not row:
                continue
            per = row["per_connection"]
            add(f"| {name} | {row['baseline'] / 2**20:.1f} MiB | {row['peak'] / 2**20:.1f} MiB | {per:,.0f} B | {ratio(name, ours, per, digits=3)} |" if per is not None else f"| {name} | - | - | - | - |")
        add("")

    if echo_results:
        add("## Echo (our server, `--mode echo`)")
        add("")
        add("100 clients, each sends on the schedule and measures the round trip of its own echo. The peers are broadcast servers, so this row is ours alone.")
        add("")
        add("| offered msg/s | delivered/s | delivered | p50 | p99 | p99.9 | max | server CPU | loadgen CPU |")
        add("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for rate, (row, _) in sorted(echo_results.items()):
            mark = " (loadgen-bound)" if row["loadgen_bound"] else ""
            add(f"| {rate:,} | {row['per_second']:,.0f}{mark} | {row['delivered_share'] * 100:.1f}% | {latency_cells(row)} | {cpu_cells(row)} |")
        add("")

    if plots:
        add("## Plots")
        add("")
        for plot in plots:
            add(f"![{plot}]({plot})")
            add("")

    add("## Raw data and commands")
    add("")
    add("Every run left `<run>.json` (the loadgen's `--json`) and `<run>.hgrm` here; each JSON holds the exact command under `cmd`. For example:")
    add("")
    add("```")
    for collection in (saturation_results, fanout_results):
        for _, (row, cmd) in list(collection.items())[:2]:
            add(cmd)
    add("```")
    (out_dir / "README.md").write_text("\n".join(lines) + "\n")


SPECS = server_commands()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small subset, under 2 minutes")
    parser.add_argument("--out", default=str(ROOT / "bench-results"))
    parser.add_argument("--servers", default=",".join(SPECS), help="comma-separated subset of " + ",".join(SPECS))
    parser.add_argument("--replot", action="store_true", help="only redraw the SVG plots from the JSON and .hgrm files already in --out")
    args = parser.parse_args()
    if args.replot:
        out_dir = Path(args.out)
        saturation_results = {}
        for path in out_dir.glob("saturation-*r-*.json"):
            match = re.fullmatch(r"saturation-(\d+)r-(.+)\.json", path.name)
            report = json.loads(path.read_text())
            saturation_results[(match.group(2), int(match.group(1)))] = (summary(report), report["cmd"])
        print("bench: redrew", ", ".join(write_plots(out_dir, {}, saturation_results, list(SPECS), False)))
        return
    if shutil.which("taskset") is None:
        sys.exit("bench: taskset is missing (util-linux)")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in list(out_dir.glob("*.json")) + list(out_dir.glob("*.hgrm")) + list(out_dir.glob("*.log")) + list(out_dir.glob("*.svg")):
        old.unlink()
    servers = [name for name in args.servers.split(",") if name in SPECS]
    started = datetime.now(timezone.utc)
    command = "make bench-quick" if args.quick else "make bench"
    saturation_results = saturation(servers if not args.quick else ["ours", "raw-tcp"], out_dir, args.quick)
    fanout_results = fanout_matrix(servers, out_dir, args.quick)
    memory_results = memory(servers if not args.quick else ["ours"], out_dir, args.quick)
    echo_results = echo(out_dir, args.quick)
    plots = write_plots(out_dir, fanout_results, saturation_results, servers, args.quick)
    finished = datetime.now(timezone.utc)
    write_readme(out_dir, started, finished, command, args.quick, servers, fanout_results, saturation_results, memory_results, echo_results, plots)
    print(f"bench: wrote {out_dir}/README.md in {(finished - started).total_seconds():.0f} s", flush=True)


if __name__ == "__main__":
    main()
