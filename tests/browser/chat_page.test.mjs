// End-to-end test of the chat page served by `server` on GET /, in Debian's chromium driven
// by playwright-core. Run by `make test-browser` (part of `make test`).
//
// It starts the real server binary on 127.0.0.1 (a free port), opens pages in one browser,
// and checks what a user sees: messages within a room and not across rooms, markup shown as
// text, reconnection after the server restarts, a phone-sized layout, and the page served over
// https:// chatting through wss:// (with a self-signed certificate the test makes with openssl,
// accepted by the test's browser context through playwright's `ignoreHTTPSErrors`). Screenshots
// go to target/browser/.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const serverBinary = process.env.SERVER_BIN ?? resolve(root, "target/release/server");
const outDir = resolve(root, "target/browser");
mkdirSync(outDir, { recursive: true });

let browser;
let server;
let address;

// Starts the server with `extraArgs`; resolves once it logs its address (ws:// or, with
// --tls-cert, wss://).
function startServer(listen, extraArgs = []) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(serverBinary, ["--listen", listen, ...extraArgs], { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    const timer = setTimeout(() => reject(new Error("server did not start:\n" + log)), 10000);
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const match = /listening on wss?:\/\/([0-9.:]+)\//.exec(log);
      if (match) {
        clearTimeout(timer);
        resolvePromise({ child, address: match[1] });
      }
    });
    child.on("exit", (code) => reject(new Error(`server exited with ${code}:\n${log}`)));
  });
}

function stopServer(child) {
  return new Promise((resolvePromise) => {
    if (child.exitCode !== null) return resolvePromise();
    child.once("exit", () => resolvePromise());
    child.kill("SIGKILL");
  });
}

// The URLs of the WebSockets each page opened, in order.
const socketUrls = new WeakMap();

// Opens the page at `origin + path` in a context of its own (with `contextOptions`), sets the
// nickname and waits until the page says it is connected.
async function openChat(path, nickname, viewport = { width: 1000, height: 700 }, origin = `http://${address}`, contextOptions = {}) {
  const context = await browser.newContext({ viewport, ...contextOptions });
  const page = await context.newPage();
  page.on("dialog", async (dialog) => {
    await dialog.dismiss();
    throw new Error("a dialog opened: markup from a message ran as code");
  });
  socketUrls.set(page, []);
  page.on("websocket", (socket) => socketUrls.get(page).push(socket.url()));
  await page.goto(`${origin}${path}`);
  await page.fill("#nick", nickname);
  await page.dispatchEvent("#nick", "change");
  await page.waitForSelector('#state[data-state="open"]', { timeout: 10000 });
  return page;
}

async function send(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

async function messages(page) {
  return page.$$eval("#messages li:not(.system)", (items) =>
    items.map((item) => ({ text: item.textContent, mine: item.classList.contains("mine") })),
  );
}

async function waitForMessage(page, fragment) {
  await page.waitForFunction(
    (wanted) => [...document.querySelectorAll("#messages li")].some((li) => li.textContent.includes(wanted)),
    fragment,
    { timeout: 10000 },
  );
}

before(async () => {
  ({ child: server, address } = await startServer("127.0.0.1:0"));
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-quic",
    ],
  });
});

after(async () => {
  await browser?.close();
  if (server) await stopServer(server);
});

test("two pages in the same room see each other's messages with the right nicknames, another room does not", async () => {
  const alice = await openChat("/rust", "alice");
  const bob = await openChat("/rust", "bob");
  const carol = await openChat("/go", "carol");
  assert.equal(await alice.textContent("#room-name"), "/rust");
  assert.equal(await carol.textContent("#room-name"), "/go");

  await send(alice, "hello from alice");
  await waitForMessage(bob, "hello from alice");
  await send(bob, "hi alice, bob here");
  await waitForMessage(alice, "bob here");
  await waitForMessage(bob, "bob here");

  const seenByBob = await messages(bob);
  assert.ok(seenByBob.some((m) => m.text.includes("alice") && m.text.includes("hello from alice") && !m.mine));
  assert.ok(seenByBob.some((m) => m.text.includes("bob here") && m.mine), "own messages are marked");
  await carol.waitForTimeout(500);
  assert.deepEqual(await messages(carol), [], "a page in another room received messages");

  await send(alice, "a third message for the screenshot");
  await waitForMessage(bob, "third message");
  await bob.screenshot({ path: resolve(outDir, "chat-page.png") });
  for (const page of [alice, bob, carol]) await page.context().close();
});

test("a message containing markup is shown as text", async () => {
  const alice = await openChat("/xss", "alice");
  const bob = await openChat("/xss", "bob");
  const attack = "<img src=x onerror=alert(1)>";
  await send(alice, attack);
  await waitForMessage(bob, attack);
  assert.equal(await bob.$$eval("#messages img", (images) => images.length), 0);
  const texts = (await messages(bob)).map((m) => m.text);
  assert.ok(texts.some((text) => text.includes(attack)));
  for (const page of [alice, bob]) await page.context().close();
});

test("a message that is not the page's JSON is shown as plain text", async () => {
  const page = await openChat("/plain", "alice");
  await page.evaluate(() => {
    const socket = new WebSocket(`ws://${location.host}/plain`);
    socket.onopen = () => socket.send("just text, <b>not bold</b>");
  });
  await waitForMessage(page, "just text, <b>not bold</b>");
  assert.equal(await page.$$eval("#messages b", (bold) => bold.length), 0);
  await page.context().close();
});

