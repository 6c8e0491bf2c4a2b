"""Unit tests of bench/run.py's pure parts: run file names, message templates, the figures read
from a loadgen report, and who wins a row. No servers, no loads.

Run: .venv/bin/python -m unittest bench/test_run.py
"""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402


def report(received=1000, expected=1000, p99=5000, server_cpu_s=1.0, loadgen_cpu_s=0.5, wall_s=4.0, warnings=(), ok=10, open_at_end=10):
    return {
        "deliveries": {"expected": expected, "received": received, "lost": expected - received, "per_second": received / wall_s, "non_probe_messages": 0},
        "delivery_latency_us": {"p50": p99 // 2, "p99": p99, "p99_9": p99, "max": p99},
        "completion_latency_us": {"p50": p99 // 2, "p99": p99, "max": p99},
        "resources": {"wall_s": wall_s, "loadgen_cpu_s": loadgen_cpu_s, "server_cpu_s": server_cpu_s, "server_rss_max_bytes": 1 << 20},
        "connections": {"ok": ok, "open_at_end": open_at_end, "close_codes": {}},
        "warnings": list(warnings),
    }


def empty_results():
    return {section: {} for section in run.SECTIONS}


class RunFileNames(unittest.TestCase):
    def test_every_section_file_name_reads_back_to_its_key_and_server(self):
        cases = {
            "saturation-2000r-tokio-broadcast": ("saturation", ("tokio-broadcast", 2000), "tokio-broadcast"),
            "fanout-10000c-10s-100r-node-ws": ("fanout", (10000, 10, 100, "node-ws"), "node-ws"),
            "memory-10000-bun": ("memory", "bun", "bun"),
            "echo-20000r-bun": ("echo", ("bun", 20000), "bun"),
            "tls-saturation-1000r-ours-plain": ("tls", ("saturation", "ours-plain", 1000), "ours-plain"),
            "tls-memory-10000-tokio-rustls": ("tls", ("memory", "tokio-rustls"), "tokio-rustls"),
            "compression-2KB-ours-off": ("compression", ("2KB", "ours-off"), "ours-off"),
            "flood-flooded-python-websockets": ("flood", ("python-websockets", "flooded"), "python-websockets"),
        }
        for stem, expected in cases.items():
            self.assertEqual(run.classify(stem), expected, stem)

    def test_other_files_are_not_run_files(self):
        self.assertIsNone(run.classify("README"))
        self.assertIsNone(run.classify("runs"))


class ChatMessages(unittest.TestCase):
    def test_a_template_is_its_size_once_the_probe_is_in(self):
        for size in (300, 2048):
            template = run.chat_message(size)
            self.assertEqual(template.count("{probe}"), 1)
            self.assertEqual(len(template) - len("{probe}") + run.PROBE_BYTES, size)

    def test_a_template_is_json_once_the_probe_is_in(self):
        import json
        message = json.loads(run.chat_message(300).replace("{probe}", "LG1 0000abcd"))
        self.assertEqual(message["type"], "chat")

    def test_the_same_size_gives_the_same_bytes(self):
        self.assertEqual(run.chat_message(300), run.chat_message(300))


class ReportFigures(unittest.TestCase):
    def test_wire_bytes_are_read_only_from_a_receive_side_field(self):
        self.assertEqual(run.wire_bytes({"bytes": {"wire_received": 10, "payload_received": 5}}), 10)
        self.assertIsNone(run.wire_bytes({"wire_bytes_sent": 3, "binary": 1}))

    def test_only_the_loadgens_own_limits_make_a_row_loadgen_bound(self):
        self.assertFalse(run.loadgen_bound(report()))
        self.assertTrue(run.loadgen_bound(report(loadgen_cpu_s=3.9)))
        self.assertTrue(run.loadgen_bound(report(warnings=["schedule not kept (send lag p99 9 ms)"])))
        self.assertFalse(run.loadgen_bound(report(warnings=["3 of 1000 connections failed or were refused"])))

    def test_disconnected_is_opened_minus_open_at_the_end(self):
        self.assertEqual(run.summary(report(ok=1000, open_at_end=990))["disconnected"], 10)

    def test_an_echo_report_has_no_completion_and_still_reads(self):
        echo = report()
        del echo["completion_latency_us"]
        self.assertIsNone(run.summary(echo)["c99"])


class WhoWins(unittest.TestCase):
    def row(self, p99, delivered=1.0):
        return run.summary(report(p99=p99, received=int(1000 * delivered)))

    def test_lower_latency_wins_and_within_five_percent_is_even(self):
        results = empty_results()
        results["saturation"] = {
            ("ours", 2000): (self.row(10_000), {}), ("bun", 2000): (self.row(20_000), {}),
            ("ours", 5000): (self.row(30_000), {}), ("bun", 5000): (self.row(29_000), {}),
        }
        lines = "\n".join(run.headline(results))
        self.assertIn("| p99 delivery at 2M deliveries/s offered | **ours** |", lines)
        self.assertIn("| p99 delivery at 5M deliveries/s offered | **even (ours and bun within 5%)** |", lines)

    def test_a_peer_that_lost_deliveries_does_not_compete_on_latency(self):
        results = empty_results()
        results["saturation"] = {("ours", 2000): (self.row(50_000), {}), ("bun", 2000): (self.row(1_000, delivered=0.5), {}),
                                 ("node-ws", 2000): (self.row(90_000), {})}
        lines = "\n".join(run.headline(results))
        self.assertIn("| p99 delivery at 2M deliveries/s offered | **ours** | 50.00 ms | node-ws: 90.00 ms |", lines)

    def test_the_best_peer_is_chosen_per_row(self):
        results = empty_results()
        results["saturation"] = {("ours", 2000): (self.row(50_000), {}), ("bun", 2000): (self.row(40_000), {}),
                                 ("tokio-broadcast", 2000): (self.row(60_000), {})}
        results["memory"] = {"ours": ({"per_connection": 120, "loadgen_bound": False}, {}),
                             "bun": ({"per_connection": 2000, "loadgen_bound": False}, {}),
                             "node-ws": ({"per_connection": 1500, "loadgen_bound": False}, {})}
        lines = "\n".join(run.headline(results))
        self.assertIn("| p99 delivery at 2M deliveries/s offered | **bun** |", lines)
        self.assertIn("| RSS per idle connection (10,000) | **ours** | 120 B | node-ws: 1,500 B |", lines)
        self.assertIn("Ours wins 1 of 3 rows; a peer wins 1 (p99 delivery at 2M deliveries/s offered (bun)); 1 even.", lines)


class Formatting(unittest.TestCase):
    def test_rates_read_as_thousands_and_millions(self):
        self.assertEqual(run.fmt_rate(50_000), "50k")
        self.assertEqual(run.fmt_rate(2_000_000), "2M")
        self.assertEqual(run.fmt_rate(2_500_000), "2.5M")


if __name__ == "__main__":
    unittest.main()
