// The status page's script (issue 17). Without it both forms post to intake, which opens
// the worker's messages in memory and forgets the key. With it the receipt never leaves the
// phone: the crypto worker derives the lookup token and keeps the reply key to itself,
// intake is asked with the token (and a solved proof of work), the messages are opened in
// the worker, and an answer is sealed here to the operators' keys once the audit log vouches
// for them. Nothing is stored in the browser and every request goes to this origin.

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

const MAX_ANSWER_BYTES = 32 * 1024; // shared/messages.py MAX_MESSAGE_BYTES

const $ = (id) => document.getElementById(id);
const messages = JSON.parse($("messages").textContent);
const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
const encoder = new TextEncoder();

const worker = cryptoWorker();
const call = worker.call;
const api = (path, body) => apiOf(messages, path, body);
const say = (element, key) => sayOf(element, messages, key);
const voice = new VoiceRecorder(
  {
    button: $("record"),
    input: $("voice"),
    preview: $("voice-preview"),
    progress: $("answer-progress"),
  },
  messages,
);

// The case on screen: its id, lookup token and the operators' keys, in memory only.
let unlocked = null;
let busy = false;

/** Run `task` once at a time, showing its refusal in #error (or "network" for anything else). */
async function guarded(progress, task) {
  if (busy) return;
  busy = true;
  say($("error"), "");
  try {
    await task();
  } catch (error) {
    say(progress, "");
    const key = error instanceof Refusal ? error.key : error.reason;
    say($("error"), messages[key] ? key : "network");
  } finally {
    busy = false;
  }
}

async function solvedChallenge() {
  const { challenge, difficulty } = await api("/api/challenge");
  const { solution } = await call("pow", { challenge, difficulty });
  return { challenge, solution };
}

// --- reading the case --------------------------------------------------------------------

async function unlock(receipt) {
  const progress = (key) => say($("progress"), key);
  progress("deriving");
  let lookupToken;
  try {
    ({ lookup_token: lookupToken } = await call("unlock", { receipt }));
  } catch (error) {
    throw new Refusal(error.reason === "bad-receipt" ? "error-bad-receipt" : "network");
  }
  progress("solving");
  const pow = await solvedChallenge();
  progress("asking");
  const found = await api("/api/status", { lookup_token: lookupToken, pow });
  progress("opening");
  const opened = await call("open-messages", { case_id: found.case_id, messages: found.messages });
  progress("");
  return { lookupToken, found, opened };
}

function element(tag, text, className) {
  const made = document.createElement(tag);
  if (text !== undefined) made.textContent = text;
  if (className) made.className = className;
  return made;
}

function day(value) {
  const shown = element("time", value);
  shown.dateTime = value;
  return shown;
}

const DAYS = ["received", "acknowledged", "feedback", "updated"];

function showCase({ found, opened }) {
  const status = messages[`status-${found.status}`] || messages["status-unknown"];
  $("status-text").textContent = status;
  $("status-days").replaceChildren(
    ...DAYS.filter((name) => found[name]).map((name) => {
      const row = element("div");
      row.dataset.day = name;
      const value = element("dd");
      value.append(day(found[name]));
      row.append(element("dt", messages[`day-${name}`]), value);
      return row;
    }),
  );
  const texts = new Map(opened.map(({ message_id, text }) => [message_id, text]));
  $("message-list").replaceChildren(
    ...found.messages.map((message) => {
      const item = element("li", undefined, "message");
      item.dataset.kind = message.kind;
      const head = element("p", undefined, "message-head");
      const kind = messages[`kind-${message.kind}`] || messages["kind-reply"];
      head.append(element("strong", kind, "message-kind"), " ", day(message.day));
      const text = texts.get(message.message_id);
      item.append(
        head,
        text === null || text === undefined
          ? element("p", messages.unreadable, "message-text unreadable")
          : element("p", text, "message-text"),
      );
      return item;
    }),
  );
  $("messages-none").hidden = found.messages.length > 0;
  $("answer-list").replaceChildren(
    ...found.answers.map((answer) => element("li", messages["answered-on"].replace("{day}", answer.day))),
  );
  $("status-form").hidden = true;
  $("status-view").hidden = false;
  $("status-view").setAttribute("tabindex", "-1");
  $("status-view").focus();
}

