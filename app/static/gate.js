// The gate page: sign in (device token or gate staff), pick the event, download its manifest,
// then validate codes from the camera, a keyboard-wedge scanner or the keyboard. Online, the
// check-in API's atomic first scan gives the verdict; without an answer in time the manifest
// does, and the scan is kept in IndexedDB and uploaded when the network is back.
import { Entries, bench, judge } from "./gate-core.js";
import { cameraRunning, loadJsQR, signal, startCamera, stopCamera } from "./gate-hardware.js";
import { openStore } from "./gate-store.js";
import { t } from "./gate-i18n.js";
import { TITLES, explainVerdict } from "./gate-verdict.js";

const $ = (id) => document.getElementById(id);
const KEYS = {
  credential: "gate.credential", event: "gate.event", gate: "gate.name", direction: "gate.direction",
  clock: "gate.clockOffset",
};
const VERDICT_MS = 1500;
const RETRY_MS = 10_000;
const SERVER_WAIT_MS = 1800; // an online scan waits this long for the server's verdict
const MANIFEST_MAX_AGE_MS = 120_000; // refreshed in the background when older, while online
const LOG_LENGTH = 20;
const CLOCK_NOISE_MS = 2000; // the Date header's whole seconds and the trip: less is no news

let store;
let manifest = null; // the selected event's manifest
let entries = new Entries();
let scans = []; // this event's scans, oldest first
const keys = new Map(); // event id -> public key, from every manifest this device holds
let queue = Promise.resolve(); // scans and manifest swaps run one at a time
let serverDownUntil = 0; // after no answer, scans are judged here without waiting until then
// How far this device's clock is ahead of the server's, in ms (null until the server answered
// once), kept so a page reopened offline still knows it.
let clockOffset = Number(localStorage.getItem(KEYS.clock) ?? NaN);
if (!Number.isFinite(clockOffset)) clockOffset = null;

class ApiError extends Error {
  constructor(status, body, fallback) {
    super(body?.message || body?.msg || fallback);
    this.status = status;
    this.field = body?.field;
    this.code = body?.error;
  }
}

/** Run `job` after every job queued before it: a scan sees the entries the previous one left. */
function serial(job) {
  const run = queue.then(job);
  queue = run.catch(() => {});
  return run;
}

// ---------------------------------------------------------------------------------------------
// Credentials and API

function credential() {
  try {
    return JSON.parse(localStorage.getItem(KEYS.credential));
  } catch {
    return null;
  }
}

async function api(path, { method = "GET", body, token = credential()?.token, timeout } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response, answer;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      signal: timeout ? AbortSignal.timeout(timeout) : undefined,
    });
    answer = await response.json().catch(() => null);
  } catch (err) {
    serverDownUntil = Date.now() + RETRY_MS;
    throw err;
  }
  serverDownUntil = response.status >= 500 ? Date.now() + RETRY_MS : 0;
  noteServerClock(response);
  if (!response.ok) {
    throw new ApiError(response.status, answer, `${response.status} ${response.statusText}`);
  }
  return answer;
}

/** The server's time now, as well as this device can tell: scans are timed by it (the server
 * refuses a time more than 5 minutes ahead of its own) and the manifest's window is in it. */
function serverNow() {
  return new Date(Date.now() - (clockOffset ?? 0));
}

function noteServerClock(response) {
  const date = Date.parse(response.headers.get("Date") ?? "");
  if (Number.isNaN(date)) return;
  const offset = Date.now() - (date + 500); // the server read its clock within [date, date + 1 s)
  // Only a real change moves it, so scans a moment apart keep their order.
  if (clockOffset !== null && Math.abs(offset - clockOffset) < CLOCK_NOISE_MS) return;
  clockOffset = offset;
  localStorage.setItem(KEYS.clock, String(offset));
  if (manifest) renderClock();
}

function explain(err) {
  if (err instanceof ApiError) return err.status === 401 ? t("Not signed in: %(reason)s", { reason: err.message }) : err.message;
  return t("No connection to the server.");
}

