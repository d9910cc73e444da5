// Service worker of the gate page: keeps the page and its scripts in a cache so the page opens
// (and reopens after a reload) with no network. The API is never cached: the page keeps its
// manifests and scans in IndexedDB. A new deploy changes VERSION, so the browser installs this
// worker again and the new files replace the old ones.
const VERSION = {{ version | tojson }};
const SHELL = {{ shell | tojson }};
const CACHE = `gate-${VERSION}`;
// The page itself (SHELL's first) comes from the network when it answers in time, so that a
// language picked with the switcher shows at once; from the cache offline.
const PAGE = SHELL[0];
const PAGE_WAIT_MS = 3000;

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(SHELL.map((url) => new Request(url, { cache: "reload" })));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("gate-") && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (!SHELL.includes(url.pathname)) return;
  if (url.pathname === PAGE) {
    event.respondWith(pageFirstFromNetwork(event.request));
    return;
  }
  event.respondWith((async () => {
    const cached = await caches.match(url.pathname, { cacheName: CACHE });
    return cached || fetch(event.request);
  })());
});

async function pageFirstFromNetwork(request) {
  const cache = await caches.open(CACHE);
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), PAGE_WAIT_MS);
  try {
    const fresh = await fetch(request, { signal: abort.signal });
    if (fresh.ok) await cache.put(PAGE, fresh.clone());
    return fresh;
  } catch {
    return (await cache.match(PAGE)) || Response.error();
  } finally {
    clearTimeout(timer);
  }
}
