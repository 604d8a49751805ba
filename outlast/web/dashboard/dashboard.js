// Outlast site dashboard: signs in with the Matrix login API, then polls
// GET /_outlast/admin/status of the site that served the page. No libraries,
// no other origins, no inline code (the page runs under a strict CSP).
"use strict";

(function () {
  const STORE_KEY = "outlast.dashboard.session";
  const POLL_MS = 2000;
  const REQUEST_TIMEOUT_MS = 8000;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const SITE_COLOURS = ["#2563eb", "#0d9488", "#9333ea", "#ea580c", "#db2777", "#65a30d",
    "#0891b2", "#ca8a04"];
  const STATE_LABELS = {
    healthy: "Healthy", not_ready: "Not ready", down: "Down", unknown: "Unknown",
  };

  const $ = (id) => document.getElementById(id);
  let session = null;
  let pollTimer = null;
  let lastOk = 0;
  let lastStatus = null;
  const rendered = { streams: "", nodes: "", drills: "", metrics: "" };

  // --- small DOM helpers ---------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function setAttrs(el, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") el.textContent = String(value);
      else if (key === "class") el.setAttribute("class", value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
  }

  function append(el, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  function fmtNumber(n, digits) {
    if (n === null || n === undefined || Number.isNaN(Number(n))) return "–";
    return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits ?? 0 });
  }

  function fmtAge(seconds) {
    if (seconds === null || seconds === undefined) return "never";
    if (seconds < 10) return `${seconds.toFixed(1)} s ago`;
    if (seconds < 120) return `${Math.round(seconds)} s ago`;
    if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
    return `${Math.round(seconds / 3600)} h ago`;
  }

  // A site keeps its colour everywhere (cards, tags, charts) and across reloads:
  // sites named a, b, c... take the palette in order, other names a hash.
  function swatch(site) {
    const name = String(site || "");
    if (/^[a-z]$/.test(name)) return (name.charCodeAt(0) - 97) % SITE_COLOURS.length;
    let hash = 0;
    for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
    return hash % SITE_COLOURS.length;
  }

  // --- session and API ----------------------------------------------------------------

  function loadSession() {
    try {
      const raw = window.localStorage.getItem(STORE_KEY);
      const value = raw ? JSON.parse(raw) : null;
      return value && value.access_token ? value : null;
    } catch (e) {
      return null;
    }
  }

  function saveSession(value) {
    session = value;
    if (value) window.localStorage.setItem(STORE_KEY, JSON.stringify(value));
    else window.localStorage.removeItem(STORE_KEY);
  }

  async function api(method, path, body) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (session) headers.Authorization = `Bearer ${session.access_token}`;
    try {
      const resp = await fetch(path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal, cache: "no-store", credentials: "omit",
      });
      let data = null;
      try { data = await resp.json(); } catch (e) { data = null; }
      return { status: resp.status, data };
    } finally {
      clearTimeout(timer);
    }
  }

  // --- views ------------------------------------------------------------------------

  function showView(name) {
    show("login-view", name === "login");
    show("forbidden-view", name === "forbidden");
    show("board", name === "board");
    const signedIn = name !== "login";
    show("sign-out", signedIn);
    show("whoami", signedIn && !!session);
    if (signedIn && session) $("whoami").textContent = session.user_id;
    if (name === "login") {
      show("served-by", false);
      setTimeout(() => $("login-user").focus(), 0);
    }
  }

  async function start() {
    session = loadSession();
    if (!session) {
      showView("login");
      return;
    }
    let who;
    try {
      who = await api("GET", "/_outlast/admin/whoami");
    } catch (e) {
      showView("board");
      setFreshness("error", "Cannot reach this site. Retrying…");
      schedule(POLL_MS);
      return;
    }
    if (who.status === 401) {
      saveSession(null);
      showView("login");
      return;
    }
    if (who.status === 200 && who.data && !who.data.admin) {
      $("forbidden-user").textContent = who.data.user_id;
      showView("forbidden");
      return;
    }
    showView("board");
    poll();
  }

  async function login(event) {
    event.preventDefault();
    const user = $("login-user").value.trim();
    const password = $("login-password").value;
    const error = $("login-error");
    error.textContent = "";
    if (!user || !password) {
      error.textContent = "Enter your user id and password.";
      return;
    }
    const submit = $("login-submit");
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      const resp = await api("POST", "/_matrix/client/v3/login", {
        type: "m.login.password",
        identifier: { type: "m.id.user", user },
        password,
        initial_device_display_name: "Outlast dashboard",
      });
      if (resp.status !== 200 || !resp.data || !resp.data.access_token) {
        error.textContent = (resp.data && resp.data.error) || `Sign-in failed (${resp.status}).`;
        return;
      }
      saveSession({ access_token: resp.data.access_token, user_id: resp.data.user_id });
      $("login-password").value = "";
      await start();
    } catch (e) {
      error.textContent = "This site did not answer. Try again in a moment.";
    } finally {
      submit.disabled = false;
      submit.textContent = "Sign in";
    }
  }

  async function signOut() {
    stopPolling();
    const old = session;
    saveSession(null);
    if (old) {
      session = old;
      try { await api("POST", "/_matrix/client/v3/logout", {}); } catch (e) { /* gone anyway */ }
      session = null;
    }
    lastStatus = null;
    for (const key of Object.keys(rendered)) rendered[key] = "";
    $("sites").replaceChildren();
    showView("login");
  }

  // --- polling ------------------------------------------------------------------------

  function stopPolling() {
    if (pollTimer !== null) clearTimeout(pollTimer);
    pollTimer = null;
  }

  function schedule(ms) {
    stopPolling();
    pollTimer = setTimeout(poll, ms);
  }

  async function poll() {
    stopPolling();
    if (!session) return;
    let resp;
    try {
      resp = await api("GET", "/_outlast/admin/status");
    } catch (e) {
      const since = lastOk ? ` Last update ${Math.round((Date.now() - lastOk) / 1000)} s ago.` : "";
      setFreshness("error", `Cannot reach this site. Retrying…${since}`);
      schedule(POLL_MS);
      return;
    }
    if (resp.status === 401) {
      saveSession(null);
      showView("login");
      return;
    }
    if (resp.status === 403) {
      $("forbidden-user").textContent = session.user_id;
      showView("forbidden");
      return;
    }
    try {
      if (resp.status !== 200 || !resp.data) {
        const why = (resp.data && resp.data.error) || `HTTP ${resp.status}`;
        setFreshness("error", `This site answered ${why}. Retrying…`);
      } else {
        lastOk = Date.now();
        lastStatus = resp.data;
        render(resp.data);
        setFreshness("ok", `Live · updated ${new Date().toLocaleTimeString("en-GB")}`);
      }
    } finally {
      schedule(POLL_MS);  // a rendering bug shows in the console, and polling goes on
    }
  }

  function setFreshness(kind, text) {
    const el = $("freshness");
    el.textContent = text;
    el.className = `freshness freshness-${kind}`;
    document.body.classList.toggle("is-stale", kind !== "ok");
  }

  // --- rendering ----------------------------------------------------------------------

  function render(status) {
    const served = $("served-by");
    served.textContent = `served by site ${status.served_by}`;
    served.hidden = false;
    $("stale-after").textContent = String(status.stale_after_seconds);
    const sum = status.summary;
    const allOk = sum.healthy_sites === sum.sites && sum.sites > 0;
    const summary = $("summary");
    summary.replaceChildren(
      h("span", { class: `summary-dot ${allOk ? "ok" : "bad"}`, "aria-hidden": "true" }),
      `${sum.healthy_sites} of ${sum.sites} sites healthy`,
      h("span", { class: "sep", "aria-hidden": "true", text: "·" }),
      `${fmtNumber(sum.write_rate, 1)} writes/s`,
      h("span", { class: "sep", "aria-hidden": "true", text: "·" }),
      sum.streams_without_leader
        ? `${sum.streams_without_leader} of ${sum.streams} streams electing a leader`
        : `${sum.streams} streams, every one led`,
    );
    summary.dataset.healthy = String(sum.healthy_sites);
    renderSites(status);
    renderOnChange("streams", status.streams, () => renderStreams(status.streams));
    renderOnChange("nodes", status.nodes, () => renderNodes(status.nodes));
    renderOnChange("drills", status.drills, () => renderDrills(status.drills));
    renderOnChange("metrics", status.metrics, () => renderMetrics(status.metrics));
  }

  function renderOnChange(key, data, draw) {
    const text = JSON.stringify(data);
    if (rendered[key] === text) return;
    rendered[key] = text;
    draw();
  }

  // Site cards are updated in place, so keyboard focus on a card's link survives polls.
  function renderSites(status) {
    const list = $("sites");
    const seen = new Set();
    for (const site of status.sites) {
      seen.add(site.name);
      let card = list.querySelector(`li[data-site="${CSS.escape(site.name)}"]`);
      if (!card) {
        card = buildSiteCard(site.name);
        list.append(card);
      }
      updateSiteCard(card, site);
    }
    for (const card of [...list.children]) {
      if (!seen.has(card.dataset.site)) card.remove();
    }
    const sorted = [...list.children].sort((a, b) => a.dataset.site.localeCompare(b.dataset.site));
    if (sorted.some((card, i) => list.children[i] !== card)) list.append(...sorted);
  }

  function buildSiteCard(name) {
    const stat = (key, label) => h("div", { class: "stat" },
      h("dt", { text: label }), h("dd", { "data-field": key }));
    const card = h("li", { class: "site-card", "data-site": name, "aria-labelledby": `site-${name}-title` },
      h("div", { class: "site-head" },
        h("span", { class: "site-swatch", "aria-hidden": "true" }),
        h("h3", { id: `site-${name}-title`, text: `Site ${name}` }),
        h("span", { class: "badge badge-local", text: "this site", "data-field": "local" }),
        h("span", { class: "pill", "data-field": "state" })),
      h("p", { class: "site-reason", "data-field": "reason" }),
      h("dl", { class: "stats" },
        stat("node", "Node"),
        stat("leads", "Leads"),
        stat("view_lag", "View lag"),
        stat("write_rate", "Writes/s"),
        stat("sync_waiters", "Sync waiters"),
        stat("workers", "Workers ready"),
        stat("age", "Last report")),
      h("p", { class: "site-links", "data-field": "links" }));
    card.querySelector(".site-swatch").classList.add(`swatch-${swatch(name)}`);
    return card;
  }

  function updateSiteCard(card, site) {
    const field = (key) => card.querySelector(`[data-field="${key}"]`);
    card.dataset.state = site.state;
    card.className = `site-card state-${site.state}`;
    const pill = field("state");
    pill.className = `pill pill-${site.state}`;
    pill.textContent = STATE_LABELS[site.state] || site.state;
    field("local").hidden = !site.local;
    field("reason").textContent = site.reason;
    field("node").textContent = site.nodes && site.nodes.length ? site.nodes.join(", ") : (site.node || "–");
    field("leads").textContent = `${site.leads} stream${site.leads === 1 ? "" : "s"}`;
    field("view_lag").textContent = site.view_lag === null || site.view_lag === undefined
      ? "–" : `${fmtNumber(site.view_lag)} msg`;
    field("write_rate").textContent = fmtNumber(site.write_rate, 1);
    field("sync_waiters").textContent = fmtNumber(site.sync_waiters);
    const workers = site.workers || [];
    field("workers").textContent = workers.length
      ? `${workers.filter((w) => w.ready).length} of ${workers.length}` : "–";
    field("age").textContent = fmtAge(site.report_age_seconds);
    const links = field("links");
    const href = site.local ? "/_outlast/metrics" : (site.url ? `${site.url}/_outlast/metrics` : "");
    if (links.dataset.href !== href) {
      links.dataset.href = href;
      links.replaceChildren(href
        ? h("a", { href, rel: "noreferrer", text: `Metrics of site ${site.name}` })
        : h("span", { class: "muted", text: "No metrics address reported" }));
    }
  }

  function siteTag(site, text) {
    if (!site) return h("span", { class: "muted", text: text || "none" });
    return h("span", { class: `site-tag swatch-${swatch(site)}`, text: text || site });
  }

  function renderStreams(streams) {
    const rows = streams.map((st) => {
      const leader = st.leader
        ? h("td", { class: "leader" }, siteTag(st.leader_site, `site ${st.leader_site}`),
          h("span", { class: "node-name", text: st.leader }))
        : h("td", null, h("span", { class: "pill pill-unknown", text: st.missing ? "not created" : "electing" }));
      const replicas = h("td", null, h("ul", { class: "replicas", "aria-label": `Replicas of ${st.name}` },
        (st.replicas || []).map((r) => {
          const state = r.offline ? "offline" : (r.current ? "current" : "behind");
          const detail = r.offline ? "offline" : (r.current ? "current" : `lag ${fmtNumber(r.lag)}`);
          return h("li", { class: `replica replica-${state}`, title: `${r.name}: ${detail}, active ${r.active_seconds} s ago` },
            h("span", { class: "replica-name", text: r.name }),
            h("span", { class: "replica-state", text: detail }));
        }),
        !st.replicas || !st.replicas.length
          ? h("li", { class: "replica replica-none", text: st.leader ? "single replica" : (st.error || "–") })
          : null));
      return h("tr", { "data-stream": st.name, "data-leader-site": st.leader_site || "" },
        h("th", { scope: "row", class: "mono", text: st.name }),
        leader,
        replicas,
        h("td", { class: "num", text: st.messages === undefined ? "–" : fmtNumber(st.messages) }),
        h("td", { class: "num", text: st.view_lag === undefined ? "–" : fmtNumber(st.view_lag) }));
    });
    $("streams").replaceChildren(...rows);
  }

  function renderNodes(nodes) {
    const rows = nodes.map((n) => h("tr", { "data-node": n.name },
      h("th", { scope: "row", class: "mono", text: n.name }),
      h("td", null, siteTag(n.site, `site ${n.site}`)),
      h("td", null, h("span", {
        class: `pill ${n.offline ? "pill-down" : (n.behind ? "pill-not_ready" : "pill-healthy")}`,
        text: n.offline ? "Offline" : (n.behind ? "Catching up" : "Online"),
      })),
      h("td", { class: "num", text: fmtNumber(n.leads.length) }),
      h("td", { class: "num", text: fmtNumber(n.max_lag) })));
    if (!rows.length) {
      rows.push(h("tr", null, h("td", { colspan: "5", class: "muted", text: "No node answered yet." })));
    }
    $("nodes").replaceChildren(...rows);
  }

  function renderMetrics(metrics) {
    $("metrics").replaceChildren(...metrics.map((m) => h("li", null,
      siteTag(m.site, `site ${m.site}`),
      h("a", { href: m.url, rel: "noreferrer", class: "mono", text: m.local ? `${m.url} (this site)` : m.url }))));
  }

  // --- drills ---------------------------------------------------------------------------

  function renderDrills(drills) {
    const box = $("drills");
    if (!drills.length) {
      box.replaceChildren(h("p", { class: "empty" },
        "No drills recorded yet. Run ",
        h("code", { text: "outlast drill fire --cluster cluster.json" }),
        " and its record appears here, at every site."));
      return;
    }
    box.replaceChildren(...drills.map(drillCard));
  }

  function drillCard(d) {
    const v = d.verdict || {};
    const ok = !!v.ok;
    const gap = d.write_gap;
    const facts = [
      ["Acknowledged", fmtNumber(v.acknowledged), false],
      ["Lost", fmtNumber(v.lost), Number(v.lost) > 0],
      ["Duplicated", fmtNumber(v.duplicated), Number(v.duplicated) > 0],
      ["Reordered", fmtNumber(v.reordered), Number(v.reordered) > 0],
      ["Gap, median", gap ? `${fmtNumber(gap.median, 2)} s` : "–", false],
      ["Gap, max", gap ? `${fmtNumber(gap.max, 2)} s` : "–", false],
    ];
    const load = d.load || {};
    const titleId = `drill-${d.seq}-title`;
    return h("article", { class: "drill", "aria-labelledby": titleId, "data-drill": d.id || "" },
      h("div", { class: "drill-info" },
        h("header", { class: "drill-head" },
          h("h3", { id: titleId },
            h("span", { class: "fault", text: d.fault || "?" }),
            ` at site ${d.site || "?"}`),
          h("span", { class: `pill ${ok ? "pill-healthy" : "pill-down"}`, text: ok ? "PASS" : "FAIL" })),
        h("p", { class: "drill-meta" },
          h("span", { class: "mono", text: d.id || "" }),
          h("br"),
          `${fmtWhen(d.started)} · ${fmtNumber(load.users)} users, ${fmtNumber(load.rooms)} rooms, `
          + `${fmtNumber(load.rate)} msg/s for ${fmtNumber(load.duration)} s`),
        d.rebuild
          ? h("p", { class: "drill-meta", text: `Rebuilt as node ${d.rebuild.node} in `
            + `${fmtNumber(d.rebuild.seconds, 1)} s; timelines identical: ${d.rebuild.identical ? "yes" : "no"}` })
          : null,
        h("dl", { class: "drill-facts" }, facts.map(([k, val, bad]) =>
          h("div", { class: `fact${bad ? " fact-bad" : ""}` },
            h("dt", { text: k }), h("dd", { text: val }))))),
      drillChart(d));
  }

  function fmtWhen(iso) {
    if (!iso) return "";
    const when = new Date(iso);
    if (Number.isNaN(when.getTime())) return iso;
    return when.toISOString().replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC");
  }

  function drillChart(d) {
    const series = d.acks_per_second_by_site || {};
    const sites = Object.keys(series).sort();
    const duration = Math.max(1, Math.ceil(Number((d.load || {}).duration) || 0));
    let horizon = duration + 1;
    for (const per of Object.values(series)) {
      for (const k of Object.keys(per)) horizon = Math.max(horizon, Number(k) + 1);
    }
    const totals = new Array(horizon).fill(0);
    for (const site of sites) {
      for (const [k, v] of Object.entries(series[site])) totals[Number(k)] += Number(v) || 0;
    }
    const peak = Math.max(1, ...totals);
    const step = niceStep(peak / 4);
    const top = Math.ceil(peak / step) * step;
    const W = 720, H = 250, L = 40, R = 14, T = 36, B = 28;
    const plotW = W - L - R, plotH = H - T - B;
    const x = (sec) => L + (sec / horizon) * plotW;
    const y = (val) => T + plotH - (val / top) * plotH;
    const barW = Math.max(1, plotW / horizon - 2);
    const fault = Number(d.fault_at_s);
    const recovered = d.recovered_at_s === null || d.recovered_at_s === undefined ? null : Number(d.recovered_at_s);
    const label = `Acknowledged writes per second by site over ${horizon} seconds; `
      + `${d.fault} at site ${d.site} at ${fault.toFixed(1)} s`
      + (recovered !== null ? `, undone at ${recovered.toFixed(1)} s` : "")
      + `; peak ${peak} writes/s.`;
    const svg = s("svg", {
      viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": label,
      preserveAspectRatio: "xMidYMid meet",
    });
    svg.append(s("title", { text: label }));
    for (let val = 0; val <= top + 1e-9; val += step) {
      svg.append(s("line", { x1: L, x2: W - R, y1: y(val), y2: y(val), class: val === 0 ? "axis" : "grid" }));
      svg.append(s("text", { x: L - 6, y: y(val) + 4, class: "tick tick-y", text: fmtNumber(val, 1) }));
    }
    const xStep = horizon > 60 ? 10 : (horizon > 24 ? 5 : 2);
    for (let sec = 0; sec <= horizon; sec += xStep) {
      svg.append(s("text", { x: x(sec), y: H - B + 16, class: "tick tick-x", text: `${sec}s` }));
    }
    const base = new Array(horizon).fill(0);
    for (const site of sites) {
      const group = s("g", { class: `bars swatch-fill-${swatch(site)}` });
      for (const [k, v] of Object.entries(series[site])) {
        const sec = Number(k), val = Number(v) || 0;
        if (!val || sec < 0 || sec >= horizon) continue;
        const y0 = y(base[sec]), y1 = y(base[sec] + val);
        group.append(s("rect", { x: x(sec) + 1, y: y1, width: barW, height: Math.max(0.5, y0 - y1), rx: 1.5 }));
        base[sec] += val;
      }
      svg.append(group);
    }
    const mark = (at, kind, text, row) => {
      const px = x(at);
      const right = px > W - R - 140;
      svg.append(s("line", { x1: px, x2: px, y1: T - 6 - row * 14, y2: T + plotH, class: `mark mark-${kind}` }));
      svg.append(s("text", {
        x: right ? px - 6 : px + 6, y: T - 10 - row * 14,
        class: `mark-label mark-label-${kind}${right ? " end" : ""}`, text,
      }));
    };
    if (recovered !== null && Number.isFinite(recovered)) mark(recovered, "recovery", "fault undone", 0);
    if (Number.isFinite(fault)) mark(fault, "fault", `${d.fault} at site ${d.site}`, 1);
    const legend = h("ul", { class: "legend", "aria-label": "Chart legend" },
      sites.map((site) => h("li", null,
        h("span", { class: `legend-swatch swatch-${swatch(site)}`, "aria-hidden": "true" }),
        `site ${site}`)),
      h("li", null, h("span", { class: "legend-line legend-fault", "aria-hidden": "true" }), "fault"),
      recovered !== null
        ? h("li", null, h("span", { class: "legend-line legend-recovery", "aria-hidden": "true" }), "recovery")
        : null,
      h("li", { class: "legend-note", text: "acknowledged writes / s, by answering site" }));
    return h("figure", { class: "chart-figure" }, svg, h("figcaption", null, legend));
  }

  function niceStep(raw) {
    const value = Math.max(raw, 1e-9);
    const exp = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 2.5, 5, 10]) {
      if (m * exp >= value) return Math.max(m * exp, 1);
    }
    return 10 * exp;
  }

  // --- wiring --------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", login);
    $("sign-out").addEventListener("click", signOut);
    $("forbidden-sign-out").addEventListener("click", signOut);
    document.addEventListener("visibilitychange", () => {
      // Back on the tab: refresh now rather than at the next tick.
      if (!document.hidden && session && !$("board").hidden) schedule(0);
    });
    start();
  });
}());
