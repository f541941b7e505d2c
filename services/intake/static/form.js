// The report form's script (issue 16 contract §8). Without it the form posts to intake,
// which encrypts on arrival; with it everything is checked, re-encoded and encrypted on the
// phone by the crypto worker, and only envelopes leave. Nothing is stored in the browser,
// the receipt never enters a URL or the history, and every request goes to this origin.

import {
  Refusal,
  VoiceRecorder,
  api as apiOf,
  attachmentPlaintexts,
  cryptoWorker,
  newUuid4,
  say as sayOf,
  saysSomething,
} from "./page-common.js";

const MAX_TEXT_BYTES = 64 * 1024 - 1;

const $ = (id) => document.getElementById(id);
const form = $("report-form");
const messages = JSON.parse($("messages").textContent);
const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
const encoder = new TextEncoder();

const worker = cryptoWorker();
const call = worker.call;
const api = (path, body) => apiOf(messages, path, body);
const say = (element, key) => sayOf(element, messages, key);
const voice = new VoiceRecorder(
  { button: $("record"), input: $("voice"), preview: $("voice-preview"), progress: $("progress") },
  messages,
);
let busy = false;

// --- factory search ----------------------------------------------------------------------

let searchTimer = 0;
let searchNumber = 0;

async function search() {
  const query = $("factory-search").value.trim();
  const results = $("factory-results");
  searchNumber += 1;
  const mine = searchNumber;
  if (query.length < 2 || query.length > 64) {
    results.replaceChildren();
    return;
  }
  let matches;
  try {
    matches = await api(`/api/factories?q=${encodeURIComponent(query)}`);
  } catch {
    return; // a failed search changes nothing; the code field still works
  }
  if (mine !== searchNumber) return; // a newer search is under way
  results.replaceChildren(
    ...matches.map((factory) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "factory-result";
      button.dataset.code = factory.code;
      const place = [factory.city, factory.country].filter(Boolean).join(", ");
      button.textContent = `${factory.name}${place ? ` (${place})` : ""} ${factory.code}`;
      item.append(button);
      return item;
    }),
  );
}

function pickFactory(event) {
  const button = event.target.closest("button.factory-result");
  const radio = event.target.closest('input[name="factory_pick"]');
  const code = button ? button.dataset.code : radio && radio.value;
  if (!code) return;
  $("factory").value = code;
  for (const other of $("factory-results").querySelectorAll("button.factory-result")) {
    other.setAttribute("aria-pressed", String(other === button));
  }
}

// --- submitting --------------------------------------------------------------------------

function readForm() {
  const factory = $("factory").value.trim();
  const categories = [...form.querySelectorAll('input[name="category"]:checked')]
    .map((box) => box.value)
    .sort();
  const text = $("text").value;
  const contact = $("contact").value.trim();
  if (!factory) throw new Refusal("choose-factory");
  if (categories.length === 0) throw new Refusal("choose-category");
  if (!saysSomething(text)) throw new Refusal("empty-text");
  const content = encoder.encode(text);
  const identity = contact ? encoder.encode(contact) : null;
  if (content.length > MAX_TEXT_BYTES || (identity && identity.length > MAX_TEXT_BYTES)) {
    throw new Refusal("error-text-too-long");
  }
  return { factory, categories, urgent: $("urgent-yes").checked, content, identity };
}

async function send() {
  const progress = (key) => say($("progress"), key);
  const fields = readForm();
  const files = await attachmentPlaintexts($("photos").files, voice.file); // checked first

  progress("checking-keys");
  const recipients = await api(`/api/recipients/${encodeURIComponent(fields.factory)}`);
  try {
    await call("verify-recipients", { recipients, vkey: meta("hotline-log-vkey") });
  } catch (error) {
    throw new Refusal(error.reason ? `refused-${error.reason}` : "network");
  }
  if (fields.identity && Object.keys(recipients.identity).length === 0) {
    throw new Refusal("error-no-operator-key");
  }

  progress("deriving");
  const { receipt } = await call("new-receipt");
  const { lookup_token, reply_key } = await call("derive", { receipt });

  progress("sealing");
  const caseId = newUuid4();
  const language = meta("hotline-lang");
  const { categories, factory, urgent } = fields;
  const routing = { categories, factory, language, urgent };
  const seal = (kind, keys, plaintext) =>
    call("seal", { kind, case_id: caseId, routing, recipients: keys, plaintext });
  const content = await seal("content", recipients.content, fields.content);
  const identity = fields.identity
    ? await seal("identity", recipients.identity, fields.identity)
    : null;
  const sealedFiles = [];
  for (const file of files) sealedFiles.push(await seal("attachment", recipients.content, file));

  progress("solving");
  const { challenge, difficulty } = await api("/api/challenge");
  const { solution } = await call("pow", { challenge, difficulty });

  progress("sending");
  await api("/api/reports", {
    case_id: caseId,
    ...routing,
    channel: "web",
    lookup_token,
    reply_key,
    content,
    identity,
    attachments: sealedFiles,
    pow: { challenge, solution },
  });
  return receipt;
}

function showReceipt(receipt) {
  forgetForm();
  form.hidden = true;
  $("receipt-code").textContent = receipt;
  const view = $("receipt-view");
  view.hidden = false;
  say($("progress"), "done");
  view.setAttribute("tabindex", "-1");
  view.focus();
}

async function onSubmit(event) {
  event.preventDefault();
  // Enter in a field submits with the first submit button: the factory search.
  if (event.submitter && event.submitter.id === "factory-search-button") {
    search();
    return;
  }
  if (busy) return;
  busy = true;
  $("submit").disabled = true;
  say($("error"), "");
  try {
    showReceipt(await send());
  } catch (error) {
    say($("progress"), "");
    // Worker refusals such as "too-large" are message keys too; anything else is "network".
    const key = error instanceof Refusal ? error.key : error.reason;
    say($("error"), messages[key] ? key : "network");
  } finally {
    busy = false;
    $("submit").disabled = false;
  }
}

// --- leaving no trace --------------------------------------------------------------------

function forgetForm() {
  form.reset();
  voice.forget();
}

function forgetEverything() {
  $("receipt-code").textContent = "";
  forgetForm();
}

// --- wiring ------------------------------------------------------------------------------

$("mode-nojs").hidden = true;
$("mode-js").hidden = false;
voice.install();
form.addEventListener("submit", onSubmit);
// The worker (and its 0.5 MB of wasm) loads once someone starts filling in the form.
form.addEventListener("focusin", worker.start, { once: true });
$("factory-search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(search, 300);
});
$("factory-results").addEventListener("click", pickFactory);
$("factory-results").addEventListener("change", pickFactory);
$("leave").addEventListener("click", (event) => {
  event.preventDefault();
  forgetEverything();
  location.replace("/today");
});
window.addEventListener("pagehide", forgetEverything);
