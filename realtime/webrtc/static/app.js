// swapcam demo page: camera + microphone -> WebRTC -> swapcam server -> swapped video + delayed audio back.
// No build step, no dependencies. The server does not trickle ICE, so we wait for gathering before POST /offer.
"use strict";

const $ = (id) => document.getElementById(id);
const ui = {
  start: $("start"), stop: $("stop"), local: $("local"), remote: $("remote"),
  direction: $("direction"), label: $("label"), monitor: $("monitor"), switches: $("switches"),
  enroll: $("enroll"), enrollTrain: $("enroll-train"), enrollStatus: $("enroll-status"),
  status: $("status"), fps: $("fps"), rtt: $("rtt"), serverLatency: $("server-latency"), roundTrip: $("round-trip"),
  serverFps: $("server-fps"), audioDelay: $("audio-delay"), timings: $("timings"), error: $("error"),
};

const DIRECTION_NAMES = { a2b: "A → B", b2a: "B → A" };
let session = null; // { pc, stream, channel, timer, peerId, lastServer }

function setState(state, text) {
  document.body.dataset.state = state;
  ui.status.textContent = text || state;
}

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = !message;
}

// The live switches (mouth, eyes, sharpen, blend, colour, morph, ...) come from the server, so their choices are
// written once, in Python (realtime.controls). name -> input element; the label checkbox is static in the page.
const switchInputs = {};

function switchValue(el) {
  if (el.type === "checkbox") return el.checked;
  if (el.type === "range") return Number(el.value);
  return el.value;
}

function setSwitch(el, value) {
  if (el.type === "checkbox") el.checked = Boolean(value);
  else el.value = String(value);
  if (el.type === "range") el.nextElementSibling.textContent = Number(value).toFixed(2);
}

async function loadSwitches() {
  const response = await fetch("/switches");
  const config = await response.json();
  for (const [name, s] of Object.entries(config.switches)) {
    if (name === "label") continue;
    const label = document.createElement("label");
    label.title = s.text;
    let input;
    if (s.kind === "choice") {
      input = document.createElement("select");
      input.replaceChildren(...s.choices.map((c) => new Option(c, c)));
      label.append(`${name} `, input);
    } else if (s.kind === "number") {
      input = document.createElement("input");
      Object.assign(input, { type: "range", min: s.low, max: s.high, step: s.step || 0.05 });
      const shown = document.createElement("output");
      label.append(`${name} `, input, shown);
      input.addEventListener("input", () => { shown.textContent = Number(input.value).toFixed(2); });
    } else {
      input = document.createElement("input");
      input.type = "checkbox";
      label.className = "check";
      label.append(input, ` ${name}`);
    }
    input.id = name;
    input.addEventListener("change", sendOptions);
    switchInputs[name] = input;
    ui.switches.append(label);
    setSwitch(input, config.options[name]);
  }
}

function currentOptions() {
  const options = { direction: ui.direction.value, label: ui.label.checked };
  for (const [name, el] of Object.entries(switchInputs)) options[name] = switchValue(el);
  return options;
}

function waitForIceGathering(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { pc.removeEventListener("icegatheringstatechange", check); clearTimeout(timer); resolve(); };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    const timer = setTimeout(done, timeoutMs); // go on with the candidates we have
    pc.addEventListener("icegatheringstatechange", check);
  });
}