test("the input is disabled until connected and pages reconnect after the server restarts", async () => {
  const alice = await openChat("/restart", "alice");
  const bob = await openChat("/restart", "bob");
  assert.equal(await alice.isEnabled("#text"), true);

  await stopServer(server);
  for (const page of [alice, bob]) {
    await page.waitForSelector('#state[data-state="closed"]', { timeout: 10000 });
    assert.match(await page.textContent("#status"), /reconnecting in \d+ s/);
    assert.match(await page.textContent("#status"), /1006/);
    assert.equal(await page.isEnabled("#text"), false);
  }

  ({ child: server } = await startServer(address));
  for (const page of [alice, bob]) {
    await page.waitForSelector('#state[data-state="open"]', { timeout: 15000 });
  }
  await send(alice, "after the restart");
  await waitForMessage(bob, "after the restart");
  for (const page of [alice, bob]) await page.context().close();
});

test("the page fits a phone-sized screen", async () => {
  const alice = await openChat("/phone", "alice", { width: 375, height: 667 });
  await send(alice, "a long message that has to wrap on a narrow screen ".repeat(4));
  await waitForMessage(alice, "narrow screen");
  const overflow = await alice.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
  assert.ok(await alice.isVisible("#send"));
  await alice.screenshot({ path: resolve(outDir, "chat-page-phone.png") });
  await alice.context().close();
});

test("served over https, two pages in a room chat through wss:// and another room hears nothing", async () => {
  const dir = mkdtempSync(join(tmpdir(), "chat-page-tls-"));
  const [cert, key] = [join(dir, "cert.pem"), join(dir, "key.pem")];
  // The README's line for a self-signed certificate, made fresh for this test.
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    "-keyout", key, "-out", cert,
  ], { stdio: ["ignore", "ignore", "pipe"] });
  const tls = await startServer("127.0.0.1:0", ["--tls-cert", cert, "--tls-key", key]);
  const pages = [];
  try {
    const origin = `https://${tls.address}`;
    // The certificate is self-signed: this context (and no other) accepts it.
    const trusting = { ignoreHTTPSErrors: true };
    const alice = await openChat("/tls", "alice", undefined, origin, trusting);
    pages.push(alice);
    const bob = await openChat("/tls", "bob", undefined, origin, trusting);
    pages.push(bob);
    const carol = await openChat("/tls-other", "carol", undefined, origin, trusting);
    pages.push(carol);
    for (const page of [alice, bob, carol]) {
      assert.equal(await page.evaluate(() => location.protocol), "https:");
      const room = page === carol ? "/tls-other" : "/tls";
      assert.deepEqual(socketUrls.get(page), [`wss://${tls.address}${room}`]);
    }

    await send(alice, "hello over wss from alice");
    await waitForMessage(bob, "hello over wss from alice");
    await send(bob, "bob answers over wss");
    await waitForMessage(alice, "bob answers over wss");
    await waitForMessage(bob, "bob answers over wss");
    const seenByAlice = await messages(alice);
    assert.ok(seenByAlice.some((m) => m.text.includes("hello over wss from alice") && m.mine));
    assert.ok(seenByAlice.some((m) => m.text.includes("bob") && m.text.includes("bob answers over wss") && !m.mine));

    // Another room: carol's own message comes back to her, and nothing from /tls came first
    // (every /tls message had reached bob before she sent).
    await send(carol, "carol alone over wss");
    await waitForMessage(carol, "carol alone over wss");
    assert.deepEqual((await messages(carol)).map((m) => m.text.includes("carol alone over wss")), [true]);
    await bob.screenshot({ path: resolve(outDir, "chat-page-tls.png") });
  } finally {
    for (const page of pages) await page.context().close();
    await stopServer(tls.child);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("chromium negotiates permessage-deflate and long messages arrive whole through the shared compressed frame", async () => {
  const alice = await openChat("/deflate", "alice");
  const bob = await openChat("/deflate", "bob");
  // The response's Sec-WebSocket-Extensions, as the browser agreed it.
  const agreed = await alice.evaluate(() => socket.extensions);
  assert.match(agreed, /permessage-deflate/);
  assert.match(agreed, /server_no_context_takeover/);
  assert.match(agreed, /client_no_context_takeover/);
  const long = "compressible ".repeat(40) + "end of the long message";
  await send(alice, long);
  await waitForMessage(bob, "end of the long message");
  const seen = await messages(bob);
  assert.ok(seen.some((m) => m.text.includes(long)), "the long message arrived whole");
  const metrics = await (await fetch(`http://${address}/metrics`)).text();
  assert.match(metrics, /ws_frames_compressed_total [1-9]/, "the broadcast was compressed");
  assert.match(metrics, /ws_messages_inflated_total [1-9]/, "chromium's message was inflated");
  for (const page of [alice, bob]) await page.context().close();
});

test("with --history, a page that joins sees what was said, and a reconnect shows nothing twice", async () => {
  const history = await startServer("127.0.0.1:0", ["--history", "20"]);
  const origin = `http://${history.address}`;
  try {
    const alice = await openChat("/history", "alice", undefined, origin);
    await send(alice, "said before bob came");
    await waitForMessage(alice, "said before bob came");
    const bob = await openChat("/history", "bob", undefined, origin);
    await waitForMessage(bob, "said before bob came");
    // Bob's page reconnects (as after a network blip): the history comes again, shown once.
    await bob.evaluate(() => socket.close());
    await bob.waitForSelector('#state[data-state="open"]', { timeout: 15000 });
    await send(alice, "said after the reconnect");
    await waitForMessage(bob, "said after the reconnect");
    const seen = (await messages(bob)).filter((m) => m.text.includes("said before bob came"));
    assert.equal(seen.length, 1, "the history message is shown once");
    for (const page of [alice, bob]) await page.context().close();
  } finally {
    await stopServer(history.child);
  }
});
