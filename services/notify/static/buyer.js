// The buyer page's script (issue 19 contract §6).
//
// Sign-in (signin/signin.js, shared with the operator console): the OAuth 2.0 authorization
// code flow with PKCE (S256) on the public client named in the page, in a window of its own
// that comes back to /buyer/signed-in; the tokens stay in this page's memory.
//
// Then: every digest since the last one held (GET /api/digests, by cursor) is checked in
// the crypto worker against the digest key pinned in the page (signature, and chain by seq
// and previous hash); the key file is read with FileReader and handed to the worker, which
// keeps it and opens the items of the digests that passed; the CSV is made here, as a Blob.
// No cookie, no storage of any kind; requests go to this origin and to Keycloak only.

import {
  $,
  Refusal,
  cryptoWorker,
  element,
  fetchJson,
  field,
  fill,
  messages,
  meta,
  say,
  signInSession,
  when,
} from "./signin/signin.js";

const MAX_KEY_FILE_BYTES = 1024; // as hotline.shared.keys
const PAGE_SIZE = 200; // the most GET /api/digests hands out at once

const categoryNames = JSON.parse($("categories").textContent);
const config = {
  vkey: meta("hotline-digest-vkey"),
  lang: meta("hotline-lang"),
};

const worker = cryptoWorker(new URL("crypto-worker.js", import.meta.url));

// --- sign-in (signin/signin.js) ----------------------------------------------------------

const auth = signInSession({
  worker,
  accept(claims) {
    const roles = (claims.realm_access && claims.realm_access.roles) || [];
    if (!roles.includes("buyer") || typeof claims.org !== "string") throw new Refusal("not-a-buyer");
    return { org: claims.org };
  },
  onEnd: sessionEnded,
});

function signOut() {
  auth.signOut(`/buyer/${config.lang}/`, forgetEverything);
}

// --- digests -----------------------------------------------------------------------------

// What the page holds, in memory only: every digest fetched, in order, with its verdict.
let held = []; // [{file, seq, hash, signature, chain, opened: Map(case_id -> {text, reason})}]
let cursor = 0; // the `since` of the next pull
let chainEnd = null; // {seq, hash} of the last digest checked: where the chain continues
let keyId = null;

async function getJson(path) {
  const { response, answer } = await fetchJson(path, {
    headers: { Authorization: `Bearer ${auth.session.accessToken}` },
  });
  if (response.status === 401) throw new Refusal("session-ended");
  if (response.status === 403) throw new Refusal("not-a-buyer");
  if (!response.ok || answer === null) throw new Refusal("network");
  return answer;
}

function passed(entry) {
  return entry.signature === null;
}

function trusted(entry) {
  return passed(entry) && (entry.chain === "first" || entry.chain === "follows");
}

/** Fetch and check every digest after the last one held. */
async function pull() {
  if (!auth.session) throw new Refusal("session-ended");
  say($("progress"), "loading");
  let more = true;
  while (more) {
    const answer = await getJson(`/api/digests?since=${cursor}&limit=${PAGE_SIZE}`);
    if (!Array.isArray(answer.digests)) throw new Refusal("network");
    if (answer.digests.length > 0) {
      say($("progress"), "checking");
      let checked;
      try {
        checked = await worker.call("check", {
          files: answer.digests,
          vkey: config.vkey,
          buyer: auth.session.org,
          before: chainEnd,
        });
      } catch (error) {
        throw new Refusal(error.reason === "bad-vkey" ? "bad-vkey" : "network");
      }
      chainEnd = checked.last;
      answer.digests.forEach((file, i) => held.push({ file, ...checked.verdicts[i], opened: new Map() }));
    }
    more = answer.more === true && answer.digests.length > 0;
    cursor = Number.isSafeInteger(answer.next) ? answer.next : cursor;
  }
  if (keyId) await openHeld();
  say($("progress"), "");
  render();
}

// --- the key file ------------------------------------------------------------------------

function readText(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Refusal("key-not-a-key-file"));
    reader.readAsText(file);
  });
}

