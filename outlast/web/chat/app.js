// Outlast web chat: the UI. Everything it knows comes from the Client-Server API
// through Client (client.js); it renders rooms and timelines into the DOM.

import { Api, MatrixError, MediaCache, NetworkError } from "./matrix.js";
import { Client } from "./client.js";

const SESSION_KEY = "outlast.session";
const GROUP_GAP_MS = 5 * 60 * 1000;
const THUMB = { width: 320, height: 320, method: "scale" };
const MAX_THUMB_PX = 260;
const PHONE_QUERY = window.matchMedia("(max-width: 700px)");

const $ = (id) => document.getElementById(id);
const api = new Api("");
const media = new MediaCache(api);
let client = null;
let currentRoomId = null;
let registerMode = false;
let bannerTimer = null;
let receiptTimer = null;
let typingSent = 0;
let typingStopTimer = null;
const rendered = new Map(); // DOM key -> {el, sig}

// --- small DOM helpers ------------------------------------------------------------

function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function localpart(userId) {
  return userId.replace(/^@/, "").split(":")[0];
}

function hashIndex(text, n) {
  let hash = 0;
  for (const ch of text) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return hash % n;
}

function initials(name) {
  const words = name.replace(/^[@#!]/, "").trim().split(/\s+/).filter(Boolean);
  if (!words.length) return "?";
  const first = [...words[0]][0] || "?";
  const second = words.length > 1 ? [...words[1]][0] || "" : "";
  return (first + second).toUpperCase();
}

/** A round avatar: initials on a colour from the id, replaced by the picture once fetched. */
function fillAvatar(node, seed, name, mxc, px = 40) {
  node.replaceChildren();
  node.className = node.className.replace(/\bavatar-c\d\b/g, "").trim();
  node.classList.add("avatar", `avatar-c${hashIndex(seed || name, 8)}`);
  node.textContent = initials(name || seed || "?");
  if (mxc) {
    const size = { width: px * 2, height: px * 2, method: "crop" };
    media.url(mxc, size).then((url) => {
      const img = h("img", { src: url, alt: "" });
      node.replaceChildren(img);
    }).catch(() => {});
  }
  return node;
}

function avatar(seed, name, mxc, cls = "avatar-sm", px = 32) {
  return fillAvatar(h("span", { class: `avatar ${cls}`, "aria-hidden": "true" }), seed, name, mxc, px);
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
const shortDay = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

function dayKey(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

function listTime(ts) {
  if (!ts) return "";
  return dayKey(ts) === dayKey(Date.now()) ? timeFormat.format(ts) : shortDay.format(ts);
}

function formatSize(bytes) {
  if (typeof bytes !== "number") return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function errorText(err) {
  if (err instanceof MatrixError) {
    const known = {
      M_USER_IN_USE: "That username is taken.",
      M_INVALID_USERNAME: "Usernames may use lowercase letters, digits and . _ = - / only.",
      M_FORBIDDEN: err.message || "Not allowed.",
      M_NOT_FOUND: err.message || "Not found.",
      M_LIMIT_EXCEEDED: "Too many requests; try again in a moment.",
    };
    return known[err.errcode] || err.message || err.errcode;
  }
  if (err instanceof NetworkError) return "Can't reach the server. Check your connection and try again.";
  return String((err && err.message) || err);
}

// --- session ------------------------------------------------------------------------

function loadSession() {
  try {
    const session = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
    return session && session.access_token && session.user_id ? session : null;
  } catch {
    return null;
  }
}

function showAuth(message = "") {
  $("app").hidden = true;
  $("auth-view").hidden = false;
  $("auth-error").textContent = message;
  $("auth-server").textContent = `Server: ${location.host}`;
  setRegisterMode(false);
  $("auth-username").focus();
}

function setRegisterMode(on) {
  registerMode = on;
  $("auth-title").textContent = on ? "Create an account" : "Sign in";
  $("auth-submit").textContent = on ? "Create account" : "Sign in";
  $("auth-switch-text").textContent = on ? "Already have an account?" : "New here?";
  $("auth-switch").textContent = on ? "Sign in instead" : "Create an account";
  $("auth-password").autocomplete = on ? "new-password" : "current-password";
  $("auth-error").textContent = "";
}

async function submitAuth(event) {
  event.preventDefault();
  const username = $("auth-username").value.trim().replace(/^@/, "").split(":")[0].toLowerCase();
  const password = $("auth-password").value;
  if (!username || !password) {
    $("auth-error").textContent = "Enter a username and a password.";
    return;
  }
  const button = $("auth-submit");
  button.disabled = true;
  $("auth-error").textContent = "";
  try {
    const res = registerMode ? await api.register(username, password) : await api.login(username, password);
    const session = { user_id: res.user_id, access_token: res.access_token, device_id: res.device_id };
    localStorage.setItem(SESSION_KEY, JSON.stringify(session));
    $("auth-password").value = "";
    startApp(session);
  } catch (err) {
    $("auth-error").textContent =
      err instanceof MatrixError && err.errcode === "M_FORBIDDEN" && !registerMode
        ? "Wrong username or password."
        : errorText(err);
  } finally {
    button.disabled = false;
  }
}

async function logout() {
  const old = client;
  closeDialogs();
  try {
    if (old) await api.logout();
  } catch {
    /* the token is dropped locally either way */
  }
  endSession("");
}

function endSession(message) {
  if (client) client.stop();
  client = null;
  currentRoomId = null;
  localStorage.removeItem(SESSION_KEY);
  api.token = null;
  media.clear();
  rendered.clear();
  $("messages").replaceChildren();
  $("room-list").replaceChildren();
  setBanner(null);
  document.title = "Outlast Chat";
  showAuth(message);
}

function startApp(session) {
  api.token = session.access_token;
  $("auth-view").hidden = true;
  $("app").hidden = false;
  $("sidebar-status").hidden = false;
  $("sidebar-status").textContent = "Loading your conversations…";
  showRoom(null);
  client = new Client(api, session, {
    ready: onReady,
    roomsChanged: () => scheduleRoomList(),
    timeline: onTimeline,
    typing: (room) => {
      if (room.id === currentRoomId) renderTyping(room);
    },
    connection: onConnection,
    loggedOut: (message) => endSession(message),
    notify: showBrowserNotification,
  });
  renderMe();
  client.loadProfile().then(renderMe);
  client.start();
}

function renderMe() {
  if (!client) return;
  const name = client.profile.displayname || localpart(client.userId);
  $("me-name").textContent = name;
  $("me-id").textContent = client.userId;
  fillAvatar($("me-avatar"), client.userId, name, client.profile.avatar_url, 36);
}

// --- browser notifications -----------------------------------------------------------------
// Shown for this open tab only (no service worker), when the user allowed them and the
// room is not the one in front of them. The server's push rules decide what notifies:
// a room's notification count going up with a new event is the signal.

function notificationsSupported() {
  return typeof window.Notification === "function";
}

function showBrowserNotification(room, event, highlight) {
  if (!notificationsSupported() || Notification.permission !== "granted") return;
  if (!document.hidden && room.id === currentRoomId && chatVisible()) return;
  const title = client.roomName(room);
  const content = event.content || {};
  const sender = room.displayName(event.sender);
  const body = event.type === "m.room.encrypted" ? `${sender}: encrypted message`
    : `${sender}: ${content.msgtype === "m.image" ? "Photo" : String(content.body || "")}`.slice(0, 200);
  const note = new Notification(title, { body, tag: room.id, silent: !highlight && room.members.size > 2 });
  note.onclick = () => {
    window.focus();
    openRoom(room.id);
    note.close();
  };
}

function renderNotificationSetting() {
  const button = $("btn-notifications");
  const status = $("notifications-status");
  if (!notificationsSupported()) {
    button.hidden = true;
    status.textContent = "This browser cannot show notifications.";
    return;
  }
  const permission = Notification.permission;
  button.hidden = permission !== "default";
  status.textContent = permission === "granted" ? "Notifications are on for this tab."
    : permission === "denied" ? "Notifications are blocked in this browser's settings."
      : "Get a notification when a message arrives while you look elsewhere.";
}

async function enableNotifications() {
  if (!notificationsSupported()) return;
  await Notification.requestPermission();
  renderNotificationSetting();
}

function onReady() {
  $("sidebar-status").hidden = true;
  scheduleRoomList();
  if (currentRoomId) showRoom(currentRoomId);
}

// --- connection banner ------------------------------------------------------------------

function onConnection(ok) {
  if (!ok) setBanner("Connection lost. Reconnecting…", "warn");
  else if (!$("banner").hidden) {
    setBanner("Connected again.", "ok");
    clearTimeout(bannerTimer);
    bannerTimer = setTimeout(() => setBanner(null), 1500);
  }
}

function setBanner(text, kind) {
  clearTimeout(bannerTimer);
  const banner = $("banner");
  if (!text) {
    banner.hidden = true;
    document.body.classList.remove("has-banner");
    return;
  }
  $("banner-text").textContent = text;
  banner.classList.toggle("ok", kind === "ok");
  $("banner-retry").hidden = kind === "ok";
  banner.hidden = false;
  document.body.classList.add("has-banner");
}

// --- room list ------------------------------------------------------------------------------

let roomListQueued = false;
function scheduleRoomList() {
  if (roomListQueued) return;
  roomListQueued = true;
  requestAnimationFrame(() => {
    roomListQueued = false;
    renderRoomList();
    if (currentRoomId) renderHeader();
  });
}

function previewText(room) {
  const pending = room.pending[room.pending.length - 1];
  const last = room.lastMessage();
  const event = pending && (!last || pending.ts >= (last.origin_server_ts || 0)) ? { sender: client.userId, content: pending.content } : last;
  if (!event) return room.membership === "invite" ? "" : "No messages yet";
  const content = event.content || {};
  const who = event.sender === client.userId ? "You: " : room.members.size > 2 ? `${room.displayName(event.sender)}: ` : "";
  const body = { "m.image": "Photo", "m.file": `File: ${content.body || "file"}`, "m.video": "Video", "m.audio": "Audio" }[content.msgtype];
  if (!content.msgtype) return `${who}Message deleted`;
  return who + (body || String(content.body || ""));
}

function roomAvatarSource(room) {
  const avatarEvent = room.stateEvent("m.room.avatar");
  const url = avatarEvent && avatarEvent.content && avatarEvent.content.url;
  if (url) return url;
  if (room.isDirect || room.members.size <= 2) {
    const other = [...room.members.keys()].find((id) => id !== client.userId);
    if (other) return room.avatarUrl(other);
  }
  return null;
}

function renderRoomList() {
  if (!client) return;
  const list = $("room-list");
  const rooms = client.sortedRooms();
  let totalUnread = 0;
  const items = rooms.map((room) => {
    const name = client.roomName(room);
    if (room.membership === "invite") {
      const inviter = room.inviter ? room.displayName(room.inviter) : "Someone";
      return h("li", { class: "room-item invite", "data-room-id": room.id },
        h("div", { class: "room invite-card" },
          avatar(room.id, name, roomAvatarSource(room), "avatar-md", 40),
          h("div", { class: "room-main" },
            h("div", { class: "room-top" }, h("span", { class: "room-name", text: name }), h("span", { class: "badge badge-new", text: "Invite" })),
            h("div", { class: "room-preview", text: `${inviter} invited you${room.isDirect ? " to a direct chat" : ""}` }),
            h("div", { class: "invite-actions" },
              h("button", { type: "button", class: "btn btn-primary btn-small", "aria-label": `Accept invitation to ${name}`, onclick: () => acceptInvite(room) }, "Accept"),
              h("button", { type: "button", class: "btn btn-small", "aria-label": `Decline invitation to ${name}`, onclick: () => declineInvite(room) }, "Decline")))));
    }
    const unread = room.id === currentRoomId && chatVisible() ? 0 : room.notifications;
    totalUnread += unread;
    const preview = previewText(room);
    const time = listTime(Math.max(room.lastTs, room.pending.length ? room.pending[room.pending.length - 1].ts : 0));
    const label = `${name}${unread ? `, ${unread} unread` : ""}`;
    return h("li", { class: "room-item", "data-room-id": room.id },
      h("button", {
        type: "button",
        class: `room${room.id === currentRoomId ? " active" : ""}`,
        "aria-current": room.id === currentRoomId ? "true" : null,
        "aria-label": label,
        onclick: () => openRoom(room.id),
      },
      avatar(room.id, name, roomAvatarSource(room), "avatar-md", 40),
      h("span", { class: "room-main" },
        h("span", { class: "room-top" },
          h("span", { class: "room-name", text: name }),
          h("span", { class: "room-time", text: time })),
        h("span", { class: "room-bottom" },
          h("span", { class: "room-preview", text: preview }),
          unread ? h("span", { class: `badge${room.highlights ? " badge-highlight" : ""}`, "aria-hidden": "true", text: unread > 99 ? "99+" : String(unread) }) : null))));
  });
  if (!items.length && client.synced) {
    items.push(h("li", { class: "room-list-empty muted" },
      h("p", { text: "No conversations yet." }),
      h("p", { text: "Start a direct chat, create a group, or browse public rooms with the buttons above." })));
  }
  const focusedRoom = document.activeElement && document.activeElement.closest && document.activeElement.closest(".room-item");
  const focusedId = focusedRoom && focusedRoom.dataset.roomId;
  list.replaceChildren(...items);
  if (focusedId) {
    const again = list.querySelector(`.room-item[data-room-id="${CSS.escape(focusedId)}"] button`);
    if (again) again.focus();
  }
  document.title = totalUnread ? `(${totalUnread}) Outlast Chat` : "Outlast Chat";
}

async function acceptInvite(room) {
  try {
    await client.join(room.id);
    openRoom(room.id);
  } catch (err) {
    alertError(err);
  }
}

async function declineInvite(room) {
  try {
    await client.leave(room.id);
  } catch (err) {
    alertError(err);
  }
}

function alertError(err) {
  setBanner(errorText(err), "warn");
  $("banner-retry").hidden = true;
  bannerTimer = setTimeout(() => setBanner(client && !client.connected && client.failures ? "Connection lost. Reconnecting…" : null, "warn"), 4000);
}

// --- the open room ------------------------------------------------------------------------------

function chatVisible() {
  return !PHONE_QUERY.matches || document.body.classList.contains("show-chat");
}

function openRoom(roomId) {
  if (currentRoomId && currentRoomId !== roomId) flushReceipt();
  currentRoomId = roomId;
  document.body.classList.add("show-chat");
  showRoom(roomId);
  scheduleRoomList();
  if (!PHONE_QUERY.matches) $("composer-input").focus(); // on a phone: no keyboard popping up
}

function closeRoom() {
  flushReceipt();
  document.body.classList.remove("show-chat");
  scheduleRoomList();
  const button = document.querySelector(`.room-item[data-room-id="${CSS.escape(currentRoomId || "")}"] button`);
  if (button) button.focus();
}

function showRoom(roomId) {
  const room = roomId && client && client.rooms.get(roomId);
  rendered.clear();
  $("messages").replaceChildren();
  if (!room || room.membership !== "join") {
    $("chat-room").hidden = true;
    $("chat-empty").hidden = false;
    if (roomId && client && client.synced && !room) {
      $("chat-empty").querySelector("p").textContent = "Opening the room…";
    } else {
      $("chat-empty").querySelector("p").textContent = "Pick a conversation, or start a new one.";
    }
    return;
  }
  $("chat-empty").hidden = true;
  $("chat-room").hidden = false;
  renderHeader();
  renderTimeline(room, { open: true });
  renderTyping(room);
  fillHistory(room);
}

function renderHeader() {
  const room = client && client.rooms.get(currentRoomId);
  if (!room) return;
  const name = client.roomName(room);
  $("room-name").textContent = name;
  const count = room.joinedMembers().length;
  const topicEvent = room.stateEvent("m.room.topic");
  const topic = topicEvent && topicEvent.content && topicEvent.content.topic;
  $("room-sub").textContent = [room.isDirect ? "Direct chat" : `${count} member${count === 1 ? "" : "s"}`, topic].filter(Boolean).join(" · ");
  fillAvatar($("room-avatar"), room.id, name, roomAvatarSource(room), 40);
}

function onTimeline(room, change) {
  if (room.id === currentRoomId) {
    if ($("chat-room").hidden) showRoom(room.id);
    else renderTimeline(room, change);
  }
  scheduleRoomList();
}

/** Fill the view with history until it scrolls (or the room's start is reached). */
async function fillHistory(room) {
  const log = $("log");
  for (let i = 0; i < 10; i++) {
    if (room.id !== currentRoomId || room.atStart) break;
    if (log.scrollHeight > log.clientHeight + 200) break;
    const added = await client.loadOlder(room).catch(() => -1);
    if (added < 0) break;
  }
  renderHistoryStatus(room);
}

/** Scrolled near the top: fetch the previous page, and again while still near the top. */
function loadOlderIfNearTop() {
  const room = client && client.rooms.get(currentRoomId);
  const log = $("log");
  if (!room || log.scrollTop >= 300 || room.atStart || room.paginating) return;
  client.loadOlder(room).then((added) => {
    renderHistoryStatus(room);
    if (added > 0 && room.id === currentRoomId) requestAnimationFrame(loadOlderIfNearTop);
  }).catch(() => renderHistoryStatus(room));
  renderHistoryStatus(room);
}

function renderHistoryStatus(room) {
  const history = $("history");
  if (room.atStart) history.textContent = "This is the beginning of the conversation.";
  else if (room.paginating) history.textContent = "Loading earlier messages…";
  else history.textContent = "";
}

function systemText(room, event) {
  const content = event.content || {};
  const who = room.displayName(event.sender);
  switch (event.type) {
    case "m.room.create":
      return `${who} created the room`;
    case "m.room.name":
      return content.name ? `${who} named the room “${content.name}”` : `${who} removed the room name`;
    case "m.room.topic":
      return content.topic ? `${who} set the topic: ${content.topic}` : null;
    case "m.room.member": {
      const target = content.displayname || localpart(event.state_key || "");
      const prev = (event.unsigned && event.unsigned.prev_content) || {};
      switch (content.membership) {
        case "join":
          if (prev.membership === "join") {
            if (prev.displayname !== content.displayname) return `${prev.displayname || localpart(event.state_key)} is now ${target}`;
            return null;
          }
          return `${target} joined`;
        case "invite":
          return `${who} invited ${content.displayname || localpart(event.state_key || "")}`;
        case "leave":
          return event.sender === event.state_key ? `${room.displayName(event.state_key)} left` : `${who} removed ${room.displayName(event.state_key)}`;
        case "ban":
          return `${who} banned ${room.displayName(event.state_key)}`;
        default:
          return null;
      }
    }
    default:
      return null;
  }
}

/** What the timeline shows, oldest first: day separators, system lines, messages, echoes. */
function timelineEntries(room) {
  const entries = [];
  let lastDay = null;
  let prev = null;
  const push = (entry, ts) => {
    const day = dayKey(ts);
    if (day !== lastDay) {
      entries.push({ key: `d:${day}`, kind: "day", ts, sig: day });
      lastDay = day;
      prev = null;
    }
    entries.push(entry);
  };
  for (const item of room.events) {
    const ts = item.origin_server_ts || 0;
    if (item.type === "m.room.message") {
      const first = !prev || prev.sender !== item.sender || ts - prev.ts > GROUP_GAP_MS;
      const entry = { key: item._txnId ? `t:${item._txnId}` : `e:${item.event_id}`, kind: "msg", item, first, ts };
      push(entry, ts);
      prev = { sender: item.sender, ts };
    } else if (item.type === "m.room.redaction") {
      continue;
    } else {
      const text = systemText(room, item);
      if (!text) continue;
      push({ key: `e:${item.event_id}`, kind: "sys", text, ts, sig: text }, ts);
      prev = null;
    }
  }
  for (const pending of room.pending) {
    const ts = pending.ts;
    const first = !prev || prev.sender !== client.userId || ts - prev.ts > GROUP_GAP_MS;
    push({ key: `t:${pending.txnId}`, kind: "pending", pending, first, ts }, ts);
    prev = { sender: client.userId, ts };
  }
  for (const entry of entries) {
    if (entry.kind === "msg") {
      const it = entry.item;
      entry.sig = `m|${entry.first}|${it._unread}|${it.event_id}|${room.displayName(it.sender)}|${room.avatarUrl(it.sender) || ""}|${it.content && it.content.body}`;
    } else if (entry.kind === "pending") {
      const p = entry.pending;
      entry.sig = `p|${entry.first}|${p.status}|${p.unread}|${p.eventId}`;
    }
  }
  return entries;
}

function renderTimeline(room, change = {}) {
  const log = $("log");
  const container = $("messages");
  const fromBottom = log.scrollHeight - log.scrollTop - log.clientHeight;
  const stick = change.open || change.mine || fromBottom < 120;
  const entries = timelineEntries(room);
  const keep = new Set(entries.map((e) => e.key));
  for (const [key, entry] of rendered) {
    if (!keep.has(key)) {
      entry.el.remove();
      rendered.delete(key);
    }
  }
  let cursor = container.firstChild;
  for (const entry of entries) {
    let node = rendered.get(entry.key);
    if (!node || node.sig !== entry.sig) {
      const el = renderEntry(room, entry);
      if (node) node.el.replaceWith(el);
      if (node && cursor === node.el) cursor = el;
      node = { el, sig: entry.sig };
      rendered.set(entry.key, node);
    }
    if (node.el !== cursor) container.insertBefore(node.el, cursor);
    else cursor = cursor.nextSibling;
  }
  if (stick) log.scrollTop = log.scrollHeight;
  else if (change.prepend) log.scrollTop = log.scrollHeight - log.clientHeight - fromBottom;
  renderHistoryStatus(room);
  scheduleReceipt();
}

function renderEntry(room, entry) {
  if (entry.kind === "day") {
    return h("div", { class: "day", role: "separator" }, h("span", { text: dayFormat.format(entry.ts) }));
  }
  if (entry.kind === "sys") {
    return h("div", { class: "sys" }, h("span", { text: entry.text }));
  }
  const pending = entry.kind === "pending" ? entry.pending : null;
  const item = entry.item;
  const sender = pending ? client.userId : item.sender;
  const mine = sender === client.userId;
  const content = (pending ? pending.content : item.content) || {};
  const ts = pending ? pending.ts : item.origin_server_ts;
  const name = room.displayName(sender);
  const classes = ["msg", mine ? "mine" : "theirs", entry.first ? "first" : "cont"];
  if (pending) classes.push("pending", `status-${pending.status}`);
  const attrs = { class: classes.join(" ") };
  if (item) attrs["data-event-id"] = item.event_id;
  if (pending) {
    attrs["data-txn-id"] = pending.txnId;
    if (pending.eventId) attrs["data-event-id"] = pending.eventId;
  } else if (item._txnId) attrs["data-txn-id"] = item._txnId;

  const meta = h("div", { class: "meta" });
  let unread = null;
  if (pending) {
    if (pending.status === "sending") meta.append(h("span", { class: "state", text: "Sending…" }));
    else if (pending.status === "failed") {
      meta.append(
        h("span", { class: "state failed", text: "Not sent" }),
        h("button", { type: "button", class: "link small", onclick: () => client.retry(pending) }, "Retry"),
        h("button", { type: "button", class: "link small", onclick: () => client.discard(pending) }, "Delete"));
    } else unread = pending.unread;
  } else if (mine) unread = item._unread;
  if (typeof unread === "number" && unread > 0) {
    meta.append(h("span", { class: "unread-count", title: `${unread} ${unread === 1 ? "member has" : "members have"} not read this` },
      String(unread), h("span", { class: "visually-hidden", text: " unread" })));
  }
  if (!pending || pending.status === "sent") {
    meta.append(h("time", { datetime: new Date(ts).toISOString(), text: timeFormat.format(ts) }));
  }

  const bubble = renderContent(content, item, pending);
  const row = h("div", { class: "row" }, bubble, meta);
  const body = h("div", { class: "body" });
  if (!mine && entry.first) body.append(h("div", { class: "sender", text: name }));
  body.append(row);
  const el = h("div", attrs);
  if (!mine) {
    el.append(entry.first ? avatar(sender, name, room.avatarUrl(sender), "avatar-sm", 34) : h("span", { class: "avatar-spacer", "aria-hidden": "true" }));
  }
  el.append(body);
  return el;
}

function renderContent(content, item, pending) {
  const msgtype = content.msgtype;
  if (!msgtype && item) return h("div", { class: "bubble deleted", text: "Message deleted" });
  if (msgtype === "m.image") return renderImage(content, item, pending);
  if (msgtype === "m.file" || msgtype === "m.video" || msgtype === "m.audio") return renderFile(content, pending);
  const bubble = h("div", { class: `bubble${msgtype === "m.notice" ? " notice" : ""}${msgtype === "m.emote" ? " emote" : ""}` });
  const text = String(content.body || "");
  bubble.append(...linkify(msgtype === "m.emote" && item ? `* ${text}` : text));
  return bubble;
}

function linkify(text) {
  const parts = [];
  const re = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;
  let last = 0;
  let match;
  while ((match = re.exec(text))) {
    if (match.index > last) parts.push(text.slice(last, match.index));
    parts.push(h("a", { href: match[0], target: "_blank", rel: "noopener noreferrer nofollow" }, match[0]));
    last = match.index + match[0].length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return parts;
}

function thumbSize(info) {
  const w = (info && info.w) || MAX_THUMB_PX;
  const hgt = (info && info.h) || MAX_THUMB_PX;
  const scale = Math.min(1, MAX_THUMB_PX / w, MAX_THUMB_PX / hgt);
  return { width: Math.max(40, Math.round(w * scale)), height: Math.max(40, Math.round(hgt * scale)) };
}

function renderImage(content, item, pending) {
  const info = content.info || {};
  const size = thumbSize(info);
  const img = h("img", { alt: content.body || "Image", width: size.width, height: size.height, class: "thumb loading" });
  const local = (pending && pending.localUrl) || (item && item._localUrl);
  if (local) {
    img.src = local;
    img.classList.remove("loading");
  }
  const mxc = content.url;
  if (mxc && !(pending && pending.status !== "sent")) {
    media.url(mxc, THUMB).then((url) => {
      img.src = url;
      img.classList.remove("loading");
    }).catch(() => {
      if (!local) img.alt = `${content.body || "Image"} (could not load)`;
    });
  }
  const button = h("button", { type: "button", class: "bubble image", "aria-label": `Open image ${content.body || ""}`.trim() }, img);
  button.addEventListener("click", () => openImage(content, local));
  return button;
}

function renderFile(content, pending) {
  const info = content.info || {};
  const download = h("button", { type: "button", class: "download-btn", "aria-label": `Download ${content.body || "file"}`, title: "Download" }, svgIcon("M12 4v11m-5-5 5 5 5-5M5 20h14"));
  download.disabled = !content.url;
  download.addEventListener("click", () => downloadMedia(content.url, content.body || "file", download));
  return h("div", { class: "bubble file" },
    h("span", { class: "file-icon", "aria-hidden": "true" }, svgIcon("M6 2h8l5 5v15H6zM14 2v5h5")),
    h("span", { class: "file-text" },
      h("span", { class: "file-name", text: content.body || "File" }),
      h("span", { class: "file-size", text: [formatSize(info.size), pending && pending.status === "sending" ? "uploading…" : ""].filter(Boolean).join(" · ") })),
    download);
}

function svgIcon(d) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d);
  svg.append(path);
  return svg;
}

async function downloadMedia(mxc, name, button) {
  if (!mxc) return;
  if (button) button.disabled = true;
  try {
    const url = await media.url(mxc);
    const a = h("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
  } catch (err) {
    alertError(err);
  } finally {
    if (button) button.disabled = false;
  }
}

let imageContent = null;
function openImage(content, local) {
  imageContent = content;
  const img = $("image-full");
  img.alt = content.body || "Image";
  img.removeAttribute("src");
  if (local) img.src = local;
  $("dlg-image-title").textContent = content.body || "Image";
  if (content.url) media.url(content.url).then((url) => (img.src = url)).catch(() => {});
  $("btn-image-download").disabled = !content.url;
  $("dlg-image").showModal();
}

// --- typing, receipts ---------------------------------------------------------------------------

function renderTyping(room) {
  const names = room.typing.map((id) => room.displayName(id));
  const node = $("typing");
  if (!names.length) {
    node.replaceChildren();
    node.classList.remove("on");
    return;
  }
  const text = names.length === 1 ? `${names[0]} is typing` : names.length === 2 ? `${names[0]} and ${names[1]} are typing` : "Several people are typing";
  node.replaceChildren(h("span", { class: "dots", "aria-hidden": "true" }, h("i"), h("i"), h("i")), h("span", { text: `${text}…` }));
  node.classList.add("on");
}

function onComposerInput() {
  const input = $("composer-input");
  autosize(input);
  if (!client || !currentRoomId) return;
  const roomId = currentRoomId;
  clearTimeout(typingStopTimer);
  if (!input.value.trim()) {
    stopTyping(roomId);
    return;
  }
  if (Date.now() - typingSent > 4000) {
    typingSent = Date.now();
    client.setTyping(roomId, true);
  }
  typingStopTimer = setTimeout(() => stopTyping(roomId), 5000);
}

function stopTyping(roomId) {
  clearTimeout(typingStopTimer);
  if (typingSent && client) {
    typingSent = 0;
    client.setTyping(roomId, false);
  }
}

function autosize(input) {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}

/** Soon, not after every change: a busy room must not postpone the receipt forever. */
function scheduleReceipt() {
  if (receiptTimer) return;
  receiptTimer = setTimeout(() => {
    receiptTimer = null;
    sendReceipt();
  }, 200);
}

/** Send what is due now (before the view leaves the room). */
function flushReceipt() {
  clearTimeout(receiptTimer);
  receiptTimer = null;
  sendReceipt();
}

/** m.read on the last message I can actually see (room open, page visible, in view). */
function sendReceipt() {
  if (!client || !currentRoomId || document.visibilityState !== "visible" || !chatVisible()) return;
  const room = client.rooms.get(currentRoomId);
  if (!room || !room.events.length) return;
  const log = $("log");
  const view = log.getBoundingClientRect();
  for (let i = room.events.length - 1; i >= 0; i--) {
    const item = room.events[i];
    const node = rendered.get(item._txnId ? `t:${item._txnId}` : `e:${item.event_id}`);
    if (!node) continue;
    const rect = node.el.getBoundingClientRect();
    if (rect.top < view.bottom && rect.bottom > view.top) {
      client.markRead(room, item.event_id).then(scheduleRoomList);
      return;
    }
    if (rect.bottom <= view.top) return;
  }
}

// --- sending ------------------------------------------------------------------------------------

function sendText() {
  const input = $("composer-input");
  const text = input.value.replace(/\s+$/, "");
  if (!text.trim() || !client || !currentRoomId) return;
  input.value = "";
  autosize(input);
  stopTyping(currentRoomId);
  const content = { msgtype: "m.text", body: text };
  if (text.startsWith("/me ")) {
    content.msgtype = "m.emote";
    content.body = text.slice(4);
  }
  client.send(currentRoomId, content);
}

function imageDimensions(url) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve({ w: img.naturalWidth, h: img.naturalHeight });
    img.onerror = () => resolve(null);
    img.src = url;
  });
}

async function sendFiles(files) {
  if (!client || !currentRoomId) return;
  const roomId = currentRoomId;
  for (const file of files) {
    const info = { mimetype: file.type || "application/octet-stream", size: file.size };
    if (/^image\/(png|jpeg|gif|webp)$/.test(file.type)) {
      const localUrl = URL.createObjectURL(file);
      const dims = await imageDimensions(localUrl);
      if (dims) Object.assign(info, dims);
      client.send(roomId, { msgtype: "m.image", body: file.name || "image", info }, { file, localUrl });
    } else {
      client.send(roomId, { msgtype: "m.file", body: file.name || "file", info }, { file });
    }
  }
}

// --- dialogs ------------------------------------------------------------------------------------

function closeDialogs() {
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
}

function openDialog(id, focusId) {
  const dialog = $(id);
  for (const error of dialog.querySelectorAll(".form-error")) error.textContent = "";
  dialog.showModal();
  if (focusId) $(focusId).focus();
}

function parseUserIds(text) {
  return text.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean).map((s) => {
    if (s.startsWith("@")) return s.includes(":") ? s : `${s}:${serverName()}`;
    return `@${s}${s.includes(":") ? "" : `:${serverName()}`}`;
  });
}

function serverName() {
  return client ? client.userId.split(":").slice(1).join(":") : location.hostname;
}

async function withBusy(form, errorId, work) {
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => (b.disabled = true));
  $(errorId).textContent = "";
  try {
    await work();
  } catch (err) {
    $(errorId).textContent = errorText(err);
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

async function submitGroup(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const name = $("group-name").value.trim();
  if (!name) {
    $("group-error").textContent = "Give the room a name.";
    return;
  }
  await withBusy(form, "group-error", async () => {
    const roomId = await client.createRoom({
      name,
      topic: $("group-topic").value.trim(),
      invite: parseUserIds($("group-invite").value),
      isPublic: $("group-public").checked,
    });
    form.reset();
    $("dlg-group").close();
    openRoom(roomId);
  });
}

async function submitDirect(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const [userId] = parseUserIds($("dm-user").value);
  if (!userId) {
    $("dm-error").textContent = "Enter a user id such as @bob:" + serverName();
    return;
  }
  if (userId === client.userId) {
    $("dm-error").textContent = "That's you. Enter someone else's user id.";
    return;
  }
  await withBusy(form, "dm-error", async () => {
    const roomId = await client.startDirect(userId);
    form.reset();
    $("dlg-dm").close();
    openRoom(roomId);
  });
}

async function loadDirectory(event) {
  if (event) event.preventDefault();
  const list = $("directory-list");
  list.replaceChildren(h("li", { class: "muted", text: "Loading…" }));
  $("directory-error").textContent = "";
  try {
    const res = await client.publicRooms($("directory-search").value.trim());
    const chunk = res.chunk || [];
    if (!chunk.length) {
      list.replaceChildren(h("li", { class: "muted directory-empty", text: "No public rooms found." }));
      return;
    }
    list.replaceChildren(...chunk.map((entry) => {
      const name = entry.name || entry.canonical_alias || entry.room_id;
      const joined = client.rooms.get(entry.room_id);
      const isJoined = joined && joined.membership === "join";
      const button = h("button", { type: "button", class: `btn btn-small${isJoined ? "" : " btn-primary"}`, "aria-label": `${isJoined ? "Open" : "Join"} ${name}` }, isJoined ? "Open" : "Join");
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          const roomId = isJoined ? entry.room_id : await client.join(entry.room_id);
          $("dlg-directory").close();
          openRoom(roomId || entry.room_id);
        } catch (err) {
          $("directory-error").textContent = errorText(err);
          button.disabled = false;
        }
      });
      return h("li", { class: "directory-item" },
        avatar(entry.room_id, name, entry.avatar_url, "avatar-md", 40),
        h("div", { class: "directory-text" },
          h("span", { class: "strong", text: name }),
          h("span", { class: "muted small", text: [`${entry.num_joined_members || 0} member${entry.num_joined_members === 1 ? "" : "s"}`, entry.topic].filter(Boolean).join(" · ") })),
        button);
    }));
  } catch (err) {
    list.replaceChildren();
    $("directory-error").textContent = errorText(err);
  }
}

