// Offline ticket validation for the gate page: reads a signed ticket code exactly as
// app/models/codes.py writes it, verifies its Ed25519 signature with WebCrypto and judges it
// against the event's manifest and the entries known so far. No DOM, no network.

const VERSION = 1;
const HEADER_BYTES = 14; // version u8 | event id u32 BE | ticket id u64 BE | label length u8
const SIGNATURE_BYTES = 64;
const utf8 = new TextDecoder("utf-8", { fatal: true });

export class InvalidCode extends Error {}

export function fromBase64Url(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  let binary;
  try {
    binary = atob(b64);
  } catch {
    throw new InvalidCode("malformed code");
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export function toBase64Url(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The claim inside a code, unverified: {eventId, ticketId (decimal string), label, payload, signature}. */
export function readClaim(code) {
  const raw = fromBase64Url(String(code).trim());
  if (raw.length < HEADER_BYTES) throw new InvalidCode("malformed code");
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const end = HEADER_BYTES + raw[13];
  if (raw[0] !== VERSION || raw.length !== end + SIGNATURE_BYTES) throw new InvalidCode("malformed code");
  let label;
  try {
    label = utf8.decode(raw.subarray(HEADER_BYTES, end));
  } catch {
    throw new InvalidCode("malformed code");
  }
  return {
    eventId: view.getUint32(1),
    ticketId: view.getBigUint64(5).toString(),
    label,
    payload: raw.subarray(0, end),
    signature: raw.subarray(end),
  };
}

const keyCache = new Map();

/** The event's public key (base64url of the raw 32 bytes) as a CryptoKey, imported once. */
export function publicKey(base64url) {
  if (!keyCache.has(base64url)) {
    const imported = crypto.subtle.importKey(
      "raw", fromBase64Url(base64url), { name: "Ed25519" }, false, ["verify"]);
    imported.catch(() => keyCache.delete(base64url));
    keyCache.set(base64url, imported);
  }
  return keyCache.get(base64url);
}

export async function verifySignature(key, claim) {
  return crypto.subtle.verify({ name: "Ed25519" }, key, claim.signature, claim.payload);
}

/**
 * Where each ticket stands at the gates: ticket id -> {state: "in"|"out", at, gate}, where `at`
 * and `gate` are those of the first entry (what "already used" reports).
 */
export class Entries {
  constructor(manifestEntries = []) {
    this.byTicket = new Map();
    for (const entry of manifestEntries) {
      this.byTicket.set(String(entry.ticket_id), { state: entry.state, at: entry.at, gate: entry.gate });
    }
  }

  get(ticketId) {
    return this.byTicket.get(String(ticketId));
  }

  /** Record an admitted scan (a `valid` verdict). */
  apply(ticketId, direction, at, gate) {
    const known = this.get(ticketId);
    if (known) known.state = direction;
    else this.byTicket.set(String(ticketId), { state: direction, at, gate });
  }

  get insideCount() {
    let count = 0;
    for (const entry of this.byTicket.values()) if (entry.state === "in") count++;
    return count;
  }
}

/**
 * The verdict on a scan, in the server's order: invalid, wrong_event, not_valid_now, revoked,
 * already_used, valid. `keys` maps event ids to the public keys this device holds: a code for
 * another event is checked with that event's key when known, so a forgery still reads `invalid`.
 * Returns {verdict, verified, reason?, claim?, entry?}: `verified` once the signature checked
 * out, `entry` the first entry (for already_used), `reason` the server's reason for `invalid`.
 */
export async function judge(code, { manifest, entries, direction, now, keys }) {
  let claim;
  try {
    claim = readClaim(code);
  } catch (err) {
    if (err instanceof InvalidCode) return { verdict: "invalid", verified: false, reason: "malformed" };
    throw err;
  }
  const keyText = claim.eventId === manifest.event_id ? manifest.public_key : keys?.get(claim.eventId);
  const verified = Boolean(keyText) && await verifySignature(await publicKey(keyText), claim);
  if (keyText && !verified) return { verdict: "invalid", verified, reason: "bad_signature", claim };
  // Another event whose key this device lacks: red either way, genuine or not.
  if (claim.eventId !== manifest.event_id) return { verdict: "wrong_event", verified, claim };
  const t = now.getTime();
  if (manifest.cancelled || (manifest.opens_at && t < Date.parse(manifest.opens_at))
      || (manifest.closes_at && t > Date.parse(manifest.closes_at))) {
    return { verdict: "not_valid_now", verified, claim };
  }
  if (revokedSet(manifest).has(claim.ticketId)) return { verdict: "revoked", verified, claim };
  // One entry; with re-entry an `out` scan allows one later `in`. Only someone inside goes out.
  // The rule of app/services/checkin/rules.py, tested against tests/cases/scan_rules.json.
  const entry = entries.get(claim.ticketId);
  if (direction === "out") {
    return entry?.state === "in"
      ? { verdict: "valid", verified, claim, entry }
      : { verdict: "invalid", verified, reason: "not_checked_in", claim, entry };
  }
  const admitted = !entry || (manifest.allow_reentry && entry.state === "out");
  return { verdict: admitted ? "valid" : "already_used", verified, claim, entry };
}

const revokedSets = new WeakMap();

function revokedSet(manifest) {
  if (!revokedSets.has(manifest)) revokedSets.set(manifest, new Set(manifest.revoked.map(String)));
  return revokedSets.get(manifest);
}

/**
 * Verifications per second of the page's own decode-and-verify path, over n codes signed here
 * with a throwaway key (one at a time, as a gate does).
 */
export async function bench(n = 1000) {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
  const publicText = toBase64Url(new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)));
  const label = new TextEncoder().encode("Section 1 B-12");
  const codes = [];
  for (let i = 0; i < n; i++) {
    const payload = new Uint8Array(HEADER_BYTES + label.length);
    const view = new DataView(payload.buffer);
    payload[0] = VERSION;
    view.setUint32(1, 42);
    view.setBigUint64(5, BigInt(i + 1));
    payload[13] = label.length;
    payload.set(label, HEADER_BYTES);
    const signature = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, pair.privateKey, payload));
    const raw = new Uint8Array(payload.length + SIGNATURE_BYTES);
    raw.set(payload);
    raw.set(signature, payload.length);
    codes.push(toBase64Url(raw));
  }
  const key = await publicKey(publicText);
  const started = performance.now();
  for (const code of codes) {
    if (!(await verifySignature(key, readClaim(code)))) throw new Error("bench: a code did not verify");
  }
  const seconds = (performance.now() - started) / 1000;
  return n / seconds;
}
