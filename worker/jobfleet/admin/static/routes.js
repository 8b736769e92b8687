// Hash routes: #/ (queues), #/queues/<queue>[?state=&name=&error_type=], #/queues/<queue>/jobs/<id>.
// Names and ids are percent-encoded, so any character a queue or job id may hold round-trips.

const enc = encodeURIComponent;

export const STATES = ["waiting", "active", "delayed", "held", "completed", "dead"];

export function queueHash(queue, query = {}) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) if (value) params.set(name, value);
  const tail = params.toString();
  return `#/queues/${enc(queue)}${tail ? `?${tail}` : ""}`;
}

export const jobHash = (queue, id) => `#/queues/${enc(queue)}/jobs/${enc(id)}`;

/** {view, queue?, id?, query} for a location hash; unknown hashes are the overview. */
export function parse(hash) {
  const raw = hash.replace(/^#/, "");
  const [path, search = ""] = raw.split("?", 2);
  const query = Object.fromEntries(new URLSearchParams(search));
  const parts = path.split("/").filter(Boolean);
  try {
    const decoded = parts.map(decodeURIComponent);
    if (decoded[0] === "queues" && decoded.length === 2) {
      const state = STATES.includes(query.state) ? query.state : "waiting";
      return { view: "queue", queue: decoded[1], query: { ...query, state } };
    }
    if (decoded[0] === "queues" && decoded[2] === "jobs" && decoded.length === 4) {
      return { view: "job", queue: decoded[1], id: decoded[3], query };
    }
  } catch {
    // A malformed escape: fall through to the overview.
  }
  return { view: "overview", query: {} };
}