async function start() {
  showError("");
  ui.start.disabled = true;
  try { await switchesLoaded; } catch { /* the page works without them: the server's defaults apply */ }
  setState("starting", "asking for the camera…");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } },
      audio: { echoCancellation: true, noiseSuppression: true },
    });
  } catch (err) {
    setState("error", "no camera");
    showError(`Camera/microphone not available: ${err.name}: ${err.message}. Browsers allow cameras only on https or localhost.`);
    ui.start.disabled = false;
    return;
  }
  ui.local.srcObject = stream;

  const pc = new RTCPeerConnection({ iceServers: [] });
  const channel = pc.createDataChannel("control");
  session = { pc, stream, channel, timer: null, peerId: null, lastServer: null, prevStats: null };
  for (const track of stream.getTracks()) pc.addTrack(track, stream);

  const remoteStream = new MediaStream();
  pc.addEventListener("track", (event) => {
    remoteStream.addTrack(event.track);
    ui.remote.srcObject = remoteStream;
  });
  pc.addEventListener("connectionstatechange", () => {
    if (!session || session.pc !== pc) return;
    const state = pc.connectionState;
    if (state === "connected") setState("connected", "connected");
    else if (state === "failed") { showError("The connection failed (ICE). Is the server reachable from this browser?"); stop(); }
    else if (state === "disconnected") setState("connecting", "reconnecting…");
  });
  channel.addEventListener("message", (event) => onServerMessage(event.data));
  channel.addEventListener("open", () => sendOptions());

  setState("connecting", "connecting…");
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc, 3000);
    const response = await fetch("/offer", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type, options: currentOptions() }),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || `server said ${response.status}`);
    session.peerId = answer.peer_id;
    fillDirections(answer.directions || ["a2b"], answer.options.direction, answer.direction_names || {});
    await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
  } catch (err) {
    showError(`Could not connect: ${err.message}`);
    stop();
    return;
  }
  ui.stop.disabled = false;
  ui.enroll.disabled = false;
  session.timer = setInterval(updateStats, 1000);
}

function fillDirections(directions, selected, names) {
  const text = (d) => names[d] || DIRECTION_NAMES[d] || d;
  ui.direction.replaceChildren(...directions.map((d) => new Option(text(d), d, false, d === selected)));
  ui.direction.disabled = directions.length < 2;
}

function sendOptions() {
  if (session && session.channel.readyState === "open") {
    session.channel.send(JSON.stringify({ type: "options", ...currentOptions() }));
  }
}

function onServerMessage(text) {
  let message;
  try { message = JSON.parse(text); } catch { return; }
  if (message.type === "stats") session.lastServer = message;
  else if (message.type === "rate") applyRate(message.max_fps);
  else if (message.type === "error") showError(`Server: ${message.message}`);
  else if (message.type === "enroll") showEnrolment(message);
  else if (message.type === "model") ui.enrollStatus.textContent = `now swapping with ${message.model}`;
  else if (message.type === "options") {
    const o = message.options;
    ui.direction.value = o.direction; ui.label.checked = o.label;
    for (const [name, el] of Object.entries(switchInputs)) if (name in o) setSwitch(el, o[name]);
  }
}

