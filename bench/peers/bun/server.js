// Chat and echo servers on Bun.serve, whose WebSocket side is uWebSockets: rooms by request path
// through uWS pub/sub (`ws.subscribe(room)`, `server.publish(room, message)`), so a message is
// framed once per room and every subscriber, the sender included, gets it; writes made during one
// event-loop turn are corked by uWS. The slow-consumer policy is ours: a 1 MiB backpressure limit
// per connection, and a connection past it is closed (`closeOnBackpressureLimit`).
//
// Usage: bun server.js PORT [--mode chat|echo] [--tls-cert PEM --tls-key PEM] [--deflate]
//   --mode echo          every message goes back to its sender only
//   --tls-cert, --tls-key  serve https:// and wss:// with this certificate chain and key
//   --deflate            negotiate permessage-deflate (`perMessageDeflate: true`) when offered

const BACKPRESSURE_LIMIT = 1024 * 1024;

function usage(problem) {
  console.error(`bun peer: ${problem}`);
  console.error("usage: bun server.js PORT [--mode chat|echo] [--tls-cert PEM --tls-key PEM] [--deflate]");
  process.exit(2);
}

function parseArguments(argv) {
  const options = { port: 8080, mode: "chat", tlsCert: null, tlsKey: null, deflate: false };
  let portSeen = false;
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index];
    const value = () => {
      if (index + 1 >= argv.length) usage(`${argument} needs a value`);
      return argv[++index];
    };
    if (argument === "--mode") {
      options.mode = value();
      if (options.mode !== "chat" && options.mode !== "echo") usage(`unknown mode ${options.mode}`);
    } else if (argument === "--tls-cert") {
      options.tlsCert = value();
    } else if (argument === "--tls-key") {
      options.tlsKey = value();
    } else if (argument === "--deflate") {
      options.deflate = true;
    } else if (!portSeen && /^\d+$/.test(argument)) {
      options.port = Number(argument);
      portSeen = true;
    } else {
      usage(`unexpected argument ${argument}`);
    }
  }
  if ((options.tlsCert === null) !== (options.tlsKey === null)) usage("--tls-cert and --tls-key go together");
  return options;
}

import { readFileSync } from "node:fs";

function readPem(path) {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    usage(`${path}: ${error.message}`);
  }
}

const options = parseArguments(process.argv.slice(2));
const tls = options.tlsCert === null ? undefined : { cert: readPem(options.tlsCert), key: readPem(options.tlsKey) };

const websocket =
  options.mode === "chat"
    ? {
        open(ws) {
          ws.subscribe(ws.data.room);
        },
        message(ws, message) {
          // server.publish reaches every subscriber including the sender (ws.publish would skip it).
          server.publish(ws.data.room, message);
        },
      }
    : {
        message(ws, message) {
          ws.send(message);
        },
      };

let server;
try {
  server = Bun.serve({
  hostname: "127.0.0.1",
  port: options.port,
  tls,
  fetch(request, server) {
    const room = new URL(request.url).pathname;
    if (server.upgrade(request, { data: { room } })) return undefined;
    return new Response("a WebSocket server: connect with ws://\n", { status: 426 });
  },
  websocket: {
    ...websocket,
    backpressureLimit: BACKPRESSURE_LIMIT,
    closeOnBackpressureLimit: true,
    perMessageDeflate: options.deflate,
  },
  });
} catch (error) {
  console.error(`bun peer: cannot serve on 127.0.0.1:${options.port}: ${error.message}`);
  process.exit(2);
}

const scheme = tls ? "wss" : "ws";
const features = [options.mode, tls ? "tls" : null, options.deflate ? "permessage-deflate" : null].filter(Boolean).join(", ");
console.error(`listening on ${scheme}://127.0.0.1:${server.port}/ (bun ${Bun.version}, ${features})`);
