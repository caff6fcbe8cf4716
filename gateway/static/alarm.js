// The console's alarm: a two-tone sound that repeats every 2 s while any critical alert is
// open and unacknowledged, and a flashing page title. Browsers only play sound after a click
// on the page, so a shift starts with "turn sound on" (remembered for this tab: after a
// reload the button asks again, as the browser requires).
// State for people and tests: <body data-alarm="ringing|quiet|muted" data-beeps="N">.
(() => {
  "use strict";

  const PERIOD_MS = 2000;
  let context = null;
  let ringing = false;
  let timer = null;
  let titleTimer = null;
  let baseTitle = document.title;
  let alarmTitle = "";
  let beeps = 0;

  function publish() {
    const state = !context ? "muted" : ringing ? "ringing" : "quiet";
    document.body.dataset.alarm = ringing && !context ? "ringing-muted" : state;
    document.body.dataset.beeps = String(beeps);
  }

  function tone(at, frequency, length) {
    const osc = context.createOscillator();
    const gain = context.createGain();
    osc.type = "square";
    osc.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.25, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + length);
    osc.connect(gain).connect(context.destination);
    osc.start(at);
    osc.stop(at + length + 0.05);
  }

  function beep() {
    if (!context || !ringing) return;
    const now = context.currentTime;
    tone(now, 880, 0.25);
    tone(now + 0.3, 660, 0.25);
    tone(now + 0.6, 880, 0.25);
    beeps += 1;
    publish();
  }

  function flashTitle() {
    clearInterval(titleTimer);
    titleTimer = null;
    if (!ringing) {
      document.title = baseTitle;
      return;
    }
    let on = false;
    titleTimer = setInterval(() => {
      on = !on;
      document.title = on ? `🔴 ${alarmTitle}` : baseTitle;
    }, 800);
  }

  function setRinging(on, title, normalTitle) {
    if (normalTitle !== undefined) baseTitle = normalTitle;
    alarmTitle = title || alarmTitle;
    if (on === ringing) {
      if (!on) document.title = baseTitle;
      publish();
      return;
    }
    ringing = on;
    clearInterval(timer);
    timer = null;
    if (on) {
      beep();
      timer = setInterval(beep, PERIOD_MS);
    }
    flashTitle();
    publish();
  }

  async function enable() {
    const Audio = window.AudioContext || window.webkitAudioContext;
    if (!Audio) return false;
    context = context || new Audio();
    if (context.state === "suspended") await context.resume();
    sessionStorage.setItem("eldercare-sound", "on");
    if (ringing) beep();
    publish();
    return true;
  }

  function disable() {
    if (context) context.close();
    context = null;
    sessionStorage.removeItem("eldercare-sound");
    publish();
  }

  window.EldercareAlarm = {
    enable,
    disable,
    setRinging,
    get enabled() { return context !== null; },
    get ringing() { return ringing; },
    wasOn: () => sessionStorage.getItem("eldercare-sound") === "on",
  };
  publish();
})();
