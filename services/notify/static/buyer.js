// The buyer page's script (issue 19 contract §6).
//
// Sign-in: the OAuth 2.0 authorization code flow with PKCE (S256) on the public client
// named in the page, in a window of its own. This page never navigates away, so the PKCE
// verifier and then the tokens stay in its memory, and nothing needs storing: the window
// comes back to /buyer/signed-in, which hands the code over a BroadcastChannel of this
// origin (signed-in.js); this page checks the state, redeems the code at Keycloak's token
// endpoint and closes the window. Tokens are refreshed in memory before they expire.
//
// Then: every digest since the last one held (GET /api/digests, by cursor) is checked in
// the crypto worker against the digest key pinned in the page (signature, and chain by seq
// and previous hash); the key file is read with FileReader and handed to the worker, which
// keeps it and opens the items of the digests that passed; the CSV is made here, as a Blob.
// No cookie, no storage of any kind; requests go to this origin and to Keycloak only.

const CHANNEL = "hotline-buyer-sign-in"; // as signed-in.js
const MAX_KEY_FILE_BYTES = 1024; // as hotline.shared.keys
const PAGE_SIZE = 200; // the most GET /api/digests hands out at once
const REFRESH_MARGIN_S = 60; // refresh the access token this long before it expires

const $ = (id) => document.getElementById(id);
const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
const messages = JSON.parse($("messages").textContent);
const categoryNames = JSON.parse($("categories").textContent);
const config = {
  issuer: meta("hotline-issuer"),
  clientId: meta("hotline-client-id"),
  vkey: meta("hotline-digest-vkey"),
  lang: meta("hotline-lang"),
  redirectUri: new URL(meta("hotline-signed-in-path"), location.origin).href,
};
const oidc = `${config.issuer}/protocol/openid-connect`;

/** A refusal to show: `key` names one of the page's translated messages. */
class Refusal extends Error {
  constructor(key) {
    super(key);
    this.key = key;
  }
}

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

function say(element, key, values = {}) {
  element.textContent = key ? fill(messages[key] || messages.network, values) : "";
}

// --- the crypto worker -------------------------------------------------------------------

/** The client of crypto-worker.js: `call(op, args)` resolves with its result or rejects
 * with an Error carrying the worker's `reason`; `stop()` ends it and whatever it held. */
function cryptoWorker() {
  let worker = null;
  let nextRequest = 0;
  const pending = new Map();

  function failAll() {
    for (const request of pending.values()) request.reject(new Refusal("network"));
    pending.clear();
  }

  function start() {
    if (worker) return;
    worker = new Worker(new URL("crypto-worker.js", import.meta.url), { type: "module" });
    worker.onmessage = ({ data }) => {
      const request = pending.get(data.id);
      pending.delete(data.id);
      if (data.ok) request.resolve(data.result);
      else request.reject(Object.assign(new Error(data.message), { reason: data.reason }));
    };
    worker.onerror = () => {
      failAll();
      worker = null;
    };
  }

  function call(op, args = {}) {
    start();
    nextRequest += 1;
    const id = nextRequest;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, op, ...args });
    });
  }

  function stop() {
    if (worker) worker.terminate();
    worker = null;
    failAll();
  }

  return { start, call, stop };
}

const worker = cryptoWorker();

// --- sign-in (authorization code + PKCE, in a window of its own) --------------------------

let session = null; // {accessToken, refreshToken, idToken, user, org, timer}