async function onUnlock(event) {
  event.preventDefault();
  await guarded($("progress"), async () => {
    $("unlock").disabled = true;
    try {
      const receipt = $("receipt").value;
      const shown = await unlock(receipt);
      $("receipt").value = ""; // the number is not kept on the page once it has done its work
      unlocked = {
        caseId: shown.found.case_id,
        lookupToken: shown.lookupToken,
        operators: shown.found.operators,
      };
      showCase(shown);
    } catch (error) {
      await lockQuietly();
      throw error;
    } finally {
      $("unlock").disabled = false;
    }
  });
}

// --- answering ---------------------------------------------------------------------------

async function sendAnswer() {
  const progress = (key) => say($("answer-progress"), key);
  const text = $("answer-text").value;
  if (!saysSomething(text)) throw new Refusal("empty-answer"); // as the no-JS answer: text first
  const content = encoder.encode(text);
  if (content.length > MAX_ANSWER_BYTES) throw new Refusal("error-text-too-long");
  const files = await attachmentPlaintexts($("photos").files, voice.file); // checked first

  progress("checking-keys");
  const { operators } = unlocked;
  try {
    await call("verify-recipients", { recipients: operators, vkey: meta("hotline-log-vkey") });
  } catch (error) {
    throw new Refusal(error.reason ? `refused-${error.reason}` : "network");
  }
  const keys = operators.identity;
  if (Object.keys(keys).length === 0) throw new Refusal("error-no-operator-key");

  progress("sealing");
  const messageId = newUuid4();
  const routing = { message: messageId, kind: "answer" }; // shared/messages.py message_routing
  const seal = (kind, plaintext) =>
    call("seal", { kind, case_id: unlocked.caseId, routing, recipients: keys, plaintext });
  const envelope = await seal("content", content);
  const attachments = [];
  for (const file of files) attachments.push(await seal("attachment", file));

  progress("solving");
  const pow = await solvedChallenge();
  progress("sending");
  await api("/api/answers", {
    lookup_token: unlocked.lookupToken,
    message_id: messageId,
    envelope,
    attachments,
    pow,
  });
  progress("");
}

async function onAnswer(event) {
  event.preventDefault();
  if (!unlocked) return;
  $("answered-view").hidden = true;
  await guarded($("answer-progress"), async () => {
    $("send-answer").disabled = true;
    try {
      await sendAnswer();
      $("answer-form").reset();
      voice.forget();
      $("answered-view").hidden = false;
    } finally {
      $("send-answer").disabled = false;
    }
  });
}

// --- leaving no trace --------------------------------------------------------------------

async function lockQuietly() {
  try {
    await call("lock");
  } catch {
    // the worker is gone, and the key with it
  }
}

/** Drop the case from the page and end the worker (which zeroes nothing more: it is gone). */
function forgetEverything() {
  unlocked = null;
  worker.stop();
  $("receipt").value = "";
  $("status-form").reset();
  $("answer-form").reset();
  voice.forget();
  $("status-text").textContent = "";
  for (const id of ["status-days", "message-list", "answer-list"]) $(id).replaceChildren();
  $("status-view").hidden = true;
  $("answered-view").hidden = true;
  $("status-form").hidden = false;
  say($("progress"), "");
  say($("answer-progress"), "");
  say($("error"), "");
}

// --- wiring ------------------------------------------------------------------------------

$("mode-nojs").hidden = true;
$("mode-js").hidden = false;
$("leave").addEventListener("click", (event) => {
  event.preventDefault();
  forgetEverything();
  location.replace("/today");
});
window.addEventListener("pagehide", forgetEverything);

// A page the server already answered (it came by the no-JS path) stays as it was rendered.
if (!$("status-view").dataset.openedBy) {
  voice.install();
  $("status-form").addEventListener("submit", onUnlock);
  // The worker (and its 0.5 MB of wasm) loads once someone starts typing the number.
  $("status-form").addEventListener("focusin", worker.start, { once: true });
  $("answer-form").addEventListener("submit", onAnswer);
  $("close").addEventListener("click", async (event) => {
    event.preventDefault();
    await lockQuietly();
    forgetEverything();
  });
}
