// The version-1 report envelope, bit-compatible with hotline.shared.envelope (PyNaCl):
// sodium_pad (ISO/IEC 7816-4) to a size bucket, XChaCha20-Poly1305-IETF under a random data
// key and nonce with the RFC 8785 associated data of {case_id, kind, recipients, routing,
// version}, and the data key wrapped for each recipient with a sealed box.
import sodium from "../vendor/libsodium-wrappers-sumo.js";
import { concatBytes, fromBase64Strict, sha256, toBase64, toHex, utf8 } from "./bytes.js";
import { canonicalJson } from "./canonical.js";

export const ENVELOPE_VERSION = 1;
export const KINDS = ["content", "identity", "attachment"];
export const MAX_RECIPIENTS = 64;
export const MAX_CASE_ID_CHARS = 128;
const KIB = 1024;
// content and identity: 1 KiB .. 64 KiB; attachments: 64 KiB .. 4 MiB (seven buckets each).
const BUCKETS = {
  content: [0, 1, 2, 3, 4, 5, 6].map((i) => KIB << i),
  identity: [0, 1, 2, 3, 4, 5, 6].map((i) => KIB << i),
  attachment: [0, 1, 2, 3, 4, 5, 6].map((i) => (64 * KIB) << i),
};
export const MAX_ATTACHMENT_BYTES = BUCKETS.attachment[6] - 1;
const FIELDS = ["case_id", "ciphertext", "kind", "nonce", "recipients", "version"];
const KEY_ID_LABEL = utf8("hotline-key-id\0");
const KEY_ID_PATTERN = /^x25519:[0-9a-f]{64}$/;
const KEY_BYTES = 32;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
const WRAPPED_KEY_BYTES = 32 + 48; // data key + sealed box overhead
// Any scalar works: X25519 gives all zeros (libsodium refuses) exactly for low-order points.
const PROBE_SCALAR = new Uint8Array(KEY_BYTES).fill(9);

/**
 * An envelope failure. `reason` is one of: "bad-envelope" (malformed envelope or argument),
 * "key-mismatch" (a key id is not its key's id), "too-large", "not-a-recipient",
 * "integrity" (does not authenticate: tampered, or another case, routing or key list).
 */
export class EnvelopeError extends Error {
  constructor(reason, message) {
    super(message);
    this.name = "EnvelopeError";
    this.reason = reason;
  }
}

function refuse(message) {
  return new EnvelopeError("bad-envelope", message);
}

/** Return the 32 bytes of a usable X25519 public key in base64; throws EnvelopeError. */
export function decodePublicKey(text) {
  const key = fromBase64Strict(text);
  if (key === null || key.length !== KEY_BYTES) {
    throw refuse("an X25519 public key is 32 bytes of canonical base64");
  }
  try {
    sodium.crypto_scalarmult(PROBE_SCALAR, key);
  } catch {
    throw refuse("the X25519 public key is a low-order point");
  }
  return key;
}

/** "x25519:" + hex(SHA-256("hotline-key-id\0" || public key)) of a 32-byte public key. */
export function keyId(publicKey) {
  return "x25519:" + toHex(sha256(concatBytes(KEY_ID_LABEL, publicKey)));
}

function checkKind(kind) {
  if (!KINDS.includes(kind)) throw refuse("unknown envelope kind");
  return kind;
}

function checkCaseId(caseId) {
  // Printable: no C0/C1 control character (Python's str.isprintable is close enough here,
  // since case ids are UUIDs).
  if (typeof caseId !== "string" || caseId.length < 1 || caseId.length > MAX_CASE_ID_CHARS) {
    throw refuse(`a case id is a string of 1 to ${MAX_CASE_ID_CHARS} characters`);
  }
  if (/[\u0000-\u001f\u007f-\u009f]/.test(caseId)) throw refuse("control character in case id");
  return caseId;
}

function checkRecipientIds(ids) {
  if (ids.length < 1 || ids.length > MAX_RECIPIENTS) {
    throw refuse(`an envelope has 1 to ${MAX_RECIPIENTS} recipients`);
  }
  for (const id of ids) {
    if (typeof id !== "string" || !KEY_ID_PATTERN.test(id)) throw refuse("malformed key id");
  }
  if (new Set(ids).size !== ids.length) throw refuse("recipient key ids must be distinct");
}

/** The bucket a plaintext of `length` bytes of `kind` pads to; throws "too-large" above. */
export function paddedSize(length, kind) {
  for (const size of BUCKETS[checkKind(kind)]) {
    if (length < size) return size; // strictly: the 0x80 marker needs one byte
  }
  throw new EnvelopeError("too-large", "the plaintext is larger than the largest bucket");
}

/** The AEAD associated data: RFC 8785 JSON of {case_id, kind, recipients (sorted), routing, version}. */
export function associatedData({ kind, caseId, routing, recipientIds }) {
  checkRecipientIds(recipientIds);
  if (routing === null || typeof routing !== "object" || Array.isArray(routing)) {
    throw refuse("routing must be an object");
  }
  const document = {
    case_id: checkCaseId(caseId),
    kind: checkKind(kind),
    recipients: [...recipientIds].sort(),
    routing,
    version: ENVELOPE_VERSION,
  };
  try {
    return utf8(canonicalJson(document));
  } catch {
    throw refuse("routing is not canonicalisable JSON");
  }
}

/**
 * Seal `plaintext` (Uint8Array) for `recipients` ({key id: base64 X25519 public key});
 * return the envelope's JSON object. Throws EnvelopeError.
 */