function claimsOf(jwt) {
  const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  const bytes = Uint8Array.from(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")), (c) =>
    c.charCodeAt(0),
  );
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** POST the token endpoint (no cookie is sent or needed); the token answer, or a Refusal. */
async function tokenRequest(parameters) {
  let response;
  let answer = null;
  try {
    response = await fetch(`${oidc}/token`, {
      method: "POST",
      body: new URLSearchParams({ client_id: config.clientId, ...parameters }),
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
    answer = await response.json();
  } catch {
    throw new Refusal("network");
  }
  if (!response.ok || typeof answer.access_token !== "string") throw new Refusal("signin-failed");
  return answer;
}

function startSession(answer) {
  if (session) clearTimeout(session.timer);
  const claims = claimsOf(answer.access_token);
  const roles = (claims.realm_access && claims.realm_access.roles) || [];
  if (!roles.includes("buyer") || typeof claims.org !== "string") throw new Refusal("not-a-buyer");
  const refreshIn = Math.max(10, Number(answer.expires_in || 300) - REFRESH_MARGIN_S);
  session = {
    accessToken: answer.access_token,
    refreshToken: answer.refresh_token || null,
    idToken: answer.id_token || (session && session.idToken) || null,
    user: claims.preferred_username || claims.sub,
    org: claims.org,
    timer: setTimeout(refreshSession, refreshIn * 1000),
  };
}

async function refreshSession() {
  if (!session || !session.refreshToken) return endSession();
  try {
    startSession(await tokenRequest({ grant_type: "refresh_token", refresh_token: session.refreshToken }));
  } catch {
    endSession();
  }
}

/** The session is over (expired, refused): the digests and the key stay on the page. */
function endSession() {
  if (session) clearTimeout(session.timer);
  session = null;
  showSignedIn(false);
  say($("error"), "session-ended");
}

/** The sign-in window's answer for `state`, once signed-in.js hands it over. */
function signInAnswer(state, popup) {
  return new Promise((resolve, reject) => {
    const channel = new BroadcastChannel(CHANNEL);
    const watch = setInterval(() => {
      if (popup.closed) finish(() => reject(new Refusal("signin-cancelled")));
    }, 500);
    function finish(then) {
      clearInterval(watch);
      channel.close();
      then();
    }
    channel.onmessage = ({ data }) => {
      if (data && data.state === state) finish(() => resolve(data));
    };
  });
}

async function signIn() {
  // Opened at once, in the click, or the browser blocks it; it is sent to Keycloak below.
  const popup = window.open("", "hotline-sign-in", "popup,width=520,height=720");
  if (!popup) throw new Refusal("popup-blocked");
  say($("progress"), "signing-in");
  try {
    const { verifier, challenge, state } = await worker.call("pkce");
    const authorize = new URL(`${oidc}/auth`);
    authorize.search = new URLSearchParams({
      client_id: config.clientId,
      redirect_uri: config.redirectUri,
      response_type: "code",
      response_mode: "fragment",
      scope: "openid",
      state,
      code_challenge: challenge,
      code_challenge_method: "S256",
    }).toString();
    popup.location.href = authorize.href;
    const answer = await signInAnswer(state, popup);
    if (!answer.code) throw new Refusal("signin-failed");
    startSession(
      await tokenRequest({
        grant_type: "authorization_code",
        code: answer.code,
        redirect_uri: config.redirectUri,
        code_verifier: verifier,
      }),
    );
  } finally {
    popup.close();
    say($("progress"), "");
  }
}

function signOut() {
  const done = new URL(`${oidc}/logout`);
  const parameters = {
    client_id: config.clientId,
    post_logout_redirect_uri: new URL(`/buyer/${config.lang}/`, location.origin).href,
  };
  if (session && session.idToken) parameters.id_token_hint = session.idToken;
  done.search = new URLSearchParams(parameters).toString();
  forgetEverything();
  location.assign(done.href); // ends the Keycloak session too, then comes back here
}

// --- digests -----------------------------------------------------------------------------

// What the page holds, in memory only: every digest fetched, in order, with its verdict.
let held = []; // [{file, seq, hash, signature, chain, opened: Map(case_id -> {text, reason})}]
let cursor = 0; // the `since` of the next pull
let chainEnd = null; // {seq, hash} of the last digest checked: where the chain continues
let keyId = null;

async function getJson(path) {
  let response;
  let answer = null;
  try {
    response = await fetch(path, {
      headers: { Authorization: `Bearer ${session.accessToken}` },
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
    answer = await response.json();
  } catch {
    throw new Refusal("network");
  }
  if (response.status === 401) throw new Refusal("session-ended");
  if (response.status === 403) throw new Refusal("not-a-buyer");
  if (!response.ok) throw new Refusal("network");
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
  if (!session) throw new Refusal("session-ended");
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
          buyer: session.org,
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

function element(tag, text, className) {
  const made = document.createElement(tag);
  if (text !== undefined && text !== null) made.textContent = text;
  if (className) made.className = className;
  return made;
}

function when(iso) {
  const date = new Date(iso);
  if (typeof iso !== "string" || Number.isNaN(date.getTime())) return String(iso);
  return new Intl.DateTimeFormat(document.documentElement.lang, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    timeZone: "UTC", // the hours notify writes are UTC: shown as such, wherever the buyer is
    timeZoneName: "short",
  }).format(date);
}

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

function field(name, value) {
  const row = element("div");
  row.dataset.field = name;
  row.append(element("dt", messages[`field-${name}`]), element("dd", value));
  return row;
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
  if (signedIn) say($("who"), "signed-in-as", { user: session.user, org: session.org });
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
  link.download = `hotline-digests-${session ? session.org : "buyer"}-${Math.min(...seqs)}-${Math.max(...seqs)}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 0);
  say($("progress"), "exported", { rows: rows.length });
}

// --- leaving no trace --------------------------------------------------------------------

function forgetEverything() {
  if (session) clearTimeout(session.timer);
  session = null;
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
    if (key === "session-ended") endSession();
    else say($("error"), messages[key] ? key : "network");
  } finally {
    busy = false;
  }
}

$("signed-out").hidden = false;
worker.start(); // its wasm compiles while the buyer signs in
$("sign-in").addEventListener("click", () =>
  guarded(async () => {
    await signIn();
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