async function signIn(kind, token, who) {
  await api("/api/v1/checkin/events", { token }); // refuses a bad token before it is kept
  localStorage.setItem(KEYS.credential, JSON.stringify({ kind, token, who }));
}

function signOut() {
  const pending = Number($("count-pending").textContent);
  if (pending && !confirm(t("%(count)s scans are not uploaded yet. They stay on this device. Sign out?", { count: pending }))) return;
  localStorage.removeItem(KEYS.credential);
  localStorage.removeItem(KEYS.event);
  stopCamera();
  manifest = null;
  show("signin");
}

// ---------------------------------------------------------------------------------------------
// Screens

function show(screen) {
  for (const id of ["signin", "events", "scan"]) $(id).hidden = id !== screen;
  const who = credential();
  $("who").textContent = who ? (who.kind === "device" ? "device token" : who.who) : "";
  $("sign-out").hidden = !who;
  if (screen === "scan") focusScanner();
}

async function showEvents() {
  show("events");
  const list = $("event-list");
  list.textContent = t("Loading…");
  $("events-error").textContent = "";
  let events;
  try {
    events = (await api("/api/v1/checkin/events")).events;
  } catch (err) {
    // Offline: the events whose manifests this device already holds can still be scanned.
    events = (await store.manifests()).map((m) => ({ id: m.event_id, name: m.name, stored: true }));
    $("events-error").textContent = `${explain(err)} ${events.length ? t("Showing the events downloaded earlier.") : ""}`;
    if (err instanceof ApiError && err.status === 401) return show("signin");
  }
  list.textContent = events.length ? "" : t("No events to check in.");
  for (const event of events) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "event";
    const name = document.createElement("strong");
    name.textContent = event.name;
    const details = document.createElement("span");
    details.className = "muted";
    details.textContent = event.stored
      ? t("manifest on this device")
      : [event.venue, formatDateTime(event.starts_at, event.timezone), event.armed ? t("armed") : ""].filter(Boolean).join(" · ");
    button.append(name, details);
    button.addEventListener("click", () => chooseEvent(event.id, event.stored));
    item.append(button);
    list.append(item);
  }
}

async function chooseEvent(eventId, stored) {
  $("events-error").textContent = "";
  try {
    const chosen = stored ? await store.manifest(eventId) : await downloadManifest(eventId);
    await serial(() => selectManifest(chosen));
    show("scan");
    upload();
  } catch (err) {
    $("events-error").textContent = explain(err);
  }
}

async function downloadManifest(eventId) {
  const requestedAt = new Date().toISOString();
  const fresh = await api(`/api/v1/checkin/events/${eventId}/manifest`);
  // The request time, not the answer's: a scan uploaded before it is surely in the manifest.
  fresh.downloaded_at = requestedAt;
  await store.saveManifest(fresh);
  keys.set(fresh.event_id, fresh.public_key);
  return fresh;
}

/** Make `chosen` the event being scanned: its entries are the manifest's plus this device's
 * admitted scans the manifest may not include yet. */
async function selectManifest(chosen) {
  const own = await store.scansOf(chosen.event_id);
  const known = new Entries(chosen.entries);
  for (const scan of own) {
    const maybeMissing = !scan.uploaded || scan.uploaded_at > chosen.downloaded_at;
    if (scan.verdict === "valid" && maybeMissing) known.apply(scan.ticket_id, scan.direction, scan.scanned_at, scan.gate);
  }
  manifest = chosen;
  entries = known;
  scans = own;
  localStorage.setItem(KEYS.event, String(chosen.event_id));
  renderManifest();
  renderScans();
}

async function refreshManifest({ quiet = false } = {}) {
  if (!manifest) return;
  const button = $("refresh-manifest");
  button.disabled = true;
  try {
    await upload(); // first, so the new manifest includes this device's scans
    const fresh = await downloadManifest(manifest.event_id);
    await serial(() => selectManifest(fresh));
  } catch (err) {
    if (!quiet) $("scan-error").textContent = t("Manifest not refreshed: %(reason)s", { reason: explain(err) });
  } finally {
    button.disabled = false;
  }
}

