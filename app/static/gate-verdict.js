// What the gate page says of a verdict: its title and the reason shown under it. Pure: the
// check-in window, the time and the date format are given (tests/js/verdict.test.mjs).

export const TITLES = {
  valid: "Valid", invalid: "Invalid", wrong_event: "Wrong event", not_valid_now: "Not valid now",
  revoked: "Revoked", already_used: "Already used",
};

/**
 * The reason for a scan's verdict: `result` is the manifest's judgement or the server's answer
 * ({ verdict, reason, claim, entry }), `way` "in" or "out"; `window` gives the check-in window
 * (ISO times, or null), the server's time now and how to show a date.
 */
export function explainVerdict({ verdict, reason, claim, entry }, way, { opensAt, closesAt, now, formatDateTime }) {
  switch (verdict) {
    case "valid":
      return way === "in" ? "Welcome" : "Exit recorded";
    case "invalid":
      return reason === "not_checked_in" ? "Not inside: no entry to exit" : "Not a genuine ticket code";
    case "wrong_event":
      return claim ? `Ticket for another event (#${claim.eventId})` : "Ticket for another event";
    case "not_valid_now": {
      const opens = opensAt && Date.parse(opensAt);
      return opens && now < opens ? `Check-in opens ${formatDateTime(opensAt)}` : `Check-in closed ${formatDateTime(closesAt)}`;
    }
    case "revoked":
      return "Ticket cancelled or refunded";
    case "already_used":
      return entry ? `Entered ${formatDateTime(entry.at)} at ${entry.gate}` : "Already entered";
    default:
      return verdict;
  }
}