function openProfile() {
  renderNotificationSetting();
  $("profile-id").textContent = client.userId;
  $("profile-name").value = client.profile.displayname || "";
  fillAvatar($("profile-avatar"), client.userId, client.profile.displayname || localpart(client.userId), client.profile.avatar_url, 64);
  openDialog("dlg-profile", "profile-name");
}

async function submitProfile(event) {
  event.preventDefault();
  const name = $("profile-name").value.trim();
  if (!name) return;
  await withBusy(event.currentTarget, "profile-error", async () => {
    await client.setDisplayName(name);
    renderMe();
    $("dlg-profile").close();
  });
}

async function changeAvatar() {
  const file = $("avatar-input").files[0];
  $("avatar-input").value = "";
  if (!file) return;
  $("profile-error").textContent = "Uploading…";
  try {
    await client.setAvatar(file);
    $("profile-error").textContent = "";
    renderMe();
    fillAvatar($("profile-avatar"), client.userId, client.profile.displayname || localpart(client.userId), client.profile.avatar_url, 64);
  } catch (err) {
    $("profile-error").textContent = errorText(err);
  }
}

// --- wiring ---------------------------------------------------------------------------------------

function wire() {
  $("auth-form").addEventListener("submit", submitAuth);
  $("auth-switch").addEventListener("click", () => setRegisterMode(!registerMode));
  $("banner-retry").addEventListener("click", () => client && client.wake());
  $("btn-new-group").addEventListener("click", () => openDialog("dlg-group", "group-name"));
  $("btn-new-dm").addEventListener("click", () => openDialog("dlg-dm", "dm-user"));
  $("btn-directory").addEventListener("click", () => {
    openDialog("dlg-directory", "directory-search");
    loadDirectory();
  });
  $("me-button").addEventListener("click", openProfile);
  $("form-group").addEventListener("submit", submitGroup);
  $("form-dm").addEventListener("submit", submitDirect);
  $("form-directory").addEventListener("submit", loadDirectory);
  $("form-profile").addEventListener("submit", submitProfile);
  $("btn-avatar").addEventListener("click", () => $("avatar-input").click());
  $("avatar-input").addEventListener("change", changeAvatar);
  $("btn-logout").addEventListener("click", logout);
  $("btn-notifications").addEventListener("click", enableNotifications);
  $("btn-image-download").addEventListener("click", () => imageContent && downloadMedia(imageContent.url, imageContent.body || "image"));
  for (const button of document.querySelectorAll("[data-close]")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }
  $("btn-back").addEventListener("click", closeRoom);
  $("btn-leave").addEventListener("click", async () => {
    const room = client && client.rooms.get(currentRoomId);
    if (!room || !confirm(`Leave “${client.roomName(room)}”?`)) return;
    try {
      await client.leave(room.id);
      currentRoomId = null;
      document.body.classList.remove("show-chat");
      showRoom(null);
    } catch (err) {
      alertError(err);
    }
  });

  const input = $("composer-input");
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    sendText();
    input.focus();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendText();
    }
  });
  input.addEventListener("input", onComposerInput);
  $("btn-attach").addEventListener("click", () => $("file-input").click());
  $("file-input").addEventListener("change", () => {
    const files = [...$("file-input").files];
    $("file-input").value = "";
    sendFiles(files);
  });
  input.addEventListener("paste", (event) => {
    const files = [...((event.clipboardData && event.clipboardData.files) || [])];
    if (files.length) {
      event.preventDefault();
      sendFiles(files);
    }
  });

  const log = $("log");
  log.addEventListener("scroll", () => {
    scheduleReceipt();
    loadOlderIfNearTop();
  }, { passive: true });
  log.addEventListener("dragover", (event) => event.preventDefault());
  log.addEventListener("drop", (event) => {
    event.preventDefault();
    sendFiles([...((event.dataTransfer && event.dataTransfer.files) || [])]);
  });

  document.addEventListener("visibilitychange", scheduleReceipt);
  window.addEventListener("focus", scheduleReceipt);
  window.addEventListener("online", () => client && client.wake());
  PHONE_QUERY.addEventListener("change", () => {
    scheduleRoomList();
    scheduleReceipt();
  });
  window.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && PHONE_QUERY.matches && document.body.classList.contains("show-chat") && !document.querySelector("dialog[open]")) {
      closeRoom();
    }
  });
}

wire();
const saved = loadSession();
if (saved) startApp(saved);
else showAuth();
