// The report form's script (issue 16 contract §8). Without it the form posts to intake,
// which encrypts on arrival; with it everything is checked, re-encoded and encrypted on the
// phone by the crypto worker, and only envelopes leave. Nothing is stored in the browser,
// the receipt never enters a URL or the history, and every request goes to this origin.

const MAX_PHOTOS = 3;
const MAX_FILE_BYTES = 4 * 1024 * 1024 - 64; // leaves room for the media type line
const MAX_TEXT_BYTES = 64 * 1024 - 1;
const MAX_PHOTO_SIDE = 1600;

const $ = (id) => document.getElementById(id);
const form = $("report-form");
const messages = JSON.parse($("messages").textContent);
const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
const encoder = new TextEncoder();

let worker = null;
let nextRequest = 0;
const pending = new Map();
let recorder = null;
let recording = null; // the recorded voice note (Blob), replacing any chosen file
let previewUrl = null;
let busy = false;

/** A refusal to show: `key` names one of the page's translated messages. */
class Refusal extends Error {
  constructor(key) {
    super(key);
    this.key = key;
  }
}

function say(element, key) {
  element.textContent = key ? messages[key] || messages.network : "";
}

// --- the crypto worker -----------------------------------------------------------------

function startWorker() {
  if (worker) return;
  worker = new Worker(new URL("crypto-worker.js", import.meta.url), { type: "module" });
  worker.onmessage = ({ data }) => {
    const request = pending.get(data.id);
    pending.delete(data.id);
    if (data.ok) request.resolve(data.result);
    else request.reject(Object.assign(new Error(data.message), { reason: data.reason }));
  };
  worker.onerror = () => {
    for (const request of pending.values()) request.reject(new Refusal("network"));
    pending.clear();
    worker = null;
  };
}

function call(op, args = {}) {
  startWorker();
  nextRequest += 1;
  const id = nextRequest;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, op, ...args });
  });
}

// --- talking to intake (same origin only) ------------------------------------------------

async function api(path, body) {
  const init = { cache: "no-store", credentials: "same-origin", referrerPolicy: "no-referrer" };
  if (body !== undefined) {
    Object.assign(init, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  }
  let response;
  let answer = null;
  try {
    response = await fetch(path, init);
    answer = await response.json();
  } catch {
    throw new Refusal("network");
  }
  if (!response.ok) {
    const code = answer && answer.code;
    throw new Refusal(code && messages[`error-${code}`] ? `error-${code}` : "network");
  }
  return answer;
}

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

// --- attachments -------------------------------------------------------------------------

function mediaType(type) {
  return (type || "").split(";")[0].trim().toLowerCase();
}

function attachment(type, bytes) {
  if (bytes.length > MAX_FILE_BYTES) throw new Refusal("too-large");
  const head = encoder.encode(`${type}\n`);
  const plaintext = new Uint8Array(head.length + bytes.length);
  plaintext.set(head);
  plaintext.set(bytes, head.length);
  return plaintext;
}

/** Decode a photo and draw it again as a JPEG: no EXIF, GPS or maker note survives. */
async function reencodePhoto(file) {
  if (!mediaType(file.type).startsWith("image/")) throw new Refusal("not-an-image");
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    throw new Refusal("not-an-image");
  }
  const scale = Math.min(1, MAX_PHOTO_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  const jpeg = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
  if (!jpeg) throw new Refusal("not-an-image");
  return attachment("image/jpeg", new Uint8Array(await jpeg.arrayBuffer()));
}

async function voicePlaintext() {
  const file = recording || $("voice").files[0];
  if (!file) return null;
  const type = mediaType(file.type) || "audio/webm";
  if (!/^audio\/[a-z0-9.+-]+$/.test(type)) throw new Refusal("error-bad-report");
  if (file.size > MAX_FILE_BYTES) throw new Refusal("too-large");
  return attachment(type, new Uint8Array(await file.arrayBuffer()));
}

async function attachments() {
  const photos = [...$("photos").files];
  if (photos.length > MAX_PHOTOS) throw new Refusal("too-many-files");
  for (const photo of photos) {
    if (!mediaType(photo.type).startsWith("image/")) throw new Refusal("not-an-image");
  }
  const sealedLater = [];
  for (const photo of photos) sealedLater.push(await reencodePhoto(photo));
  const voice = await voicePlaintext();
  return voice ? [...sealedLater, voice] : sealedLater;
}

// --- the voice recorder ------------------------------------------------------------------

function preview(blob) {
  const audio = $("voice-preview");
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = blob ? URL.createObjectURL(blob) : null;
  if (previewUrl) audio.src = previewUrl;
  else audio.removeAttribute("src");
  audio.hidden = !blob;
}

async function toggleRecording() {
  const button = $("record");
  if (recorder) {
    recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch {
    return; // no microphone, or permission refused: the file input still works
  }
  const options = { audioBitsPerSecond: 24000 };
  if (MediaRecorder.isTypeSupported("audio/webm;codecs=opus")) {
    options.mimeType = "audio/webm;codecs=opus";
  }
  const chunks = [];
  recorder = new MediaRecorder(stream, options);
  recorder.ondataavailable = (event) => event.data.size && chunks.push(event.data);
  let seconds = 0;
  const clock = setInterval(() => {
    seconds += 1; // shown as "Recording… 0:07": the worker sees that sound is being taken
    $("progress").textContent = `${messages.recording} ${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
  }, 1000);
  recorder.onstop = () => {
    clearInterval(clock);
    for (const track of stream.getTracks()) track.stop();
    recording = new Blob(chunks, { type: recorder.mimeType || "audio/webm" });
    recorder = null;
    $("voice").value = "";
    preview(recording);
    say(button, "record");
    say($("progress"), "");
  };
  recorder.start();
  say(button, "stop-recording");
  say($("progress"), "recording");
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
  if (!text.trim()) throw new Refusal("empty-text");
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
  const files = await attachments(); // every local check before anything is sent

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
  const caseId = newCaseId();
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
  recording = null;
  preview(null);
}

function forgetEverything() {
  $("receipt-code").textContent = "";
  forgetForm();
}

// --- wiring ------------------------------------------------------------------------------

$("mode-nojs").hidden = true;
$("mode-js").hidden = false;
if (window.MediaRecorder && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
  $("record").hidden = false;
  $("record").addEventListener("click", toggleRecording);
}
form.addEventListener("submit", onSubmit);
// The worker (and its 0.5 MB of wasm) loads once someone starts filling in the form.
form.addEventListener("focusin", startWorker, { once: true });
$("factory-search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(search, 300);
});
$("factory-results").addEventListener("click", pickFactory);
$("factory-results").addEventListener("change", pickFactory);
$("voice").addEventListener("change", () => {
  recording = null;
  preview($("voice").files[0] || null);
});
$("leave").addEventListener("click", (event) => {
  event.preventDefault();
  forgetEverything();
  location.replace("/today");
});
window.addEventListener("pagehide", forgetEverything);

// A UUID4 from getRandomValues: crypto.randomUUID exists only in secure contexts, and a
// hotline may be reached over plain http on a local network.
function newCaseId() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
