// The chat's model of the account: rooms, timelines, the /sync loop and the outbox.
// It speaks only the Client-Server API (through Api) and tells the UI what changed
// through the `hooks` it was given; it never touches the DOM.

import { MatrixError, NetworkError, encode, isTransient } from "./matrix.js";

export const UNREAD_KEY = "io.outlast.unread_count";
const SYNC_TIMEOUT_MS = 30000;
const TIMELINE_LIMIT = 30;
const PAGE_LIMIT = 30;
const BACKOFF_START_MS = 1000;
const BACKOFF_MAX_MS = 8000;
const SYNC_FILTER = JSON.stringify({
  room: { timeline: { limit: TIMELINE_LIMIT }, state: { lazy_load_members: false } },
  presence: { not_types: ["*"] },
});

function sleep(ms, wakeable) {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      wakeable.delete(done);
      resolve();
    }
    wakeable.add(done);
  });
}

function jitter(ms) {
  return Math.round(ms * (0.8 + Math.random() * 0.4));
}

export function newTxnId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  const random = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `web.${Date.now().toString(36)}.${random}`;
}

export class Room {
  constructor(id) {
    this.id = id;
    this.membership = null; // "join" | "invite" once the server said so
    this.state = new Map(); // "type\u0000state_key" -> event
    this.members = new Map(); // user id -> {membership, displayname, avatar_url}
    this.events = []; // confirmed timeline, oldest first
    this.byId = new Map(); // event id -> item in events
    this.pending = []; // local echoes not yet seen in the timeline
    this.nextKey = 0; // order keys: live events count up, older pages count down
    this.minKey = 0;
    this.prevBatch = null;
    this.atStart = false;
    this.paginating = null;
    this.notifications = 0;
    this.highlights = 0;
    this.lastTs = 0;
    this.typing = [];
    this.readUpTo = new Map(); // user id -> {key, eventId}: furthest known read receipt
    this.myReceiptKey = -Infinity;
    this.inviteState = [];
    this.inviter = null;
    this.isDirect = false;
  }

  stateEvent(type, stateKey = "") {
    return this.state.get(`${type}\u0000${stateKey}`);
  }

  joinedMembers() {
    return [...this.members.entries()].filter(([, m]) => m.membership === "join").map(([id]) => id);
  }

  displayName(userId) {
    const member = this.members.get(userId);
    const name = member && typeof member.displayname === "string" && member.displayname.trim();
    return name || userId.replace(/^@/, "").split(":")[0];
  }

  avatarUrl(userId) {
    const member = this.members.get(userId);
    return (member && typeof member.avatar_url === "string" && member.avatar_url) || null;
  }

  lastMessage() {
    for (let i = this.events.length - 1; i >= 0; i--) {
      if (this.events[i].type === "m.room.message") return this.events[i];
    }
    return null;
  }
}

export class Client {
  constructor(api, session, hooks) {
    this.api = api;
    this.session = session;
    this.userId = session.user_id;
    this.hooks = hooks;
    this.rooms = new Map();
    this.since = null;
    this.running = false;
    this.connected = false;
    this.synced = false;
    this.failures = 0;
    this.wakeable = new Set();
    this.syncAbort = null;
    this.direct = {};
    this.queues = new Map(); // room id -> running send loop promise
    this.outboxKey = `outlast.outbox.${this.userId}`;
    this.profile = { displayname: null, avatar_url: null };
  }

  // --- lifecycle ----------------------------------------------------------------

  start() {
    this.running = true;
    this.restoreOutbox();
    this.syncLoop();
  }

  stop() {
    this.running = false;
    if (this.syncAbort) this.syncAbort.abort();
    this.wake();
  }

  /** Cut every backoff sleep short (network came back, the user asked to retry). */
  wake() {
    for (const done of [...this.wakeable]) done();
  }

  room(id) {
    let room = this.rooms.get(id);
    if (!room) {
      room = new Room(id);
      this.rooms.set(id, room);
    }
    return room;
  }

  // --- the /sync loop -------------------------------------------------------------

