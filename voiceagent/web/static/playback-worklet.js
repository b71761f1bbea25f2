// The agent's audio on the audio thread: a jitter buffer that plays line audio (resampled to the
// context's rate), echoes each mark once the audio before it has played — which is what tells
// the server what the caller heard — and empties at once on `clear`.
//
// Messages in: {type: "audio", samples: Int16Array at the line rate}, {type: "mark", name},
// {type: "clear"}. Messages out: {type: "mark", name, playedMs} (played), {type: "cleared",
// droppedMs, marks}, {type: "playing", playedMs} / {type: "idle", playedMs} (the agent became
// audible / went quiet), and every 100 ms {type: "status", bufferedMs, playedMs, level,
// underruns}. `playedMs` is the audio clock: how much agent audio had played when it was sent.
//
// After a start or an underrun, playback waits for `prebufferMs` of audio (or a mark: the end of
// a segment) before it plays, so network jitter costs a short wait instead of crackles.

import { Resampler } from "./resampler.js";

const CAPACITY_S = 20;

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { lineRate, prebufferMs = 60 } = options.processorOptions;
    this.resampler = new Resampler(lineRate, sampleRate);
    this.ring = new Float32Array(Math.round(CAPACITY_S * sampleRate));
    this.written = 0; // samples ever written (context rate)
    this.played = 0; // samples ever played
    this.marks = []; // {name, at}: echo once `played` reaches `at`
    this.prebuffer = Math.round((prebufferMs / 1000) * sampleRate);
    this.playing = false;
    this.underruns = 0;
    this.statusEvery = Math.round(sampleRate / 10);
    this.sinceStatus = 0;
    this.energy = 0;
    this.energyCount = 0;
    this.running = true;
    this.port.onmessage = (event) => this.onMessage(event.data);
  }

  get buffered() {
    return this.written - this.played;
  }

  get playedMs() {
    return (1000 * this.played) / sampleRate;
  }

  onMessage(message) {
    if (message.type === "audio") {
      const pcm = message.samples;
      const floats = new Float32Array(pcm.length);
      for (let i = 0; i < pcm.length; i++) floats[i] = pcm[i] / 0x8000;
      this.write(this.resampler.process(floats));
    } else if (message.type === "mark") {
      this.marks.push({ name: message.name, at: this.written });
      this.echoPlayedMarks();
    } else if (message.type === "clear") {
      this.clear();
    } else if (message.type === "stop") {
      this.running = false;
    }
  }

  write(samples) {
    const ring = this.ring;
    const room = ring.length - this.buffered;
    const count = Math.min(samples.length, room); // a full buffer drops the newest audio
    for (let i = 0; i < count; i++) ring[(this.written + i) % ring.length] = samples[i];
    this.written += count;
  }

  clear() {
    const dropped = this.buffered;
    this.played = this.written;
    this.resampler.reset();
    // Like Twilio: every mark still waiting is echoed at once (the server knows it proves nothing).
    const marks = this.marks.map((mark) => mark.name);
    this.marks = [];
    const playedMs = this.playedMs;
    for (const name of marks) this.port.postMessage({ type: "mark", name, playedMs });
    this.port.postMessage({
      type: "cleared",
      droppedMs: (1000 * dropped) / sampleRate,
      marks: marks.length,
    });
    this.setPlaying(false);
  }

  echoPlayedMarks() {
    while (this.marks.length && this.marks[0].at <= this.played) {
      const name = this.marks.shift().name;
      this.port.postMessage({ type: "mark", name, playedMs: this.playedMs });
    }
  }

  setPlaying(playing) {
    if (playing !== this.playing) {
      this.playing = playing;
      this.port.postMessage({ type: playing ? "playing" : "idle", playedMs: this.playedMs });
    }
  }

  process(_inputs, outputs) {
    if (!this.running) return false;
    const out = outputs[0][0];
    if (!this.playing && this.buffered > 0) {
      // A segment's end (its mark) is as good as a full prebuffer: nothing more is coming soon.
      const segmentEnds = this.marks.length > 0 && this.marks[0].at <= this.written;
      if (this.buffered >= this.prebuffer || segmentEnds) this.setPlaying(true);
    }
    let count = 0;
    if (this.playing) {
      const ring = this.ring;
      count = Math.min(out.length, this.buffered);
      for (let i = 0; i < count; i++) {
        const value = ring[(this.played + i) % ring.length];
        out[i] = value;
        this.energy += value * value;
      }
      this.played += count;
      if (this.buffered === 0) {
        const midSegment = this.marks.length > 0 && this.marks[0].at > this.played;
        if (midSegment && count < out.length) this.underruns += 1;
        this.setPlaying(false);
      }
    }
    out.fill(0, count);
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    this.energyCount += out.length;
    this.echoPlayedMarks();
    this.sinceStatus += out.length;
    if (this.sinceStatus >= this.statusEvery) {
      this.port.postMessage({
        type: "status",
        bufferedMs: (1000 * this.buffered) / sampleRate,
        playedMs: this.playedMs,
        level: Math.sqrt(this.energy / Math.max(1, this.energyCount)),
        underruns: this.underruns,
      });
      this.sinceStatus = 0;
      this.energy = 0;
      this.energyCount = 0;
    }
    return true;
  }
}

registerProcessor("softphone-playback", PlaybackProcessor);
