// #/queues/<queue> — one queue: live counts, jobs by state (tabs), search by id, pages,
// pause/resume, and for dead letters replay/purge of a selection or of all that match.

import { api } from "./api.js";
import { cloneTemplate, collect, el, setAttr, setText, show, syncKeyed } from "./dom.js";
import * as fmt from "./format.js";
import { jobHash, queueHash, STATES } from "./routes.js";

const PAGE_SIZE = 20;

const LABELS = {
  waiting: "Waiting",
  active: "Active",
  delayed: "Delayed",
  held: "Held",
  completed: "Completed",
  dead: "Dead letters",
};

// Which time each state's list shows, and under which heading.
const WHEN = {
  waiting: ["Due", (j) => j.run_at || j.enqueued_at],
  held: ["Due", (j) => j.run_at || j.enqueued_at],
  delayed: ["Runs at", (j) => j.run_at],
  active: ["Started", (j) => j.started_at],
  completed: ["Finished", (j) => j.finished_at],
  dead: ["Died", (j) => j.finished_at],
};

export function mountQueue(main, ctx, route) {
  const { queue } = route;
  const state = route.query.state;
  const filters = { name: route.query.name || "", error_type: route.query.error_type || "" };
  const { fragment, refs } = cloneTemplate("view-queue");
  main.replaceChildren(fragment);
  ctx.crumbs([{ text: queue, href: queueHash(queue) }]);
  setText(refs.name, queue);
  show(refs.pause, false); // until the first stats say which one applies
  show(refs.resume, false);

  // Pages: the cursors of the pages before this one, and this one's (null: the first).
  let cursor = null;
  const previous = [];
  let nextCursor = null;
  const selected = new Set();
  const dead = state === "dead";

  // Tabs, one per state, each with its live count.
  const tabCounts = {};
  for (const name of STATES) {
    const tab = el("a", {
      href: queueHash(queue, { state: name, ...filters }),
      "aria-current": name === state ? "page" : null,
      "data-state": name,
    });
    tab.append(el("span", {}, LABELS[name]), " ");
    tabCounts[name] = tab.appendChild(el("span", { class: "count", "data-count": name }));
    refs.tabs.append(tab);
  }
  refs.panel.setAttribute("aria-label", LABELS[state]);
  setText(refs["when-head"], WHEN[state][0]);
  setText(refs.empty, dead ? "No dead letter matches." : `No ${state} job matches.`);
  refs["f-name"].value = filters.name;
  refs["f-error"].value = filters.error_type;
  show(refs.bulk, dead);
  setAttr(refs.table, "data-pick", dead && ctx.isAdmin());

  refs.filters.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = refs["f-name"].value.trim();
    const errorType = refs["f-error"].value.trim();
    ctx.navigate(queueHash(queue, { state, name, error_type: errorType }));
  });
  refs.filters.addEventListener("reset", () => ctx.navigate(queueHash(queue, { state })));

  refs.search.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = refs["search-id"].value.trim();
    if (!id) return;
    try {
      await api.job(queue, id);
      ctx.navigate(jobHash(queue, id));
    } catch (error) {
      ctx.error(error);
    }
  });

  const act = (button, run) => ctx.action(button, run);

  act(refs.pause, async () => {
    renderStats(await api.pause(queue));
    ctx.say(`Queue ${queue} paused.`);
  });
  act(refs.resume, async () => {
    renderStats(await api.resume(queue));
    ctx.say(`Queue ${queue} resumed.`);
  });

  const filterBody = () => {
    const body = {};
    if (filters.name) body.name = filters.name;
    if (filters.error_type) body.error_type = filters.error_type;
    return body;
  };
  const described = () => {
    const parts = [];
    if (filters.name) parts.push(`handler “${filters.name}”`);
    if (filters.error_type) parts.push(`error type “${filters.error_type}”`);
    return parts.length ? `every dead letter of ${parts.join(" and ")}` : "every dead letter";
  };
  const bulk = (verb, body, what) => async () => {
    const replay = verb === "replay";
    const ok = await ctx.confirm({
      title: `${replay ? "Replay" : "Purge"} ${what}?`,
      message: replay
        ? "They go back to waiting with their attempts reset; their last error stays visible until they run."
        : "Their payloads, errors and tracebacks are deleted. This cannot be undone.",
      action: replay ? "Replay" : "Purge",
      danger: !replay,
    });
    if (!ok) return;
    const reply = await (replay ? api.replay(queue, body()) : api.purge(queue, body()));
    selected.clear();
    ctx.say(`${replay ? "Replayed" : "Purged"} ${reply.count} dead letter${reply.count === 1 ? "" : "s"}.`);
  };
  const selection = () => ({ ids: [...selected] });
  const selectedWhat = () => `${selected.size} selected dead letter${selected.size === 1 ? "" : "s"}`;
  act(refs["replay-selected"], () => bulk("replay", selection, selectedWhat())());
  act(refs["purge-selected"], () => bulk("purge", selection, selectedWhat())());
  act(refs["replay-all"], () => bulk("replay", filterBody, described())());
  act(refs["purge-all"], () => bulk("purge", filterBody, described())());

  function updateSelection() {
    refs["replay-selected"].disabled = selected.size === 0;
    refs["purge-selected"].disabled = selected.size === 0;
  }

  const page = (to, stack) => async () => {
    stack();
    cursor = to();
    await ctx.refreshNow();
  };
  refs.first.addEventListener("click", page(() => null, () => previous.splice(0)));
  refs.prev.addEventListener("click", page(() => previous.pop() ?? null, () => {}));
  refs.next.addEventListener("click", page(() => nextCursor, () => previous.push(cursor)));

  function renderStats(s) {
    setText(refs.paused, s.paused ? "paused" : "running");
    setAttr(refs.paused, "data-tone", s.paused ? "warn" : "ok");
    show(refs.pause, !s.paused);
    show(refs.resume, s.paused);
    setText(refs.throughput, fmt.rate(s.throughput));
    setText(refs.failure_rate, fmt.rate(s.failure_rate));
    setText(refs.oldest_wait, fmt.duration(s.oldest_wait));
    setText(refs.workers, fmt.count(s.workers));
    const circuit = fmt.circuit(s.circuits);
    setText(refs.circuit, circuit.text);
    setAttr(refs.circuit, "data-tone", circuit.tone);
    for (const name of STATES) setText(tabCounts[name], fmt.count(s[name]));
    setAttr(refs["purge-all"], "disabled", s.dead === 0);
    setAttr(refs["replay-all"], "disabled", s.dead === 0);
  }

  function createRow() {
    const row = document.getElementById("row-job").content.firstElementChild.cloneNode(true);
    row.fields = collect(row, "data-field");
    row.fields.pick.addEventListener("change", () => {
      if (row.fields.pick.checked) selected.add(row.dataset.key);
      else selected.delete(row.dataset.key);
      updateSelection();
    });
    return row;
  }

  function updateRow(row, job) {
    const f = row.fields;
    setAttr(row, "data-job", job.id);
    setAttr(row, "data-state", job.state);
    setText(f.link, job.id);
    setAttr(f.link, "href", jobHash(queue, job.id));
    setAttr(f.pick, "aria-label", `Select ${job.id}`);
    f.pick.checked = selected.has(job.id);
    setText(f.name, job.name);
    setText(f.priority, fmt.priority(job.priority));
    setText(f.attempts, fmt.attempts(job));
    const hasProgress = job.progress != null;
    show(f.progress, hasProgress);
    if (hasProgress && f.progress.value !== job.progress) f.progress.value = job.progress;
    setText(f["progress-text"], hasProgress ? `${Math.round(job.progress)} %` : "–");
    setText(f.enqueued, fmt.time(job.enqueued_at));
    setText(f.when, fmt.time(WHEN[state][1](job)));
    setText(f.error, job.error ? `${job.error.type}: ${job.error.message}` : "");
  }

  function renderWorkers(workers) {
    show(refs["no-workers"], workers.length === 0);
    syncKeyed(
      refs["workers-list"],
      workers,
      (w) => w.id,
      () => {
        const item = el("li");
        item.fields = { id: item.appendChild(el("span", { class: "mono" })), info: item.appendChild(el("span", { class: "muted" })) };
        return item;
      },
      (item, w) => {
        setText(item.fields.id, w.id);
        setText(item.fields.info, ` ${w.in_flight} in flight${w.draining ? " · draining" : ""}`);
      },
    );
  }

  return {
    async refresh() {
      const query = { limit: PAGE_SIZE, cursor, ...filters };
      const list = dead ? api.deadLetters(queue, query) : api.jobs(queue, { state, ...query });
      // Each part shows what it got; the first failure is reported after.
      const parts = await Promise.allSettled([api.queue(queue), list, api.workers(queue)]);
      const [s, jobs, workers] = parts;
      if (s.status === "fulfilled") renderStats(s.value);
      if (workers.status === "fulfilled") renderWorkers(workers.value.workers);
      if (jobs.status === "fulfilled") renderJobs(jobs.value);
      const failed = parts.find((r) => r.status === "rejected");
      if (failed) throw failed.reason;
    },
  };

  function renderJobs(jobs) {
    nextCursor = jobs.next_cursor || null;
    const visible = new Set(jobs.jobs.map((j) => j.id));
    for (const id of selected) if (!visible.has(id)) selected.delete(id);
    syncKeyed(refs.rows, jobs.jobs, (j) => j.id, createRow, updateRow);
    updateSelection();
    show(refs.empty, jobs.jobs.length === 0);
    show(refs.table, jobs.jobs.length > 0);
    refs.next.disabled = !nextCursor;
    refs.prev.disabled = previous.length === 0;
    refs.first.disabled = previous.length === 0;
    setText(refs.page, `Page ${previous.length + 1}`);
  }
}
