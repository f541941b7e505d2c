// A buyer's signed digests as the buyer page checks them (issue 19 contract §1), as
// `hotline digests verify` does: the body's hash is the SHA-256 of its RFC 8785 canonical
// JSON; the signed note must verify against notify's pinned key and say exactly
// "hotline digest v1\n<buyer>\n<seq>\n<hash>\n"; and the digests chain: seq 1, 2, 3...
// without a gap, each naming its predecessor's hash (null for seq 1). Pure functions: no DOM,
// no network. The page's crypto worker imports them.
import { sha256, toHex, utf8 } from "./crypto/bytes.js";
import { canonicalJson } from "./crypto/canonical.js";
import { TlogError, openNote, parseVerifierKey } from "./crypto/tlog.js";

export const DIGEST_VERSION = 1;
const HASH = /^[0-9a-f]{64}$/;

/** The text notify signs for digest `seq` of `buyer` whose body hashes to `hash`. */
export function digestNoteText(buyer, seq, hash) {
  return `hotline digest v1\n${buyer}\n${seq}\n${hash}\n`;
}

/** Hex SHA-256 of the body's canonical JSON; throws TypeError for what is not JSON data. */
export function digestHash(body) {
  return toHex(sha256(utf8(canonicalJson(body))));
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** True when `body` has the shape of a version-1 digest (the fields the checks rely on). */
function wellFormed(body) {
  return (
    isObject(body) &&
    body.version === DIGEST_VERSION &&
    typeof body.buyer === "string" &&
    Number.isSafeInteger(body.seq) &&
    body.seq >= 1 &&
    (body.previous === null || (typeof body.previous === "string" && HASH.test(body.previous))) &&
    Array.isArray(body.items) &&
    body.items.every(isObject)
  );
}

/**
 * The signature verdict of one digest file {digest, note} for `buyer`, checked against the
 * parsed pinned `verifier`: {hash, signature}, where signature is null when it verifies, else
 * "malformed" (not a version-1 digest file), "bad-signature" (no valid signature by the pinned
 * key), "altered" (a valid signature, over another body: the digest was changed) or
 * "other-buyer" (a genuine digest of another buyer).
 */
export function checkSignature(file, verifier, buyer) {
  if (!isObject(file) || !wellFormed(file.digest) || typeof file.note !== "string") {
    return { hash: null, signature: "malformed" };
  }
  let hash;
  try {
    hash = digestHash(file.digest);
  } catch {
    return { hash: null, signature: "malformed" }; // a float, or something JSON cannot hold
  }
  let text;
  try {
    text = openNote(file.note, verifier);
  } catch (error) {
    if (error instanceof TlogError && error.kind === "malformed-note") {
      return { hash, signature: "malformed" };
    }
    return { hash, signature: "bad-signature" };
  }
  const { buyer: owner, seq } = file.digest;
  if (text !== digestNoteText(owner, seq, hash)) return { hash, signature: "altered" };
  if (owner !== buyer) return { hash, signature: "other-buyer" };
  return { hash, signature: null };
}

/**
 * Where a digest stands in the chain after `before` ({seq, hash} of the digest checked just
 * before it, or null if none is held): "first" (seq 1, previous null), "follows" (the next
 * seq, naming the hash of the one before), "gap" (digests are missing before it),
 * "broken" (it names another predecessor than the one held: a rewrite), or "out-of-order"
 * (a seq at or below one already held: repeated or reordered).
 */
export function chainLink(body, before) {
  if (body.seq === 1) {
    if (before !== null) return "out-of-order";
    return body.previous === null ? "first" : "broken";
  }
  if (before === null || body.seq > before.seq + 1) return "gap";
  if (body.seq <= before.seq) return "out-of-order";
  return body.previous === before.hash ? "follows" : "broken";
}

/**
 * Check `files` (in the order they were handed out: ascending seq) for `buyer` against the
 * pinned `vkey` text, continuing after `before` (see chainLink). Returns one
 * {seq, hash, signature, chain} per file (chain null for a malformed file) and `last`, the
 * {seq, hash} to continue from with the next page of digests.
 */
export function checkDigests(files, vkey, buyer, before = null) {
  if (!Array.isArray(files)) throw new RangeError("the digests must be a list");
  const verifier = parseVerifierKey(vkey);
  let last = before;
  const verdicts = files.map((file) => {
    const { hash, signature } = checkSignature(file, verifier, buyer);
    if (hash === null) return { seq: null, hash, signature, chain: null };
    const { seq } = file.digest;
    const chain = chainLink(file.digest, last);
    last = { seq, hash };
    return { seq, hash, signature, chain };
  });
  return { verdicts, last };
}
