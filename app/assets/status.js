// Refreshes the status page's figures from /api/status, formatted as the server
// renders them (app/src/status.rs, display_fields).
"use strict";
const bytes = (n) => {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
};
const used = (total, available) => `${bytes(Math.max(total - available, 0))} of ${bytes(total)}`;
const duration = (s) => {
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  return d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : `${m} min`;
};
const activation = (a) => {
  const sockets = a.listeners.map((s) => {
    const address = (s.https ? "https://" : "") + s.address;
    return s.fd == null ? address : s.name ? `${address} (${s.name}, fd ${s.fd})` : `${address} (fd ${s.fd})`;
  });
  return `${a.mode === "systemd" ? "sockets from systemd" : "bound by portico"}: ${sockets.join(", ")}`;
};
const fields = (s) => ({
  hostname: s.hostname, label: s.label, os: s.os, kernel: s.kernel, architecture: s.architecture,
  uptime: duration(s.uptime_seconds), load: s.load.map((l) => l.toFixed(2)).join(" "),
  memory: used(s.memory.total_bytes, s.memory.available_bytes),
  root_filesystem: used(s.root_filesystem.total_bytes, s.root_filesystem.available_bytes),
  version: s.portico.version, activation: activation(s.activation),
  identity: `uid ${s.process.uid}, gid ${s.process.gid}`,
  certificate: s.certificate ? `SHA-256 ${s.certificate.fingerprint_sha256}` : "no HTTPS socket",
  connections: String(s.portico.open_connections), requests: String(s.portico.requests_served),
});
async function refresh() {
  try {
    const response = await fetch("/api/status", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const values = fields(await response.json());
    for (const el of document.querySelectorAll("[data-field]")) el.textContent = values[el.dataset.field];
    document.getElementById("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    document.getElementById("refreshed").textContent = `not updated: ${e.message}`;
  }
}
refresh();
setInterval(refresh, 5000);
