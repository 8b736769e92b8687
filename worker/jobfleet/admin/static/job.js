// #/queues/<queue>/jobs/<id> — one job: state, progress, attempts, times, payload, result or
// error with its traceback; retry, cancel and remove as its state allows.

import { api } from "./api.js";
import { cloneTemplate, setAttr, setText, show } from "./dom.js";
import * as fmt from "./format.js";
import { jobHash, queueHash } from "./routes.js";

const TIMES = ["enqueued_at", "run_at", "started_at", "finished_at", "lease_deadline"];
const TEXTS = ["worker_id", "dedup_key", "dead_reason"];
const CANCELLABLE = new Set(["waiting", "delayed", "active"]);

export function mountJob(main, ctx, route) {
  const { queue, id } = route;
  const { fragment, refs } = cloneTemplate("view-job");
  main.replaceChildren(fragment);
  ctx.crumbs([
    { text: queue, href: queueHash(queue) },
    { text: id, href: jobHash(queue, id) },
  ]);
  setText(refs.id, id);
  setText(refs.queue, queue);
  setAttr(refs.queue, "href", queueHash(queue));
  let job = null;
  let gone = false;
  for (const name of ["retry", "cancel", "remove"]) show(refs[name], false); // until the state is known

  function render(j) {
    job = j;
    setText(refs.state, j.state);
    setAttr(refs.state, "data-tone", toneOf(j.state));
    setText(refs.name, j.name);
    setText(refs.priority, fmt.priority(j.priority));
    setText(refs.attempts, j.max_attempts ? fmt.attempts(j) : `${j.attempt} (max: the queue's)`);
    for (const name of TIMES) setText(refs[name], fmt.time(j[name]));
    for (const name of TEXTS) setText(refs[name], j[name] || "–");
    // No bar until a progress is reported (an indeterminate bar would animate).
    show(refs.progress, j.progress != null);
    if (j.progress != null && refs.progress.value !== j.progress) refs.progress.value = j.progress;
    setText(refs["progress-text"], fmt.progressText(j));
    setText(refs.payload, fmt.json(j.payload));
    const hasResult = j.state === "completed" && j.result !== null && j.result !== undefined;
    show(refs["result-box"], hasResult);
    setText(refs.result, hasResult ? fmt.json(j.result) : "");
    show(refs["error-box"], Boolean(j.error));
    setText(refs["error-type"], j.error ? j.error.type : "");
    setText(refs["error-message"], j.error ? j.error.message : "");
    setText(refs.traceback, j.error && j.error.traceback ? j.error.traceback : "(no traceback)");
    show(refs.retry, j.state === "dead");
    show(refs.cancel, CANCELLABLE.has(j.state));
    show(refs.remove, j.state !== "active");
  }

  ctx.action(
    refs.retry,
    async () => {
      render(await api.retry(queue, id));
      ctx.say(`Job ${id} is waiting again.`);
    },
    () => ({
      title: `Retry job ${id}?`,
      message: "The dead letter goes back to waiting with its attempts reset.",
      action: "Retry",
    }),
  );
  ctx.action(
    refs.cancel,
    async () => {
      const reply = await api.cancel(queue, id);
      ctx.say(reply.result === "cancelling" ? `Job ${id} is being cancelled.` : `Job ${id} cancelled.`);
    },
    () => ({
      title: `Cancel job ${id}?`,
      message:
        job.state === "active"
          ? "Its worker stops the handler at its next lease renewal; the job ends cancelled and is not retried."
          : "It leaves the line and ends cancelled; it will not run.",
      action: "Cancel job",
      danger: true,
    }),
  );
  ctx.action(
    refs.remove,
    async () => {
      await api.remove(queue, id);
      gone = true;
      ctx.navigate(queueHash(queue));
      ctx.say(`Job ${id} removed.`);
    },
    () => ({
      title: `Remove job ${id}?`,
      message: "The job and everything recorded about it are deleted. This cannot be undone.",
      action: "Remove",
      danger: true,
    }),
  );

  return {
    async refresh() {
      if (!gone) render(await api.job(queue, id));
    },
  };
}

function toneOf(state) {
  if (state === "completed") return "ok";
  if (state === "dead") return "bad";
  if (state === "active") return "info";
  return "warn";
}
