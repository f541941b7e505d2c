// The worker's receipt (as hotline.shared.receipt): 39 random digits and a Damm check
// digit, shown as ten groups of four; Argon2id turns it into the lookup token and the reply
// key pair on the device, so the server never sees the receipt or can derive either value.
import sodium from "../vendor/libsodium-wrappers-sumo.js";
import { concatBytes, sha256, toHex, utf8 } from "./bytes.js";

export const RECEIPT_DIGITS = 40;
export const ARGON2_OPSLIMIT = 3;
export const ARGON2_MEMLIMIT = 64 * 1024 * 1024;
const KDF_LABEL = utf8("hotline-receipt-v2\0");
const LOOKUP_LABEL = utf8("hotline-lookup-v2\0");
const SALT_TEXT = "hotline-receipt-salt-v2";

// Damm's totally anti-symmetric quasigroup of order 10 (H. M. Damm, 2004), as published.
const DAMM = [
  [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
  [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
  [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
  [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
  [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
  [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
  [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
  [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
  [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
  [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
];

export class ReceiptError extends Error {
  constructor(message) {
    super(message);
    this.name = "ReceiptError";
    this.reason = "bad-receipt";
  }
}

/** The Damm check digit of a string of ASCII digits (0 for the empty string). */
export function dammCheckDigit(digits) {
  let interim = 0;
  for (const digit of digits) interim = DAMM[interim][digit.charCodeAt(0) - 48];
  return interim;
}

/** Ten space-separated groups of four digits. */
export function formatReceipt(digits) {
  return digits.match(/.{4}/g).join(" ");
}

/** A fresh receipt, formatted: each digit from crypto.getRandomValues by rejection sampling. */
export function newReceipt() {
  const digits = [];
  const bytes = new Uint8Array(64);
  while (digits.length < RECEIPT_DIGITS - 1) {
    globalThis.crypto.getRandomValues(bytes);
    for (const byte of bytes) {
      // 250 = 25 * 10: bytes 250..255 would favour digits 0..5, so they are drawn again.
      if (byte < 250 && digits.length < RECEIPT_DIGITS - 1) digits.push(String(byte % 10));
    }
  }
  bytes.fill(0);
  const body = digits.join("");
  return formatReceipt(body + String(dammCheckDigit(body)));
}

const DECIMAL_DIGIT = /\p{Nd}/u;

/** The value of a Unicode decimal digit: Unicode assigns them only in runs of ten, 0 to 9. */
function decimalValue(codePoint) {
  let zero = codePoint;
  while (DECIMAL_DIGIT.test(String.fromCodePoint(zero - 1))) zero -= 1;
  return (codePoint - zero) % 10;
}

/**
 * `text` with every Unicode decimal digit (Devanagari, Bengali, full-width...) written as its
 * ASCII digit and everything else left as it is, for normaliseReceipt (as the Python side
 * reads any decimal digit). Anything but a string is returned unchanged.
 */
export function asciiDigits(text) {
  if (typeof text !== "string") return text;
  return text.replace(/\p{Nd}/gu, (digit) => String(decimalValue(digit.codePointAt(0))));
}

/**
 * The 40 ASCII digits of a typed receipt: ASCII digits, with spaces and dashes ignored.
 * Throws ReceiptError on anything else, a wrong digit count, or a failing check digit.
 */
export function normaliseReceipt(text) {
  if (typeof text !== "string" || text.length > 200 || !/^[0-9\s\-\u2010-\u2015]*$/.test(text)) {
    throw new ReceiptError("a receipt holds only digits, spaces and dashes");
  }
  const digits = text.replace(/[^0-9]/g, "");
  if (digits.length !== RECEIPT_DIGITS) throw new ReceiptError("a receipt has 40 digits");
  if (dammCheckDigit(digits) !== 0) throw new ReceiptError("the receipt does not check out");
  return digits;
}

/**
 * Argon2id (ops 3, 64 MiB) of "hotline-receipt-v2\0" || digits under the constant salt
 * SHA-256("hotline-receipt-salt-v2")[0:16]: bytes 0..31 are the lookup token, 32..63 the seed
 * of the X25519 reply key pair. Returns {lookupToken, replyPublic, replyPrivate}.
 */
export function deriveReceipt(receipt) {
  const password = concatBytes(KDF_LABEL, utf8(normaliseReceipt(receipt)));
  const salt = sha256(utf8(SALT_TEXT)).slice(0, sodium.crypto_pwhash_SALTBYTES);
  const out = sodium.crypto_pwhash(
    64, password, salt, ARGON2_OPSLIMIT, ARGON2_MEMLIMIT, sodium.crypto_pwhash_ALG_ARGON2ID13,
  );
  const seed = out.slice(32, 64);
  const pair = sodium.crypto_box_seed_keypair(seed);
  const lookupToken = out.slice(0, 32);
  for (const secret of [password, out, seed]) sodium.memzero(secret);
  return { lookupToken, replyPublic: pair.publicKey, replyPrivate: pair.privateKey };
}

/** hex(SHA-256("hotline-lookup-v2\0" || token)): what intake stores to find the case. */
export function lookupHash(lookupToken) {
  return toHex(sha256(concatBytes(LOOKUP_LABEL, lookupToken)));
}
