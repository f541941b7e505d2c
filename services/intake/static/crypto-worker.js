// The page's crypto worker (a module worker; issue 16 contract §7). All key material,
// plaintext and the receipt stay in here or in the messages of the page that made them.
// Requests are {id, op, ...args}; replies {id, ok: true, result} or
// {id, ok: false, reason, message} (message: English, never echoing input).
//
// The status page's ops (issue 17): "unlock" derives from a typed receipt, keeps the reply
// private key HERE and hands back only the lookup token; "open-messages" opens the case's
// messages with that key; "lock" zeroes it. The key never leaves this worker.
import sodium from "./vendor/libsodium-wrappers-sumo.js";
import { fromUtf8, toBase64, toHex } from "./crypto/bytes.js";
import { openEnvelope, sealEnvelope } from "./crypto/envelope.js";
import { solvePow } from "./crypto/pow.js";
import { asciiDigits, deriveReceipt, newReceipt } from "./crypto/receipt.js";
import { verifyRecipients } from "./crypto/recipients.js";
import { runVectors } from "./crypto/selftest.js";

let replyPrivate = null; // the unlocked case's reply private key (status page), or null

function lock() {
  if (replyPrivate) sodium.memzero(replyPrivate);
  replyPrivate = null;
}

/** The text of one message to the worker, or null if it does not open with the reply key. */
function openMessage(caseId, { message_id, kind, envelope }) {
  let plaintext;
  try {
    // Routing as shared/messages.py message_routing: a message cannot be passed off as another.
    const routing = { message: message_id, kind };
    plaintext = openEnvelope(envelope, { privateKey: replyPrivate, caseId, routing });
  } catch {
    return null;
  }
  try {
    return fromUtf8(plaintext);
  } catch {
    return null;
  } finally {
    sodium.memzero(plaintext);
  }
}

const OPS = {
  "new-receipt": () => ({ receipt: newReceipt() }),
  derive({ receipt }) {
    const derived = deriveReceipt(receipt);
    sodium.memzero(derived.replyPrivate); // the form needs only the public half
    return { lookup_token: toHex(derived.lookupToken), reply_key: toBase64(derived.replyPublic) };
  },
  "verify-recipients": ({ recipients, vkey }) => {
    verifyRecipients(recipients, vkey);
    return {};
  },
  seal: ({ kind, case_id, routing, recipients, plaintext }) =>
    sealEnvelope(plaintext, { caseId: case_id, kind, routing, recipients }),
  open: ({ envelope, private_key, case_id, routing }) =>
    openEnvelope(envelope, { privateKey: private_key, caseId: case_id, routing }),
  pow: ({ challenge, difficulty }) => ({ solution: solvePow(challenge, difficulty) }),
  "selftest-vectors": ({ vectors }) => runVectors(vectors),
  unlock({ receipt }) {
    lock();
    const derived = deriveReceipt(asciiDigits(receipt));
    replyPrivate = derived.replyPrivate;
    const lookupToken = toHex(derived.lookupToken);
    sodium.memzero(derived.lookupToken);
    return { lookup_token: lookupToken };
  },
  "open-messages": ({ case_id, messages }) => {
    if (!replyPrivate) {
      throw Object.assign(new Error("no receipt is unlocked"), { reason: "locked" });
    }
    if (!Array.isArray(messages)) throw new RangeError("messages must be a list");
    return messages.map((message) => ({
      message_id: message.message_id,
      text: openMessage(case_id, message),
    }));
  },
  lock: () => {
    lock();
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
      throw Object.assign(new Error("unknown operation"), { reason: "bad-request" });
    }
    self.postMessage({ id, ok: true, result: OPS[op](args) });
  } catch (error) {
    // Typed module errors carry a reason; anything else is reported without its details.
    const reason = (error && error.reason) || (error instanceof RangeError ? "bad-request" : "internal");
    const message = error && error.reason ? error.message : "the operation failed";
    self.postMessage({ id, ok: false, reason, message });
  }
};