  async syncLoop() {
    let backoff = BACKOFF_START_MS;
    while (this.running) {
      this.syncAbort = new AbortController();
      try {
        const params = { filter: SYNC_FILTER, timeout: this.since ? SYNC_TIMEOUT_MS : 0 };
        if (this.since) params.since = this.since;
        const res = await this.api.client("GET", "/sync", {
          params,
          signal: this.syncAbort.signal,
          timeoutMs: SYNC_TIMEOUT_MS + 20000,
        });
        if (!this.running) return;
        this.handleSync(res);
        this.since = res.next_batch;
        backoff = BACKOFF_START_MS;
        if (!this.synced) {
          this.synced = true;
          this.hooks.ready();
          this.kickAllQueues();
        }
        this.setConnected(true);
      } catch (err) {
        if (!this.running) return;
        if (err.name === "AbortError") continue;
        if (err instanceof MatrixError && err.status === 401) {
          this.running = false;
          this.hooks.loggedOut("Your session has ended. Please sign in again.");
          return;
        }
        if (err instanceof MatrixError && err.status === 400 && this.since) {
          // The server no longer understands our position: start over from a fresh sync.
          this.since = null;
          continue;
        }
        this.failures += 1;
        this.setConnected(false, err);
        const wait = err.retryAfterMs ? Math.max(err.retryAfterMs, 500) : jitter(backoff);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
        await sleep(wait, this.wakeable);
      }
    }
  }

  setConnected(ok, err) {
    if (ok === this.connected && ok) return;
    const was = this.connected;
    this.connected = ok;
    if (ok && !was) this.wake(); // the outbox retries at once when the server is back
    this.hooks.connection(ok, err);
  }

  handleSync(res) {
    const rooms = res.rooms || {};
    const changed = new Set();
    for (const event of (res.account_data && res.account_data.events) || []) {
      if (event.type === "m.direct" && event.content && typeof event.content === "object") {
        this.direct = event.content;
        for (const room of this.rooms.values()) room.isDirect = this.isDirectRoom(room.id);
        changed.add(null);
      }
    }
    for (const [id, data] of Object.entries(rooms.join || {})) {
      this.handleJoined(this.room(id), data);
      changed.add(id);
    }
    for (const [id, data] of Object.entries(rooms.invite || {})) {
      this.handleInvite(this.room(id), data);
      changed.add(id);
    }
    for (const id of Object.keys(rooms.leave || {})) {
      const room = this.rooms.get(id);
      if (room && room.membership !== "join") {
        this.rooms.delete(id);
        changed.add(id);
      } else if (room) {
        // A leave we may have made ourselves (decline, leave): the room is gone for us.
        const data = rooms.leave[id];
        const mine = ((data.timeline && data.timeline.events) || []).concat((data.state && data.state.events) || [])
          .some((e) => e.type === "m.room.member" && e.state_key === this.userId);
        if (mine) {
          this.rooms.delete(id);
          changed.add(id);
        }
      }
    }
    if (changed.size) this.hooks.roomsChanged([...changed]);
  }

  isDirectRoom(roomId) {
    return Object.values(this.direct || {}).some((ids) => Array.isArray(ids) && ids.includes(roomId));
  }

  applyState(room, event) {
    if (typeof event.state_key !== "string") return;
    room.state.set(`${event.type}\u0000${event.state_key}`, event);
    if (event.type === "m.room.member") {
      const content = event.content || {};
      room.members.set(event.state_key, {
        membership: content.membership,
        displayname: content.displayname,
        avatar_url: content.avatar_url,
      });
      if (event.state_key === this.userId && content.is_direct) room.isDirect = true;
      if (event.state_key === this.userId && content.membership === "join") {
        this.profile.displayname = content.displayname || this.profile.displayname;
        this.profile.avatar_url = content.avatar_url || this.profile.avatar_url;
      }
    }
  }

  handleInvite(room, data) {
    room.membership = "invite";
    room.inviteState = (data.invite_state && data.invite_state.events) || [];
    for (const event of room.inviteState) {
      this.applyState(room, event);
      if (event.type === "m.room.member" && event.state_key === this.userId) {
        room.inviter = event.sender;
        room.lastTs = Math.max(room.lastTs, event.origin_server_ts || Date.now());
        if (event.content && event.content.is_direct) room.isDirect = true;
      }
    }
    if (!room.lastTs) room.lastTs = Date.now();
  }

