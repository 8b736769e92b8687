// The admin REST API (/api/v1), as docs/admin-api.md describes it. The token lives in this
// tab's sessionStorage only; it goes into the Authorization header and nowhere else (no URL,
// no console, no error text).

const TOKEN_KEY = "jobfleet.token";

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** An error reply (RFC 9457 problem+json where the server sent one). */
export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail || title);
    this.status = status;
    this.title = title;
    this.detail = detail;
  }
}

const seg = encodeURIComponent;

/** Calls `handler` when the server refuses the token (401), whatever asked. */
let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

async function call(path, { method = "GET", body, query } = {}) {
  const url = new URL(`api/v1/${path}`, document.baseURI);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Accept: "application/json, application/problem+json" };
  const secret = token.get();
  if (secret) headers.Authorization = `Bearer ${secret}`;
  const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, "No answer", "The admin server did not answer; is it running?");
  }
  const type = response.headers.get("Content-Type") || "";
  let data = null;
  if (response.status !== 204 && type.includes("json")) {
    data = await response.json().catch(() => null);
  }
  if (!response.ok) {
    const problem = data && typeof data === "object" ? data : {};
    const title = typeof problem.title === "string" ? problem.title : response.statusText;
    const detail = typeof problem.detail === "string" ? problem.detail : "";
    const error = new ApiError(response.status, title || `HTTP ${response.status}`, detail);
    if (response.status === 401) onUnauthorized(error);
    throw error;
  }
  return data;
}

const q = (queue) => `queues/${seg(queue)}`;

export const api = {
  whoami: () => call("whoami"),
  queues: () => call("queues"),
  queue: (queue) => call(q(queue)),
  workers: (queue) => call(`${q(queue)}/workers`),
  jobs: (queue, query) => call(`${q(queue)}/jobs`, { query }),
  deadLetters: (queue, query) => call(`${q(queue)}/dead-letters`, { query }),
  job: (queue, id) => call(`${q(queue)}/jobs/${seg(id)}`),
  retry: (queue, id) => call(`${q(queue)}/jobs/${seg(id)}/retry`, { method: "POST" }),
  cancel: (queue, id) => call(`${q(queue)}/jobs/${seg(id)}/cancel`, { method: "POST" }),
  remove: (queue, id) => call(`${q(queue)}/jobs/${seg(id)}`, { method: "DELETE" }),
  replay: (queue, body) => call(`${q(queue)}/dead-letters/replay`, { method: "POST", body }),
  purge: (queue, body) => call(`${q(queue)}/dead-letters/purge`, { method: "POST", body }),
  pause: (queue) => call(`${q(queue)}/pause`, { method: "POST" }),
  resume: (queue) => call(`${q(queue)}/resume`, { method: "POST" }),
};
