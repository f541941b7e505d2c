// The operator console's script (issue 18).
//
// Sign-in (signin/signin.js, shared with the buyer page): the OAuth 2.0 authorization code
// flow with PKCE (S256) on the public client named in the page, in a window of its own that
// comes back to /console/signed-in; the tokens stay in this page's memory.
//
// Then, against triage's API: the queue (GET /api/cases, filtered, by cursor); a case (GET
// /api/cases/{id}, which triage records in the audit log before it answers) and its
// conversation (GET /api/cases/{id}/messages); claim, status moves, notes (sealed to every
// operator key of GET .../note-keys) and messages to the worker (sealed to the case's reply
// key, GET .../reply-key), each posted as a message whose envelope binds {message, kind}.
//
// The key file never enters this script's memory: the File the operator chose goes to the
// crypto worker, which reads it, keeps the key and does every opening and sealing. What this
// script sends is tokens, envelopes, status moves and their reasons. No cookie, no storage of
// any kind; requests go to this origin and to Keycloak only.

import {
  $,
  Refusal,
  cryptoWorker,
  element,
  fetchJson,
  field,
  fill,
  messages,
  say,
  signInSession,
  when,
} from "./signin/signin.js";

const PAGE_SIZE = 50;
const OPERATOR_ROLE = "triage-analyst";

const workflow = JSON.parse($("workflow").textContent);
const categoryNames = JSON.parse($("categories").textContent);

const worker = cryptoWorker(new URL("crypto-worker.js", import.meta.url));

// --- sign-in (signin/signin.js) ----------------------------------------------------------

const auth = signInSession({
  worker,
  accept(claims) {
    const roles = (claims.realm_access && claims.realm_access.roles) || [];
    if (!roles.includes(OPERATOR_ROLE)) throw new Refusal("not-an-operator");
    return { subject: claims.sub };
  },
  onEnd: sessionEnded,
});

function signOut() {
  auth.signOut("/console/", forgetEverything);
}

// --- triage's API ------------------------------------------------------------------------

/** What triage said when it refused: its `detail` (a sentence, or FastAPI's list of
 * validation errors), as text. */
function detailOf(answer) {
  const detail = answer && answer.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((problem) => problem && problem.msg).filter(Boolean).join("; ");
  return "";
}

/** Call triage's API as the signed-in operator; the answer's JSON, or a Refusal that shows
 * what triage said (409: not a move there is; 422: not a request it takes). */
