// The page's crypto worker (a module worker; issue 16 contract §7). All key material,
// plaintext and the receipt stay in here or in the messages of the page that made them.
// Requests are {id, op, ...args}; replies {id, ok: true, result} or
// {id, ok: false, reason, message} (message: English, never echoing input).
import sodium from "./vendor/libsodium-wrappers-sumo.js";
import { toBase64, toHex } from "./crypto/bytes.js";
import { openEnvelope, sealEnvelope } from "./crypto/envelope.js";
import { solvePow } from "./crypto/pow.js";
import { deriveReceipt, newReceipt } from "./crypto/receipt.js";
import { verifyRecipients } from "./crypto/recipients.js";
import { runVectors } from "./crypto/selftest.js";

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
