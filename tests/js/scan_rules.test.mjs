// The gate page's offline judge (app/static/gate-core.js) answers every case of
// tests/cases/scan_rules.json, the table every copy of the scan rule is tested against.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";

import { Entries, judge, toBase64Url } from "../../app/static/gate-core.js";

const table = JSON.parse(
  await readFile(new URL("../cases/scan_rules.json", import.meta.url), "utf-8"));
const EVENT_ID = 42;
const TICKET_ID = "7";
const HOUR = 3600 * 1000;

// A code laid out as app/models/codes.py signs it: version u8 | event id u32 BE |
// ticket id u64 BE | label length u8 | label, then the Ed25519 signature over all of that.
async function signedCode(privateKey, eventId, ticketId, label) {
  const text = new TextEncoder().encode(label);
  const payload = new Uint8Array(14 + text.length);
  const view = new DataView(payload.buffer);
  payload[0] = 1;
  view.setUint32(1, eventId);
  view.setBigUint64(5, BigInt(ticketId));
  payload[13] = text.length;
  payload.set(text, 14);
  const signature = new Uint8Array(
    await crypto.subtle.sign({ name: "Ed25519" }, privateKey, payload));
  const code = new Uint8Array(payload.length + signature.length);
  code.set(payload);
  code.set(signature, payload.length);
  return toBase64Url(code);
}

function checkInWindow(doors, now) {
  const t = now.getTime();
  const [opens, closes] = {
    open: [t - HOUR, t + HOUR],
    not_yet: [t + HOUR, t + 2 * HOUR],
    closed: [t - 2 * HOUR, t - HOUR],
  }[doors];
  return [new Date(opens).toISOString(), new Date(closes).toISOString()];
}

function caseName(row) {
  const facts = [row.before, row.direction, row.allow_reentry ? "reentry" : "once"];
  if (row.revoked) facts.push("revoked");
  if (row.doors !== "open") facts.push(`doors ${row.doors}`);
  if (row.cancelled) facts.push("cancelled");
  return `${facts.join(" ")} -> ${row.result}`;
}

const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
const publicKey = toBase64Url(new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)));
const code = await signedCode(pair.privateKey, EVENT_ID, TICKET_ID, "A-1");

for (const row of table.cases) {
  test(`the offline judge answers ${caseName(row)} as the table says`, async () => {
    const now = new Date();
    const [opens_at, closes_at] = checkInWindow(row.doors, now);
    const first = new Date(now.getTime() - HOUR / 2).toISOString();
    const manifest = {
      event_id: EVENT_ID, public_key: publicKey, opens_at, closes_at,
      allow_reentry: row.allow_reentry, cancelled: row.cancelled,
      revoked: row.revoked ? [Number(TICKET_ID)] : [],
      entries: row.before === "none"
        ? [] : [{ ticket_id: Number(TICKET_ID), state: row.before, at: first, gate: "South" }],
    };
    const entries = new Entries(manifest.entries);

    const answer = await judge(code, { manifest, entries, direction: row.direction, now, keys: new Map() });
    // As the page does: an admitted scan moves the ticket's entry.
    if (answer.verdict === "valid") entries.apply(TICKET_ID, row.direction, now.toISOString(), "North");

    assert.deepEqual([answer.verdict, answer.reason ?? null], [row.result, row.reason]);
    assert.equal(entries.get(TICKET_ID)?.state ?? "none", row.after);
  });
}