  handleJoined(room, data) {
    const first = room.membership !== "join" || (room.events.length === 0 && room.prevBatch === null);
    room.membership = "join";
    room.isDirect = room.isDirect || this.isDirectRoom(room.id);
    const boundary = room.nextKey; // events with smaller keys were known before this response
    for (const event of (data.state && data.state.events) || []) this.applyState(room, event);
    const timeline = data.timeline || {};
    const events = timeline.events || [];
    if (timeline.limited && room.events.length) this.resetTimeline(room);
    if (first || (timeline.limited && room.events.length === 0)) {
      room.prevBatch = timeline.prev_batch || null;
      room.atStart = !timeline.prev_batch || (events.length > 0 && events[0].type === "m.room.create");
    }
    let added = false;
    for (const event of events) {
      if (typeof event.state_key === "string") this.applyState(room, event);
      if (this.addLive(room, event)) added = true;
    }
    this.resolveReceipts(room);
    for (const event of (data.ephemeral && data.ephemeral.events) || []) {
      if (event.type === "m.typing") {
        const ids = (event.content && event.content.user_ids) || [];
        room.typing = ids.filter((id) => id !== this.userId);
        this.hooks.typing(room);
      } else if (event.type === "m.receipt") {
        this.applyReceipts(room, event.content || {}, boundary);
      }
    }
    if (data.unread_notifications) {
      const before = room.notifications;
      room.notifications = data.unread_notifications.notification_count || 0;
      room.highlights = data.unread_notifications.highlight_count || 0;
      // The server's push rules said a new event notifies (counts went up with it):
      // the page may show a browser notification for the newest one from someone else.
      const newest = [...events].reverse().find((e) => e.sender !== this.userId && typeof e.state_key !== "string");
      if (this.synced && !first && room.notifications > before && newest && this.hooks.notify) {
        this.hooks.notify(room, newest, room.highlights > 0);
      }
    }
    if (added || first) this.hooks.timeline(room, { append: added });
  }

  resetTimeline(room) {
    room.events = [];
    room.byId.clear();
    room.minKey = room.nextKey;
    room.atStart = false;
    for (const [user, mark] of room.readUpTo) room.readUpTo.set(user, { key: -Infinity, eventId: mark.eventId });
    room.myReceiptKey = -Infinity;
  }

  /** Add an event at the live end; false when it was already there (refresh its count). */
  addLive(room, event) {
    if (!event.event_id) return false;
    const unsigned = event.unsigned || {};
    const known = room.byId.get(event.event_id);
    if (known) {
      if (typeof unsigned[UNREAD_KEY] === "number" && unsigned[UNREAD_KEY] !== known._unread) {
        known._unread = unsigned[UNREAD_KEY];
        this.hooks.timeline(room, { update: true });
      }
      return false;
    }
    const item = { ...event, _key: room.nextKey++, _unread: unsigned[UNREAD_KEY] };
    const pending = this.takePending(room, unsigned.transaction_id, event.event_id);
    if (pending) {
      item._txnId = pending.txnId;
      item._localUrl = pending.localUrl;
    }
    room.events.push(item);
    room.byId.set(item.event_id, item);
    room.lastTs = Math.max(room.lastTs, event.origin_server_ts || 0);
    return true;
  }

  takePending(room, txnId, eventId) {
    const index = room.pending.findIndex(
      (p) => (txnId && p.txnId === txnId) || (eventId && p.eventId === eventId),
    );
    if (index < 0) return null;
    const [pending] = room.pending.splice(index, 1);
    pending.confirmed = true;
    this.dropFromOutbox(pending.txnId);
    return pending;
  }

  /** Give receipts whose event was not loaded yet their place once it is. */
  resolveReceipts(room) {
    for (const [user, mark] of room.readUpTo) {
      if (mark.key === -Infinity && mark.eventId && room.byId.has(mark.eventId)) {
        room.readUpTo.set(user, { key: room.byId.get(mark.eventId)._key, eventId: mark.eventId });
      }
    }
  }

