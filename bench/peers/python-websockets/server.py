"""Broadcast chat server on Python `websockets` (asyncio API): every message goes to every
connected client, the sender included, with `websockets.broadcast()`, as its documentation
recommends. Defaults otherwise: the default event loop, and permessage-deflate on (websockets'
default), negotiated when the client offers it (`loadgen --compress` in the compression rows;
the other rows do not offer it).

Usage: python server.py PORT
"""

import asyncio
import sys

import websockets
from websockets.asyncio.server import broadcast, serve

CLIENTS = set()


async def handler(websocket):
    CLIENTS.add(websocket)
    try:
        async for message in websocket:
            broadcast(CLIENTS, message)
    except websockets.ConnectionClosed:
        pass
    finally:
        CLIENTS.discard(websocket)


async def main(port):
    async with serve(handler, "127.0.0.1", port) as server:
        bound = server.sockets[0].getsockname()[1]
        print(
            f"listening on ws://127.0.0.1:{bound}/ (python {sys.version.split()[0]}, websockets {websockets.__version__})",
            file=sys.stderr,
            flush=True,
        )
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8080))
