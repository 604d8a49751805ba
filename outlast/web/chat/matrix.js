// A small Matrix Client-Server API client over fetch: requests, errors, media.
// Same origin only: the chat talks to the server (or front door) that served it.

export const CLIENT = "/_matrix/client/v3";
export const MEDIA_UPLOAD = "/_matrix/media/v3/upload";
export const MEDIA_V1 = "/_matrix/client/v1/media";

/** An error answered by the server: HTTP status plus the spec's errcode. */
export class MatrixError extends Error {
  constructor(status, body, retryAfterMs) {
    const errcode = (body && body.errcode) || "M_UNKNOWN";
    super((body && body.error) || `HTTP ${status}`);
    this.name = "MatrixError";
    this.status = status;
    this.errcode = errcode;
    this.body = body || {};
    this.retryAfterMs = retryAfterMs;
  }
}

/** The request never got an answer (network down, server gone, timed out). */
export class NetworkError extends Error {
  constructor(message) {
    super(message);
    this.name = "NetworkError";
  }
}

/** Worth retrying the same request later: no answer, overload, or rate limit. */
export function isTransient(err) {
  if (err instanceof NetworkError) return true;
  if (err instanceof MatrixError) return err.status >= 500 || err.status === 429 || err.status === 408;
  return false;
}

export function encode(part) {
  return encodeURIComponent(part);
}

function query(params) {
  if (!params) return "";
  const parts = [];
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null) continue;
    parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
  }
  return parts.length ? `?${parts.join("&")}` : "";
}

function retryAfter(res, body) {
  if (body && typeof body.retry_after_ms === "number") return body.retry_after_ms;
  const header = res.headers.get("Retry-After");
  if (header && /^\d+$/.test(header)) return Number(header) * 1000;
  return undefined;
}

export class Api {
  constructor(base = "") {
    this.base = base;
    this.token = null;
  }

  /**
   * One HTTP request. `body` is JSON unless `raw` (a Blob/File) is given.
   * Resolves to the decoded JSON (or the Response when `response` is set).
   */
  async request(method, path, opts = {}) {
    const { params, body, raw, contentType, signal, timeoutMs = 20000, response = false, auth = true } = opts;
    const headers = {};
    if (auth && this.token) headers.Authorization = `Bearer ${this.token}`;
    let payload;
    if (raw !== undefined) {
      payload = raw;
      headers["Content-Type"] = contentType || "application/octet-stream";
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = () => controller.abort();
    if (signal) {
      if (signal.aborted) controller.abort();
      else signal.addEventListener("abort", onAbort, { once: true });
    }
    let res;
    try {
      res = await fetch(this.base + path + query(params), {
        method,
        headers,
        body: payload,
        signal: controller.signal,
        cache: "no-store",
        credentials: "omit",
      });
      if (response && res.ok) return res;
      const text = await res.text();
      let data = null;
      if (text) {
        try {
          data = JSON.parse(text);
        } catch {
          data = null;
        }
      }
      if (!res.ok) throw new MatrixError(res.status, data, retryAfter(res, data));
      return data || {};
    } catch (err) {
      if (err instanceof MatrixError) throw err;
      if (signal && signal.aborted && !timedOut) {
        const aborted = new Error("aborted");
        aborted.name = "AbortError";
        throw aborted;
      }
      throw new NetworkError(timedOut ? "request timed out" : String(err && err.message ? err.message : err));
    } finally {
      clearTimeout(timer);
      if (signal) signal.removeEventListener("abort", onAbort);
    }
  }

  client(method, path, opts) {
    return this.request(method, CLIENT + path, opts);
  }

  // --- accounts ---------------------------------------------------------------

  async register(username, password) {
    const body = {
      username,
      password,
      initial_device_display_name: "Outlast web",
      auth: { type: "m.login.dummy" },
    };
    try {
      return await this.client("POST", "/register", { body, auth: false });
    } catch (err) {
      // A server that wants a UIA session first: answer its dummy stage with it.
      if (err instanceof MatrixError && err.status === 401 && err.body.session) {
        body.auth.session = err.body.session;
        return this.client("POST", "/register", { body, auth: false });
      }
      throw err;
    }
  }

  login(username, password) {
    return this.client("POST", "/login", {
      auth: false,
      body: {
        type: "m.login.password",
        identifier: { type: "m.id.user", user: username },
        password,
        initial_device_display_name: "Outlast web",
      },
    });
  }

  logout() {
    return this.client("POST", "/logout", { body: {} });
  }

  // --- media ------------------------------------------------------------------

  upload(file, name) {
    return this.request("POST", MEDIA_UPLOAD, {
      params: { filename: name || file.name || "file" },
      raw: file,
      contentType: file.type || "application/octet-stream",
      timeoutMs: 120000,
    });
  }

  /** Bytes of an mxc:// URI (a thumbnail when width/height are given) as a Blob. */
  async mediaBlob(mxc, size) {
    const parsed = parseMxc(mxc);
    if (!parsed) throw new Error(`not an mxc URI: ${mxc}`);
    const path = size
      ? `${MEDIA_V1}/thumbnail/${encode(parsed.server)}/${encode(parsed.id)}`
      : `${MEDIA_V1}/download/${encode(parsed.server)}/${encode(parsed.id)}`;
    const params = size ? { width: size.width, height: size.height, method: size.method || "scale" } : undefined;
    const res = await this.request("GET", path, { params, response: true, timeoutMs: 60000 });
    return res.blob();
  }
}

export function parseMxc(uri) {
  const match = typeof uri === "string" && /^mxc:\/\/([^/]+)\/([^/?#]+)$/.exec(uri);
  return match ? { server: match[1], id: match[2] } : null;
}

/**
 * Blob URLs for media, fetched once with the access token (an <img> cannot send
 * an Authorization header). Failures are forgotten so a later view retries.
 */
export class MediaCache {
  constructor(api) {
    this.api = api;
    this.urls = new Map();
  }

  url(mxc, size) {
    const key = size ? `${mxc}#${size.width}x${size.height}:${size.method || "scale"}` : mxc;
    let entry = this.urls.get(key);
    if (!entry) {
      entry = this.api.mediaBlob(mxc, size).then((blob) => URL.createObjectURL(blob));
      entry.catch(() => this.urls.delete(key));
      this.urls.set(key, entry);
    }
    return entry;
  }

  clear() {
    for (const entry of this.urls.values()) {
      entry.then((url) => URL.revokeObjectURL(url)).catch(() => {});
    }
    this.urls.clear();
  }
}
