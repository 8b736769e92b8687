// The dashboard's entry: sign-in, hash routing, the 2-second refresh, the confirmation
// dialog and the error/status regions. Views (overview.js, queue.js, job.js) render into
// <main> and expose refresh(); this module decides when it runs.

import { api, token, whenUnauthorized } from "./api.js";
import { cloneTemplate, collect, el, setText, show } from "./dom.js";
import { mountJob } from "./job.js";
import { mountOverview } from "./overview.js";
import { mountQueue } from "./queue.js";
import { parse } from "./routes.js";

const REFRESH_MS = 2000;
const VIEWS = { overview: mountOverview, queue: mountQueue, job: mountJob };

const ui = collect(document, "data-ref");
let role = null;
let view = null;
let timer = null;
let chain = Promise.resolve();
let refreshError = false;

// --- messages -------------------------------------------------------------------------------

function say(text) {
  setText(ui.status, text);
}

/** Show an API or network error; `fromRefresh` errors clear on the next good refresh. */
function showError(error, fromRefresh = false) {
  const title = error && error.title ? error.title : "Error";
  const detail = error && error.detail ? error.detail : error && error.message ? error.message : "";
  setText(ui.error, detail && detail !== title ? `${title}: ${detail}` : title);
  show(ui.error, true);
  refreshError = fromRefresh;
}

function clearError() {
  show(ui.error, false);
  setText(ui.error, "");
  refreshError = false;
}

// --- the confirmation dialog ----------------------------------------------------------------

function confirmAction({ title, message, action, danger = false }) {
  const dialog = ui.dialog;
  setText(ui["dialog-title"], title);
  setText(ui["dialog-message"], message);
  setText(ui["dialog-confirm"], action);
  ui["dialog-confirm"].className = danger ? "danger" : "primary";
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
  });
}

// --- refresh --------------------------------------------------------------------------------

/** Refresh the current view now, after any refresh already running (never two at once). */
function refreshNow() {
  const current = view;
  chain = chain.then(async () => {
    if (!current || current !== view || !role) return;
    try {
      await current.refresh();
      if (refreshError) clearError();
    } catch (error) {
      if (current === view && error.status !== 401) showError(error, true);
    }
  });
  return chain;
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    // Nothing moves under an open dialog or in a hidden tab; the checkbox stops it too.
    if (!ui.dialog.open && !document.hidden && ui.live.checked) await refreshNow();
    schedule();
  }, REFRESH_MS);
}

// --- routing --------------------------------------------------------------------------------

function crumbs(items) {
  const nodes = [];
  for (const item of items) {
    nodes.push(el("span", { class: "sep", "aria-hidden": "true" }, "/"));
    nodes.push(el("a", { href: item.href }, item.text));
  }
  if (nodes.length) nodes[nodes.length - 1].setAttribute("aria-current", "page");
  ui.crumbs.replaceChildren(...nodes);
  document.title = items.length ? `${items.map((i) => i.text).join(" / ")} · jobfleet` : "jobfleet";
}

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

/**
 * Wire `button` to `run` (an API call): confirmed first when `confirmation()` gives a
 * dialog's text, the button disabled while it runs, an error shown, then a refresh.
 */
function action(button, run, confirmation = null) {
  button.addEventListener("click", async () => {
    if (confirmation && !(await confirmAction(confirmation()))) return;
    button.disabled = true;
    try {
      await run();
    } catch (error) {
      showError(error, false);
    } finally {
      button.disabled = false;
    }
    await refreshNow();
  });
}

const ctx = {
  isAdmin: () => role === "admin",
  action,
  confirm: confirmAction,
  error: (error) => showError(error, false),
  say,
  crumbs,
  navigate,
  refreshNow,
};

function route() {
  if (!role) return;
  clearError();
  const target = parse(location.hash);
  view = VIEWS[target.view](ui.main, ctx, target);
  refreshNow();
}

// --- session --------------------------------------------------------------------------------

function showLogin(message) {
  role = null;
  view = null;
  delete document.body.dataset.role;
  show(ui.session, false);
  crumbs([]);
  const { fragment, refs } = cloneTemplate("view-login");
  ui.main.replaceChildren(fragment);
  refs.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = refs.token.value.trim();
    if (!value) return;
    token.set(value);
    refs.token.value = "";
    await signIn(true);
  });
  if (message) showError(message);
  refs.token.focus();
}

async function signIn(interactive) {
  try {
    const me = await api.whoami();
    role = me.role === "admin" ? "admin" : "viewer";
  } catch (error) {
    token.clear();
    if (interactive || error.status !== 401) {
      showLogin({ title: "Sign-in failed", detail: error.detail || error.title });
    } else {
      showLogin();
    }
    return;
  }
  document.body.dataset.role = role;
  setText(ui.role, role);
  show(ui.session, true);
  route();
}

whenUnauthorized((error) => {
  if (!role) return;
  token.clear();
  showLogin({ title: "Signed out: the server refused the token", detail: error.detail });
});

ui.logout.addEventListener("click", () => {
  token.clear();
  clearError();
  say("Signed out.");
  showLogin();
});
ui.live.addEventListener("change", () => {
  if (ui.live.checked) refreshNow();
});
window.addEventListener("hashchange", () => {
  route();
  ui.main.focus({ preventScroll: true });
});
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refreshNow();
});

if (token.get()) signIn(false);
else showLogin();
schedule();
