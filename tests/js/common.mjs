// What the tests/js scripts share: a fetch that records every request, the one
// "RESULT {json}" line on failure, registration, and a bounded wait.

export const requests = [];

// Records method, path and status of every request; ``rewrite`` may change a URL
// before it is sent (e.g. an SDK's outdated path).
export function recordingFetch(rewrite = (url) => url) {
  return async (input, init) => {
    const url = rewrite(new URL(input instanceof Request ? input.url : String(input)));
    const resp = await fetch(url, init);
    requests.push({ method: init?.method || "GET", path: url.pathname, status: resp.status });
    return resp;
  };
}

export function fail(error) {
  const failures = requests.filter((r) => r.status >= 400);
  console.log("RESULT " + JSON.stringify({ ok: false, error: String(error?.stack || error), failures }));
  process.exit(1);
}

// Fails the script after ``timeoutMs`` whatever it is waiting for.
export function deadline(timeoutMs) {
  setTimeout(() => fail(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs).unref();
}

export async function register(baseUrl, name, password) {
  const resp = await fetch(`${baseUrl}/_matrix/client/v3/register`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: name, password, auth: { type: "m.login.dummy" } }),
  });
  if (resp.status !== 200) throw new Error(`register ${name}: ${resp.status} ${await resp.text()}`);
  return resp.json();
}

export function waitFor(probe, what, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = async () => {
      let value;
      try {
        value = await probe();
      } catch (e) {
        return reject(e);
      }
      if (value) return resolve(value);
      if (Date.now() - started > timeoutMs) return reject(new Error(`waiting for ${what}`));
      setTimeout(tick, 100);
    };
    tick();
  });
}
