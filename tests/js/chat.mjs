// matrix-js-sdk (the SDK Element is built on) against a real Outlast server.
//
//   node tests/js/chat.mjs http://127.0.0.1:8008
//
// Registers two users (plain fetch), logs both in and starts full SDK clients
// (sync loop, push rules, capabilities, ...), makes a room, exchanges a
// message each way, uploads and downloads a file through the authenticated
// media API, then prints one line "RESULT {json}" and exits 0 (1 on failure).
// tests/e2e/test_other_clients.py runs it and checks the result.

import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

const baseUrl = process.argv[2];
const TIMEOUT_MS = Number(process.env.CHAT_TIMEOUT_MS || 90000);
logger.setLevel("warn"); // keep stdout for the result; the SDK logs a lot at info

// Every answer >= 400 the SDK got, so the test can tell which calls a real client
// makes that the server does not answer well.
const failures = [];
async function recordingFetch(input, init) {
  const resp = await fetch(input, init);
  if (resp.status >= 400) {
    const url = new URL(typeof input === "string" ? input : input.url);
    failures.push({ method: init?.method || "GET", path: url.pathname, status: resp.status });
  }
  return resp;
}

function fail(error) {
  const body = { ok: false, error: String(error?.stack || error), failures };
  console.log("RESULT " + JSON.stringify(body));
  process.exit(1);
}
setTimeout(() => fail(new Error(`timed out after ${TIMEOUT_MS} ms`)), TIMEOUT_MS).unref();

async function register(name, password) {
  const resp = await fetch(`${baseUrl}/_matrix/client/v3/register`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: name, password, auth: { type: "m.login.dummy" } }),
  });
  if (resp.status !== 200) throw new Error(`register ${name}: ${resp.status} ${await resp.text()}`);
}

async function login(name, password) {
  const anonymous = sdk.createClient({ baseUrl, fetchFn: recordingFetch });
  const flows = await anonymous.loginFlows();
  if (!flows.flows.some((f) => f.type === "m.login.password")) throw new Error("no password flow");
  const session = await anonymous.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user: name },
    password,
    initial_device_display_name: "js-sdk test",
  });
  const client = sdk.createClient({
    baseUrl,
    fetchFn: recordingFetch,
    accessToken: session.access_token,
    userId: session.user_id,
    deviceId: session.device_id,
  });
  const prepared = new Promise((resolve, reject) => {
    client.on(sdk.ClientEvent.Sync, (state, _prev, data) => {
      if (state === "PREPARED" || state === "SYNCING") resolve();
      if (state === "ERROR") reject(data?.error || new Error("sync error"));
    });
  });
  await client.startClient({ initialSyncLimit: 20 });
  await prepared;
  return client;
}

// Resolves with the first timeline event in `roomId` that satisfies `match`.
function nextEvent(client, roomId, match) {
  return new Promise((resolve) => {
    const onTimeline = (event, room) => {
      if (room?.roomId === roomId && match(event)) {
        client.off(sdk.RoomEvent.Timeline, onTimeline);
        resolve(event);
      }
    };
    client.on(sdk.RoomEvent.Timeline, onTimeline);
  });
}

function waitFor(probe, what, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      const value = probe();
      if (value) return resolve(value);
      if (Date.now() - started > timeoutMs) return reject(new Error(`waiting for ${what}`));
      setTimeout(tick, 50);
    };
    tick();
  });
}

async function main() {
  if (!baseUrl) throw new Error("usage: node chat.mjs BASE_URL");
  const suffix = Math.random().toString(36).slice(2, 8);
  const [aliceName, bobName] = [`jsalice${suffix}`, `jsbob${suffix}`];
  await register(aliceName, "pw-alice");
  await register(bobName, "pw-bob");
  const alice = await login(aliceName, "pw-alice");
  const bob = await login(bobName, "pw-bob");

  const { room_id: roomId } = await alice.createRoom({
    name: "js-sdk room", preset: "private_chat", invite: [bob.getUserId()],
  });
  await waitFor(() => bob.getRoom(roomId)?.getMyMembership() === "invite", "bob's invite");
  await bob.joinRoom(roomId);
  await waitFor(
    () => alice.getRoom(roomId)?.getMember(bob.getUserId())?.membership === "join",
    "alice to see bob join",
  );

  const text = (body) => (e) => e.getType() === "m.room.message" && e.getContent().body === body;
  const bobGets = nextEvent(bob, roomId, text("hello from alice"));
  await alice.sendTextMessage(roomId, "hello from alice");
  const atBob = await bobGets;

  const aliceGets = nextEvent(alice, roomId, text("hello from bob"));
  await bob.sendTextMessage(roomId, "hello from bob");
  const atAlice = await aliceGets;

  // Media through the SDK: upload, then the authenticated download a client would use.
  const bytes = Buffer.from(Array.from({ length: 70000 }, (_, i) => (i * 31) % 256));
  const upload = await alice.uploadContent(bytes, { name: "pattern.bin", type: "application/x-test" });
  const url = bob.mxcUrlToHttp(upload.content_uri, undefined, undefined, undefined, false, true, true);
  const download = await fetch(url, { headers: { Authorization: `Bearer ${bob.getAccessToken()}` } });
  const got = Buffer.from(await download.arrayBuffer());

  const pushRules = await alice.getPushRules();
  const result = {
    ok: true,
    room_id: roomId,
    bob_received: { body: atBob.getContent().body, sender: atBob.getSender() },
    alice_received: { body: atAlice.getContent().body, sender: atAlice.getSender() },
    media: {
      content_uri: upload.content_uri,
      status: download.status,
      content_type: download.headers.get("content-type"),
      same_bytes: got.equals(bytes),
    },
    push_rule_kinds: Object.keys(pushRules.global || {}).sort(),
    failures,
  };
  alice.stopClient();
  bob.stopClient();
  console.log("RESULT " + JSON.stringify(result));
  process.exit(0);
}

main().catch(fail);
