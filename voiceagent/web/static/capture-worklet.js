// Microphone capture on the audio thread: the first input channel, resampled from the audio
// context's rate to the line's (8 or 16 kHz), cut into 20 ms Int16 frames posted to the page
// with their loudness (RMS, 0..1).

import { Resampler } from "./resampler.js";

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { lineRate } = options.processorOptions;
    this.resampler = new Resampler(sampleRate, lineRate);
    this.frameSize = Math.round(lineRate / 50);
    this.frame = new Int16Array(this.frameSize);
    this.fill = 0;
    this.energy = 0;
    this.running = true;
    this.port.onmessage = (event) => {
      if (event.data && event.data.type === "stop") this.running = false;
    };
  }

  process(inputs) {
    const channels = inputs[0];
    if (!this.running) return false;
    if (!channels || channels.length === 0) return true; // no microphone signal this block
    const samples = this.resampler.process(channels[0]);
    for (let i = 0; i < samples.length; i++) {
      const value = Math.max(-1, Math.min(1, samples[i]));
      this.energy += value * value;
      this.frame[this.fill++] = value < 0 ? value * 0x8000 : value * 0x7fff;
      if (this.fill === this.frameSize) {
        const level = Math.sqrt(this.energy / this.frameSize);
        this.port.postMessage({ type: "frame", frame: this.frame, level }, [this.frame.buffer]);
        this.frame = new Int16Array(this.frameSize);
        this.fill = 0;
        this.energy = 0;
      }
    }
    return true;
  }
}

registerProcessor("softphone-capture", CaptureProcessor);