  /**
   * m.receipt: a reader who had not read my messages up to the receipted event
   * has now, so each such message's unread number falls by one. Messages that
   * arrived in this same response were counted by the server with these
   * receipts already, so only those known before (key < boundary) change.
   */
  applyReceipts(room, content, boundary) {
    let changed = false;
    for (const [eventId, types] of Object.entries(content)) {
      for (const type of ["m.read", "m.read.private"]) {
        const readers = types && types[type];
        if (!readers) continue;
        for (const user of Object.keys(readers)) {
          const target = room.byId.get(eventId);
          const before = room.readUpTo.get(user) || { key: -Infinity, eventId: null };
          if (!target) {
            if (!before.eventId) room.readUpTo.set(user, { key: -Infinity, eventId });
            continue;
          }
          if (target._key <= before.key) continue;
          if (user !== this.userId) {
            for (const item of room.events) {
              if (item._key > target._key) break;
              if (item._key <= before.key || item._key >= boundary) continue;
              if (item.sender === this.userId && item.sender !== user && item._unread > 0) {
                item._unread -= 1;
                changed = true;
              }
            }
          } else {
            room.myReceiptKey = Math.max(room.myReceiptKey, target._key);
          }
          room.readUpTo.set(user, { key: target._key, eventId });
        }
      }
    }
    if (changed) this.hooks.timeline(room, { update: true });
  }

  // --- history ------------------------------------------------------------------

  /** Load one older page (dir=b from prev_batch); resolves to the number of events added. */
  loadOlder(room) {
    if (room.atStart || !room.prevBatch) return Promise.resolve(0);
    if (room.paginating) return room.paginating;
    const from = room.prevBatch;
    room.paginating = (async () => {
      try {
        const res = await this.api.client("GET", `/rooms/${encode(room.id)}/messages`, {
          params: { dir: "b", from, limit: PAGE_LIMIT },
        });
        if (room.prevBatch !== from) return 0; // the timeline was reset meanwhile
        const chunk = res.chunk || [];
        const older = [];
        for (const event of chunk) {
          if (!event.event_id || room.byId.has(event.event_id)) continue;
          const unsigned = event.unsigned || {};
          const item = { ...event, _key: --room.minKey, _unread: unsigned[UNREAD_KEY] };
          room.byId.set(item.event_id, item);
          older.push(item);
          if (event.type === "m.room.create") room.atStart = true;
        }
        older.reverse();
        room.events = older.concat(room.events);
        room.prevBatch = res.end || null;
        if (!res.end || chunk.length === 0) room.atStart = true;
        this.resolveReceipts(room);
        this.hooks.timeline(room, { prepend: older.length });
        return older.length;
      } finally {
        room.paginating = null;
      }
    })();
    return room.paginating;
  }

  // --- sending --------------------------------------------------------------------

  /** Show a message at once and send it until the server acknowledges it (same txnId). */
  send(roomId, content, extra = {}) {
    const room = this.room(roomId);
    const pending = {
      txnId: newTxnId(),
      roomId,
      type: "m.room.message",
      content,
      status: "sending",
      ts: Date.now(),
      file: extra.file || null,
      localUrl: extra.localUrl || null,
      eventId: null,
      unread: null,
      error: null,
    };
    room.pending.push(pending);
    room.lastTs = Math.max(room.lastTs, pending.ts);
    this.saveOutbox();
    this.hooks.timeline(room, { append: true, mine: true });
    this.hooks.roomsChanged([roomId]);
    this.kickQueue(roomId);
    return pending;
  }

  retry(pending) {
    pending.status = "sending";
    pending.error = null;
    this.hooks.timeline(this.room(pending.roomId), { update: true });
    this.kickQueue(pending.roomId);
  }

  discard(pending) {
    const room = this.room(pending.roomId);
    room.pending = room.pending.filter((p) => p !== pending);
    this.dropFromOutbox(pending.txnId);
    if (pending.localUrl) URL.revokeObjectURL(pending.localUrl);
    this.hooks.timeline(room, { update: true });
  }

  kickAllQueues() {
    for (const room of this.rooms.values()) if (room.pending.length) this.kickQueue(room.id);
  }

  kickQueue(roomId) {
    if (this.queues.has(roomId)) {
      this.wake();
      return;
    }
    const loop = this.sendLoop(roomId).finally(() => this.queues.delete(roomId));
    this.queues.set(roomId, loop);
  }