function renderManifest() {
  $("event-name").textContent = manifest.name;
  const at = $("manifest-at");
  at.dateTime = manifest.downloaded_at;
  at.textContent = formatDateTime(manifest.downloaded_at);
  const window_ = [manifest.opens_at, manifest.closes_at].map((t) => (t ? formatDateTime(t) : "…")).join(" – ");
  $("manifest-stats").textContent =
    t("%(revoked)s revoked · %(entries)s entries · check-in %(window)s", {
      revoked: manifest.revoked.length, entries: manifest.entries.length, window: window_,
    }) + (manifest.allow_reentry ? ` · ${t("re-entry allowed")}` : "");
  renderClock();
}

function renderClock() {
  // Scans are timed by the server's clock, but a wrong device clock still misleads whoever reads it.
  const minutes = Math.round((clockOffset ?? 0) / 60_000);
  $("scan-error").textContent = Math.abs(minutes) >= 2
    ? (minutes > 0
      ? t("This device's clock is %(minutes)s min ahead of the server: set it right.", { minutes })
      : t("This device's clock is %(minutes)s min behind the server: set it right.", { minutes: -minutes }))
    : "";
}

// ---------------------------------------------------------------------------------------------
// Scanning

function gateName() {
  return $("gate-name").value.trim() || t("Gate");
}

function direction() {
  return document.querySelector('input[name="direction"]:checked').value;
}

function scan(code) {
  code = code.trim();
  if (!code || !manifest) return Promise.resolve(null);
  return serial(async () => {
    const now = serverNow();
    const gate = gateName();
    const way = direction();
    let local;
    try {
      local = await judge(code, { manifest, entries, direction: way, now, keys });
    } catch (err) {
      $("scan-error").textContent = t("Could not check codes (%(reason)s): refresh the manifest.", { reason: err.message });
      return null;
    }
    const record = {
      nonce: crypto.randomUUID(),
      seq: performance.timeOrigin + performance.now(),
      event_id: manifest.event_id,
      code,
      gate,
      direction: way,
      scanned_at: now.toISOString(),
      clock_offset_ms: clockOffset ?? 0, // what scanned_at was corrected by
      uploaded: 0,
      ticket_id: local.claim?.ticketId ?? null,
      label: local.verified ? local.claim.label : "", // a forger's label is not shown
    };
    const answer = await askServer(record);
    if (answer) {
      // Answered: the server logged it, it is never uploaded again.
      Object.assign(record, {
        verdict: answer.result, online: true, uploaded: 1, uploaded_at: new Date().toISOString(),
        server_result: answer.result, conflict: false,
        // A half-price (meia-entrada) ticket: the holder shows the document that entitles them.
        ticket_type: answer.ticket_type ?? null, check_document: Boolean(answer.check_document),
        // Whose ticket it is now (a transferred ticket's new holder): the gate may ask.
        holder_name: answer.holder_name ?? null,
      });
      const { claim } = local;
      const entry = answer.first_scan;
      record.reason = reasonFor({ verdict: answer.result, reason: answer.reason, claim, entry }, way);
      // The entries the manifest's verdict uses, should the network go: the server's.
      if (answer.result === "valid") entries.apply(claim.ticketId, way, record.scanned_at, gate);
      if (answer.result === "already_used" && claim && entry) entries.apply(claim.ticketId, "in", entry.at, entry.gate);
    } else {
      record.verdict = local.verdict;
      record.reason = reasonFor(local, way);
      if (local.verdict === "valid") entries.apply(local.claim.ticketId, way, record.scanned_at, gate);
    }
    showVerdict(record);
    scans.push(record);
    await store.addScan(record);
    renderScans();
    if (!answer) upload();
    return record;
  });
}

/** The check-in API's verdict on a scan (its atomic first scan, so two gates never admit the same
 * ticket), or null when it gives none in time: then the manifest's verdict stands and the scan is
 * uploaded later with the same nonce (a late answer to this request is not logged twice). */
