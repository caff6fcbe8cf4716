// Live staff console: keeps the alert table current from the server-sent event stream.
(() => {
  "use strict";

  const table = document.getElementById("alerts");
  if (!table) return;
  const tbody = table.querySelector("tbody");
  const canAck = table.dataset.canAck === "true";
  const live = document.getElementById("live-status");
  const flashBox = document.getElementById("flash");
  const M = JSON.parse(document.getElementById("messages")?.textContent || "{}");
  const tx = (key) => M[key] ?? key.replaceAll("_", " ");
  const baseTitle = document.title.replace(/^\(\d+\) /, "");
  const dialog = document.getElementById("resolve-dialog");
  const SEVERITY = { critical: 0, warning: 1, info: 2 };
  const STATUS = { open: 0, acknowledged: 1 };

  let alerts = JSON.parse(document.getElementById("initial-alerts").textContent || "[]");
  const fresh = new Set();

  function age(iso) {
    const minutes = Math.floor((Date.now() - Date.parse(iso)) / 60000);
    if (minutes < 1) return tx("just_now");
    if (minutes < 60) return `${minutes} ${tx("min")}`;
    const hours = Math.floor(minutes / 60);
    const rest = minutes % 60;
    if (hours < 24) return rest ? `${hours} ${tx("h")} ${rest} ${tx("min")}` : `${hours} ${tx("h")}`;
    return `${Math.floor(hours / 24)} ${tx("d")}`;
  }

  function order(a, b) {
    return (STATUS[a.status] ?? 9) - (STATUS[b.status] ?? 9)
      || (SEVERITY[a.severity] ?? 9) - (SEVERITY[b.severity] ?? 9)
      || b.id - a.id;
  }

  function cell(row, text, title) {
    const td = document.createElement("td");
    if (text instanceof Node) td.append(text); else td.textContent = text ?? "";
    if (title) td.title = title;
    row.append(td);
    return td;
  }

  function render() {
    alerts.sort(order);
    const rows = alerts.map((a) => {
      const tr = document.createElement("tr");
      tr.className = `sev-${a.severity} st-${a.status}` + (fresh.has(a.id) ? " fresh" : "");
      tr.dataset.id = a.id;
      const badge = document.createElement("span");
      badge.className = `badge sev-${a.severity}`;
      badge.textContent = tx(a.severity);
      cell(tr, badge);
      cell(tr, a.elder || "—");
      const place = document.createElement("span");
      const home = document.createElement("small");
      home.textContent = a.home_id;
      place.append(`${a.village || ""} `, home);
      cell(tr, place);
      cell(tr, tx(a.kind));
      cell(tr, a.summary);
      cell(tr, age(a.opened_at), new Date(a.opened_at).toLocaleString()).className = "age";
      cell(tr, tx(a.status));
      cell(tr, a.acknowledged_by || "",
        a.acknowledged_at ? new Date(a.acknowledged_at).toLocaleString() : "");
      if (canAck) {
        const td = cell(tr, "");
        if (a.status === "open") {
          const button = document.createElement("button");
          button.className = "ack primary";
          button.dataset.id = a.id;
          button.textContent = tx("acknowledge");
          td.append(button);
        }
        const resolve = document.createElement("button");
        resolve.className = "resolve";
        resolve.dataset.id = a.id;
        resolve.textContent = tx("resolve");
        td.append(resolve);
      }
      return tr;
    });
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = cell(tr, tx("no_open_alerts"));
      td.colSpan = canAck ? 9 : 8;
      rows.push(tr);
    }
    tbody.replaceChildren(...rows);
    fresh.clear();
    const open = alerts.filter((a) => a.status === "open").length;
    document.title = open ? `(${open}) ${baseTitle}` : baseTitle;
  }

  function upsert(alert) {
    const visible = alert.status === "open" || alert.status === "acknowledged";
    const known = alerts.findIndex((a) => a.id === alert.id);
    if (known >= 0) alerts.splice(known, 1);
    if (visible) alerts.push(alert);
  }

  let flashTimer = null;
  function flash(message) {
    flashBox.textContent = message;
    flashBox.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => { flashBox.hidden = true; }, 8000);
  }

  async function api(path, options = {}) {
    const response = await fetch(path, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      ...options,
    });
    if (response.status === 401) {
      window.location.assign("/login");
      throw new Error("signed out");
    }
    return response;
  }

  async function refresh() {
    try {
      const response = await api("/api/v1/alerts?limit=200");
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      alerts = (await response.json()).items;
      render();
    } catch (err) {
      flash(`Could not refresh the alert list (${err.message}).`);
    }
  }

  let refreshTimer = null;
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 100);
  }

  async function acknowledge(button) {
    const id = button.dataset.id;
    button.disabled = true;
    button.textContent = "…";
    try {
      const response = await api(`/api/v1/alerts/${encodeURIComponent(id)}/ack`, { method: "POST" });
      if (response.ok) {
        upsert(await response.json());
        render();
        return;
      }
      const body = await response.json().catch(() => null);
      flash(body?.error?.message || `Could not acknowledge (HTTP ${response.status}).`);
      scheduleRefresh();
    } catch (err) {
      flash(`Could not acknowledge (${err.message}).`);
      button.disabled = false;
      button.textContent = tx("acknowledge");
    }
  }

  let resolving = null;
  function openResolve(button) {
    resolving = button.dataset.id;
    const a = alerts.find((x) => String(x.id) === resolving);
    document.getElementById("resolve-what").textContent = a ? `${tx(a.kind)} · ${a.elder || a.home_id}` : "";
    document.getElementById("resolve-outcome").value = "";
    document.getElementById("resolve-note").value = "";
    document.getElementById("resolve-error").hidden = true;
    dialog.showModal();
  }

  async function submitResolve(event) {
    event.preventDefault();
    const outcome = document.getElementById("resolve-outcome").value;
    const note = document.getElementById("resolve-note").value;
    const error = document.getElementById("resolve-error");
    if (!outcome) {
      error.textContent = tx("error_outcome");
      error.hidden = false;
      return;
    }
    const submit = document.getElementById("resolve-submit");
    submit.disabled = true;
    try {
      const response = await api(`/api/v1/alerts/${encodeURIComponent(resolving)}/resolve`, {
        method: "POST",
        headers: { Accept: "application/json", "Content-Type": "application/json" },
        body: JSON.stringify({ outcome, note }),
      });
      const body = await response.json().catch(() => null);
      if (response.ok) {
        upsert(body);
        render();
        dialog.close();
      } else {
        error.textContent = body?.error?.message || `HTTP ${response.status}`;
        error.hidden = false;
        scheduleRefresh();
      }
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  }

  if (dialog) {
    document.getElementById("resolve-form").addEventListener("submit", submitResolve);
    document.getElementById("resolve-cancel").addEventListener("click", () => dialog.close());
  }

  tbody.addEventListener("click", (event) => {
    const button = event.target.closest("button.ack");
    if (button && !button.disabled) acknowledge(button);
    const resolve = event.target.closest("button.resolve");
    if (resolve && dialog) openResolve(resolve);
  });

  function setLive(on, text) {
    live.className = `live ${on ? "on" : "off"}`;
    live.textContent = text;
  }

  let source = null;
  function connect() {
    source = new EventSource("/api/v1/alerts/stream");
    source.addEventListener("hello", () => {
      setLive(true, tx("live"));
      scheduleRefresh(); // catch up with anything missed while disconnected
    });
    source.addEventListener("alert", (event) => {
      const alert = JSON.parse(event.data);
      if (!alerts.some((a) => a.id === alert.id)) fresh.add(alert.id);
      upsert(alert);
      render();
    });
    source.addEventListener("signed_out", () => {
      source.close();
      window.location.assign("/login");
    });
    source.onerror = () => {
      setLive(false, tx("reconnecting"));
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream (e.g. session ended): check, then retry.
        api("/api/v1/me").then(() => setTimeout(connect, 5000), () => {});
      }
    };
  }

  setInterval(() => {
    for (const td of tbody.querySelectorAll("td.age")) {
      const a = alerts.find((x) => String(x.id) === td.parentElement.dataset.id);
      if (a) td.textContent = age(a.opened_at);
    }
  }, 30000);

  render();
  connect();
})();