  /** One room's sends, in order; each retried with its own txnId until answered. */
  async sendLoop(roomId) {
    const room = this.room(roomId);
    let backoff = BACKOFF_START_MS;
    while (this.running) {
      const pending = room.pending.find((p) => p.status === "sending" && !p.eventId);
      if (!pending) return;
      try {
        if (pending.file && !pending.content.url) {
          const uploaded = await this.api.upload(pending.file, pending.content.body);
          pending.content = { ...pending.content, url: uploaded.content_uri };
          this.saveOutbox();
        }
        const res = await this.api.client(
          "PUT",
          `/rooms/${encode(roomId)}/send/${encode(pending.type)}/${encode(pending.txnId)}`,
          { body: pending.content },
        );
        backoff = BACKOFF_START_MS;
        pending.eventId = res.event_id;
        pending.status = "sent";
        pending.unread = Math.max(0, room.joinedMembers().filter((id) => id !== this.userId).length);
        this.dropFromOutbox(pending.txnId);
        if (room.byId.has(res.event_id)) {
          // The sync already delivered it: the echo goes, the timeline copy stays.
          this.takePending(room, pending.txnId, res.event_id);
        }
        this.hooks.timeline(room, { update: true });
      } catch (err) {
        if (!this.running) return;
        if (err instanceof MatrixError && err.status === 401) return;
        if (isTransient(err) || err instanceof NetworkError) {
          const wait = err.retryAfterMs ? Math.max(err.retryAfterMs, 500) : jitter(backoff);
          backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
          await sleep(wait, this.wakeable);
        } else {
          pending.status = "failed";
          pending.error = err.message || String(err);
          this.hooks.timeline(room, { update: true });
        }
      }
    }
  }

  // The outbox survives a reload: text sends (and media sends whose upload finished)
  // not yet acknowledged are shown again and sent with their original txnId.
  saveOutbox() {
    const entries = [];
    for (const room of this.rooms.values()) {
      for (const p of room.pending) {
        if (p.eventId || p.status === "failed" || (p.file && !p.content.url)) continue;
        entries.push({ txnId: p.txnId, roomId: p.roomId, type: p.type, content: p.content, ts: p.ts });
      }
    }
    try {
      if (entries.length) localStorage.setItem(this.outboxKey, JSON.stringify(entries));
      else localStorage.removeItem(this.outboxKey);
    } catch {
      /* storage full or disabled: the in-memory outbox still retries */
    }
  }

  dropFromOutbox() {
    this.saveOutbox();
  }

  restoreOutbox() {
    let entries = [];
    try {
      entries = JSON.parse(localStorage.getItem(this.outboxKey) || "[]");
    } catch {
      entries = [];
    }
    for (const e of entries) {
      if (!e || !e.txnId || !e.roomId) continue;
      const room = this.room(e.roomId);
      room.pending.push({
        txnId: e.txnId, roomId: e.roomId, type: e.type || "m.room.message", content: e.content,
        status: "sending", ts: e.ts || Date.now(), file: null, localUrl: null, eventId: null,
        unread: null, error: null,
      });
    }
  }

  // --- receipts and typing ------------------------------------------------------------

  /** m.read on the given event if it is later than what I have already marked. */
  async markRead(room, eventId) {
    const item = room.byId.get(eventId);
    if (!item || item._key <= room.myReceiptKey) return;
    const previous = room.myReceiptKey;
    room.myReceiptKey = item._key;
    if (item === room.events[room.events.length - 1]) {
      room.notifications = 0;
      room.highlights = 0;
      this.hooks.roomsChanged([room.id]);
    }
    try {
      await this.api.client("POST", `/rooms/${encode(room.id)}/receipt/m.read/${encode(eventId)}`, { body: {} });
    } catch {
      if (room.myReceiptKey === item._key) room.myReceiptKey = previous; // retried on the next look
    }
  }

  async setTyping(roomId, typing) {
    try {
      await this.api.client("PUT", `/rooms/${encode(roomId)}/typing/${encode(this.userId)}`, {
        body: typing ? { typing: true, timeout: 6000 } : { typing: false },
        timeoutMs: 10000,
      });
    } catch {
      /* typing is best effort */
    }
  }

  // --- rooms ------------------------------------------------------------------------

