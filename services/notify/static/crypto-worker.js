// The buyer page's crypto worker (a module worker, as the worker form's). The buyer's private
// key lives here only: the page hands over the key file's text, read on the device, and gets
// back the key id; items are opened here and only their text goes back to the page.
// Requests are {id, op, ...args}; replies {id, ok: true, result} or
// {id, ok: false, reason, message} (message: English, never echoing input).
//
// Ops: "pkce" (a code verifier, its S256 challenge and a state for the sign-in),
// "check" (digests' signatures and chain, digests.js), "load-key" (keep the key of a key
// file), "open" (items' content with that key), "forget" (zero the key).
import sodium from "./vendor/libsodium-wrappers-sumo.js";
import { fromBase64Strict, sha256, toHex, utf8 } from "./crypto/bytes.js";
import { keyId, openEnvelope } from "./crypto/envelope.js";
import { TlogError } from "./crypto/tlog.js";
import { checkDigests } from "./digests.js";

// As hotline.shared.keys: a first line naming the kind and the key id, then the base64 key.
const KEY_FILE = /^hotline x25519 (private|public) key (\S+)\n([^\n]*)\n?$/;
const MAX_KEY_FILE_CHARS = 1024;
const lenientText = new TextDecoder("utf-8"); // a damaged text shows U+FFFD, as the CLI does

let privateKey = null; // the buyer's X25519 private key, or null

function refuse(reason, message) {
  return Object.assign(new Error(message), { reason });
}

function forget() {
  if (privateKey) sodium.memzero(privateKey);
  privateKey = null;
}

/** Keep the private key of a key file's text; return its key id. */
function loadKey(text) {
  if (typeof text !== "string" || text.length > MAX_KEY_FILE_CHARS) {
    throw refuse("not-a-key-file", "this is not a hotline key file");
  }
  const found = KEY_FILE.exec(text.replace(/\r\n/g, "\n"));
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

/** The text of one digest item's content, or why it cannot be shown. */
function openItem(item) {
  const { case_id: caseId, content } = item || {};
  if (!content) return { case_id: caseId, text: null, reason: "no-content" }; // a "changed" item
  // The routing the report's envelope binds (hotline.shared.reports.routing_metadata).
  const routing = {
    factory: item.factory,
    categories: Array.isArray(item.categories) ? [...item.categories].sort() : item.categories,
    urgent: item.urgent,
    language: item.language,
  };
  let plaintext;
  try {
    plaintext = openEnvelope(content, { privateKey, caseId, routing });
  } catch (error) {
    return { case_id: caseId, text: null, reason: error.reason || "integrity" };
  }
  try {
    return { case_id: caseId, text: lenientText.decode(plaintext), reason: null };
  } finally {
    sodium.memzero(plaintext);
  }
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
  check({ files, vkey, buyer, before }) {
    try {
      return checkDigests(files, vkey, buyer, before || null);
    } catch (error) {
      if (error instanceof TlogError) throw refuse("bad-vkey", "the page's digest key is malformed");
      throw error;
    }
  },
  "load-key": ({ text }) => loadKey(text),
  open({ items }) {
    if (!privateKey) throw refuse("no-key", "no key file is loaded");
    if (!Array.isArray(items)) throw new RangeError("items must be a list");
    return items.map(openItem);
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
    self.postMessage({ id, ok: true, result: OPS[op](args) });
  } catch (error) {
    // Typed errors carry a reason; anything else is reported without its details.
    const reason = (error && error.reason) || (error instanceof RangeError ? "bad-request" : "internal");
    const message = error && error.reason ? error.message : "the operation failed";
    self.postMessage({ id, ok: false, reason, message });
  }
};
