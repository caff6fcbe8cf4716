// "Enable notifications on this device": registers the service worker, subscribes with the
// server's VAPID key and posts the subscription (POST /api/v1/push/subscriptions).
"use strict";

(() => {
  const button = document.getElementById("push-enable");
  const status = document.getElementById("push-status");
  if (!button) return;
  // The page's words (data-* on the button, in the viewer's language), English otherwise.
  const W = {
    unsupported: "This browser cannot receive notifications here (it needs HTTPS and push support).",
    enable: "Enable notifications on this device",
    disable: "Turn off notifications on this device",
    off: "Notifications are off on this device.",
    on: "Notifications are on: alerts for you arrive on this device first.",
    failed: "Could not change notifications:",
    ...Object.fromEntries(Object.entries(button.dataset).filter(([k]) => k.startsWith("w"))
      .map(([k, v]) => [k.slice(1).toLowerCase(), v])),
  };
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !window.isSecureContext) {
    status.textContent = W.unsupported;
    return;
  }

  function keyBytes(base64url) {
    const padded = base64url.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((base64url.length + 3) % 4);
    const raw = atob(padded);
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  async function jsonApi(path, options = {}) {
    const response = await fetch(path, {
      credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      ...options,
    });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      throw new Error(body?.error?.message || `HTTP ${response.status}`);
    }
    return response.status === 204 ? null : response.json();
  }

  async function current() {
    const registration = await navigator.serviceWorker.getRegistration("/");
    return registration ? registration.pushManager.getSubscription() : null;
  }

  function show(subscribed) {
    button.hidden = false;
    button.dataset.on = subscribed ? "true" : "false";
    button.textContent = subscribed ? W.disable : W.enable;
  }

  async function enable() {
    const permission = await Notification.requestPermission();
    if (permission !== "granted") throw new Error("notifications are blocked for this site");
    const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    await navigator.serviceWorker.ready;
    const { public_key: key } = await jsonApi("/api/v1/push/key");
    let subscription = await registration.pushManager.getSubscription();
    if (subscription) await subscription.unsubscribe(); // maybe made with another key
    subscription = await registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: keyBytes(key),
    });
    await jsonApi("/api/v1/push/subscriptions", {
      method: "POST",
      body: JSON.stringify(subscription.toJSON()),
    });
  }

  async function disable() {
    const subscription = await current();
    if (!subscription) return;
    await jsonApi(`/api/v1/push/subscriptions?endpoint=${encodeURIComponent(subscription.endpoint)}`, {
      method: "DELETE",
    }).catch(() => null); // already gone on the server: still unsubscribe here
    await subscription.unsubscribe();
  }

  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = "";
    try {
      if (button.dataset.on === "true") {
        await disable();
        show(false);
        status.textContent = W.off;
      } else {
        await enable();
        show(true);
        status.textContent = W.on;
      }
    } catch (err) {
      status.textContent = `${W.failed} ${err.message}`;
    } finally {
      button.disabled = false;
    }
  });

  current().then((s) => show(Boolean(s)), () => show(false));
})();
