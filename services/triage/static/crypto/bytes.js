// Byte helpers shared by the crypto modules: UTF-8, hex, strict standard base64.
// Plain ES module; touches no DOM or worker global, so Node imports it too.
import sodium from "../vendor/libsodium-wrappers-sumo.js";

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

export function utf8(text) {
  return encoder.encode(text);
}

/** Decode UTF-8, throwing TypeError on invalid bytes. */
export function fromUtf8(bytes) {
  return strictDecoder.decode(bytes);
}

export function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function toHex(bytes) {
  return sodium.to_hex(bytes);
}

export function toBase64(bytes) {
  return sodium.to_base64(bytes, sodium.base64_variants.ORIGINAL);
}

/**
 * Decode standard padded base64, accepting only its one canonical spelling (as Python's
 * b64decode_strict and the tlog's decode_base64): returns null for anything else.
 */
export function fromBase64Strict(text) {
  if (typeof text !== "string" || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    return null;
  }
  let bytes;
  try {
    bytes = sodium.from_base64(text, sodium.base64_variants.ORIGINAL);
  } catch {
    return null;
  }
  return toBase64(bytes) === text ? bytes : null;
}

export function sha256(bytes) {
  return sodium.crypto_hash_sha256(bytes);
}

/** Constant-time equality of two byte arrays (false when the lengths differ). */
export function bytesEqual(a, b) {
  return a.length === b.length && (a.length === 0 || sodium.memcmp(a, b));
}