async function loadKey(file) {
  if (file.size > MAX_KEY_FILE_BYTES) throw new Refusal("key-not-a-key-file");
  let loaded;
  try {
    loaded = await worker.call("load-key", { text: await readText(file) });
  } catch (error) {
    const key = `key-${error.reason || error.key}`;
    throw new Refusal(messages[key] ? key : "key-not-a-key-file");
  }
  keyId = loaded.key_id;
  for (const entry of held) entry.opened.clear(); // another key opens other reports
  await openHeld();
  render();
}

/** Open, in the worker, the items of every digest that passed the signature check. */
async function openHeld() {
  say($("progress"), "opening");
  for (const entry of held) {
    if (!passed(entry) || entry.opened.size > 0) continue;
    const results = await worker.call("open", { items: entry.file.digest.items });
    for (const result of results) entry.opened.set(result.case_id, result);
  }
  say($("progress"), "");
}

// --- showing it --------------------------------------------------------------------------

function checkKey(entry) {
  if (entry.signature !== null) return `check-${entry.signature}`;
  return trusted(entry) ? "check-verified" : `check-${entry.chain}`;
}

function itemText(entry, item) {
  if (!passed(entry)) return { key: "text-unchecked" };
  if (item.change !== "new") return { key: "text-changed" };
  const opened = entry.opened.get(item.case_id);
  if (!opened) return { key: "text-locked" };
  if (opened.text !== null) return { text: opened.text };
  return { key: opened.reason === "not-a-recipient" ? "text-not-a-recipient" : "text-integrity" };
}

function renderItem(entry, item) {
  const li = element("li", undefined, "item");
  li.dataset.case = item.case_id;
  li.dataset.change = item.change;
  const head = element("p", undefined, "item-head");
  head.append(element("strong", messages[`change-${item.change}`] || item.change, "change"), " ");
  if (item.urgent) head.append(element("span", messages.urgent, "urgent"), " ");
  head.append(element("code", item.case_id, "case-id"));
  const fields = element("dl", undefined, "fields");
  fields.append(
    field("factory", item.factory),
    field("categories", (item.categories || []).map((code) => categoryNames[code] || code).join(", ")),
    field("severity", item.severity ? messages[`severity-${item.severity}`] || item.severity : messages.none),
    field("status", messages[`status-${item.status}`] || item.status),
    field("due", item.due ? when(item.due) : messages.none),
    field("received", when(item.received)),
  );
  if (Array.isArray(item.attachments) && item.attachments.length > 0) {
    fields.append(field("attachments", String(item.attachments.length)));
  }
  const shown = itemText(entry, item);
  const text = element("p", shown.text, shown.text === undefined ? "item-text note" : "item-text");
  if (shown.key) say(text, shown.key);
  text.dataset.opened = shown.text === undefined ? "no" : "yes";
  li.append(head, fields, text);
  return li;
}

function renderDigest(entry) {
  const article = element("li", undefined, "digest");
  article.dataset.seq = String(entry.seq);
  article.dataset.check = trusted(entry) ? "verified" : entry.signature || entry.chain;
  const body = entry.file && entry.file.digest;
  const title = element("h3");
  say(title, "digest-title", { seq: entry.seq === null ? "?" : entry.seq });
  article.append(title);
  if (entry.signature !== "malformed") {
    const reason = messages[`reason-${body.reason}`] || body.reason;
    article.append(element("p", `${fill(messages.issued, { when: when(body.issued) })} · ${reason}`, "issued"));
  }
  const check = element("p", undefined, trusted(entry) ? "check ok" : "check bad");
  say(check, checkKey(entry));
  article.append(check);
  if (entry.signature !== "malformed") {
    const items = element("ol", undefined, "items");
    items.append(...body.items.map((item) => renderItem(entry, item)));
    article.append(items);
  }
  return article;
}

function render() {
  const bad = held.filter((entry) => !trusted(entry)).length;
  if (held.length === 0) say($("summary"), "summary-none");
  else if (bad === 0) say($("summary"), "summary-verified", { count: held.length });
  else say($("summary"), "summary-problems", { bad, count: held.length });
  $("summary").dataset.bad = String(bad);
  $("digest-list").replaceChildren(...[...held].reverse().map(renderDigest)); // newest first
  $("export").disabled = !held.some(passed);
  if (keyId) {
    const items = held.filter(passed).flatMap((entry) => entry.file.digest.items.filter((i) => i.change === "new"));
    const opened = held.flatMap((entry) => [...entry.opened.values()]).filter((r) => r.text !== null).length;
    say($("key-status"), "key-loaded", { key: `${keyId.slice(0, 15)}…`, opened, total: items.length });
  }
  $("workspace").hidden = false;
}

