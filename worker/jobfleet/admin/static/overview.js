// #/ — every queue at a glance, one row per queue, updated in place.

import { api } from "./api.js";
import { cloneTemplate, collect, setAttr, setText, show, syncKeyed } from "./dom.js";
import * as fmt from "./format.js";
import { queueHash } from "./routes.js";

const COUNTS = ["waiting", "active", "delayed", "held", "dead", "completed", "workers"];

export function mountOverview(main, ctx) {
  const { fragment, refs } = cloneTemplate("view-overview");
  main.replaceChildren(fragment);
  ctx.crumbs([]);

  function createRow() {
    const row = document.getElementById("row-queue").content.firstElementChild.cloneNode(true);
    row.fields = collect(row, "data-field");
    return row;
  }

  function updateRow(row, stats) {
    const f = row.fields;
    setAttr(row, "data-queue", stats.queue);
    setText(f.link, stats.queue);
    setAttr(f.link, "href", queueHash(stats.queue));
    for (const name of COUNTS) setText(f[name], fmt.count(stats[name]));
    setText(f.throughput, fmt.rate(stats.throughput));
    setText(f.failure_rate, fmt.rate(stats.failure_rate));
    setText(f.oldest_wait, fmt.duration(stats.oldest_wait));
    setText(f.paused, stats.paused ? "paused" : "running");
    setAttr(f.paused, "data-tone", stats.paused ? "warn" : "ok");
    const circuit = fmt.circuit(stats.circuits);
    setText(f.circuit, circuit.text);
    setAttr(f.circuit, "data-tone", circuit.tone);
    for (const name of ["dead", "held"]) setAttr(f[name], "data-nonzero", stats[name] > 0);
  }

  return {
    async refresh() {
      const { queues } = await api.queues();
      show(refs.empty, queues.length === 0);
      show(refs.table, queues.length > 0);
      syncKeyed(refs.rows, queues, (s) => s.queue, createRow, updateRow);
    },
  };
}
