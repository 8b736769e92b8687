// Pure formatting of API values into the short texts the pages show.

const PRIORITIES = ["critical", "high", "normal", "low", "batch"];

export const count = (n) => (Number.isFinite(n) ? n.toLocaleString("en-US") : "–");

export function rate(perSecond) {
  if (!Number.isFinite(perSecond)) return "–";
  if (perSecond === 0) return "0";
  return perSecond >= 100 ? perSecond.toFixed(0) : perSecond.toFixed(perSecond >= 10 ? 1 : 2);
}

export function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds <= 0) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.floor(seconds % 60)} s`;
  const h = Math.floor(m / 60);
  return h < 48 ? `${h} h ${m % 60} min` : `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** A Unix time (seconds) as local "YYYY-MM-DD HH:MM:SS". */
export function time(unix) {
  if (!Number.isFinite(unix) || unix <= 0) return "–";
  const d = new Date(unix * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return (
    `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`
  );
}

export function priority(value) {
  if (typeof value === "number") return PRIORITIES[value] ?? String(value);
  return value == null ? "–" : String(value);
}

export function attempts(job) {
  return job.max_attempts ? `${job.attempt} / ${job.max_attempts}` : `${job.attempt}`;
}

/** One word for a queue's circuit breakers: "closed", or the open/half-open scopes. */
export function circuit(circuits) {
  const troubled = Object.entries(circuits || {}).filter(([, c]) => c && c.state !== "closed");
  if (troubled.length === 0) return { text: "closed", tone: "ok" };
  const open = troubled.some(([, c]) => c.state === "open");
  const scopes = troubled.map(([scope, c]) => `${scope === "*" ? "queue" : scope} ${c.state}`);
  return { text: scopes.join(", ").replaceAll("_", "-"), tone: open ? "bad" : "warn" };
}

/** JSON for reading: indented, and shown as text (never parsed as markup). */
export function json(value) {
  if (value === undefined) return "";
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

export function progressText(job) {
  if (job.progress == null) return "no progress reported";
  const parts = [`${Math.round(job.progress)} %`];
  if (job.progress_stage) parts.push(job.progress_stage);
  if (job.progress_message) parts.push(job.progress_message);
  return parts.join(" · ");
}