async function askServer({ code, gate, direction: way, nonce, event_id }) {
  if (!navigator.onLine || Date.now() < serverDownUntil || !credential()) return null;
  try {
    return await api("/api/v1/checkin/scan", {
      method: "POST", body: { code, gate, direction: way, nonce, event_id }, timeout: SERVER_WAIT_MS,
    });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      $("scan-error").textContent = `${explain(err)} ${t("Scans are checked on this device until you sign in again.")}`;
    }
    return null;
  }
}

/** Why a scan got its verdict, in the gate's words. */
function reasonFor(result, way) {
  return explainVerdict(result, way, {
    opensAt: manifest.opens_at, closesAt: manifest.closes_at, now: serverNow(), formatDateTime,
  });
}

let verdictTimer = 0;

function showVerdict(record) {
  const overlay = $("verdict");
  overlay.className = `verdict ${record.verdict === "valid" ? "ok" : "bad"}`;
  overlay.dataset.verdict = record.verdict;
  $("verdict-title").textContent = TITLES[record.verdict] ?? record.verdict;
  $("verdict-seat").textContent = record.label;
  $("verdict-holder").textContent = record.holder_name ?? "";
  $("verdict-reason").textContent = record.reason;
  const document_ = $("verdict-document");
  document_.hidden = !(record.verdict === "valid" && record.check_document);
  document_.textContent = document_.hidden
    ? ""
    : t("%(type)s: check the document", { type: (record.ticket_type || t("Half price")).toUpperCase() });
  overlay.hidden = false;
  clearTimeout(verdictTimer);
  verdictTimer = setTimeout(hideVerdict, VERDICT_MS);
  signal(record.verdict === "valid");
}

function hideVerdict() {
  clearTimeout(verdictTimer);
  $("verdict").hidden = true;
  focusScanner();
}

// On a phone the soft keyboard would cover the screen: there the code input is kept focused only
// once the user chose it (a Bluetooth scanner); on a laptop always.
let keepFocus = !matchMedia("(pointer: coarse)").matches;

/** Keep the code input focused for a keyboard-wedge scanner, without stealing focus from the
 * other fields. */
function focusScanner() {
  if ($("scan").hidden || cameraRunning() || !keepFocus) return;
  const active = document.activeElement;
  if (active && active !== document.body && active.id !== "code-input" && active.matches("input, select, textarea")) return;
  $("code-input").focus({ preventScroll: true });
}

function renderScans() {
  const admitted = scans.filter((s) => s.verdict === "valid" && s.direction === "in").length;
  $("count-scanned").textContent = scans.length;
  $("count-admitted").textContent = admitted;
  const log = $("scan-log");
  log.textContent = "";
  for (const record of scans.slice(-LOG_LENGTH).reverse()) {
    const item = document.createElement("li");
    const refused = record.server_result === "refused";
    item.className = `${record.verdict === "valid" ? "ok" : "bad"}${refused ? " attention" : ""}`;
    item.dataset.nonce = record.nonce;
    const time = document.createElement("time");
    time.dateTime = record.scanned_at;
    time.textContent = formatTime(record.scanned_at);
    const what = document.createElement("span");
    what.className = "what";
    what.textContent = `${TITLES[record.verdict] ?? record.verdict}${record.label ? ` · ${record.label}` : ""} · ${record.gate} ${record.direction === "in" ? t("In") : t("Out")}`;
    const sync = document.createElement("span");
    sync.className = "sync";
    sync.textContent = !record.uploaded ? t("pending") : record.conflict ? t("conflict")
      : refused ? t("needs attention: refused by the server") + (record.server_message ? ` (${record.server_message})` : "")
      : t("uploaded");
    item.append(time, what, sync);
    log.append(item);
  }
  const refused = scans.filter((record) => record.server_result === "refused").length;
  const attention = refused ? ` ${t("%(count)s refused by the server: not recorded, see the scans below.", { count: refused })}` : "";
  store.pendingCount().then((count) => {
    $("count-pending").textContent = count;
    const waiting = navigator.onLine ? syncProblem || t("Uploading…") : t("Offline: they upload when the network is back.");
    $("sync-status").textContent =
      (count ? `${t("%(count)s scans kept on this device.", { count })} ${waiting}` : t("All scans uploaded.")) + attention;
  });
}

