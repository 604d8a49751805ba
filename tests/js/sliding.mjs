// matrix-js-sdk's SlidingSync (simplified sliding sync, MSC4186) against a real
// Outlast server:
//
//   node tests/js/sliding.mjs http://127.0.0.1:8008 [BOB_URL]
//
// With a second URL, Bob's client talks to it (another site of a cluster) and
// Alice's to the first: every step then crosses sites.
//
// Alice and Bob each run a client whose sync is js-sdk's SlidingSync with one room
// list. Alice creates a named room, invites Bob and says hello; Bob sees the invite
// in his list, joins, opens the room (a room subscription), reads the hello, and the
// two exchange messages live over the long-poll. Every request is recorded; prints
// one line "RESULT {json}" and exits 0 (1 on failure).
// tests/e2e/test_js_sliding_sync.py runs it.
//
// js-sdk 36 still posts to the MSC3575 proxy path (.../org.matrix.msc3575/sync);
// the fetch below sends those requests to the path Synapse and Outlast serve MSC4186
// at, unchanged otherwise: the body is what js-sdk's SlidingSync builds.

import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";
import { SlidingSync } from "matrix-js-sdk/lib/sliding-sync.js";

import { deadline, fail, recordingFetch, register, requests, waitFor } from "./common.mjs";

const baseUrl = process.argv[2];
const bobUrl = process.argv[3] || baseUrl;
const TIMEOUT_MS = Number(process.env.CHAT_TIMEOUT_MS || 90000);
const LEGACY = "/_matrix/client/unstable/org.matrix.msc3575/sync";
const SIMPLIFIED = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";
logger.setLevel("warn");
deadline(TIMEOUT_MS);
const fetchFn = recordingFetch((url) =>
  url.pathname === LEGACY ? new URL(url.href.replace(LEGACY, SIMPLIFIED)) : url,
);

async function login(name, password) {
  const resp = await fetch(`${baseUrl}/_matrix/client/v3/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ type: "m.login.password", identifier: { type: "m.id.user", user: name }, password }),
  });
  if (resp.status !== 200) throw new Error(`login ${name}: ${resp.status} ${await resp.text()}`);
  return resp.json();
}

const LIST = {
  ranges: [[0, 19]],
  timeline_limit: 5,
  required_state: [
    ["m.room.name", ""],
    ["m.room.avatar", ""],
    ["m.room.member", "$LAZY"],
    ["m.room.member", "$ME"],
  ],
};
const SUBSCRIPTION = { timeline_limit: 20, required_state: [["*", "*"]] };

async function start(session, url = baseUrl) {
  const client = sdk.createClient({
    baseUrl: url,
    fetchFn,
    accessToken: session.access_token,
    userId: session.user_id,
    deviceId: session.device_id,
  });
  const sliding = new SlidingSync(url, new Map([["rooms", LIST]]), SUBSCRIPTION, client, 10000);
  const lists = [];
  sliding.on("SlidingSync.List", (key, count, indexToRoom) => {
    lists.push({ key, count, rooms: Object.values(indexToRoom) });
  });
  const prepared = new Promise((resolve, reject) => {
    client.on(sdk.ClientEvent.Sync, (state, _prev, data) => {
      if (state === "PREPARED" || state === "SYNCING") resolve();
      if (state === "ERROR") reject(data?.error || new Error("sync error"));
    });
  });
  await client.startClient({ slidingSync: sliding });
  await prepared;
  return { client, sliding, lists };
}

function bodies(client, roomId) {
  const room = client.getRoom(roomId);
  if (!room) return [];
  return room.getLiveTimeline().getEvents()
    .filter((e) => e.getType() === "m.room.message")
    .map((e) => e.getContent().body);
}

async function main() {
  if (!baseUrl) throw new Error("usage: node sliding.mjs BASE_URL");
  const suffix = Math.random().toString(36).slice(2, 8);
  const aliceName = `ssalice${suffix}`;
  await register(baseUrl, aliceName, "pw-alice");
  const aliceSession = await login(aliceName, "pw-alice"); // logs in, as Element X does
  const bobSession = await register(bobUrl, `ssbob${suffix}`, "pw-bob");
  const alice = await start(aliceSession);
  const bob = await start(bobSession, bobUrl);

  const { room_id: roomId } = await alice.client.createRoom({
    name: "sliding chat", preset: "private_chat", invite: [bob.client.getUserId()],
  });
  await alice.client.sendTextMessage(roomId, "hello from alice");

  // Bob's room list shows the invite; he joins and opens the room.
  await waitFor(() => bob.lists.some((l) => l.rooms.includes(roomId)), "the room in bob's list");
  await waitFor(() => bob.client.getRoom(roomId)?.getMyMembership() === "invite", "bob's invite");
  const invitedName = bob.client.getRoom(roomId).name;
  await bob.client.joinRoom(roomId);
  bob.sliding.modifyRoomSubscriptions(new Set([roomId]));
  await waitFor(() => bob.client.getRoom(roomId)?.getMyMembership() === "join", "bob joined");
  await waitFor(() => bodies(bob.client, roomId).includes("hello from alice"), "bob to read the hello");

  // Live, both ways, over the long-poll.
  await alice.client.sendTextMessage(roomId, "are you there?");
  await waitFor(() => bodies(bob.client, roomId).includes("are you there?"), "bob to get the live message");
  await bob.client.sendTextMessage(roomId, "hello from bob");
  await waitFor(() => bodies(alice.client, roomId).includes("hello from bob"), "alice to get bob's reply");

  const result = {
    ok: true,
    room_id: roomId,
    invited_name: invitedName,
    joined_name: bob.client.getRoom(roomId).name,
    bob_bodies: bodies(bob.client, roomId),
    alice_bodies: bodies(alice.client, roomId),
    bob_list_counts: bob.lists.map((l) => l.count),
    alice_members: bob.client.getRoom(roomId).getJoinedMembers().map((m) => m.userId).sort(),
    sliding_requests: requests.filter((r) => r.path === SIMPLIFIED).length,
    failures: requests.filter((r) => r.status >= 400),
  };
  alice.sliding.stop();
  bob.sliding.stop();
  alice.client.stopClient();
  bob.client.stopClient();
  console.log("RESULT " + JSON.stringify(result));
  process.exit(0);
}

main().catch(fail);
