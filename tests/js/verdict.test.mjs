// The gate page's words for each verdict (app/static/gate-verdict.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { TITLES, explainVerdict } from "../../app/static/gate-verdict.js";

const window_ = {
  opensAt: "2026-12-26T18:00:00Z",
  closesAt: "2026-12-27T02:00:00Z",
  formatDateTime: (iso) => `<${iso}>`,
};

test("a valid scan welcomes on the way in and records the exit on the way out", () => {
  assert.equal(explainVerdict({ verdict: "valid" }, "in", { ...window_, now: new Date() }), "Welcome");
  assert.equal(explainVerdict({ verdict: "valid" }, "out", { ...window_, now: new Date() }), "Exit recorded");
});

test("a scan outside the window says when check-in opens, or that it closed", () => {
  const before = new Date("2026-12-26T17:00:00Z");
  const after = new Date("2026-12-27T03:00:00Z");
  assert.equal(explainVerdict({ verdict: "not_valid_now" }, "in", { ...window_, now: before }),
    "Check-in opens <2026-12-26T18:00:00Z>");
  assert.equal(explainVerdict({ verdict: "not_valid_now" }, "in", { ...window_, now: after }),
    "Check-in closed <2026-12-27T02:00:00Z>");
});

test("a ticket used before says when and at which gate it entered", () => {
  const entry = { at: "2026-12-26T19:00:00Z", gate: "North" };
  assert.equal(explainVerdict({ verdict: "already_used", entry }, "in", { ...window_, now: new Date() }),
    "Entered <2026-12-26T19:00:00Z> at North");
  assert.equal(explainVerdict({ verdict: "already_used" }, "in", { ...window_, now: new Date() }), "Already entered");
});

test("an exit without an entry and a forged code are told apart", () => {
  const now = new Date();
  assert.equal(explainVerdict({ verdict: "invalid", reason: "not_checked_in" }, "out", { ...window_, now }),
    "Not inside: no entry to exit");
  assert.equal(explainVerdict({ verdict: "invalid" }, "in", { ...window_, now }), "Not a genuine ticket code");
});

test("every verdict the server answers has a title", () => {
  for (const verdict of ["valid", "invalid", "wrong_event", "not_valid_now", "revoked", "already_used"]) {
    assert.ok(TITLES[verdict], verdict);
  }
});
