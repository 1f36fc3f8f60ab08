// The service worker: shows a Web Push notification ("Log in to db1 as alice?"); a tap opens
// the approval page. The push payload is the server's notice JSON (docs/push.md).
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let notice = {};
  try {
    notice = event.data ? event.data.json() : {};
  } catch (e) {
    notice = { title: "sshield", body: event.data ? event.data.text() : "" };
  }
  event.waitUntil(
    self.registration.showNotification(notice.title || "sshield", {
      body: notice.body || "",
      tag: notice.id || "sshield",
      icon: "/icon.svg",
      requireInteraction: notice.kind === "login",
      data: { url: notice.url || "/approve" },
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  // Only this server's pages open from a notification.
  let url = new URL("/approve", self.location.origin);
  try {
    const wanted = new URL(event.notification.data.url, self.location.origin);
    if (wanted.origin === self.location.origin) url = wanted;
  } catch (e) {
    // keep /approve
  }
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      for (const w of windows) {
        if (new URL(w.url).pathname.startsWith("/approve")) {
          return w.focus().then((focused) => focused.navigate(url.href));
        }
      }
      return self.clients.openWindow(url.href);
    }),
  );
});