  async createRoom({ name, topic, invite, isPublic }) {
    const body = {
      preset: isPublic ? "public_chat" : "private_chat",
      visibility: isPublic ? "public" : "private",
      invite,
    };
    if (name) body.name = name;
    if (topic) body.topic = topic;
    const res = await this.api.client("POST", "/createRoom", { body });
    return res.room_id;
  }

  async startDirect(userId) {
    for (const room of this.rooms.values()) {
      const ids = (this.direct && this.direct[userId]) || [];
      if (room.membership === "join" && ids.includes(room.id)) return room.id;
    }
    const res = await this.api.client("POST", "/createRoom", {
      body: { is_direct: true, invite: [userId], preset: "trusted_private_chat" },
    });
    await this.addDirect(userId, res.room_id);
    return res.room_id;
  }

  async addDirect(userId, roomId) {
    const direct = { ...(this.direct || {}) };
    const ids = Array.isArray(direct[userId]) ? [...direct[userId]] : [];
    if (!ids.includes(roomId)) ids.push(roomId);
    direct[userId] = ids;
    this.direct = direct;
    const room = this.rooms.get(roomId);
    if (room) room.isDirect = true;
    try {
      await this.api.client("PUT", `/user/${encode(this.userId)}/account_data/m.direct`, { body: direct });
    } catch {
      /* the room works without the marker */
    }
  }

  async join(roomIdOrAlias) {
    const room = this.rooms.get(roomIdOrAlias);
    const res = await this.api.client("POST", `/join/${encode(roomIdOrAlias)}`, { body: {} });
    if (room && room.membership === "invite" && room.isDirect && room.inviter) {
      this.addDirect(room.inviter, room.id);
    }
    return res.room_id;
  }

  async leave(roomId) {
    await this.api.client("POST", `/rooms/${encode(roomId)}/leave`, { body: {} });
    this.rooms.delete(roomId);
    this.hooks.roomsChanged([roomId]);
  }

  publicRooms(term) {
    const body = { limit: 50 };
    if (term) body.filter = { generic_search_term: term };
    return this.api.client("POST", "/publicRooms", { body });
  }

  async loadProfile() {
    try {
      const profile = await this.api.client("GET", `/profile/${encode(this.userId)}`);
      this.profile = { displayname: profile.displayname || null, avatar_url: profile.avatar_url || null };
    } catch {
      /* shown as the user id */
    }
    return this.profile;
  }

  async setDisplayName(name) {
    await this.api.client("PUT", `/profile/${encode(this.userId)}/displayname`, { body: { displayname: name } });
    this.profile.displayname = name;
  }

  async setAvatar(file) {
    const uploaded = await this.api.upload(file, file.name);
    await this.api.client("PUT", `/profile/${encode(this.userId)}/avatar_url`, {
      body: { avatar_url: uploaded.content_uri },
    });
    this.profile.avatar_url = uploaded.content_uri;
  }

  roomName(room) {
    const name = room.stateEvent("m.room.name");
    if (name && name.content && typeof name.content.name === "string" && name.content.name.trim()) {
      return name.content.name.trim();
    }
    const alias = room.stateEvent("m.room.canonical_alias");
    if (alias && alias.content && alias.content.alias) return alias.content.alias;
    if (room.membership === "invite" && room.inviter) return room.displayName(room.inviter);
    const others = [...room.members.entries()]
      .filter(([id, m]) => id !== this.userId && (m.membership === "join" || m.membership === "invite"))
      .map(([id]) => room.displayName(id))
      .sort();
    if (others.length === 0) return "Empty room";
    if (others.length <= 2) return others.join(" and ");
    return `${others.slice(0, 2).join(", ")} and ${others.length - 2} others`;
  }

  sortedRooms() {
    const activity = (room) => {
      const last = room.pending.length ? room.pending[room.pending.length - 1].ts : 0;
      return Math.max(room.lastTs, last);
    };
    return [...this.rooms.values()]
      .filter((room) => room.membership === "join" || room.membership === "invite")
      .sort((a, b) => {
        if ((a.membership === "invite") !== (b.membership === "invite")) return a.membership === "invite" ? -1 : 1;
        return activity(b) - activity(a);
      });
  }
}
