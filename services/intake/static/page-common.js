// What the worker's two pages share (the report form, form.js, and the status page,
// status.js): the crypto worker's client, same-origin requests to intake, photos re-encoded
// from their pixels, the voice recorder, and UUID4s. Nothing here stores anything in the
// browser; every request goes to this origin.

export const MAX_PHOTOS = 3;
export const MAX_FILE_BYTES = 4 * 1024 * 1024 - 64; // leaves room for the media type line
const MAX_PHOTO_SIDE = 1600;
const encoder = new TextEncoder();

/** A refusal to show: `key` names one of the page's translated messages. */
export class Refusal extends Error {
  constructor(key) {
    super(key);
    this.key = key;
  }
}

/** Show the page's message `key` in `element` (nothing for no key; "network" if unknown). */
export function say(element, messages, key) {
  element.textContent = key ? messages[key] || messages.network : "";
}

// --- the crypto worker -----------------------------------------------------------------

/**
 * The page's client of the crypto worker (crypto-worker.js, started on first use):
 * `call(op, args)` resolves with the op's result or rejects with an Error carrying the
 * worker's `reason`; `stop()` ends the worker, and with it whatever it held.
 */
export function cryptoWorker() {
  let worker = null;
  let nextRequest = 0;
  const pending = new Map();

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
      for (const request of pending.values()) request.reject(new Refusal("network"));
      pending.clear();
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
    if (!worker) return;
    worker.terminate();
    worker = null;
    for (const request of pending.values()) request.reject(new Refusal("network"));
    pending.clear();
  }

  return { start, call, stop };
}

// --- talking to intake (same origin only) ------------------------------------------------

/**
 * GET `path` (no body) or POST `body` as JSON; resolve with the JSON answer. A refusal with a
 * code the page translates (`error-<code>` in `messages`) rejects with that Refusal, anything
 * else with Refusal("network").
 */
export async function api(messages, path, body) {
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

async function voicePlaintext(file) {
  if (!file) return null;
  const type = mediaType(file.type) || "audio/webm";
  if (!/^audio\/[a-z0-9.+-]+$/.test(type)) throw new Refusal("error-bad-report");
  if (file.size > MAX_FILE_BYTES) throw new Refusal("too-large");
  return attachment(type, new Uint8Array(await file.arrayBuffer()));
}

/**
 * The attachment plaintexts ("<media type>\n" + bytes) of the chosen `photos` (a FileList,
 * each re-encoded) and the `voice` note (a File or Blob, or null), photos first. Every check
 * is made before any photo is decoded.
 */
export async function attachmentPlaintexts(photos, voice) {
  const chosen = [...photos];
  if (chosen.length > MAX_PHOTOS) throw new Refusal("too-many-files");
  for (const photo of chosen) {
    if (!mediaType(photo.type).startsWith("image/")) throw new Refusal("not-an-image");
  }
  const plaintexts = [];
  for (const photo of chosen) plaintexts.push(await reencodePhoto(photo));
  const note = await voicePlaintext(voice);
  return note ? [...plaintexts, note] : plaintexts;
}

// --- the voice recorder ------------------------------------------------------------------

/**
 * The record button beside a voice file input: a recording replaces any chosen file, and the
 * preview plays whichever will be sent. Elements: `button`, `input` (the file input),
 * `preview` (an audio element), `progress` (where the recording clock is shown).
 */
export class VoiceRecorder {
  constructor({ button, input, preview, progress }, messages) {
    Object.assign(this, { button, input, previewElement: preview, progress, messages });
    this.recorder = null;
    this.recording = null; // the recorded voice note (Blob), replacing any chosen file
    this.previewUrl = null;
  }

  /** Show the record button where the browser can record, and follow the file input. */
  install() {
    if (window.MediaRecorder && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
      this.button.hidden = false;
      this.button.addEventListener("click", () => this.toggle());
    }
    this.input.addEventListener("change", () => {
      this.recording = null;
      this.preview(this.input.files[0] || null);
    });
  }

  /** The voice note to send: the recording, else the chosen file, else null. */
  get file() {
    return this.recording || this.input.files[0] || null;
  }

  preview(blob) {
    const audio = this.previewElement;
    if (this.previewUrl) URL.revokeObjectURL(this.previewUrl);
    this.previewUrl = blob ? URL.createObjectURL(blob) : null;
    if (this.previewUrl) audio.src = this.previewUrl;
    else audio.removeAttribute("src");
    audio.hidden = !blob;
  }

  /** Drop the recording and the preview (the file input is reset with its form). */
  forget() {
    this.recording = null;
    this.preview(null);
  }

  async toggle() {
    if (this.recorder) {
      this.recorder.stop();
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
    const recorder = new MediaRecorder(stream, options);
    this.recorder = recorder;
    recorder.ondataavailable = (event) => event.data.size && chunks.push(event.data);
    let seconds = 0;
    const clock = setInterval(() => {
      seconds += 1; // shown as "Recording… 0:07": the worker sees that sound is being taken
      const shown = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
      this.progress.textContent = `${this.messages.recording} ${shown}`;
    }, 1000);
    recorder.onstop = () => {
      clearInterval(clock);
      for (const track of stream.getTracks()) track.stop();
      this.recording = new Blob(chunks, { type: recorder.mimeType || "audio/webm" });
      this.recorder = null;
      this.input.value = "";
      this.preview(this.recording);
      say(this.button, this.messages, "record");
      say(this.progress, this.messages, "");
    };
    recorder.start();
    say(this.button, this.messages, "stop-recording");
    say(this.progress, this.messages, "recording");
  }
}

// --- text ---------------------------------------------------------------------------------

// Whether a text holds a character a reader sees: not only spaces, NULs, or other control and
// format characters. An unassigned code point counts: it may be an emoji newer than the
// Unicode this browser knows (the same classes as intake's says_something, for the form
// sent without JavaScript).
export function saysSomething(text) {
  return /[^\p{Cc}\p{Cf}\p{Cs}\p{Z}]/u.test(text);
}

// --- ids ---------------------------------------------------------------------------------

// A UUID4 from getRandomValues: crypto.randomUUID exists only in secure contexts, and a
// hotline may be reached over plain http on a local network.
export function newUuid4() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
