#!/usr/bin/env python3
"""Behaviour checks of a bench peer, short and small (seconds, under 100 clients): before a
peer's figures go into a table, check that it does what its row says it does.

- `room`: a message sent in a room reaches every member of that room, the sender included, and
  no member of another room;
- `broadcast`: the same for a peer with one room for everybody (every client gets it);
- `echo`: a message comes back to its sender and to nobody else;
- `backpressure`: a member that never reads is closed once the server holds more than the peer's
  limit for it (1 MiB), while the reading members keep receiving;
- `deflate`: permessage-deflate is negotiated (the response's Sec-WebSocket-Extensions);
- TLS: with `--tls-ca PEM` the peer is reached over wss:// with that CA and every check runs
  over TLS.

Usage: bench/smoke_peers.py --checks room,backpressure -- COMMAND ... PORT ...
(the command's `PORT` is replaced by a free port; the server must print `listening on ...`.)
"""

import argparse
import asyncio
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

import websockets
from websockets.asyncio.client import connect


class Server:
    def __init__(self, command):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        command = [part.replace("PORT", str(self.port)) for part in command]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 20
        self.banner = ""
        while time.time() < deadline:
            line = self.process.stderr.readline()
            if not line:
                break
            if re.search(r"listening on wss?://", line):
                self.banner = line.strip()
                break
        if not self.banner:
            self.stop()
            sys.exit(f"smoke: the server did not start: {command}")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def receive_all(client, count, timeout):
    got = []
    try:
        async with asyncio.timeout(timeout):
            while len(got) < count:
                got.append(await client.recv())
    except TimeoutError:
        pass
    return got


async def check_room(base, ssl_context, members):
    room = [await connect(f"{base}/room-a", ssl=ssl_context, compression=None) for _ in range(members)]
    others = [await connect(f"{base}/room-b", ssl=ssl_context, compression=None) for _ in range(5)]
    await asyncio.sleep(0.2)
    await room[0].send("hello room a")
    got = await asyncio.gather(*(receive_all(client, 1, 3) for client in room))
    stray = await asyncio.gather(*(receive_all(client, 1, 0.5) for client in others))
    reached = sum(1 for messages in got if messages == ["hello room a"])
    leaked = sum(len(messages) for messages in stray)
    for client in room + others:
        await client.close()
    ok = reached == members and leaked == 0
    return ok, f"{reached} of {members} members of /room-a got the message (sender included); {leaked} messages reached /room-b"


async def check_broadcast(base, ssl_context, members):
    clients = [await connect(f"{base}/", ssl=ssl_context, compression=None) for _ in range(members)]
    await asyncio.sleep(0.2)
    await clients[0].send("hello everybody")
    got = await asyncio.gather(*(receive_all(client, 1, 3) for client in clients))
    reached = sum(1 for messages in got if messages == ["hello everybody"])
    for client in clients:
        await client.close()
    return reached == members, f"{reached} of {members} clients got the message (sender included)"


async def check_echo(base, ssl_context):
    clients = [await connect(f"{base}/", ssl=ssl_context, compression=None) for _ in range(3)]
    await clients[0].send("echo me")
    mine = await receive_all(clients[0], 1, 3)
    stray = await asyncio.gather(*(receive_all(client, 1, 0.5) for client in clients[1:]))
    for client in clients:
        await client.close()
    ok = mine == ["echo me"] and not any(stray)
    return ok, f"sender got {mine!r}; other clients got {sum(len(s) for s in stray)} messages"


def non_reader(port, path):
    """A WebSocket client on a plain socket with a small receive buffer that, once upgraded,
    never reads: the server's queue for it can only grow."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", port))
    raw.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = raw.recv(1)
        if not chunk:
            raise RuntimeError("closed during the handshake")
        response += chunk
    if not response.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake refused: {response[:60]!r}")
    return raw


def closed_by_server(raw, timeout):
    """Reads what the server queued until EOF or reset (closed) or `timeout` of silence (open)."""
    raw.settimeout(timeout)
    received = 0
    try:
        while True:
            chunk = raw.recv(1 << 16)
            if not chunk:
                return True, received
            received += len(chunk)
    except (ConnectionResetError, BrokenPipeError):
        return True, received
    except socket.timeout:
        return False, received


async def check_backpressure(base, port):
    stalled = non_reader(port, "/room-slow")
    sender = await connect(f"{base}/room-slow", compression=None, max_size=None)
    reader = await connect(f"{base}/room-slow", compression=None, max_size=None)
    message = "x" * (64 * 1024)
    count = 96  # 6 MiB: past a 1 MiB limit plus what the kernel buffers on loopback
    received = {"sender": 0, "reader": 0}

    async def drain(name, client):
        try:
            while received[name] < count:
                await client.recv()
                received[name] += 1
        except websockets.ConnectionClosed:
            pass

    drains = [asyncio.create_task(drain("sender", sender)), asyncio.create_task(drain("reader", reader))]
    for _ in range(count):
        await sender.send(message)
    try:
        async with asyncio.timeout(10):
            await asyncio.gather(*drains)
    except TimeoutError:
        pass
    closed, bytes_read = await asyncio.to_thread(closed_by_server, stalled, 3)
    stalled.close()
    await sender.close()
    await reader.close()
    ok = closed and received["reader"] == count
    return ok, (f"non-reader {'closed' if closed else 'still open'} after the server queued "
                f"{count * 64} KiB for it ({bytes_read:,} bytes were in its socket); reading member got {received['reader']} of {count}")


async def check_deflate(base, ssl_context):
    client = await connect(f"{base}/room-z", ssl=ssl_context)  # offers permessage-deflate by default
    extensions = client.response.headers.get("Sec-WebSocket-Extensions", "")
    await client.send("compressed hello " * 20)
    echoed = await receive_all(client, 1, 3)
    await client.close()
    ok = "permessage-deflate" in extensions and echoed == ["compressed hello " * 20]
    return ok, f"Sec-WebSocket-Extensions: {extensions or '(none)'}; message came back intact: {bool(echoed)}"


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", default="room", help="comma-separated: room, broadcast, echo, backpressure, deflate")
    parser.add_argument("--tls-ca", help="reach the server over wss:// trusting this certificate")
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    ssl_context = None
    if args.tls_ca:
        ssl_context = ssl.create_default_context(cafile=args.tls_ca)
    server = Server(args.command)
    base = f"{'wss' if ssl_context else 'ws'}://127.0.0.1:{server.port}"
    print(f"smoke: {server.banner}")
    failures = 0
    try:
        for check in args.checks.split(","):
            if check == "room":
                ok, detail = await check_room(base, ssl_context, args.members)
            elif check == "broadcast":
                ok, detail = await check_broadcast(base, ssl_context, args.members)
            elif check == "echo":
                ok, detail = await check_echo(base, ssl_context)
            elif check == "backpressure":
                if ssl_context:
                    sys.exit("smoke: the backpressure check speaks plain ws:// only")
                ok, detail = await check_backpressure(base, server.port)
            elif check == "deflate":
                ok, detail = await check_deflate(base, ssl_context)
            else:
                sys.exit(f"smoke: unknown check {check}")
            failures += not ok
            print(f"smoke: {check}: {'ok' if ok else 'FAILED'}: {detail}", flush=True)
    finally:
        server.stop()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    asyncio.run(main())
