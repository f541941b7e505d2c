// The audit log's proofs as the page checks them (as hotline.shared.tlog): RFC 9162 Merkle
// inclusion, C2SP signed notes with Ed25519, and C2SP tlog-checkpoint bodies, parsed as
// strictly as the Python side. Sizes and indexes are BigInt: a log may exceed 2^53 leaves.
import sodium from "../vendor/libsodium-wrappers-sumo.js";
import { bytesEqual, concatBytes, fromBase64Strict, fromUtf8, sha256, utf8 } from "./bytes.js";

export const HASH_SIZE = 32;
const ALG_ED25519 = 0x01;
const MAX_SIGNATURES = 100;
const SIGNATURE_PREFIX = "\u2014 "; // em dash, space
const CONTROL = /[\u0000-\u0009\u000b-\u001f]/;
const MAX_SIZE = 2n ** 64n - 1n;

/**
 * A proof or note refused. `kind` says why: "out-of-range", "hash-size", "proof-size",
 * "root-mismatch" (Merkle); "malformed-key", "malformed-note", "bad-signature",
 * "unverified", "bad-checkpoint" (notes and checkpoints).
 */
export class TlogError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = "TlogError";
    this.kind = kind;
  }
}

export function leafHash(entry) {
  return sha256(concatBytes(Uint8Array.of(0), entry));
}

function hashChildren(left, right) {
  return sha256(concatBytes(Uint8Array.of(1), left, right));
}

function checkHash(value, what) {
  if (!(value instanceof Uint8Array) || value.length !== HASH_SIZE) {
    throw new TlogError("hash-size", `${what} is not a ${HASH_SIZE}-byte hash`);
  }
}

function toBigInt(value, what) {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value);
  throw new TlogError("out-of-range", `${what} is not an integer`);
}

function bitLength(value) {
  return value === 0n ? 0 : value.toString(2).length;
}

function bitCount(value) {
  return [...value.toString(2)].filter((bit) => bit === "1").length;
}

/**
 * The root of the tree of `size` leaves implied by an inclusion proof of leaf `index`
 * (hash `leaf`). Requires 0 <= index < size, 32-byte hashes and the exact proof length.
 */
export function rootFromInclusionProof(index, size, leaf, proof) {
  const i = toBigInt(index, "index");
  const n = toBigInt(size, "size");
  if (!(0n <= i && i < n)) throw new TlogError("out-of-range", "index out of range for size");
  checkHash(leaf, "leaf hash");
  proof.forEach((hash, position) => checkHash(hash, `proof[${position}]`));
  // Inner nodes lie below the level where the paths to index and size - 1 diverge (either
  // side); border nodes above it are left siblings only.
  const inner = bitLength(i ^ (n - 1n));
  const border = bitCount(i >> BigInt(inner));
  if (proof.length !== inner + border) {
    throw new TlogError("proof-size", `inclusion proof has ${proof.length} hashes, want ${inner + border}`);
  }
  let value = leaf;
  for (let level = 0; level < inner; level += 1) {
    value = (i >> BigInt(level)) & 1n ? hashChildren(proof[level], value) : hashChildren(value, proof[level]);
  }
  for (const sibling of proof.slice(inner)) value = hashChildren(sibling, value);
  return value;
}

/** Check that `proof` shows leaf `index` (hash `leaf`) in the tree (`size`, `root`). */
export function verifyInclusion(index, size, leaf, proof, root) {
  checkHash(root, "root");
  if (!bytesEqual(rootFromInclusionProof(index, size, leaf, proof), root)) {
    throw new TlogError("root-mismatch", "the proof leads to another root");
  }
}

function checkKeyName(name) {
  if (!name || name.includes("+") || /[\s\u0000-\u001f]/.test(name)) {
    throw new TlogError("malformed-key", "invalid key name");
  }
  return name;
}

/** SHA-256(name || "\n" || alg || public key)[0:4] as an unsigned 32-bit number. */
export function noteKeyId(name, alg, publicKey) {
  const digest = sha256(concatBytes(utf8(checkKeyName(name) + "\n"), Uint8Array.of(alg), publicKey));
  return new DataView(digest.buffer, digest.byteOffset, 4).getUint32(0);
}

