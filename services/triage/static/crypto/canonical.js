// RFC 8785 (JSON Canonicalization Scheme) for the data Hotline binds into envelopes:
// strings, booleans, null, safe integers, arrays and plain objects. Object keys are sorted
// by UTF-16 code units (what Array.prototype.sort does with strings), strings are escaped as
// JSON.stringify does, and there is no whitespace. Floats are refused rather than
// canonicalised: routing never holds one, and refusing keeps this small and exact.

/** Return the canonical JSON text of `value`; throws TypeError on anything outside the subset. */
export function canonicalJson(value) {
  if (value === null || typeof value === "boolean" || typeof value === "string") {
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      throw new TypeError("canonical JSON here holds integers within 2^53 only");
    }
    return String(value);
  }
  if (Array.isArray(value)) {
    return "[" + value.map(canonicalJson).join(",") + "]";
  }
  if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    const members = Object.keys(value)
      .sort()
      .map((key) => JSON.stringify(key) + ":" + canonicalJson(value[key]));
    return "{" + members.join(",") + "}";
  }
  throw new TypeError("value is not JSON data");
}
