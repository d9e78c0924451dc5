// The JSON API with the signed-in user's bearer token (kept in sessionStorage: it lives
// as long as the tab, and sign-out removes it).

const KEY = "accord.token";
const RETRY_MS = 250;  // a read the network dropped (the user's network changed, say) goes once more
let onUnauthorised = () => {};

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(value) {
  sessionStorage.setItem(KEY, value);
}

export function clearToken() {
  sessionStorage.removeItem(KEY);
}

/** What to do when the server stops accepting the token (expired, revoked). */
export function whenUnauthorised(fn) {
  onUnauthorised = fn;
}

/** An error answer of the API: its status and problem document. */
export class ApiError extends Error {
  constructor(status, doc) {
    super(doc && doc.detail ? String(doc.detail) : `HTTP ${status}`);
    this.status = status;
    this.title = (doc && doc.title) || "";
    this.problems = (doc && Array.isArray(doc.problems)) ? doc.problems : [];
  }

  /** One line for people: "Refused (403): only ...". */
  explain() {
    const what = {401: "Not signed in", 403: "Refused", 404: "Not found", 409: "Conflict",
      422: "Invalid input", 429: "Too many requests", 503: "Unavailable"}[this.status] || "Error";
    return `${what} (${this.status}): ${this.message}`;
  }
}

/**
 * Call the API. `body` is sent as JSON; `as` is "json" (default), "text" or "blob";
 * `bearer` overrides the stored token (sign-in checks a token before keeping it).
 * Throws ApiError for an error answer, TypeError when the server cannot be reached (a GET
 * is tried once more first: reads change nothing; a write is never sent twice by this).
 */
export async function api(path, {method = "GET", body, as = "json", bearer} = {}) {
  const credential = bearer || token();
  const headers = {Accept: as === "json" ? "application/json" : "*/*"};
  if (credential) headers.Authorization = `Bearer ${credential}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await send(path, {method, headers, cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body)});
  if (!response.ok) {
    let doc = null;
    try {
      doc = await response.json();
    } catch {
      doc = {detail: response.statusText};
    }
    const error = new ApiError(response.status, doc);
    if (response.status === 401 && !bearer) onUnauthorised(error);
    throw error;
  }
  if (as === "blob") return response.blob();
  if (as === "text") return response.text();
  return response.json();
}

async function send(path, init) {
  try {
    return await fetch(path, init);
  } catch (error) {
    if (init.method !== "GET" || !(error instanceof TypeError)) throw error;
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    return fetch(path, init);
  }
}

/** Query string from an object, skipping empty values (arrays repeat the key). */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === "") continue;
    for (const item of Array.isArray(v) ? v : [v]) q.append(k, String(item));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}
