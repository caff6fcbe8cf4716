// The family page, live: the alert stream (/api/v1/alerts/stream, scoped by the server to
// the signed-in family member's elders) says when one of this elder's alerts changed; the
// page then fetches its live parts (/family/{id}/live: the headline and the alert lists,
// rendered by the server in the reader's language and the home's time zone) and swaps them
// in. The same refresh runs every minute (presence, last activity) and when the phone wakes.
"use strict";

(() => {
  const root = document.querySelector("section.family[data-elder]");
  if (!root) return;
  const elder = root.dataset.elder;
  const brand = root.dataset.brand || document.title;
  const words = JSON.parse(document.getElementById("family-messages")?.textContent || "{}");
  const tx = (key) => words[key] || key;
  const REFRESH_MS = 60000;
  let online = false;
  let busy = false;
  let again = false;

  function showLive() {
    const dot = document.getElementById("family-live");
    if (!dot) return;
    dot.className = `dot ${online ? "on" : "off"}`;
    dot.textContent = tx(online ? "family_live" : "family_offline");
  }

  function swap(doc) {
    for (const id of ["family-now", "family-alerts"]) {
      const fresh = doc.getElementById(id);
      const old = document.getElementById(id);
      if (fresh && old) old.replaceWith(document.importNode(fresh, true));
    }
    const tone = document.getElementById("family-now")?.dataset.tone;
    document.title = tone === "emergency" ? `⚠ ${brand}` : brand;
    showLive();
  }

  async function refresh() {
    if (busy) {
      again = true; // one more after this one: a change may have come in meanwhile
      return;
    }
    busy = true;
    try {
      const response = await fetch(`/family/${encodeURIComponent(elder)}/live`, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "text/html" },
      });
      if (response.redirected && new URL(response.url).pathname === "/login") {
        window.location.assign("/login");
        return;
      }
      if (response.ok) swap(new DOMParser().parseFromString(await response.text(), "text/html"));
    } catch (err) {
      // Offline for a moment: the next event, tick or wake-up tries again.
    } finally {
      busy = false;
      if (again) {
        again = false;
        refresh();
      }
    }
  }

  let source = null;
  function connect() {
    source = new EventSource("/api/v1/alerts/stream");
    source.addEventListener("hello", () => {
      online = true;
      refresh(); // catch up with anything missed while disconnected
    });
    source.addEventListener("alert", (event) => {
      let alert = {};
      try {
        alert = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      if (alert.elder_id === elder) refresh();
    });
    source.addEventListener("resync", () => refresh());
    source.addEventListener("signed_out", () => {
      source.close();
      window.location.assign("/login");
    });
    source.onerror = () => {
      online = false;
      showLive();
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
    };
  }

  setInterval(refresh, REFRESH_MS);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
  });
  connect();
})();

// The daily summary: hour and channels, saved with PUT /api/v1/me/daily-summary.
(() => {
  const form = document.getElementById("digest-form");
  if (!form) return;
  const status = document.getElementById("digest-status");
  const words = JSON.parse(document.getElementById("family-messages")?.textContent || "{}");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const hour = form.elements.hour.value;
    const channels = [...form.querySelectorAll("input[name=channel]:checked")].map((i) => i.value);
    status.textContent = "";
    try {
      const response = await fetch("/api/v1/me/daily-summary", {
        method: "PUT",
        credentials: "same-origin",
        headers: { Accept: "application/json", "Content-Type": "application/json" },
        body: JSON.stringify({ hour: hour === "" ? null : Number(hour), channels }),
      });
      if (!response.ok) {
        const body = await response.json().catch(() => null);
        throw new Error(body?.error?.message || `HTTP ${response.status}`);
      }
      status.textContent = words.digest_saved || "Saved.";
      status.className = "ok";
    } catch (err) {
      status.textContent = (words.digest_failed || "Could not save: {error}").replace("{error}", err.message);
      status.className = "error";
    }
  });
})();
