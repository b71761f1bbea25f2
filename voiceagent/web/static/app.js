// The softphone page: buttons, line toggle, status and errors, meters; one call at a time.
// `window.softphone` exposes the call's state and counters (for a look in the console, and for
// the browser test).

import { CallError, SoftphoneCall } from "./call.js";
import { Transcript } from "./transcript.js";

const $ = (id) => document.getElementById(id);
const ui = {
  call: $("call"),
  hangup: $("hangup"),
  status: $("status"),
  error: $("error"),
  micLevel: $("mic-level"),
  agentLevel: $("agent-level"),
  info: $("call-info"),
  transcript: $("transcript"),
  lines: document.querySelectorAll('input[name="line"]'),
};

const softphone = {
  state: "idle", // idle → starting → live → ended
  message: "",
  stats: null,
  transcript: null,
  call: null,
  log: [], // {t (ms, page clock), kind, framesReceived, …}: page events, the agent's audio here
};
window.softphone = softphone;

function freshStats() {
  return {
    callSid: null,
    sampleRate: null,
    framesSent: 0,
    framesDropped: 0,
    framesReceived: 0,
    marksReceived: 0,
    marksEchoed: 0,
    clears: 0,
    lastClear: null,
    bufferedMs: 0,
    playedMs: 0,
    agentLevel: 0,
    playing: false,
    underruns: 0,
    events: {},
  };
}

function setStatus(text) {
  ui.status.textContent = text;
}

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = !text;
}

function setControls(inCall) {
  ui.call.disabled = inCall;
  ui.hangup.disabled = !inCall;
  for (const input of ui.lines) input.disabled = inCall;
}

function linkExpired() {
  const exp = new URLSearchParams(window.location.search).get("exp");
  return exp !== null && Number(exp) * 1000 < Date.now();
}

function selectedLine() {
  for (const input of ui.lines) if (input.checked) return input.value;
  return "mulaw-8k";
}

function ended(message, isError) {
  softphone.state = "ended";
  softphone.message = message;
  setControls(false);
  setStatus(isError ? "Call ended." : message);
  showError(isError ? message : "");
  ui.agentLevel.value = 0;
  ui.micLevel.value = 0;
  if (softphone.transcript) softphone.transcript.note(message);
}

async function placeCall() {
  showError("");
  if (linkExpired()) {
    showError("This phone link has expired. Ask for a new one (voiceagent phone-link).");
    return;
  }
  const stats = freshStats();
  const transcript = new Transcript(ui.transcript);
  ui.transcript.replaceChildren();
  softphone.stats = stats;
  softphone.transcript = transcript;
  softphone.log = [];
  const log = (kind, data) =>
    softphone.log.push({ t: performance.now(), kind, framesReceived: stats.framesReceived, ...data });
  softphone.state = "starting";
  setControls(true);
  const call = new SoftphoneCall(selectedLine(), {
    stats,
    onStatus: setStatus,
    onPageEvent(event) {
      stats.events[event.type] = (stats.events[event.type] || 0) + 1;
      log(event.type, { text: event.text });
      if (event.type === "ready") {
        softphone.state = "live";
        ui.info.textContent = event.callSid;
      }
      transcript.onPageEvent(event);
    },
    onCallerLevel(level) {
      ui.micLevel.value = Math.min(1, level * 4);
      transcript.onCallerLevel(level);
    },
    onAgent(kind, data) {
      if (kind === "status") ui.agentLevel.value = Math.min(1, data.level * 4);
      else log(kind, data);
      transcript.onAgent(kind);
    },
    onEnded: ended,
  });
  softphone.call = call;
  try {
    await call.start();
  } catch (error) {
    const message = error instanceof CallError ? error.message : `The call failed: ${error}`;
    call.finish(message, true); // releases the microphone; no socket was opened yet
  }
}

ui.call.addEventListener("click", placeCall);
ui.hangup.addEventListener("click", () => softphone.call && softphone.call.hangUp());
window.addEventListener("pagehide", () => softphone.call && softphone.call.hangUp());
if (linkExpired()) showError("This phone link has expired. Ask for a new one (voiceagent phone-link).");