// ---------------------------------------------------------------------------------------------
// Upload: whenever a scan is made, the network returns, and every RETRY_MS

let uploading = null;
let syncProblem = ""; // why the last upload failed

function upload() {
  uploading ??= uploadPending().finally(() => { uploading = null; });
  return uploading;
}

async function uploadPending() {
  if (!credential() || !navigator.onLine) return;
  try {
    for (;;) {
      const batch = await store.pending(200);
      if (!batch.length) break;
      const body = {
        scans: batch.map(({ code, gate, direction: way, nonce, scanned_at, verdict, event_id }) =>
          ({ code, gate, direction: way, nonce, scanned_at, verdict, event_id })),
      };
      let results;
      try {
        ({ results } = await api("/api/v1/checkin/offline-scans", { method: "POST", body }));
      } catch (err) {
        // One scan the server will never take must not hold back the rest.
        const refused = err instanceof ApiError && err.status === 422 && /^scans\[(\d+)\]\.(\w+)/.exec(err.field ?? "");
        const record = refused && batch[refused[1]];
        if (!record) throw err;
        if (refused[2] === "scanned_at" && (await retime(record))) continue;
        results = [{ nonce: record.nonce, result: "refused", conflict: false, message: err.message }];
      }
      // A scan whose online request timed out after the server logged it gets that request's
      // answer back, without the conflict flag the server sets on offline scans: the same rule here.
      const shown = new Map(batch.map((record) => [record.nonce, record.verdict]));
      for (const answer of results) {
        answer.conflict ||= shown.get(answer.nonce) === "valid" && answer.result === "already_used";
      }
      const uploadedAt = new Date().toISOString();
      await store.markUploaded(results, uploadedAt);
      const answered = new Map(results.map((r) => [r.nonce, r]));
      for (const record of scans) {
        const answer = answered.get(record.nonce);
        if (answer) {
          Object.assign(record, {
            uploaded: 1, uploaded_at: uploadedAt, server_result: answer.result, conflict: !!answer.conflict,
            server_message: answer.message,
          });
        }
      }
      if (!batch.some((record) => answered.has(record.nonce))) break; // no progress: retry later
    }
    syncProblem = "";
  } catch (err) {
    syncProblem = err instanceof ApiError && err.status === 401
      ? t("Upload refused: sign in again to upload them.")
      : t("Not uploaded yet: %(reason)s", { reason: explain(err) });
  } finally {
    if (manifest) renderScans();
  }
}

/** A scan refused for its time was timed by a clock offset that no longer holds (the device's
 * clock was changed since the page last heard the server): time it by the offset known now, and
 * send it again. False when that offset is the one it was timed by. */
async function retime(record) {
  const offset = clockOffset ?? 0;
  const timedBy = record.clock_offset_ms ?? 0;
  if (offset === timedBy) return false;
  const changes = {
    scanned_at: new Date(Date.parse(record.scanned_at) + timedBy - offset).toISOString(),
    clock_offset_ms: offset,
  };
  await store.updateScan(record.nonce, changes);
  const shown = scans.find((s) => s.nonce === record.nonce);
  if (shown) Object.assign(shown, changes);
  return true;
}

function background() {
  if (!navigator.onLine || !manifest) return;
  if (Date.now() - Date.parse(manifest.downloaded_at) > MANIFEST_MAX_AGE_MS) refreshManifest({ quiet: true });
  else upload();
}

function renderNetwork() {
  const net = $("net");
  net.textContent = navigator.onLine ? t("online") : t("offline");
  net.className = `pill ${navigator.onLine ? "online" : "offline"}`;
}

// ---------------------------------------------------------------------------------------------

/** A time as the venue's clock reads it (the event's time zone, with its abbreviation); the
 * device's zone when the event's is not known. */
const LANGUAGES = document.documentElement.lang ? [document.documentElement.lang] : [];