function showSignedIn(signedIn) {
  $("signed-out").hidden = signedIn;
  $("signed-in").hidden = !signedIn;
  $("refresh").disabled = !signedIn;
  if (signedIn) say($("who"), "signed-in-as", { user: auth.session.user, org: auth.session.org });
}

/** The session is over (expired, refused): the digests and the key stay on the page. */
function sessionEnded() {
  showSignedIn(false);
  say($("error"), "session-ended");
}

// --- export ------------------------------------------------------------------------------

const CSV_COLUMNS = [
  "digest_seq", "digest_issued", "digest_reason", "digest_check", "case_id", "change", "factory",
  "categories", "urgent", "language", "received", "severity", "status", "due", "attachments", "text",
];

/** One CSV field (RFC 4180): always quoted; a value a spreadsheet would run as a formula
 * (= + - @, tab, carriage return first) is prefixed with an apostrophe, so it stays text. */
function csvField(value) {
  let text = value === null || value === undefined ? "" : String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return `"${text.replace(/"/g, '""')}"`;
}

function csvRows() {
  const rows = [];
  for (const entry of held.filter(passed)) {
    const { digest } = entry.file;
    for (const item of digest.items) {
      const opened = entry.opened.get(item.case_id);
      rows.push([
        digest.seq, digest.issued, digest.reason, trusted(entry) ? "verified" : entry.chain,
        item.case_id, item.change, item.factory, (item.categories || []).join(" "),
        item.urgent ? "yes" : "no", item.language, item.received, item.severity, item.status,
        item.due, (item.attachments || []).length, opened && opened.text !== null ? opened.text : "",
      ]);
    }
  }
  return rows;
}

function exportCsv() {
  const rows = csvRows();
  const lines = [CSV_COLUMNS, ...rows].map((row) => row.map(csvField).join(","));
  // A byte order mark, so that spreadsheets read the UTF-8 (Chinese text above all) as such.
  const blob = new Blob(["\ufeff", lines.join("\r\n"), "\r\n"], { type: "text/csv;charset=utf-8" });
  const url = URL.createObjectURL(blob);
  const link = element("a");
  link.href = url;
  const seqs = held.filter(passed).map((entry) => entry.seq);
  link.download = `hotline-digests-${auth.session ? auth.session.org : "buyer"}-${Math.min(...seqs)}-${Math.max(...seqs)}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 0);
  say($("progress"), "exported", { rows: rows.length });
}

// --- leaving no trace --------------------------------------------------------------------

function forgetEverything() {
  auth.forget();
  held = [];
  cursor = 0;
  chainEnd = null;
  keyId = null;
  worker.stop(); // the key goes with the worker
  $("key-file").value = "";
  $("digest-list").replaceChildren();
  for (const id of ["summary", "key-status", "progress", "error", "who"]) say($(id), "");
  $("workspace").hidden = true;
}

// --- wiring ------------------------------------------------------------------------------

let busy = false;

/** Run `task` once at a time, showing its refusal in #error. */
async function guarded(task) {
  if (busy) return;
  busy = true;
  say($("error"), "");
  try {
    await task();
  } catch (error) {
    say($("progress"), "");
    const key = error instanceof Refusal ? error.key : "network";
    if (key === "session-ended") auth.end();
    else say($("error"), messages[key] ? key : "network");
  } finally {
    busy = false;
  }
}

$("signed-out").hidden = false;
worker.start(); // its wasm compiles while the buyer signs in
$("sign-in").addEventListener("click", () =>
  guarded(async () => {
    await auth.signIn();
    showSignedIn(true);
    await pull();
  }),
);
$("sign-out").addEventListener("click", signOut);
$("refresh").addEventListener("click", () => guarded(pull));
$("export").addEventListener("click", () => guarded(async () => exportCsv()));
$("key-file").addEventListener("change", () => {
  const [file] = $("key-file").files;
  if (file) guarded(() => loadKey(file));
});
window.addEventListener("pagehide", forgetEverything);
