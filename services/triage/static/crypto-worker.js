// The operator console's crypto worker (a module worker, as the worker form's). The operator's
// private key lives here only: the page hands over the File the operator chose, this worker
// reads it (FileReader, on the device) and keeps the key; the page gets back the key id.
// Envelopes are opened and sealed here with the worker form's pinned libsodium and modules
// (copies, scripts/vendor-js.sh); only texts go back to the page, only envelopes go out.
// Requests are {id, op, ...args}; replies {id, ok: true, result} or
// {id, ok: false, reason, message} (message: English, never echoing input).
//
// Ops: "pkce" (a code verifier, its S256 challenge and a state for the sign-in),
// "load-key" (read and keep the key of a key file), "open-case" (a case's content and
// identity), "open-messages" (the conversation's envelopes sealed to the operators),
// "seal-message" (a note or a message to the worker, with a fresh message id), "forget".
import sodium from "./vendor/libsodium-wrappers-sumo.js";
import { fromBase64Strict, sha256, toHex, utf8 } from "./crypto/bytes.js";
import { decodePublicKey, keyId, openEnvelope, sealEnvelope } from "./crypto/envelope.js";

// As hotline.shared.keys: a first line naming the kind and the key id, then the base64 key.
const KEY_FILE = /^hotline x25519 (private|public) key (\S+)\n([^\n]*)\n?$/;
const MAX_KEY_FILE_BYTES = 1024;
const MAX_MESSAGE_BYTES = 32 * 1024; // as hotline.shared.messages
const lenientText = new TextDecoder("utf-8"); // a damaged text shows U+FFFD, as the CLI does

let privateKey = null; // the operator's X25519 private key, or null

function refuse(reason, message) {
  return Object.assign(new Error(message), { reason });
}

function forget() {
  if (privateKey) sodium.memzero(privateKey);
  privateKey = null;
}

function readText(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(refuse("not-a-key-file", "the file cannot be read"));
    reader.readAsText(file);
  });
}

/** Read a key file (a File) and keep its private key; return its key id. */
async function loadKey(file) {
  if (!(file instanceof Blob) || file.size > MAX_KEY_FILE_BYTES) {
    throw refuse("not-a-key-file", "this is not a hotline key file");
  }
  const found = KEY_FILE.exec((await readText(file)).replace(/\r\n/g, "\n"));
  if (!found) throw refuse("not-a-key-file", "this is not a hotline key file");
  const [, kind, id, key64] = found;
  if (kind !== "private") throw refuse("public-key", "this file holds a public key");
  const key = fromBase64Strict(key64);
  if (key === null || key.length !== 32) throw refuse("not-a-key-file", "the key is malformed");
  const derived = keyId(sodium.crypto_scalarmult_base(key));
  if (derived !== id) {
    sodium.memzero(key);
    throw refuse("key-mismatch", "the key does not match the id on the file's first line");
  }
  forget();
  privateKey = key;
  return { key_id: derived };
}

function needKey() {
  if (!privateKey) throw refuse("no-key", "no key file is loaded");
}

/** {text, reason}: the text of an envelope, or why it does not open with the key. */
function openText(envelope, caseId, routing) {
  let plaintext;
  try {
    plaintext = openEnvelope(envelope, { privateKey, caseId, routing });
  } catch (error) {
    return { text: null, reason: error.reason || "integrity" };
  }
  try {
    return { text: lenientText.decode(plaintext), reason: null };
  } finally {
    sodium.memzero(plaintext);
  }
}

/** The routing a report's envelopes bind (hotline.shared.reports.routing_metadata). */
function reportRouting(detail) {
  return {
    factory: detail.factory,
    categories: Array.isArray(detail.categories) ? [...detail.categories].sort() : detail.categories,
    urgent: detail.urgent,
    language: detail.language,
  };
}

/** What a message's envelope binds instead (hotline.shared.messages.message_routing). */
function messageRouting(messageId, kind) {
  return { message: messageId, kind };
}

/** A random (version 4) UUID, lower case, as the services check message ids. */
function newMessageId() {
  const b = sodium.randombytes_buf(16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = toHex(b);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function base64url(bytes) {
  return sodium.to_base64(bytes, sodium.base64_variants.URLSAFE_NO_PADDING);
}

const OPS = {
  pkce() {
    // RFC 7636: 32 random bytes as base64url (43 characters), challenge = S256 of it.
    const verifier = base64url(sodium.randombytes_buf(32));
    return {
      verifier,
      challenge: base64url(sha256(utf8(verifier))),
      state: toHex(sodium.randombytes_buf(16)),
    };
  },
  "load-key": ({ file }) => loadKey(file),
  "open-case"({ detail }) {
    needKey();
    const routing = reportRouting(detail);
    const content = openText(detail.content, detail.case_id, routing);
    const identity = detail.identity ? openText(detail.identity, detail.case_id, routing) : null;
    return { content, identity };
  },
  "open-messages"({ case_id: caseId, messages }) {
    needKey();
    if (!Array.isArray(messages)) throw new RangeError("messages must be a list");
    return messages.map((message) => ({
      message_id: message.message_id,
      ...(message.envelope
        ? openText(message.envelope, caseId, messageRouting(message.message_id, message.kind))
        : { text: null, reason: "no-envelope" }),
    }));
  },
  "seal-message"({ case_id: caseId, kind, text, recipients }) {
    if (typeof text !== "string" || text.trim() === "") throw refuse("empty-text", "the message is empty");
    const plaintext = utf8(text);
    if (plaintext.length > MAX_MESSAGE_BYTES) throw refuse("too-long", "the message is too long");
    if (recipients === null || typeof recipients !== "object" || Object.keys(recipients).length === 0) {
      throw refuse("no-recipients", "there is nobody to seal it to");
    }
    // Each key id must be its key's (sealEnvelope checks it too, with a clearer reason here).
    for (const [id, key] of Object.entries(recipients)) {
      if (keyId(decodePublicKey(key)) !== id) throw refuse("key-mismatch", "a key id is not its key's");
    }
    const messageId = newMessageId();
    try {
      const envelope = sealEnvelope(plaintext, {
        caseId,
        kind: "content",
        routing: messageRouting(messageId, kind),
        recipients,
      });
      return { message_id: messageId, envelope };
    } finally {
      sodium.memzero(plaintext);
    }
  },
  /** The one recipient of a message to the worker: the case's reply key, by its id. */
  "reply-recipients"({ reply_key: replyKey }) {
    return { [keyId(decodePublicKey(replyKey))]: replyKey };
  },
  forget() {
    forget();
    return {};
  },
};

// The handler is installed at once and awaits the library itself, so a message posted
// while the wasm is still compiling waits rather than being lost.
self.onmessage = async (event) => {
  const { id, op, ...args } = event.data || {};
  try {
    await sodium.ready;
    if (!Object.prototype.hasOwnProperty.call(OPS, op)) {
      throw refuse("bad-request", "unknown operation");
    }
    self.postMessage({ id, ok: true, result: await OPS[op](args) });
  } catch (error) {
    // Typed errors carry a reason; anything else is reported without its details.
    const reason = (error && error.reason) || (error instanceof RangeError ? "bad-request" : "internal");
    const message = error && error.reason ? error.message : "the operation failed";
    self.postMessage({ id, ok: false, reason, message });
  }
};
