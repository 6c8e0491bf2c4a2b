#!/usr/bin/env python3
"""`make soak`: 10,000 connections in one room for 10 minutes (by default), a steady broadcast
at a modest rate, and a few hundred connections closing and reconnecting every second.

The steady clients are a `loadgen fanout` run (it accounts for every delivery to the clients
that stayed); the churn is this script: every second it closes the oldest churn connections
(half with a close frame, half by just closing the socket) and opens as many new ones. It
samples the server's RSS every second and counts its open file descriptors before the clients
come and after they leave.

Usage: bench/soak.py [--minutes 10] [--clients 10000] [--churn 300] [--rate 5]
"""

import argparse
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UPGRADE = (
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()


def rss(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def churn_connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(UPGRADE)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        answer += chunk
    if not answer.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(answer.split(b"\r\n")[0].decode(errors="replace"))
    sock.setblocking(False)
    return sock


def close_frame():
    mask = os.urandom(4)
    payload = struct.pack("!H", 1000)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x88, 0x80 | len(payload)]) + mask + masked


def churn(port, per_second, stop, stats):
    live = []
    while not stop.is_set():
        started = time.time()
        for sock in live[:per_second]:
            try:
                if random.random() < 0.5:
                    sock.send(close_frame())
                sock.close()
            except OSError:
                pass
            stats["closed"] += 1
        live = live[per_second:]
        for _ in range(per_second):
            try:
                live.append(churn_connect(port))
                stats["opened"] += 1
            except (OSError, ConnectionError) as error:
                stats["failed"] += 1
                stats["last_error"] = str(error)
            # Churn clients do not read; drain what they got so they are not slow consumers.
        for sock in live:
            try:
                while sock.recv(65536):
                    pass
            except (BlockingIOError, OSError):
                pass
        time.sleep(max(0.0, 1.0 - (time.time() - started)))
    for sock in live:
        sock.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=10000)
    parser.add_argument("--churn", type=int, default=300)
    parser.add_argument("--rate", type=float, default=5, help="broadcast messages per second")
    parser.add_argument("--out", default=str(ROOT / "bench-results/soak.json"))
    args = parser.parse_args()
    server_log = open("/tmp/soak-server.log", "w")
    server = subprocess.Popen([str(ROOT / "target/release/server"), "--listen", "127.0.0.1:0", "--max-connections", "100000"],
                              stderr=server_log, stdout=subprocess.DEVNULL)
    port = None
    for _ in range(100):
        time.sleep(0.1)
        match = re.search(r"listening on ws://[0-9.]+:(\d+)/", Path("/tmp/soak-server.log").read_text())
        if match:
            port = int(match.group(1))
            break
    if port is None:
        server.kill()
        sys.exit("soak: the server did not start")
    fds_before = open_fds(server.pid)
    steady = args.clients - args.churn
    seconds = args.minutes * 60
    report_path = Path("/tmp/soak-loadgen.json")
    loadgen = subprocess.Popen([
        str(ROOT / "target/release/loadgen"), "fanout", "--url", f"ws://127.0.0.1:{port}/", "--clients", str(steady),
        "--senders", "10", "--rate", str(args.rate), "--duration", f"{seconds}s", "--connect-rate", "5000",
        "--server-pid", str(server.pid), "--json", str(report_path), "--quiet",
    ])
    # Wait for the steady clients before churning.
    time.sleep(steady / 5000 + 3)
    stop = threading.Event()
    stats = {"opened": 0, "closed": 0, "failed": 0, "last_error": ""}
    churner = threading.Thread(target=churn, args=(port, args.churn, stop, stats))
    churner.start()
    samples = []
    began = time.time()
    while loadgen.poll() is None:
        samples.append((time.time() - began, rss(server.pid)))
        time.sleep(1)
    stop.set()
    churner.join()
    time.sleep(2)
    fds_after = open_fds(server.pid)
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=10)
    report = json.loads(report_path.read_text())
    running = [rss_bytes for t, rss_bytes in samples if t <= seconds]
    start, middle, end = running[0], running[len(running) // 2], running[-1]
    result = {
        "minutes": args.minutes, "steady_clients": steady, "churn_per_second": args.churn, "rate_per_s": args.rate,
        "deliveries_expected": report["deliveries"]["expected"], "deliveries_received": report["deliveries"]["received"],
        "deliveries_lost": report["deliveries"]["lost"], "steady_lost_while_open": report["connections"]["lost_while_open"],
        "delivery_latency_us": report["delivery_latency_us"], "completion_latency_us": report["completion_latency_us"],
        "churn": stats, "rss_start": start, "rss_middle": middle, "rss_end": end, "rss_max": max(running),
        "fds_before": fds_before, "fds_after_clients_left": fds_after,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = result["deliveries_lost"] == 0 and fds_after == fds_before
    print("soak: " + ("PASS" if ok else "FAIL") + f": lost {result['deliveries_lost']}, RSS start/middle/end "
          f"{start / 2**20:.1f}/{middle / 2**20:.1f}/{end / 2**20:.1f} MiB, fds {fds_before} -> {fds_after}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
