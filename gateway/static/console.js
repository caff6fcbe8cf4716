// Live staff console: keeps the alert queue current from the server-sent event stream, rings
// for open critical alerts (alarm.js), shows each alert's escalation and the owner's progress
// ("on my way", "arrived"), filters by region, and ticks ages every second.
(() => {
  "use strict";

  const table = document.getElementById("alerts");
  if (!table) return;
  const tbody = table.querySelector("tbody");
  const canAck = table.dataset.canAck === "true";
  const canFile = table.dataset.canFile === "true";
  const zone = table.dataset.tz || "Asia/Shanghai";
  const locale = table.dataset.locale || "en-GB";
  const live = document.getElementById("live-status");
  const flashBox = document.getElementById("flash");
  const M = JSON.parse(document.getElementById("messages")?.textContent || "{}");
  const tx = (key, values) => {
    let text = M[key] ?? key.replaceAll("_", " ");
    for (const [k, v] of Object.entries(values || {})) text = text.replaceAll(`{${k}}`, v);
    return text;
  };
  const baseTitle = document.title.replace(/^\(\d+\) /, "");
  const dialog = document.getElementById("resolve-dialog");
  const regionSelect = document.getElementById("region-filter");
  const soundButton = document.getElementById("sound-toggle");
  const soundHint = document.getElementById("sound-hint");
  const alarm = window.EldercareAlarm;
  const SEVERITY = { critical: 0, warning: 1, info: 2 };
  const STATUS = { open: 0, acknowledged: 1 };
  const clock = new Intl.DateTimeFormat(locale, {
    timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });
  const dayClock = new Intl.DateTimeFormat(locale, {
    timeZone: zone, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    hourCycle: "h23",
  });

  let alerts = JSON.parse(document.getElementById("initial-alerts").textContent || "[]");
  const escalation = new Map();
  const fresh = new Set();

  // --- regions: a village, or a town / district and every village under it -------------
  const parents = new Map();
  for (const option of regionSelect?.options || []) {
    if (option.value) parents.set(option.value, option.dataset.parent || "");
  }
  function within(villageId, regionId) {
    for (let at = villageId; at; at = parents.get(at)) if (at === regionId) return true;
    return false;
  }
  let region = localStorage.getItem("eldercare-region") || "";
  if (regionSelect) {
    if (!parents.has(region)) region = "";
    regionSelect.value = region;
    regionSelect.addEventListener("change", () => {
      region = regionSelect.value;
      localStorage.setItem("eldercare-region", region);
      render();
    });
  }
  const shown = () => alerts.filter((a) => !region || within(a.village_id, region));

  // --- time ------------------------------------------------------------------------------
  function at(iso) {
    if (!iso) return "";
    const when = new Date(iso);
    return Date.now() - when.getTime() < 20 * 3600e3 ? clock.format(when) : dayClock.format(when);
  }
  function age(iso) {
    const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000));
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} ${tx("min")} ${String(seconds % 60).padStart(2, "0")} s`;
    const hours = Math.floor(minutes / 60);
    const rest = minutes % 60;
    if (hours < 24) return rest ? `${hours} ${tx("h")} ${rest} ${tx("min")}` : `${hours} ${tx("h")}`;
    return `${Math.floor(hours / 24)} ${tx("d")} ${hours % 24} ${tx("h")}`;
  }

  function order(a, b) {
    return (STATUS[a.status] ?? 9) - (STATUS[b.status] ?? 9)
      || (SEVERITY[a.severity] ?? 9) - (SEVERITY[b.severity] ?? 9)
      || b.id - a.id;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function cell(row, label, ...content) {
    const td = document.createElement("td");
    td.dataset.label = label;
    for (const c of content) td.append(c instanceof Node ? c : String(c ?? ""));
    row.append(td);
    return td;
  }

  function button(cls, id, label) {
    const b = el("button", cls, label);
    b.type = "button";
    b.dataset.id = id;
    return b;
  }

  function escalationView(a) {
    const box = el("div", "escalation");
    const e = escalation.get(a.id);
    if (!e) return box;
    if (e.tiers.length) {
      box.append(el("div", "tiers", `${tx("reached")}: ${e.tiers.map((t) => tx(`tier_${t}`)).join(" → ")}`));
    }
    const people = el("ul", "told");
    for (const t of e.told) {
      const li = el("li", `told-${t.status}`);
      li.append(`${t.name || "—"} · ${t.channel} · ${tx(`told_${t.status}`)}`);
      if (t.status === "failed" && t.error) li.title = t.error;
      if (t.at) li.append(el("small", null, ` ${at(t.at)}`));
      people.append(li);
    }
    if (!e.told.length) people.append(el("li", "told-none", tx("nobody_told")));
    box.append(people);
    if (a.status === "open" && e.next_at) {
      const next = e.next_tiers.length
        ? tx("next_round", { tiers: e.next_tiers.map((t) => tx(`tier_${t}`)).join(", "), at: at(e.next_at) })
        : tx("repeat_at", { at: at(e.next_at) });
      box.append(el("div", "next", next));
    } else if (a.status !== "open") {
      box.append(el("div", "next muted", tx("escalation_stopped")));
    }
    return box;
  }

  function statusView(a) {
    const box = el("div", "progress");
    box.append(el("strong", null, tx(a.status)));
    if (a.acknowledged_by) {
      box.append(" ", a.acknowledged_by);
      if (a.acknowledged_at) box.append(el("small", null, ` ${at(a.acknowledged_at)}`));
    }
    if (a.en_route_at) box.append(el("div", "step", tx("en_route_by", { who: a.en_route_by || "", at: at(a.en_route_at) })));
    if (a.arrived_at) box.append(el("div", "step", tx("arrived_by", { who: a.arrived_by || "", at: at(a.arrived_at) })));
    if (a.acknowledged_by_phone) {
      const call = el("a", "call", `${tx("call")} ${a.acknowledged_by_phone}`);
      call.href = `tel:${a.acknowledged_by_phone.replace(/\s+/g, "")}`;
      box.append(el("div", null), call);
    }
    return box;
  }

  function actions(a) {
    const box = el("div", "row-actions");
    if (a.status === "open") box.append(button("ack primary", a.id, tx("acknowledge")));
    if (!a.en_route_at && !a.arrived_at) box.append(button("progress en-route", a.id, tx("en_route")));
    if (!a.arrived_at) box.append(button("progress arrived", a.id, tx("arrived")));
    box.append(button("resolve", a.id, tx("resolve")));
    return box;
  }

  // What rings: an open critical alert about a person (the service's own technical alerts,
  // e.g. a rota gap, are shown but do not ring).
  const rings = (a) => a.status === "open" && a.severity === "critical" && a.category !== "technical";

  function render() {
    alerts.sort(order);
    const visible = shown();
    const rows = visible.map((a) => {
      const tr = document.createElement("tr");
      const alarming = rings(a);
      tr.className = `sev-${a.severity} st-${a.status}` + (alarming ? " alarm" : "")
        + (fresh.has(a.id) ? " fresh" : "");
      tr.dataset.id = a.id;
      const badge = el("span", `badge sev-${a.severity}`, tx(a.severity));
      cell(tr, tx("severity"), badge);
      let who = a.elder || "—";
      if (canFile && a.elder_id) {
        who = el("a", "elder-link", a.elder || a.home_id);
        who.href = `/console/elders/${encodeURIComponent(a.elder_id)}`;
      }
      cell(tr, tx("elder"), who);
      cell(tr, tx("place"), `${a.village || ""} `, el("small", null, a.home_id || ""));
      const kind = tx(a.kind);
      const detail = a.summary && !a.summary.toLowerCase().startsWith(kind.toLowerCase())
        ? el("span", "detail", a.summary) : "";
      cell(tr, tx("summary"), el("strong", null, kind), " ", detail);
      const ageCell = cell(tr, tx("age"), age(a.opened_at));
      ageCell.className = "age";
      ageCell.title = at(a.opened_at);
      cell(tr, tx("status"), statusView(a));
      cell(tr, tx("escalation"), escalationView(a));
      if (canAck) cell(tr, "", actions(a));
      return tr;
    });
    if (rows.length === 0) {
      const tr = el("tr", "empty");
      const td = cell(tr, "", tx("no_open_alerts"));
      td.colSpan = canAck ? 8 : 7;
      rows.push(tr);
    }
    tbody.replaceChildren(...rows);
    fresh.clear();
    // Counts and the alarm are about every alert, whatever the region shown.
    const open = alerts.filter((a) => a.status === "open").length;
    const title = open ? `(${open}) ${baseTitle}` : baseTitle;
    const critical = alerts.filter(rings);
    const alarmTitle = critical.length
      ? `${tx("sos")}! ${critical.map((a) => a.elder || a.home_id).join(", ")}`
      : "";
    if (alarm) alarm.setRinging(critical.length > 0, alarmTitle, title);
    else document.title = title;
  }

  // How far an alert has got: a copy that has got less far is older than the one shown (a
  // list fetched before a resolve, a stream event overtaken by the answer to our own click)
  // and must not bring back what has moved on. An alert id never reopens once resolved.
  const closed = new Set();
  function progress(a) {
    return [a.resolved_at || a.status === "resolved" ? 1 : 0, a.arrived_at ? 1 : 0,
            a.en_route_at ? 1 : 0, a.acknowledged_at ? 1 : 0, a.evidence_count || 0];
  }
  function older(a, b) {
    const pa = progress(a), pb = progress(b);
    for (let i = 0; i < pa.length; i++) if (pa[i] !== pb[i]) return pa[i] < pb[i];
    return false;
  }
  function upsert(alert) {
    const visible = alert.status === "open" || alert.status === "acknowledged";
    if (closed.has(alert.id)) return;
    const known = alerts.findIndex((a) => a.id === alert.id);
    if (known >= 0) {
      if (older(alert, alerts[known])) return;
      alerts.splice(known, 1);
    }
    if (visible) alerts.push(alert);
    else closed.add(alert.id);
  }
  // What the stream brought while a list was being fetched: newer than that list.
  const streamed = new Map();
  function replaceAll(items) {
    const known = new Map(alerts.map((a) => [a.id, a]));
    const listed = new Set(items.map((a) => a.id));
    alerts = items
      .filter((a) => !closed.has(a.id))
      .map((a) => (known.has(a.id) && older(a, known.get(a.id)) ? known.get(a.id) : a));
    for (const [id, a] of streamed) if (!listed.has(id) && !closed.has(id)) alerts.push(a);
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
      streamed.clear();
      const response = await api("/api/v1/alerts?limit=200");
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      replaceAll((await response.json()).items);
      render();
      loadEscalation();
    } catch (err) {
      flash(`Could not refresh the alert list (${err.message}).`);
    }
  }

  let refreshTimer = null;
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 100);
  }

  let escalationTimer = null;
  async function loadEscalation() {
    clearTimeout(escalationTimer);
    escalationTimer = setTimeout(loadEscalation, 10000);
    const ids = alerts.map((a) => a.id).slice(0, 200);
    if (!ids.length || !canAck) return;
    try {
      const response = await api(`/api/v1/alerts/escalation?ids=${ids.join(",")}`);
      if (!response.ok) return;
      escalation.clear();
      for (const e of (await response.json()).items) escalation.set(e.alert_id, e);
      render();
    } catch (err) {
      // The next tick retries; the queue itself stays current from the stream.
    }
  }
  let escalationSoon = null;
  function escalationShortly() {
    clearTimeout(escalationSoon);
    escalationSoon = setTimeout(loadEscalation, 1500);
  }

  async function post(button, path, label) {
    button.disabled = true;
    button.textContent = "…";
    try {
      const response = await api(path, { method: "POST" });
      if (response.ok) {
        upsert(await response.json());
        render();
        escalationShortly();
        return;
      }
      const body = await response.json().catch(() => null);
      flash(body?.error?.message || `HTTP ${response.status}`);
      scheduleRefresh();
    } catch (err) {
      flash(`${label}: ${err.message}`);
      button.disabled = false;
      button.textContent = label;
    }
  }

  let resolving = null;
  function openResolve(b) {
    resolving = b.dataset.id;
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
    const b = event.target.closest("button");
    if (!b || b.disabled) return;
    const id = encodeURIComponent(b.dataset.id);
    if (b.classList.contains("ack")) post(b, `/api/v1/alerts/${id}/ack`, tx("acknowledge"));
    else if (b.classList.contains("en-route")) post(b, `/api/v1/alerts/${id}/en-route`, tx("en_route"));
    else if (b.classList.contains("arrived")) post(b, `/api/v1/alerts/${id}/arrived`, tx("arrived"));
    else if (b.classList.contains("resolve") && dialog) openResolve(b);
  });

  // --- sound -------------------------------------------------------------------------------
  function showSound() {
    const on = alarm?.enabled;
    soundButton.classList.toggle("on", !!on);
    soundButton.classList.toggle("off", !on);
    soundButton.setAttribute("aria-pressed", on ? "true" : "false");
    soundButton.textContent = on ? tx("sound_on") : tx("sound_off");
    soundHint.hidden = !!on;
  }
  if (soundButton && alarm) {
    soundButton.addEventListener("click", async () => {
      if (alarm.enabled) alarm.disable();
      else await alarm.enable();
      showSound();
    });
    // A click anywhere on a page whose sound was on before a reload turns it on again.
    if (alarm.wasOn()) {
      document.addEventListener("click", async function again() {
        document.removeEventListener("click", again, true);
        if (!alarm.enabled) await alarm.enable();
        showSound();
      }, true);
    }
    showSound();
  }

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
      if (alert.status === "open" || alert.status === "acknowledged") streamed.set(alert.id, alert);
      else streamed.delete(alert.id);
      upsert(alert);
      render();
      escalationShortly();
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
  }, 1000);

  render();
  loadEscalation();
  connect();
})();