function formatDateTime(iso, zone = manifest?.timezone) {
  const options = {
    day: "2-digit", month: "2-digit", year: "numeric", hour: "2-digit", minute: "2-digit",
    timeZoneName: "short",
  };
  try {
    return new Date(iso).toLocaleString(LANGUAGES, zone ? { ...options, timeZone: zone } : options);
  } catch {
    return new Date(iso).toLocaleString(LANGUAGES, options); // an unknown zone: the device's
  }
}

function formatTime(iso) {
  return new Date(iso).toLocaleTimeString(LANGUAGES, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

async function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return;
  try {
    await navigator.serviceWorker.register(document.body.dataset.serviceWorker, { scope: "./" });
    await navigator.serviceWorker.ready;
    $("offline-ready").hidden = false;
  } catch {
    // The page still works offline once loaded; only a reload would need the network.
  }
}

function wire() {
  $("device-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("signin-error").textContent = "";
    try {
      await signIn("device", $("device-token").value.trim(), "device");
      $("device-token").value = "";
      await start();
    } catch (err) {
      $("signin-error").textContent = explain(err);
    }
  });
  $("staff-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("signin-error").textContent = "";
    const username = $("staff-login").value.trim();
    try {
      const body = { username, password: $("staff-password").value, provider: "db" };
      const code = $("staff-totp").value.trim();
      if (code) body.totp = code; // staff with two-factor sign-in on
      const { access_token: token } = await api("/api/v1/security/login", { method: "POST", body, token: null });
      await signIn("staff", token, username);
      $("staff-password").value = "";
      $("staff-totp").value = "";
      await start();
    } catch (err) {
      const refused = err instanceof ApiError && (err.status === 401 || err.status === 403);
      // A refusal with a code (totp_required, totp_invalid...) says why; a bare 401 is the password.
      $("signin-error").textContent = refused ? (err.code ? err.message : t("Wrong login or password.")) : explain(err);
    }
  });
  $("sign-out").addEventListener("click", signOut);
  $("change-event").addEventListener("click", () => { stopCamera(); localStorage.removeItem(KEYS.event); showEvents(); });
  $("refresh-manifest").addEventListener("click", () => refreshManifest());
  $("code-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("code-input");
    scan(input.value);
    input.value = "";
  });
  $("camera-toggle").addEventListener("click", () => (cameraRunning() ? stopCamera() : startCamera(scan)));
  $("verdict").addEventListener("click", hideVerdict);

  const gate = $("gate-name");
  gate.value = localStorage.getItem(KEYS.gate) || t("Gate 1");
  gate.addEventListener("change", () => localStorage.setItem(KEYS.gate, gateName()));
  const saved = localStorage.getItem(KEYS.direction);
  for (const radio of document.querySelectorAll('input[name="direction"]')) {
    radio.checked = radio.value === (saved || "in");
    radio.addEventListener("change", () => { localStorage.setItem(KEYS.direction, direction()); focusScanner(); });
  }
  $("code-input").addEventListener("focus", () => { keepFocus = true; });
  $("code-input").addEventListener("blur", () => setTimeout(focusScanner, 0));
  document.addEventListener("click", (event) => {
    if (!event.target.closest("input, select, textarea, label")) focusScanner();
  });

  window.addEventListener("online", () => { renderNetwork(); background(); });
  window.addEventListener("offline", () => { renderNetwork(); if (manifest) renderScans(); });
  setInterval(background, RETRY_MS);
  renderNetwork();
}

async function start() {
  if (!credential()) return show("signin");
  const eventId = Number(localStorage.getItem(KEYS.event));
  const saved = eventId && (await store.manifest(eventId));
  if (!saved) return showEvents();
  await serial(() => selectManifest(saved));
  show("scan");
  background();
}

/** Verifications per second of this page's decode-and-verify path, over n fresh codes. */
window.gateBench = (n = 1000) => bench(n);

async function main() {
  store = await openStore();
  for (const stored of await store.manifests()) keys.set(stored.event_id, stored.public_key);
  wire();
  // Loaded now, while there is network: the camera may be started offline.
  if (!("BarcodeDetector" in window)) loadJsQR().catch(() => {});
  registerServiceWorker();
  await start();
  document.body.dataset.ready = "true";
}

main();
