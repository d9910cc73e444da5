// The gate page's IndexedDB: downloaded manifests (one per event) and every scan, so a reload or
// a dead battery loses nothing and scans made offline are uploaded later.

const DB_NAME = "bilheteria-gate";
const DB_VERSION = 1;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = tx.onabort = () => reject(tx.error);
  });
}

export async function openStore() {
  const open = indexedDB.open(DB_NAME, DB_VERSION);
  open.onupgradeneeded = () => {
    const db = open.result;
    db.createObjectStore("manifests", { keyPath: "event_id" });
    const scans = db.createObjectStore("scans", { keyPath: "nonce" });
    scans.createIndex("uploaded", "uploaded"); // 0 or 1: IndexedDB does not index booleans
    scans.createIndex("event", "event_id");
  };
  return new Store(await request(open));
}

class Store {
  constructor(db) {
    this.db = db;
  }

  async manifest(eventId) {
    return request(this.db.transaction("manifests").objectStore("manifests").get(eventId));
  }

  async manifests() {
    return request(this.db.transaction("manifests").objectStore("manifests").getAll());
  }

  async saveManifest(manifest) {
    const tx = this.db.transaction("manifests", "readwrite");
    tx.objectStore("manifests").put(manifest);
    return done(tx);
  }

  /** This event's scans, oldest first. */
  async scansOf(eventId) {
    const index = this.db.transaction("scans").objectStore("scans").index("event");
    const scans = await request(index.getAll(eventId));
    return scans.sort((a, b) => a.seq - b.seq);
  }

  async pending(limit) {
    const index = this.db.transaction("scans").objectStore("scans").index("uploaded");
    const scans = await request(index.getAll(0));
    return scans.sort((a, b) => a.seq - b.seq).slice(0, limit);
  }

  async pendingCount() {
    return request(this.db.transaction("scans").objectStore("scans").index("uploaded").count(0));
  }

  async addScan(scan) {
    const tx = this.db.transaction("scans", "readwrite");
    tx.objectStore("scans").add(scan);
    return done(tx);
  }

  /** Change some fields of a kept scan. */
  async updateScan(nonce, changes) {
    const tx = this.db.transaction("scans", "readwrite");
    const scans = tx.objectStore("scans");
    scans.get(nonce).onsuccess = (event) => {
      if (event.target.result) scans.put({ ...event.target.result, ...changes });
    };
    return done(tx);
  }

  /** Mark scans uploaded with the server's answers ({nonce, result, conflict}). */
  async markUploaded(results, uploadedAt) {
    const tx = this.db.transaction("scans", "readwrite");
    const scans = tx.objectStore("scans");
    for (const answer of results) {
      scans.get(answer.nonce).onsuccess = (event) => {
        const scan = event.target.result;
        if (!scan) return;
        Object.assign(scan, {
          uploaded: 1, uploaded_at: uploadedAt, server_result: answer.result, conflict: !!answer.conflict,
          server_message: answer.message,
        });
        scans.put(scan);
      };
    }
    return done(tx);
  }
}
