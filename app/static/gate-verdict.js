// What the gate page says of a verdict: its title and the reason shown under it. Pure: the
// check-in window, the time and the date format are given (tests/js/verdict.test.mjs).
import { t } from "./gate-i18n.js";

export const TITLES = {
  valid: t("Valid"), invalid: t("Invalid"), wrong_event: t("Wrong event"), not_valid_now: t("Not valid now"),
  revoked: t("Revoked"), already_used: t("Already used"),
};

/**
 * The reason for a scan's verdict: `result` is the manifest's judgement or the server's answer
 * ({ verdict, reason, claim, entry }), `way` "in" or "out"; `window` gives the check-in window
 * (ISO times, or null), the server's time now and how to show a date.
 */
export function explainVerdict({ verdict, reason, claim, entry }, way, { opensAt, closesAt, now, formatDateTime }) {
  switch (verdict) {
    case "valid":
      return way === "in" ? t("Welcome") : t("Exit recorded");
    case "invalid":
      return reason === "not_checked_in" ? t("Not inside: no entry to exit") : t("Not a genuine ticket code");
    case "wrong_event":
      return claim ? t("Ticket for another event (#%(id)s)", { id: claim.eventId }) : t("Ticket for another event");
    case "not_valid_now": {
      const opens = opensAt && Date.parse(opensAt);
      return opens && now < opens
        ? t("Check-in opens %(time)s", { time: formatDateTime(opensAt) })
        : t("Check-in closed %(time)s", { time: formatDateTime(closesAt) });
    }
    case "revoked":
      return t("Ticket cancelled or refunded");
    case "already_used":
      return entry ? t("Entered %(time)s at %(gate)s", { time: formatDateTime(entry.at), gate: entry.gate }) : t("Already entered");
    default:
      return verdict;
  }
}
