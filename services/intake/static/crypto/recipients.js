// What the page checks before sealing (issue 16 contract §6): the recipient keys intake
// hands out are each registered in the audit log (an inclusion proof of its key.registered
// entry against a checkpoint signed by the pinned log key), none belongs to a factory, and
// identity goes to operators only. Any doubt refuses; nothing is sealed then.
import { fromBase64Strict, fromUtf8 } from "./bytes.js";
import { decodePublicKey, keyId } from "./envelope.js";
import { leafHash, openCheckpoint, TlogError, verifyInclusion } from "./tlog.js";

/** A refusal; `reason` is one of the §6 reasons, e.g. "not-in-log". */
export class RecipientsRefused extends Error {
  constructor(reason, message) {
    super(message);
    this.name = "RecipientsRefused";
    this.reason = reason;
  }
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function parseLeaf(entry) {
  try {
    const leaf = JSON.parse(fromUtf8(entry));
    return isObject(leaf) ? leaf : null;
  } catch {
    return null;
  }
}

/**
 * Check one offered key against its proof; return the registered org_kind. Throws
 * RecipientsRefused ("not-in-log", "key-mismatch", "bad-proof").
 */
function checkKey(kid, publicKey64, proof, checkpoint) {
  if (!isObject(proof)) throw new RecipientsRefused("not-in-log", "a recipient key has no proof");
  let publicKey;
  try {
    publicKey = decodePublicKey(publicKey64);
  } catch {
    throw new RecipientsRefused("key-mismatch", "a recipient key is not a usable X25519 key");
  }
  if (keyId(publicKey) !== kid) {
    throw new RecipientsRefused("key-mismatch", "a recipient key id is not its key's id");
  }
  const entry = fromBase64Strict(proof.entry);
  const leaf = entry === null ? null : parseLeaf(entry);
  if (leaf === null || leaf.type !== "key.registered" || leaf.key_id !== kid || leaf.public_key !== publicKey64) {
    throw new RecipientsRefused("key-mismatch", "the log entry is not this key's registration");
  }
  const inclusion = Array.isArray(proof.inclusion) ? proof.inclusion.map(fromBase64Strict) : null;
  if (inclusion === null || inclusion.includes(null) || !Number.isSafeInteger(proof.index)) {
    throw new RecipientsRefused("bad-proof", "a malformed inclusion proof");
  }
  try {
    verifyInclusion(proof.index, checkpoint.size, leafHash(entry), inclusion, checkpoint.rootHash);
  } catch (error) {
    if (!(error instanceof TlogError)) throw error;
    throw new RecipientsRefused("bad-proof", "an inclusion proof does not lead to the checkpoint");
  }
  return leaf.org_kind;
}

/**
 * Verify the recipients JSON of GET /api/recipients/{factory} against the pinned log
 * verifier key `vkey`. Returns nothing; throws RecipientsRefused with the §6 reason.
 */
export function verifyRecipients(recipients, vkey) {
  const transparency = isObject(recipients) ? recipients.transparency : null;
  let checkpoint;
  try {
    checkpoint = openCheckpoint(isObject(transparency) ? transparency.checkpoint : null, vkey);
  } catch (error) {
    if (!(error instanceof TlogError)) throw error;
    throw new RecipientsRefused("bad-checkpoint", "the log checkpoint does not verify");
  }
  const content = isObject(recipients.content) ? recipients.content : null;
  const identity = isObject(recipients.identity) ? recipients.identity : null;
  const proofs = isObject(transparency.proofs) ? transparency.proofs : {};
  if (content === null || identity === null || Object.keys(content).length === 0) {
    throw new RecipientsRefused("not-in-log", "no recipient keys to check");
  }
  const orgKinds = {};
  for (const group of [content, identity]) {
    for (const [kid, publicKey64] of Object.entries(group)) {
      const proof = Object.prototype.hasOwnProperty.call(proofs, kid) ? proofs[kid] : null;
      orgKinds[kid] = checkKey(kid, publicKey64, proof, checkpoint);
    }
  }
  if (Object.values(orgKinds).includes("factory")) {
    throw new RecipientsRefused("factory-key", "a recipient key belongs to a factory");
  }
  if (Object.keys(identity).some((kid) => orgKinds[kid] !== "operator")) {
    throw new RecipientsRefused("identity-not-operator", "identity would go to a non-operator key");
  }
}
