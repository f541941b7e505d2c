// Proof of work (as hotline.shared.pow): find the smallest decimal counter whose
// SHA-256(challenge ":" counter) starts with `difficulty` zero bits. The challenge is opaque.
import { sha256, utf8 } from "./bytes.js";

export const MAX_DIFFICULTY = 32; // intake issues at most 28; more would freeze a phone

/** Leading zero bits of a digest, byte 0's high bit first. */
export function leadingZeroBits(digest) {
  let bits = 0;
  for (const byte of digest) {
    if (byte !== 0) return bits + Math.clz32(byte) - 24;
    bits += 8;
  }
  return bits;
}

export function powDigest(challenge, solution) {
  return sha256(utf8(challenge + ":" + solution));
}

/** The solution (decimal string) of `challenge` at `difficulty` bits; throws RangeError. */
export function solvePow(challenge, difficulty) {
  if (typeof challenge !== "string" || challenge.length === 0 || challenge.length > 200) {
    throw new RangeError("not a challenge");
  }
  if (!Number.isInteger(difficulty) || difficulty < 0 || difficulty > MAX_DIFFICULTY) {
    throw new RangeError(`difficulty must be 0..${MAX_DIFFICULTY}`);
  }
  for (let counter = 0; ; counter += 1) {
    const solution = String(counter);
    if (leadingZeroBits(powDigest(challenge, solution)) >= difficulty) return solution;
  }
}