// "Use my face": the server captures this camera (coverage meter + prompts), trains, then swaps with the new model.
function showEnrolment(m) {
  const busy = m.state === "capturing" || m.state === "training";
  document.body.dataset.enroll = m.state;
  ui.enroll.textContent = busy ? "Cancel" : "Use my face";
  ui.enrollTrain.hidden = m.state !== "capturing";
  let text = "";
  if (m.state === "capturing") {
    const rejected = Object.entries(m.rejected || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    text = `capturing: ${Math.round(100 * m.coverage)} % covered, ${m.faces} faces` +
      (m.prompt ? ` — ${m.prompt}` : "") + (rejected ? ` (rejected: ${rejected})` : "") +
      ` · ${Math.round(m.seconds_left)} s left`;
  } else if (m.state === "training") {
    text = m.steps ? `training: step ${m.step} of ${m.steps}` : `training: ${m.stage || "starting"}…`;
  } else if (m.state === "ready") {
    text = m.switched ? `ready: now swapping with your model (${m.model})` : `ready: ${m.model}`;
  } else if (m.state === "error") {
    text = `could not enrol: ${m.message}`;
  } else if (m.state === "cancelled") {
    text = "cancelled";
  }
  ui.enrollStatus.textContent = text;
}

function sendEnroll(action) {
  if (session && session.channel.readyState === "open") {
    session.channel.send(JSON.stringify({ type: "enroll", action }));
  }
}

// The server asks for fewer frames when they queue up before reaching it (its CPU is overloaded); fewer frames
// keep the latency bounded instead of growing. null lifts the limit.
async function applyRate(maxFps) {
  if (!session) return;
  const sender = session.pc.getSenders().find((s) => s.track && s.track.kind === "video");
  if (!sender) return;
  const params = sender.getParameters();
  if (!params.encodings || !params.encodings.length) return;
  if (maxFps) params.encodings[0].maxFramerate = maxFps;
  else delete params.encodings[0].maxFramerate;
  try { await sender.setParameters(params); } catch (err) { console.warn(`setParameters: ${err.message}`); }
}

const ms = (v) => (v === null || v === undefined ? "–" : `${Math.round(v)} ms`);

async function updateStats() {
  if (!session) return;
  const report = await session.pc.getStats();
  let fps = null, rtt = null, jitterMs = null;
  let framesDecoded = null;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      framesDecoded = s.framesDecoded;
      if (typeof s.framesPerSecond === "number") fps = s.framesPerSecond;
      if (s.jitterBufferEmittedCount) jitterMs = (1000 * s.jitterBufferDelay) / s.jitterBufferEmittedCount;
    }
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded" && typeof s.currentRoundTripTime === "number") {
      rtt = s.currentRoundTripTime * 1000;
    }
  });
  const now = performance.now();
  if (fps === null && framesDecoded !== null && session.prevStats) { // older browsers: fps from the decode counter
    fps = (1000 * (framesDecoded - session.prevStats.frames)) / (now - session.prevStats.t);
  }
  if (framesDecoded !== null) session.prevStats = { frames: framesDecoded, t: now };
  ui.fps.textContent = fps === null ? "–" : fps.toFixed(1);
  ui.rtt.textContent = ms(rtt);
  const server = session.lastServer;
  if (server) {
    ui.serverLatency.textContent = ms(server.latency_ms);
    const limit = server.max_fps ? `, asked camera for ≤ ${server.max_fps} fps (server busy)` : "";
    ui.serverFps.textContent = `${(server.fps ?? 0).toFixed(1)} fps, ${server.dropped ?? 0} dropped${limit}`;
    ui.audioDelay.textContent = server.audio_frames ? `${ms(server.audio_delay_ms)} (target ${ms(server.audio_target_ms)})` : "no audio";
    const timings = Object.entries(server.timings || {}).map(([k, v]) => `${k} ${v.toFixed(1)}`);
    ui.timings.textContent = timings.length ? `${timings.join(" · ")} ms` : "–";
    if (rtt !== null && server.latency_ms !== null) {
      // Network both ways + server pipeline + the browser's own jitter buffer; encode/decode are not counted.
      ui.roundTrip.textContent = `≈ ${ms(rtt + server.latency_ms + (jitterMs || 0))}`;
    }
  }
}

function stop() {
  if (session) {
    const { pc, stream, channel, timer } = session;
    session = null;
    clearInterval(timer);
    try { if (channel.readyState === "open") channel.send(JSON.stringify({ type: "bye" })); } catch { /* closing anyway */ }
    stream.getTracks().forEach((t) => t.stop());
    pc.close();
  }
  ui.local.srcObject = null;
  ui.remote.srcObject = null;
  ui.start.disabled = false;
  ui.stop.disabled = true;
  ui.enroll.disabled = true;
  ui.enrollTrain.hidden = true;
  if (document.body.dataset.state !== "error") setState("idle", "idle");
}

ui.start.addEventListener("click", start);
ui.stop.addEventListener("click", stop);
for (const el of [ui.direction, ui.label]) el.addEventListener("change", sendOptions);
const switchesLoaded = loadSwitches().catch((err) => showError(`Could not load the controls: ${err.message}`));
ui.enroll.addEventListener("click", () => {
  const busy = ["capturing", "training"].includes(document.body.dataset.enroll);
  sendEnroll(busy ? "cancel" : "start");
});
ui.enrollTrain.addEventListener("click", () => sendEnroll("train"));
ui.monitor.addEventListener("change", () => { ui.remote.muted = !ui.monitor.checked; });
window.addEventListener("pagehide", stop);
