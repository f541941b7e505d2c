// Runs the shared vectors (tests/vectors/crypto/*.json and the transparency-dev Merkle
// inclusion probes under tests/vectors/merkle/inclusion) through the same modules the page
// uses. `files` maps each file's path relative to tests/vectors (e.g. "crypto/aead.json",
// "merkle/inclusion/0/happy-path.json") to its parsed JSON. The crypto worker's
// `selftest-vectors` op and tests/vectors/crypto/run_node.mjs both call runVectors.
import sodium from "../vendor/libsodium-wrappers-sumo.js";
import { bytesEqual, fromBase64Strict, toBase64, toHex, utf8 } from "./bytes.js";
import {
  associatedData, decodePublicKey, decryptPadded, encryptPadded, keyId, openEnvelope,
  paddedSize, sealEnvelope,
} from "./envelope.js";
import { solvePow, leadingZeroBits, powDigest } from "./pow.js";
import { dammCheckDigit, deriveReceipt, lookupHash, normaliseReceipt } from "./receipt.js";
import { verifyRecipients } from "./recipients.js";
import { openCheckpoint, verifyInclusion } from "./tlog.js";

function b64(text) {
  const bytes = fromBase64Strict(text);
  if (bytes === null) throw new Error("a vector holds bad base64");
  return bytes;
}

/** True when `action` throws an error whose reason (or tlog kind) is `expected`. */
function failsWith(action, expected) {
  try {
    action();
  } catch (error) {
    return (error.reason || error.kind) === expected;
  }
  return false;
}

const CHECKS = {
  key_ids(v) {
    if (v.error) return failsWith(() => keyId(decodePublicKey(v.public_key)), "bad-envelope");
    return keyId(decodePublicKey(v.public_key)) === v.key_id;
  },
  associated_data(v) {
    const make = () =>
      associatedData({ kind: v.kind, caseId: v.case_id, routing: v.routing, recipientIds: v.recipient_ids });
    if (v.error) return failsWith(make, v.error);
    return bytesEqual(make(), utf8(v.aad));
  },
  padding(v) {
    if (v.error) return failsWith(() => paddedSize(v.length, v.kind), v.error);
    return paddedSize(v.length, v.kind) === v.padded_size;
  },
  aead(v) {
    const aad = associatedData({ kind: v.kind, caseId: v.case_id, routing: v.routing, recipientIds: v.recipient_ids });
    const keys = { aad, nonce: b64(v.nonce), dataKey: b64(v.data_key) };
    const ciphertext = b64(v.ciphertext);
    if (v.error) return failsWith(() => decryptPadded(ciphertext, keys), v.error);
    const plaintext = b64(v.plaintext);
    return (
      bytesEqual(encryptPadded(plaintext, { kind: v.kind, ...keys }), ciphertext) &&
      bytesEqual(decryptPadded(ciphertext, keys), plaintext)
    );
  },
  envelopes(v) {
    const privateKey = b64(v.private_key);
    const options = { privateKey, caseId: v.case_id, routing: v.routing };
    if (v.error) return failsWith(() => openEnvelope(v.envelope, options), v.error);
    const plaintext = b64(v.plaintext);
    // Sealing is randomised, so it is checked by opening what this side seals.
    const resealed = sealEnvelope(plaintext, {
      caseId: v.case_id, kind: v.envelope.kind, routing: v.routing, recipients: v.recipient_public_keys,
    });
    return (
      bytesEqual(openEnvelope(v.envelope, options), plaintext) &&
      bytesEqual(openEnvelope(resealed, options), plaintext)
    );
  },
  receipts(v) {
    const derived = deriveReceipt(v.receipt);
    return (
      toHex(derived.lookupToken) === v.lookup_token &&
      lookupHash(derived.lookupToken) === v.lookup_hash &&
      toBase64(derived.replyPublic) === v.reply_public &&
      bytesEqual(sodium.crypto_scalarmult_base(derived.replyPrivate), derived.replyPublic)
    );
  },
  receipt_digits(v) {
    if ("check_digit" in v) return dammCheckDigit(v.digits) === v.check_digit;
    if (v.error) return failsWith(() => normaliseReceipt(v.text), v.error);
    return normaliseReceipt(v.text) === v.digits;
  },
  pow(v) {
    const bitsOk = leadingZeroBits(sodium.from_hex(v.digest)) === v.leading_zero_bits;
    if (!("challenge" in v)) return bitsOk;
    return (
      bitsOk &&
      toHex(powDigest(v.challenge, v.solution)) === v.digest &&
      solvePow(v.challenge, v.difficulty) === v.solution
    );
  },
  notes(v) {
    if (v.error) return failsWith(() => openCheckpoint(v.note, v.vkey), v.error);
    const checkpoint = openCheckpoint(v.note, v.vkey);
    return (
      checkpoint.origin === v.checkpoint.origin &&
      String(checkpoint.size) === v.checkpoint.size &&
      toBase64(checkpoint.rootHash) === v.checkpoint.root_hash
    );
  },
  recipients(v) {
    if (v.reason) return failsWith(() => verifyRecipients(v.recipients, v.vkey), v.reason);
    verifyRecipients(v.recipients, v.vkey);
    return true;
  },
};

/** A transparency-dev inclusion probe: verifies exactly when `wantErr` is false. */
function inclusionProbe(probe) {
  let verified;
  try {
    const proof = (probe.proof || []).map(fromBase64Strict);
    const [root, leaf] = [fromBase64Strict(probe.root), fromBase64Strict(probe.leafHash)];
    if (proof.includes(null) || root === null || leaf === null) throw new Error("bad base64");
    verifyInclusion(probe.leafIdx, probe.treeSize, leaf, proof, root);
    verified = true;
  } catch {
    verified = false;
  }
  return verified === !probe.wantErr;
}

function passes(check, vector) {
  try {
    return check(vector) === true;
  } catch {
    return false; // an unexpected exception is a failure, never a pass
  }
}

/** Run every vector of `files`; return {passed: count, failed: [names]}. */
export function runVectors(files) {
  let passed = 0;
  const failed = [];
  const record = (ok, name) => (ok ? (passed += 1) : failed.push(name));
  for (const path of Object.keys(files).sort()) {
    const crypto = /^crypto\/([a-z_]+)\.json$/.exec(path);
    if (crypto && CHECKS[crypto[1]]) {
      for (const vector of files[path].vectors) {
        record(passes(CHECKS[crypto[1]], vector), `${path}: ${vector.name}`);
      }
    } else if (path.startsWith("merkle/inclusion/")) {
      record(passes(inclusionProbe, files[path]), path);
    } else {
      failed.push(`${path}: no check for this file`);
    }
  }
  return { passed, failed };
}
