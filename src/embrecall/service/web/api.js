// Calls to the /v1 read endpoints: the read key, errors as exceptions, and timings.
// Paths are relative to the page, so the page also works behind a proxy under a path prefix.

const KEY_STORAGE = "embrecall.apiKey";

export function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function storeKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/** A refusal from the API (its JSON error body), or no answer at all (status 0). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * GET a JSON endpoint. Resolves to {body, timing}; timing is {version, serverMs, roundTripMs}:
 * the version that answered, the server's own time (its Server-Timing header) and the time
 * this browser waited, body included.
 */
export async function getJson(path, params = {}) {
  const url = new URL(path, document.baseURI);
  for (const [name, value] of Object.entries(params)) {
    if (Array.isArray(value)) for (const each of value) url.searchParams.append(name, each);
    else if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
  }
  const headers = { Accept: "application/json" };
  const key = storedKey();
  if (key) headers["X-API-Key"] = key;
  const started = performance.now();
  let response;
  try {
    response = await fetch(url, { headers, cache: "no-store" });
  } catch (error) {
    throw new ApiError(0, "network", `the server did not answer (${error.message})`);
  }
  const body = await response.json().catch(() => null);
  const timing = {
    version: response.headers.get("X-Embrecall-Version") || body?.version || null,
    serverMs: serverMs(response.headers.get("Server-Timing")),
    roundTripMs: performance.now() - started,
  };
  if (!response.ok) {
    const error = body?.error;
    throw new ApiError(
      response.status,
      error?.code || `http_${response.status}`,
      error?.message || `HTTP ${response.status} ${response.statusText}`,
    );
  }
  return { body, timing };
}

function serverMs(header) {
  const match = /(?:^|,)\s*app;[^,]*dur=([\d.]+)/.exec(header || "");
  return match ? Number(match[1]) : null;
}

// The endpoints the page uses, named for what they answer.
const id = (value) => encodeURIComponent(value);

export const api = {
  info: () => getJson("v1/info"),
  recommendations: (user, k, excludeSeen, filter = []) =>
    getJson(`v1/users/${id(user)}/recommendations`, { k, exclude_seen: excludeSeen, filter }),
  seen: (user) => getJson(`v1/users/${id(user)}/seen`, { details: true }),
  similarUsers: (user, k) => getJson(`v1/users/${id(user)}/similar`, { k }),
  item: (item) => getJson(`v1/items/${id(item)}`),
  similarItems: (item, k, filter = []) =>
    getJson(`v1/items/${id(item)}/similar`, { k, filter }),
  findItems: (q, limit) => getJson("v1/items/search", { q, limit }),
};
