// Broadcast chat server on Node.js `ws` 8: every message goes to every open client, the
// sender included. The idiomatic loop over `wss.clients` with a readyState check, defaults
// otherwise (no permessage-deflate: ws 8 servers have it off by default).
// Usage: node server.js PORT [--tls-cert PEM --tls-key PEM] [--deflate]
//   --tls-cert, --tls-key  serve wss:// through Node's `https` server with this chain and key
//   --deflate              negotiate permessage-deflate when offered (`perMessageDeflate` with
//                          threshold 0: every message compressed; zlib defaults otherwise)
import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import { WebSocketServer, WebSocket } from "ws";

function usage(problem) {
  console.error(`node-ws peer: ${problem}`);
  console.error("usage: node server.js PORT [--tls-cert PEM --tls-key PEM] [--deflate]");
  process.exit(2);
}

const options = { port: 8080, tlsCert: null, tlsKey: null, deflate: false };
const argv = process.argv.slice(2);
for (let index = 0; index < argv.length; index++) {
  const argument = argv[index];
  const value = () => {
    if (index + 1 >= argv.length) usage(`${argument} needs a value`);
    return argv[++index];
  };
  if (argument === "--tls-cert") options.tlsCert = value();
  else if (argument === "--tls-key") options.tlsKey = value();
  else if (argument === "--deflate") options.deflate = true;
  else if (index === 0 && /^\d+$/.test(argument)) options.port = Number(argument);
  else usage(`unexpected argument ${argument}`);
}
if ((options.tlsCert === null) !== (options.tlsKey === null)) usage("--tls-cert and --tls-key go together");

const perMessageDeflate = options.deflate ? { threshold: 0 } : false;
let wss;
let https = null;
if (options.tlsCert !== null) {
  https = createServer({ cert: readFileSync(options.tlsCert), key: readFileSync(options.tlsKey) });
  wss = new WebSocketServer({ server: https, perMessageDeflate });
} else {
  wss = new WebSocketServer({ host: "127.0.0.1", port: options.port, perMessageDeflate });
}

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

const features = [https ? "https" : null, options.deflate ? "permessage-deflate, threshold 0" : null].filter(Boolean);
const describe = (port) =>
  `listening on ${https ? "wss" : "ws"}://127.0.0.1:${port}/ (node ${process.version}, ws${features.length ? ", " + features.join(", ") : ""})`;
if (https) {
  https.listen(options.port, "127.0.0.1", () => console.error(describe(https.address().port)));
} else {
  wss.on("listening", () => console.error(describe(wss.address().port)));
}
