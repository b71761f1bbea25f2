// One softphone call: microphone → capture worklet → 20 ms line frames → the Media Streams
// socket; the socket's media → playback worklet (jitter buffer) → speaker; marks echoed once
// played; `clear` empties the buffer at once; the server's page events go to `onPageEvent`.

import { LINE_FORMATS, StreamMessages, base64ToBytes } from "./line.js";

const STATIC = "/phone/static";
const MAX_SOCKET_BACKLOG = 32 * 1024; // bytes queued on the socket: past this, drop live audio

/** A failure the caller should read (shown as is). */
export class CallError extends Error {}

function microphoneProblem(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return (
        "Microphone access was denied, so no call was placed. Allow the microphone for this " +
        "site (the icon in the address bar) and press Call again."
      );
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Connect one and press Call again.";
    case "NotReadableError":
      return "The microphone is busy or blocked by the system. Close other programs using it.";
    default:
      return `The microphone could not be opened (${(error && error.name) || error}).`;
  }
}

function closeProblem(event, everOpen) {
  if (!everOpen) {
    return "Could not connect to the agent: the server refused or is not reachable.";
  }
  switch (event.code) {
    case 1000:
      return event.reason === "call ended"
        ? "The agent ended the call."
        : `The call ended (${event.reason || "closed by the server"}).`;
    case 1001:
      return "The server ended the call (it is shutting down).";
    case 1008:
      return `The server closed the call: ${event.reason || "protocol violation"}.`;
    case 1011:
      return "The server had an internal error and ended the call.";
    default:
      return "The connection to the agent was lost.";
  }
}

export class SoftphoneCall {
  /**
   * @param {string} lineName a key of LINE_FORMATS
   * @param {object} hooks onStatus(text), onPageEvent(event), onAgent(kind, data),
   *   onCallerLevel(level), onEnded(message, isError); `stats` is updated in place
   */
  constructor(lineName, hooks) {
    this.line = LINE_FORMATS[lineName];
    if (!this.line) throw new CallError(`unknown line format ${lineName}`);
    this.hooks = hooks;
    this.stats = hooks.stats;
    this.messages = null; // StreamMessages once the server named the call
    this.ended = false;
    this.everOpen = false;
  }

