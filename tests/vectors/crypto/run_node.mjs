// Runs the crypto worker under Node, through its own message handler (static/crypto-worker.js
// with a stand-in `self`), so the same code as in the browser answers the same requests:
// `selftest-vectors` over tests/vectors/crypto/*.json and tests/vectors/merkle/inclusion,
// then one request of every other op. Prints one JSON object:
//   {"selftest": {passed, failed}, "replies": {<op>: reply}, "sealed": [{kind, case_id,
//    routing, plaintext, envelope}]}
// `sealed` holds envelopes sealed here to the fixed keys of envelopes.json, which
// tests/unit/test_crypto_vectors.py opens with PyNaCl. Usage: node run_node.mjs (Node 19+).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const vectorsDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const workerPath = join(vectorsDir, "..", "..", "services", "intake", "static", "crypto-worker.js");

function jsonFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return jsonFiles(path);
    return name.endsWith(".json") ? [path] : [];
  });
}

const vectors = {};
for (const path of [...jsonFiles(join(vectorsDir, "crypto")), ...jsonFiles(join(vectorsDir, "merkle", "inclusion"))]) {
  vectors[relative(vectorsDir, path).split("\\").join("/")] = JSON.parse(readFileSync(path, "utf8"));
}

// A stand-in for the worker global: requests go to its onmessage, replies come back here.
const pending = new Map();
globalThis.self = {
  postMessage(reply) {
    pending.get(reply.id)(structuredClone(reply));
    pending.delete(reply.id);
  },
};
await import(pathToFileURL(workerPath).href);
let nextId = 0;
function request(op, args = {}) {
  const id = (nextId += 1);
  return new Promise((resolve) => {
    pending.set(id, resolve);
    globalThis.self.onmessage({ data: structuredClone({ id, op, ...args }) });
  });
}

const toBase64 = (bytes) => Buffer.from(bytes).toString("base64");
const selftest = await request("selftest-vectors", { vectors });
const receipt = await request("new-receipt");
const replies = {
  "new-receipt": receipt,
  derive: await request("derive", { receipt: receipt.result.receipt }),
  pow: await request("pow", { challenge: "v1.node.10.0.mac", difficulty: 10 }),
  "pow-too-hard": await request("pow", { challenge: "v1.node.99.0.mac", difficulty: 99 }),
  "derive-typo": await request("derive", { receipt: "1234" }),
  "no-such-op": await request("no-such-op"),
};

const [first] = vectors["crypto/envelopes.json"].vectors;
const caseId = "6b7e0c2a-1f3d-4e5a-8b9c-0d1e2f3a4b5c";
const routing = { categories: ["wages"], factory: "F-001", language: "en", urgent: false };
const text = (value) => new TextEncoder().encode(value);
const samples = [
  ["content", text("Sealed by the page's modules: 工资")],
  ["identity", text("+84 90 000 0000")],
  ["attachment", new Uint8Array([...text("image/jpeg\n"), ...new Uint8Array(70000).fill(7)])],
];
const sealed = [];
for (const [kind, plaintext] of samples) {
  const reply = await request("seal", {
    kind, case_id: caseId, routing, recipients: first.recipient_public_keys, plaintext,
  });
  sealed.push({ kind, case_id: caseId, routing, plaintext: toBase64(plaintext), envelope: reply.result });
}
const opened = await request("open", {
  envelope: sealed[0].envelope,
  private_key: new Uint8Array(Buffer.from(first.private_key, "base64")),
  case_id: caseId,
  routing,
});
replies.open = { ...opened, result: opened.ok ? toBase64(opened.result) : undefined };
process.stdout.write(JSON.stringify({ selftest: selftest.result, replies, sealed }) + "\n");