async function api(method, path, body) {
  if (!auth.session) throw new Refusal("session-ended");
  const headers = { Authorization: `Bearer ${auth.session.accessToken}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const { response, answer } = await fetchJson(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) throw new Refusal("session-ended");
  if (response.status === 403) throw new Refusal("not-an-operator");
  if (!response.ok) {
    const detail = detailOf(answer);
    if (response.status >= 500 || !detail) throw new Refusal("network");
    throw Object.assign(new Refusal("refused", { detail }), { status: response.status });
  }
  return answer;
}

const casePath = (caseId) => `/api/cases/${encodeURIComponent(caseId)}`;

// --- what the page holds, in memory only -------------------------------------------------

let keyId = null; // the loaded key's id (the key itself is in the worker)
let queue = { cases: [], next: null, filters: {} };
// The case open on the page: its detail (with envelopes), what opened of it, the
// conversation and what opened of that.
let current = null; // {detail, opened, conversation, openedMessages: Map, history}
// The texts this page sealed to the worker (which the operator's key cannot open again).
const sentTexts = new Map(); // message id -> text

// --- the queue ---------------------------------------------------------------------------

function queueFilters() {
  const filters = {};
  if ($("filter-status").value) filters.status = $("filter-status").value;
  if ($("filter-severity").value) filters.severity = $("filter-severity").value;
  if ($("filter-factory").value.trim()) filters.factory = $("filter-factory").value.trim();
  return filters;
}

/** The first page of the queue (`more`: the page after the one shown). */
async function loadQueue(more = false) {
  say($("progress"), "loading");
  const filters = more ? queue.filters : queueFilters();
  const parameters = new URLSearchParams({ ...filters, limit: String(PAGE_SIZE) });
  if (more && queue.next) parameters.set("after", queue.next);
  const answer = await api("GET", `/api/cases?${parameters}`);
  if (!Array.isArray(answer.cases)) throw new Refusal("network");
  queue = {
    cases: more ? [...queue.cases, ...answer.cases] : answer.cases,
    next: typeof answer.next === "string" ? answer.next : null,
    filters,
  };
  say($("progress"), "");
  renderQueue();
}

// --- a case ------------------------------------------------------------------------------

async function openCase(caseId) {
  say($("progress"), "opening");
  const detail = await api("GET", casePath(caseId)); // triage logs the hand-out first
  current = { detail, opened: null, conversation: [], openedMessages: new Map(), history: [] };
  await loadHistory();
  await loadConversation();
  if (keyId) await openCurrent();
  say($("progress"), "");
  showCase(true);
  renderCase();
}

/** Run an action on the open case; if triage refuses it as a conflict (another operator
 * moved or claimed the case meanwhile), show the case as it is now, with the refusal. */
async function onFreshCase(action) {
  try {
    await action();
  } catch (error) {
    if (!(error instanceof Refusal) || error.status !== 409) throw error;
    await openCase(current.detail.case_id); // handed out again, and logged again
    throw new Refusal("refused-reloaded", error.values);
  }
}

/** The case's claims and status moves (no envelope: nothing is handed out for it). */
async function loadHistory() {
  const answer = await api("GET", `${casePath(current.detail.case_id)}/history`);
  current.history = Array.isArray(answer.entries) ? answer.entries : [];
}

async function loadConversation() {
  const answer = await api("GET", `${casePath(current.detail.case_id)}/messages`);
  current.conversation = Array.isArray(answer.messages) ? answer.messages : [];
  current.openedMessages = new Map();
  if (keyId) await openConversation();
}

/** Open the case's envelopes and the conversation's, in the worker, with the loaded key. */
async function openCurrent() {
  current.opened = await worker.call("open-case", { detail: current.detail });
  await openConversation();
}

async function openConversation() {
  const sealed = current.conversation.filter((message) => message.envelope);
  if (sealed.length === 0) return;
  const opened = await worker.call("open-messages", { case_id: current.detail.case_id, messages: sealed });
  // Keyed by the message itself: two authors may use one id (services/triage/messages.py).
  current.openedMessages = new Map(sealed.map((message, i) => [message, opened[i]]));
}

async function loadKey(file) {
  let loaded;
  try {
    loaded = await worker.call("load-key", { file }); // the worker reads it; this script never
  } catch (error) {
    const key = `key-${error.reason || error.key}`;
    throw new Refusal(messages[key] ? key : "key-not-a-key-file");
  }
  keyId = loaded.key_id;
  say($("key-status"), "key-loaded", { key: `${keyId.slice(0, 15)}…` });
  if (current) {
    say($("progress"), "opening");
    await openCurrent();
    say($("progress"), "");
    renderCase();
  }
}

// --- actions on the open case --------------------------------------------------------------

function notice(key, values = {}) {
  say($("case-error"), "");
  say($("case-notice"), key, values);
}

async function claim() {
  let answer;
  await onFreshCase(async () => {
    answer = await api("POST", `${casePath(current.detail.case_id)}/claim`, {});
  });
  current.detail.assignee = answer.assignee;
  await loadHistory();
  renderCase();
  notice("claimed");
}

async function changeStatus() {
  const status = $("status-to").value;
  const reason = $("status-reason").value.trim();
  if (!status) throw new Refusal("no-moves");
  // Whether a reason is needed is triage's rule (a 422 says so); the label tells it too.
  const body = reason ? { status, reason } : { status };
  let answer;
  await onFreshCase(async () => {
    answer = await api("POST", `${casePath(current.detail.case_id)}/status`, body);
  });
  current.detail.status = answer.status;
  $("status-reason").value = "";
  await loadHistory();
  renderCase();
  notice("status-changed", { status: messages[`status-${answer.status}`] || answer.status });
}

/** Seal `text` in the worker to `recipients` as a message of `kind`, and post it. */
async function postMessage(kind, text, recipients) {
  say($("progress"), "sealing");
  let sealed;
  try {
    sealed = await worker.call("seal-message", { case_id: current.detail.case_id, kind, text, recipients });
  } catch (error) {
    throw new Refusal(["empty-text", "too-long"].includes(error.reason) ? error.reason : "seal-failed");
  } finally {
    say($("progress"), "");
  }
  const body = { message_id: sealed.message_id, kind, envelope: sealed.envelope };
  await api("POST", `${casePath(current.detail.case_id)}/messages`, body);
  return sealed.message_id;
}

async function addNote() {
  const text = $("note-text").value;
  if (!text.trim()) throw new Refusal("empty-text");
  const found = await api("GET", `${casePath(current.detail.case_id)}/note-keys`);
  if (!found.keys || Object.keys(found.keys).length === 0) throw new Refusal("no-note-keys");
  await postMessage("note", text, found.keys);
  $("note-text").value = "";
  await loadConversation();
  renderCase();
  notice("note-added");
}

async function sendMessage() {
  const kind = $("message-kind").value;
  const text = $("message-text").value;
  if (!text.trim()) throw new Refusal("empty-text");
  const found = await api("GET", `${casePath(current.detail.case_id)}/reply-key`);
  let recipients;
  try {
    recipients = await worker.call("reply-recipients", { reply_key: found.reply_key });
  } catch {
    throw new Refusal("seal-failed");
  }
  const messageId = await postMessage(kind, text, recipients);
  sentTexts.set(messageId, text);
  $("message-text").value = "";
  // Triage acknowledges the case once its consumer reads the acknowledgement (a moment
  // later): the page shows the move it will make, and a status move refused meanwhile
  // says so.
  if (kind === "acknowledgement" && current.detail.status === "received") current.detail.status = "acknowledged";
  await loadConversation();
  renderCase();
  notice("message-sent");
}

// --- showing it --------------------------------------------------------------------------

const severityText = (severity) => messages[`severity-${severity}`] || severity;
const statusText = (status) => messages[`status-${status}`] || status;
const categoriesText = (codes) => (codes || []).map((code) => categoryNames[code] || code).join(", ");

function assigneeText(assignee) {
  if (!assignee) return messages.nobody;
  return auth.session && assignee === auth.session.subject ? messages.you : assignee;
}

function renderQueue() {
  const rows = queue.cases.map((item) => {
    const li = element("li", undefined, "case-row");
    li.dataset.case = item.case_id;
    li.dataset.status = item.status;
    li.dataset.severity = item.severity;
    const open = element("button", undefined, "case-open");
    open.type = "button";
    const head = element("span", undefined, "case-head");
    head.append(
      element("span", severityText(item.severity), `severity severity-${item.severity}`),
      " ",
      element("span", statusText(item.status), "status"),
      " ",
      element("code", item.case_id.slice(0, 8), "case-id"),
    );
    const facts = element("span", `${item.factory} · ${categoriesText(item.categories)}`, "case-facts");
    const due = element("span", `${messages["field-due"]}: ${when(item.due)}`, "case-due");
    open.append(head, facts, due);
    open.addEventListener("click", () => guarded(() => openCase(item.case_id)));
    li.append(open);
    return li;
  });
  $("case-list").replaceChildren(...rows);
  if (queue.cases.length === 0) say($("queue-summary"), "queue-empty");
  else say($("queue-summary"), "queue-count", { count: queue.cases.length });
  $("more").hidden = !queue.next;
}

function sealedText(element_, result, lockedKey = "text-locked") {
  element_.classList.toggle("note", !(result && result.text !== null));
  element_.dataset.opened = result && result.text !== null ? "yes" : "no";
  if (!result) return say(element_, lockedKey);
  if (result.text !== null) {
    element_.textContent = result.text === "" ? messages["text-none"] : result.text;
    return undefined;
  }
  return say(element_, result.reason === "not-a-recipient" ? "text-not-a-recipient" : "text-integrity");
}

function renderMessage(message) {
  const li = element("li", undefined, "message");
  li.dataset.message = message.message_id;
  li.dataset.kind = message.kind;
  li.append(element("p", `${messages[`kind-${message.kind}`] || message.kind} · ${message.day}`, "message-head"));
  const text = element("p", undefined, "message-text sealed");
  if (message.envelope) {
    sealedText(text, keyId ? current.openedMessages.get(message) : null);
  } else if (sentTexts.has(message.message_id)) {
    text.textContent = sentTexts.get(message.message_id);
    text.dataset.opened = "yes";
  } else {
    say(text, message.envelope_hash ? "text-to-worker" : "text-none");
    text.classList.add("note");
    text.dataset.opened = "no";
  }
  li.append(text);
  return li;
}

function renderHistory(entry) {
  const who = assigneeText(entry.subject);
  const line =
    entry.action === "claim"
      ? fill(messages["history-claim"], { hour: when(entry.hour), who })
      : fill(messages["history-status"], {
          hour: when(entry.hour),
          previous: statusText(entry.previous),
          status: statusText(entry.status),
          who,
        });
  const li = element("li", line, "history-entry");
  li.dataset.action = entry.action;
  if (entry.reason) li.append(element("span", fill(messages["history-reason"], { reason: entry.reason }), "reason"));
  return li;
}

function renderCase() {
  const { detail } = current;
  $("case-id").textContent = detail.case_id;
  $("case").dataset.case = detail.case_id;
  $("case").dataset.status = detail.status;
  $("case-fields").replaceChildren(
    field("status", statusText(detail.status)),
    field("severity", severityText(detail.severity)),
    field("due", when(detail.due)),
    field("assignee", assigneeText(detail.assignee)),
    field("factory", detail.factory),
    field("categories", categoriesText(detail.categories)),
    field("urgent", detail.urgent ? messages.yes : messages.no),
    field("language", detail.language),
  );
  const moves = workflow.transitions[detail.status] || [];
  $("status-to").replaceChildren(
    ...moves.map((status) => {
      const option = element("option", statusText(status));
      option.value = status;
      return option;
    }),
  );
  $("status-form").hidden = moves.length === 0;
  // Nobody claims a final case (a resolved or closed one has no moves), nor their own again.
  $("claim").hidden =
    moves.length === 0 || Boolean(auth.session && detail.assignee === auth.session.subject);
  $("actions").hidden = $("status-form").hidden && $("claim").hidden;
  $("history-list").replaceChildren(...current.history.map(renderHistory));
  const opened = keyId ? current.opened : null;
  sealedText($("content-text"), opened && opened.content);
  if (!detail.identity) {
    say($("identity-text"), "identity-none");
    $("identity-text").dataset.opened = "no";
    $("identity-text").classList.add("note");
  } else {
    sealedText($("identity-text"), opened && opened.identity);
  }
  if (current.conversation.length === 0) {
    $("messages-list").replaceChildren(element("li", messages["no-messages"], "message note"));
  } else {
    $("messages-list").replaceChildren(...current.conversation.map(renderMessage));
  }
}

function showCase(shown) {
  $("case").hidden = !shown;
  $("queue").hidden = shown;
  say($("case-notice"), "");
  say($("case-error"), "");
  window.scrollTo(0, 0);
}

function showSignedIn(signedIn) {
  $("signed-out").hidden = signedIn;
  $("signed-in").hidden = !signedIn;
  if (signedIn) say($("who"), "signed-in-as", { user: auth.session.user });
}

/** The session is over (expired, refused): what is on the page stays, nothing more loads. */
function sessionEnded() {
  showSignedIn(false);
  say($("error"), "session-ended");
}

// --- leaving no trace --------------------------------------------------------------------

function forgetEverything() {
  auth.forget();
  keyId = null;
  current = null;
  queue = { cases: [], next: null, filters: {} };
  sentTexts.clear();
  worker.stop(); // the key goes with the worker
  $("key-file").value = "";
  $("case-list").replaceChildren();
  $("messages-list").replaceChildren();
  $("history-list").replaceChildren();
  for (const id of ["content-text", "identity-text", "note-text", "message-text"]) {
    $(id).textContent = "";
    if ("value" in $(id)) $(id).value = "";
  }
  for (const id of ["key-status", "progress", "error", "who", "queue-summary"]) say($(id), "");
  $("workspace").hidden = true;
}

// --- wiring ------------------------------------------------------------------------------

let busy = false;

/** Run `task` once at a time, showing its refusal where it belongs: on the open case for an
 * action on it (`onCase`), else at the top of the page. */
async function guarded(task, onCase = false) {
  if (busy) return;
  busy = true;
  say($("error"), "");
  if (onCase) {
    say($("case-error"), "");
    say($("case-notice"), "");
  }
  try {
    await task();
  } catch (error) {
    say($("progress"), "");
    const refusal = error instanceof Refusal ? error : new Refusal("network");
    if (refusal.key === "session-ended") auth.end();
    else say(onCase ? $("case-error") : $("error"), messages[refusal.key] ? refusal.key : "network", refusal.values);
  } finally {
    busy = false;
  }
}

function onSubmit(id, task) {
  $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(task, true);
  });
}

$("signed-out").hidden = false;
worker.start(); // its wasm compiles while the operator signs in
$("sign-in").addEventListener("click", () =>
  guarded(async () => {
    await auth.signIn();
    showSignedIn(true);
    $("workspace").hidden = false;
    await loadQueue();
  }),
);
$("sign-out").addEventListener("click", signOut);
$("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(() => loadQueue());
});
$("more").addEventListener("click", () => guarded(() => loadQueue(true)));
$("back").addEventListener("click", () =>
  guarded(async () => {
    showCase(false);
    await loadQueue(); // the queue as it is now (statuses, assignees)
  }),
);
$("claim").addEventListener("click", () => guarded(claim, true));
onSubmit("status-form", changeStatus);
onSubmit("note-form", addNote);
onSubmit("message-form", sendMessage);
$("key-file").addEventListener("change", () => {
  const [file] = $("key-file").files;
  if (file) guarded(() => loadKey(file));
});
window.addEventListener("pagehide", forgetEverything);