  socketUrl() {
    const params = new URLSearchParams(window.location.search);
    params.set("line", this.line.name);
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${window.location.host}/phone/ws?${params}`;
  }

  async start() {
    if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
      throw new CallError("The microphone needs a secure page: open it over https or on localhost.");
    }
    // Made first, while the click that placed the call still counts as a user gesture (autoplay).
    this.context = new AudioContext({ latencyHint: "interactive" });
    this.hooks.onStatus("Asking for the microphone…");
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (error) {
      throw new CallError(microphoneProblem(error));
    }
    const track = this.stream.getAudioTracks()[0];
    track.addEventListener("ended", () =>
      this.finish("The microphone stopped (unplugged or blocked); the call was ended.", true),
    );
    this.hooks.onStatus("Connecting…");
    await this.context.audioWorklet.addModule(`${STATIC}/capture-worklet.js`);
    await this.context.audioWorklet.addModule(`${STATIC}/playback-worklet.js`);
    await this.context.resume();
    const options = { processorOptions: { lineRate: this.line.rate } };
    this.capture = new AudioWorkletNode(this.context, "softphone-capture", options);
    this.playback = new AudioWorkletNode(this.context, "softphone-playback", {
      ...options,
      outputChannelCount: [1],
    });
    this.source = this.context.createMediaStreamSource(this.stream);
    this.source.connect(this.capture);
    const sink = this.context.createGain(); // keeps the capture node pulled, silently
    sink.gain.value = 0;
    this.capture.connect(sink).connect(this.context.destination);
    this.playback.connect(this.context.destination);
    this.capture.port.onmessage = (event) => this.onCaptured(event.data);
    this.playback.port.onmessage = (event) => this.onPlayback(event.data);
    this.stats.sampleRate = this.context.sampleRate;
    this.openSocket();
  }

  openSocket() {
    const socket = new WebSocket(this.socketUrl());
    this.socket = socket;
    socket.onopen = () => {
      this.everOpen = true;
      socket.send(JSON.stringify({ event: "connected", protocol: "Call", version: "1.0.0" }));
      this.hooks.onStatus("Connected, waiting for the agent…");
    };
    socket.onmessage = (event) => this.onMessage(event.data);
    socket.onclose = (event) => {
      if (!this.ended) this.finish(closeProblem(event, this.everOpen), event.code !== 1000);
    };
  }

  onMessage(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    switch (message.event) {
      case "media": {
        const samples = this.line.decode(base64ToBytes(message.media.payload));
        this.stats.framesReceived += 1;
        this.playback.port.postMessage({ type: "audio", samples }, [samples.buffer]);
        break;
      }
      case "mark":
        this.stats.marksReceived += 1;
        this.playback.port.postMessage({ type: "mark", name: message.mark.name });
        break;
      case "clear":
        this.stats.clears += 1;
        this.playback.port.postMessage({ type: "clear" });
        this.hooks.onAgent("clear", {});
        break;
      case "phone":
        if (message.type === "ready") this.onReady(message);
        this.hooks.onPageEvent(message);
        break;
      default:
        break;
    }
  }

  onReady(ready) {
    this.messages = new StreamMessages(ready.streamSid, ready.callSid);
    this.messages.sequence = 0;
    this.socket.send(this.messages.start(ready.mediaFormat, {}));
    this.stats.callSid = ready.callSid;
    this.hooks.onStatus(`In call · ${this.line.label}`);
  }

  onCaptured(data) {
    this.hooks.onCallerLevel(data.level);
    if (!this.messages || this.socket.readyState !== WebSocket.OPEN) return;
    if (this.socket.bufferedAmount > MAX_SOCKET_BACKLOG) {
      this.stats.framesDropped += 1; // a stalled network: late audio is worse than lost audio
      return;
    }
    this.socket.send(this.messages.media(this.line.encode(data.frame)));
    this.stats.framesSent += 1;
  }

  onPlayback(data) {
    switch (data.type) {
      case "mark":
        if (this.messages && this.socket.readyState === WebSocket.OPEN) {
          this.socket.send(this.messages.mark(data.name));
          this.stats.marksEchoed += 1;
        }
        break;
      case "status":
        this.stats.bufferedMs = data.bufferedMs;
        this.stats.playedMs = data.playedMs;
        this.stats.agentLevel = data.level;
        this.stats.underruns = data.underruns;
        this.hooks.onAgent("status", data);
        break;
      case "cleared":
        this.stats.bufferedMs = 0;
        this.stats.lastClear = { droppedMs: data.droppedMs, marks: data.marks, at: performance.now() };
        this.hooks.onAgent("cleared", data);
        break;
      case "playing":
      case "idle":
        this.stats.playing = data.type === "playing";
        this.hooks.onAgent(data.type, data);
        break;
      default:
        break;
    }
  }

  /** The caller hangs up. */
  hangUp() {
    this.finish("You hung up.", false);
  }

  finish(message, isError) {
    if (this.ended) return;
    this.ended = true;
    const socket = this.socket;
    if (socket && socket.readyState === WebSocket.OPEN) {
      if (this.messages) socket.send(this.messages.stop());
      socket.close(1000, "hang up");
    } else if (socket && socket.readyState === WebSocket.CONNECTING) {
      socket.close();
    }
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    if (this.capture) this.capture.port.postMessage({ type: "stop" });
    if (this.playback) this.playback.port.postMessage({ type: "stop" });
    if (this.context) this.context.close().catch(() => {});
    this.hooks.onEnded(message, isError);
  }
}