export function sealEnvelope(plaintext, { caseId, kind, routing, recipients }) {
  if (!(plaintext instanceof Uint8Array)) throw refuse("the plaintext must be bytes");
  paddedSize(plaintext.length, kind); // refuses too large a plaintext before any work
  if (recipients === null || typeof recipients !== "object") throw refuse("no recipients");
  const ids = Object.keys(recipients).sort();
  const aad = associatedData({ kind, caseId, routing, recipientIds: ids });
  const keys = ids.map((id) => {
    const key = decodePublicKey(recipients[id]);
    if (keyId(key) !== id) {
      throw new EnvelopeError("key-mismatch", "a key id is not the id of the key given with it");
    }
    return key;
  });
  const dataKey = sodium.crypto_aead_xchacha20poly1305_ietf_keygen();
  const nonce = sodium.randombytes_buf(NONCE_BYTES);
  try {
    const ciphertext = encryptPadded(plaintext, { kind, aad, nonce, dataKey });
    const wrapped = {};
    ids.forEach((id, i) => {
      wrapped[id] = toBase64(sodium.crypto_box_seal(dataKey, keys[i]));
    });
    return {
      version: ENVELOPE_VERSION,
      kind,
      case_id: caseId,
      recipients: wrapped,
      nonce: toBase64(nonce),
      ciphertext: toBase64(ciphertext),
    };
  } finally {
    sodium.memzero(dataKey);
  }
}

/**
 * Pad `plaintext` to its `kind`'s bucket and encrypt it with XChaCha20-Poly1305-IETF under
 * `dataKey` and `nonce` with associated data `aad`: the deterministic core of sealing, which
 * the vectors check byte for byte against PyNaCl.
 */
export function encryptPadded(plaintext, { kind, aad, nonce, dataKey }) {
  const padded = sodium.pad(plaintext, paddedSize(plaintext.length, kind));
  try {
    return sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(padded, aad, null, nonce, dataKey);
  } finally {
    sodium.memzero(padded);
  }
}

/** Decrypt and unpad; throws EnvelopeError("integrity") unless it authenticates. */
export function decryptPadded(ciphertext, { aad, nonce, dataKey }) {
  let padded;
  try {
    padded = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, ciphertext, aad, nonce, dataKey);
  } catch {
    throw new EnvelopeError(
      "integrity",
      "the envelope does not authenticate (tampered, or wrong case id, routing or recipients)",
    );
  }
  try {
    return sodium.unpad(padded, padded.length);
  } catch {
    // Authenticated yet badly padded: the sealing client is faulty. Still refuse.
    throw new EnvelopeError("integrity", "the authenticated plaintext has invalid padding");
  } finally {
    sodium.memzero(padded);
  }
}

function decodeField(value, what) {
  const bytes = fromBase64Strict(value);
  if (bytes === null) throw refuse(`${what} is not canonical base64`);
  return bytes;
}

/**
 * Check the version-1 shape (as validate_envelope_shape) and return the decoded parts.
 * A case id other than `caseId` is an integrity failure: the envelope belongs elsewhere.
 */
function parseEnvelope(envelope, caseId) {
  if (envelope === null || typeof envelope !== "object" || Array.isArray(envelope)) {
    throw refuse("an envelope is a JSON object");
  }
  if (Object.keys(envelope).sort().join() !== FIELDS.join()) throw refuse("envelope fields");
  if (envelope.version !== ENVELOPE_VERSION) throw refuse("unsupported envelope version");
  const kind = checkKind(envelope.kind);
  if (checkCaseId(envelope.case_id) !== caseId) {
    throw new EnvelopeError("integrity", "the envelope belongs to another case");
  }
  const recipients = envelope.recipients;
  if (recipients === null || typeof recipients !== "object" || Array.isArray(recipients)) {
    throw refuse("recipients must be an object");
  }
  const ids = Object.keys(recipients);
  checkRecipientIds(ids);
  const wrapped = {};
  for (const id of ids) {
    wrapped[id] = decodeField(recipients[id], "a wrapped key");
    if (wrapped[id].length !== WRAPPED_KEY_BYTES) throw refuse("a wrapped key has the wrong size");
  }
  const nonce = decodeField(envelope.nonce, "the nonce");
  if (nonce.length !== NONCE_BYTES) throw refuse("the nonce must be 24 bytes");
  const ciphertext = decodeField(envelope.ciphertext, "the ciphertext");
  if (!BUCKETS[kind].some((size) => size + TAG_BYTES === ciphertext.length)) {
    throw refuse("the ciphertext length is not a padding bucket plus the tag");
  }
  return { kind, ids, wrapped, nonce, ciphertext };
}

/**
 * Open `envelope` with a 32-byte X25519 `privateKey`; return the unpadded plaintext.
 * The associated data is rebuilt from the GIVEN case id and routing. Throws EnvelopeError;
 * never returns unauthenticated bytes.
 */
export function openEnvelope(envelope, { privateKey, caseId, routing }) {
  const { kind, ids, wrapped, nonce, ciphertext } = parseEnvelope(envelope, caseId);
  if (!(privateKey instanceof Uint8Array) || privateKey.length !== KEY_BYTES) {
    throw refuse("an X25519 private key is 32 bytes");
  }
  const publicKey = sodium.crypto_scalarmult_base(privateKey);
  const ownId = keyId(publicKey);
  if (!ids.includes(ownId)) {
    throw new EnvelopeError("not-a-recipient", "this key is not a recipient of the envelope");
  }
  const aad = associatedData({ kind, caseId, routing, recipientIds: ids });
  let dataKey;
  try {
    dataKey = sodium.crypto_box_seal_open(wrapped[ownId], publicKey, privateKey);
  } catch {
    throw new EnvelopeError("integrity", "the wrapped data key does not open with this key");
  }
  try {
    return decryptPadded(ciphertext, { aad, nonce, dataKey });
  } finally {
    sodium.memzero(dataKey);
  }
}
