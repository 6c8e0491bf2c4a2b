"""Chat over wss:// with Python's `websockets` and an `ssl` context that trusts only the test
certificate: the client a Python user of the server would write.

Run by tests/tests/server_tls.rs against `server --tls-cert ... --tls-key ...` in chat mode:

    .venv/bin/python tests/python/tls_chat.py --address 127.0.0.1:PORT --ca cert.pem

Checks, each with its own message on failure (exit status 1 and a traceback):
- alice and bob in /tls-a, carol in /tls-b (carol on TLS 1.2, the others on TLS 1.3, all with
  ALPN http/1.1 and the certificate's name checked against 127.0.0.1);
- a message reaches every member of its room, the sender included, and no one in another room;
- a 200 KB message arrives whole, byte for byte;
- a close handshake completes: the client's close frame is answered with the server's, 1000.

Everything runs under one deadline, so a server that stops answering fails the script instead
of hanging it.
"""

import argparse
import asyncio
import ssl
import sys

from websockets.asyncio.client import connect
from websockets.protocol import State

DEADLINE_SECONDS = 20


def client_context(ca_file: str, tls_version: ssl.TLSVersion) -> ssl.SSLContext:
    """Trusts only the test certificate, checks its name, speaks exactly one TLS version."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = tls_version
    context.maximum_version = tls_version
    context.set_alpn_protocols(["http/1.1"])
    return context


def describe_tls(connection) -> str:
    ssl_object = connection.transport.get_extra_info("ssl_object")
    return f"{ssl_object.version()}, ALPN {ssl_object.selected_alpn_protocol()}"


async def receive_text(connection, who: str) -> str:
    message = await connection.recv()
    assert isinstance(message, str), f"{who} received a binary message where text was expected"
    return message


async def expect(connection, who: str, wanted: str) -> None:
    got = await receive_text(connection, who)
    assert got == wanted, f"{who} expected {wanted[:60]!r} ({len(wanted)} bytes), got {got[:60]!r} ({len(got)} bytes)"


def large_text(length: int) -> str:
    """Text that is not one repeated byte, so a lost or repeated slice would show."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[(index * 7 + index // 97) % len(alphabet)] for index in range(length))


async def chat(address: str, ca_file: str) -> None:
    tls13 = client_context(ca_file, ssl.TLSVersion.TLSv1_3)
    tls12 = client_context(ca_file, ssl.TLSVersion.TLSv1_2)
    base = f"wss://{address}"
    # The largest message the test sends, with room for framing.
    options = {"max_size": 1 << 20, "ping_interval": None, "open_timeout": 10, "close_timeout": 10}
    alice = await connect(f"{base}/tls-a", ssl=tls13, **options)
    bob = await connect(f"{base}/tls-a", ssl=tls13, **options)
    carol = await connect(f"{base}/tls-b", ssl=tls12, **options)
    for name, connection, version in (("alice", alice, "TLSv1.3"), ("bob", bob, "TLSv1.3"), ("carol", carol, "TLSv1.2")):
        ssl_object = connection.transport.get_extra_info("ssl_object")
        assert ssl_object.version() == version, f"{name} negotiated {ssl_object.version()}, not {version}"
        assert ssl_object.selected_alpn_protocol() == "http/1.1", f"{name}: ALPN gave {ssl_object.selected_alpn_protocol()!r}"
        print(f"tls_chat: {name} connected ({describe_tls(connection)})")

    # Every member of /tls-a gets alice's message, alice included.
    await alice.send("hello from alice")
    await expect(alice, "alice", "hello from alice")
    await expect(bob, "bob", "hello from alice")
    await bob.send("bob here")
    await expect(alice, "alice", "bob here")
    await expect(bob, "bob", "bob here")

    # 200 KB, several TLS records each way, arrives whole at both members.
    large = large_text(200 * 1024)
    await alice.send(large)
    await expect(alice, "alice", large)
    await expect(bob, "bob", large)
    print(f"tls_chat: a {len(large)}-byte message reached both members of /tls-a whole")

    # No one in another room: every /tls-a message was delivered before carol sends her own
    # (one server thread broadcasts each message to the whole room before reading the next),
    # so anything misrouted to carol would arrive before her own message comes back.
    await carol.send("carol alone in b")
    await expect(carol, "carol", "carol alone in b")
    print("tls_chat: nothing from /tls-a reached carol in /tls-b")

    # The close handshake: our close frame is answered with the server's, 1000 both ways.
    for name, connection in (("bob", bob), ("alice", alice), ("carol", carol)):
        await connection.close(1000, "bye")
        protocol = connection.protocol
        assert connection.state is State.CLOSED, f"{name}: state {connection.state} after close()"
        assert protocol.close_sent is not None and protocol.close_sent.code == 1000, f"{name}: sent {protocol.close_sent}"
        assert protocol.close_rcvd is not None, f"{name}: the server never answered the close frame"
        assert protocol.close_rcvd.code == 1000, f"{name}: the server answered with {protocol.close_rcvd}"
        assert protocol.close_rcvd_then_sent is False, f"{name}: the server closed first"
    print("tls_chat: close handshakes completed with 1000")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="HOST:PORT of the wss:// server")
    parser.add_argument("--ca", required=True, help="the server's (self-signed) certificate, PEM")
    args = parser.parse_args()

    async def bounded() -> None:
        async with asyncio.timeout(DEADLINE_SECONDS):
            await chat(args.address, args.ca)

    asyncio.run(bounded())
    print("tls_chat: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
