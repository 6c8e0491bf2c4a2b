// Broadcast chat server on Node.js `ws` 8: every message goes to every open client, the
// sender included. The idiomatic loop over `wss.clients` with a readyState check, defaults
// otherwise (no permessage-deflate: ws 8 servers have it off by default).
// Usage: node server.js PORT
import { WebSocketServer, WebSocket } from "ws";

const port = Number(process.argv[2] ?? 8080);
const wss = new WebSocketServer({ host: "127.0.0.1", port });

wss.on("connection", (ws) => {
  ws.on("error", () => {});
  ws.on("message", (data, isBinary) => {
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: isBinary });
      }
    }
  });
});

wss.on("listening", () => {
  console.error(`listening on ws://127.0.0.1:${wss.address().port}/ (node ${process.version}, ws)`);
});
