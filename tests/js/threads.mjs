// An Element-Web-like matrix-js-sdk client with threads turned on, against a real
// Outlast server:
//
//   node tests/js/threads.mjs http://127.0.0.1:8008
//
// Alice posts and edits a message, Bob reacts to it and replies in a thread under
// it; then Alice "reloads" (a new client with an empty store and the same session)
// and reads it all back: the edit applied, the reaction counted, the thread with
// its reply. Every request is recorded; prints one line "RESULT {json}" and exits
// 0 (1 on failure). tests/e2e/test_js_threads.py runs it.

import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

import { deadline, fail, recordingFetch, register, requests, waitFor } from "./common.mjs";

const baseUrl = process.argv[2];
const TIMEOUT_MS = Number(process.env.CHAT_TIMEOUT_MS || 90000);
logger.setLevel("warn");
deadline(TIMEOUT_MS);

async function start(session) {
  const client = sdk.createClient({
    baseUrl,
    fetchFn: recordingFetch(),
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
  await client.startClient({ initialSyncLimit: 20, threadSupport: true });
  await prepared;
  return client;
}

async function main() {
  if (!baseUrl) throw new Error("usage: node threads.mjs BASE_URL");
  const suffix = Math.random().toString(36).slice(2, 8);
  const aliceSession = await register(baseUrl, `thalice${suffix}`, "pw-alice");
  const bobSession = await register(baseUrl, `thbob${suffix}`, "pw-bob");
  const alice = await start(aliceSession);
  const bob = await start(bobSession);
  const support = await alice.doesServerSupportThread();

  const { room_id: roomId } = await alice.createRoom({
    name: "threads", preset: "private_chat", invite: [bob.getUserId()],
  });
  await waitFor(() => bob.getRoom(roomId)?.getMyMembership() === "invite", "bob's invite");
  await bob.joinRoom(roomId);

  const { event_id: rootId } = await alice.sendTextMessage(roomId, "what shall we eat?");
  await alice.sendMessage(roomId, {
    msgtype: "m.text",
    body: "* what shall we eat tonight?",
    "m.new_content": { msgtype: "m.text", body: "what shall we eat tonight?" },
    "m.relates_to": { rel_type: "m.replace", event_id: rootId },
  });
  await waitFor(() => bob.getRoom(roomId)?.findEventById(rootId), "bob to see the root");
  await bob.sendEvent(roomId, "m.reaction", {
    "m.relates_to": { rel_type: "m.annotation", event_id: rootId, key: "🍕" },
  });
  const { event_id: replyId } = await bob.sendMessage(roomId, rootId, {
    msgtype: "m.text",
    body: "pizza, obviously",
    "m.relates_to": {
      rel_type: "m.thread",
      event_id: rootId,
      is_falling_back: true,
      "m.in_reply_to": { event_id: rootId },
    },
  });
  bob.stopClient();
  alice.stopClient();

  // The reload: a fresh client, empty store, the same session.
  const before = requests.length;
  const again = await start(aliceSession);
  const room = await waitFor(() => again.getRoom(roomId), "the room after the reload");
  const root = await waitFor(() => room.findEventById(rootId), "the root after the reload");
  // What Element's thread panel does when it opens.
  await room.createThreadsTimelineSets();
  await room.fetchRoomThreads();
  const thread = await waitFor(() => room.getThread(rootId), "the thread after the reload");
  await thread.fetchInitialEvents?.();
  const threadBodies = await waitFor(() => {
    const bodies = thread.liveTimeline.getEvents().map((e) => e.getContent().body);
    return bodies.includes("pizza, obviously") ? bodies : null;
  }, "the reply in the thread");
  const annotations = room.relations.getChildEventsForEvent(rootId, "m.annotation", "m.reaction");
  const counted = (annotations?.getSortedAnnotationsByKey() || []).map(([key, events]) => [key, events.size]);
  const replyInMain = room.getLiveTimeline().getEvents().some((e) => e.getId() === replyId);
  again.stopClient();

  const after = requests.slice(before);
  const result = {
    ok: true,
    support,
    root_body: root.getContent().body,
    edited: root.replacingEventId() !== undefined,
    thread_length: thread.length,
    bundled_thread: root.getServerAggregatedRelation("m.thread") ?? null,
    thread_bodies: threadBodies,
    reactions: counted,
    reply_in_main_timeline: replyInMain,
    // Paths with their IDs (room, event, user; raw or percent-encoded) as "*".
    reload_paths: [
      ...new Set(after.map((r) => `${r.method} ${r.path.replace(/\/(!|\$|@|%21|%24|%40)[^/]*/g, "/*")}`)),
    ].sort(),
    failures: requests.filter((r) => r.status >= 400),
  };
  console.log("RESULT " + JSON.stringify(result));
  process.exit(0);
}

main().catch(fail);
