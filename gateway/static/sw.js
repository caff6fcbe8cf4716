// Eldercare service worker: shows web push notices and opens the console (or the one-click
// acknowledge link) when the notification is clicked. The payload is the JSON of
// alerts.channels.push_payload.
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let notice = {};
  try {
    notice = event.data ? event.data.json() : {};
  } catch (err) {
    notice = { title: "Eldercare", summary: event.data ? event.data.text() : "" };
  }
  const where = [notice.elder, notice.village].filter(Boolean).join(", ");
  const title = notice.title || "Eldercare alert";
  const options = {
    body: [notice.summary, where].filter(Boolean).join(" — "),
    tag: notice.alert_id ? `alert-${notice.alert_id}` : undefined,
    renotify: notice.notice === "alert",
    requireInteraction: notice.severity === "critical" && notice.notice === "alert",
    data: { console_url: notice.console_url || "/console", ack_url: notice.ack_url || null },
    actions: notice.ack_url ? [{ action: "ack", title: notice.ack_label || "I'll take it" }] : [],
  };
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener("notificationclick", (event) => {
  const data = event.notification.data || {};
  event.notification.close();
  // The button (or a click on an alert that has a link) opens the acknowledge page, which
  // asks once more before acting; otherwise the console.
  const url = data.ack_url || data.console_url;
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      for (const w of windows) {
        if (w.url === url && "focus" in w) return w.focus();
      }
      return self.clients.openWindow(url || "/console");
    }),
  );
});