/** Parse an Ed25519 verifier key `name+hex(key id)+base64(0x01 || public key)`. */
export function parseVerifierKey(vkey) {
  // name+keyhash+base64: split at the first two '+' only (base64 may hold '+').
  const first = typeof vkey === "string" ? vkey.indexOf("+") : -1;
  const second = first < 0 ? -1 : vkey.indexOf("+", first + 1);
  if (second < 0) throw new TlogError("malformed-key", "a verifier key has 3 parts");
  const name = vkey.slice(0, first);
  const keyHash = vkey.slice(first + 1, second);
  const key64 = vkey.slice(second + 1);
  checkKeyName(name);
  if (!/^[0-9a-f]{8}$/.test(keyHash)) throw new TlogError("malformed-key", "bad key id");
  const raw = fromBase64Strict(key64);
  if (raw === null || raw.length !== 33 || raw[0] !== ALG_ED25519) {
    throw new TlogError("malformed-key", "not an Ed25519 verifier key");
  }
  const publicKey = raw.slice(1);
  const keyId = noteKeyId(name, ALG_ED25519, publicKey);
  if (keyId !== parseInt(keyHash, 16)) throw new TlogError("malformed-key", "key id does not match");
  return { name, keyId, publicKey };
}

function parseSignatureLine(line) {
  if (!line.startsWith(SIGNATURE_PREFIX)) {
    throw new TlogError("malformed-note", "a signature line starts with an em dash and a space");
  }
  const rest = line.slice(SIGNATURE_PREFIX.length);
  const space = rest.indexOf(" ");
  const name = space < 0 ? rest : rest.slice(0, space);
  try {
    checkKeyName(name);
  } catch {
    throw new TlogError("malformed-note", "invalid key name in a signature line");
  }
  const raw = space < 0 ? null : fromBase64Strict(rest.slice(space + 1));
  if (raw === null || raw.length < 5) throw new TlogError("malformed-note", "bad signature");
  const keyId = new DataView(raw.buffer, raw.byteOffset, 4).getUint32(0);
  return { name, keyId, signature: raw.slice(4) };
}

/**
 * Verify a signed note (text or UTF-8 bytes) against ONE pinned verifier key; return its text
 * (everything before the blank line, final newline included). Signatures of other keys are
 * ignored; a failing signature by the pinned key, or none at all, refuses the note.
 */
export function openNote(message, verifier) {
  let note = message;
  if (message instanceof Uint8Array) {
    try {
      note = fromUtf8(message);
    } catch {
      throw new TlogError("malformed-note", "the note is not UTF-8");
    }
  }
  if (typeof note !== "string" || CONTROL.test(note)) {
    throw new TlogError("malformed-note", "the note holds a control character");
  }
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw new TlogError("malformed-note", "no blank line before the signatures");
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (!block.endsWith("\n")) throw new TlogError("malformed-note", "no final signature newline");
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) throw new TlogError("malformed-note", "too many signatures");
  const signatures = lines.map(parseSignatureLine);
  const encoded = utf8(text);
  let verified = false;
  for (const { name, keyId, signature } of signatures) {
    if (name !== verifier.name || keyId !== verifier.keyId || verified) continue;
    if (signature.length !== 64 || !sodium.crypto_sign_verify_detached(signature, encoded, verifier.publicKey)) {
      throw new TlogError("bad-signature", "the pinned key's signature does not verify");
    }
    verified = true;
  }
  if (!verified) throw new TlogError("unverified", "no signature by the pinned key");
  return text;
}

/** Parse a checkpoint body strictly: origin, canonical decimal size, base64 32-byte root. */
export function parseCheckpoint(text) {
  if (!text.endsWith("\n")) throw new TlogError("bad-checkpoint", "no final newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw new TlogError("bad-checkpoint", "a checkpoint has 3 lines");
  const [origin, sizeText, root64, ...extensions] = lines;
  if (!origin || extensions.some((line) => !line)) {
    throw new TlogError("bad-checkpoint", "empty origin or extension line");
  }
  if (!/^(0|[1-9][0-9]{0,19})$/.test(sizeText) || BigInt(sizeText) > MAX_SIZE) {
    throw new TlogError("bad-checkpoint", "the tree size is not a canonical decimal");
  }
  const rootHash = fromBase64Strict(root64);
  if (rootHash === null || rootHash.length !== HASH_SIZE) {
    throw new TlogError("bad-checkpoint", "the root hash is not 32 bytes of base64");
  }
  return { origin, size: BigInt(sizeText), rootHash, extensions };
}

/** Verify a signed checkpoint by the pinned `vkey` text, whose name must be its origin. */
export function openCheckpoint(message, vkey) {
  const verifier = parseVerifierKey(vkey);
  const checkpoint = parseCheckpoint(openNote(message, verifier));
  if (checkpoint.origin !== verifier.name) {
    throw new TlogError("bad-checkpoint", "the checkpoint is from another log");
  }
  return checkpoint;
}
