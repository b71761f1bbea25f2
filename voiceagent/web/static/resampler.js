// A streaming windowed-sinc resampler for mono Float32 audio (any rate to any rate).
//
// Written here (no library: the page has no build step and no CDN) and shared by both audio
// worklets: the microphone (e.g. 48 kHz) down to the line's 8 or 16 kHz, and the agent's line
// audio up to the audio context's rate. The low-pass cutoff sits just below the lower of the two
// Nyquist frequencies (anti-aliasing when going down, anti-imaging when going up). The kernel is
// a Kaiser-windowed sinc, tabulated once and read with linear interpolation. State (the last
// input samples and the fractional read position) carries over between blocks, so blocks of any
// size give the same output as one long block: no clicks at block edges.

const ZERO_CROSSINGS = 16; // sinc lobes on each side of the centre (of the cutoff's period)
const TABLE_STEPS = 64; // kernel table points per input sample
const KAISER_BETA = 8.6; // side lobes about -85 dB
const CUTOFF = 0.92; // of the lower Nyquist frequency (the transition band above it)

function besselI0(x) {
  let sum = 1;
  let term = 1;
  for (let k = 1; k < 50; k++) {
    term *= (x / (2 * k)) * (x / (2 * k));
    sum += term;
    if (term < sum * 1e-12) break;
  }
  return sum;
}

export class Resampler {
  /**
   * @param {number} inRate input samples per second
   * @param {number} outRate output samples per second
   */
  constructor(inRate, outRate) {
    if (!(inRate > 0 && outRate > 0)) throw new RangeError(`bad rates ${inRate} -> ${outRate}`);
    this.inRate = inRate;
    this.outRate = outRate;
    this.step = inRate / outRate; // input samples per output sample
    this.passthrough = inRate === outRate;
    // Cutoff as a fraction of the input Nyquist frequency.
    this.cutoff = CUTOFF * Math.min(1, outRate / inRate);
    this.half = Math.ceil(ZERO_CROSSINGS / this.cutoff); // kernel half-width, input samples
    const size = this.half * TABLE_STEPS + 2;
    this.table = new Float32Array(size);
    const norm = besselI0(KAISER_BETA);
    for (let i = 0; i < size; i++) {
      const x = i / TABLE_STEPS; // distance from the centre, input samples
      const r = x / this.half;
      if (r >= 1) break;
      const arg = Math.PI * this.cutoff * x;
      const sinc = x === 0 ? 1 : Math.sin(arg) / arg;
      const window = besselI0(KAISER_BETA * Math.sqrt(1 - r * r)) / norm;
      this.table[i] = this.cutoff * sinc * window;
    }
    this.reset();
  }

  /** Forget the past (e.g. after a clear): the next block starts from silence. */
  reset() {
    // `half` zeros of history, so the first output sample lines up with the first input one.
    this.buffer = new Float32Array(2 * this.half + 256);
    this.length = this.half;
    this.position = this.half; // where the next output sample sits, in buffer samples
  }

  /** Input samples the filter holds back (its delay), in input samples. */
  get delay() {
    return this.half;
  }

  _append(input) {
    const needed = this.length + input.length;
    if (needed > this.buffer.length) {
      const grown = new Float32Array(Math.max(needed, 2 * this.buffer.length));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    this.buffer.set(input, this.length);
    this.length = needed;
  }

  /**
   * Resample one block.
   * @param {Float32Array} input
   * @returns {Float32Array} the output samples this block completes (the last few wait for more)
   */
  process(input) {
    if (this.passthrough) return Float32Array.from(input);
    this._append(input);
    const { buffer, table, half, step } = this;
    const last = this.length - half; // an output needs `half` samples after its position
    const count = Math.max(0, Math.ceil((last - this.position) / step));
    const out = new Float32Array(count);
    let t = this.position;
    for (let n = 0; n < count; n++) {
      const centre = Math.floor(t);
      let acc = 0;
      const first = centre - half + 1;
      for (let k = first; k <= centre + half; k++) {
        const x = Math.abs(t - k) * TABLE_STEPS;
        const i = x | 0;
        if (i >= table.length - 1) continue;
        const h = table[i] + (x - i) * (table[i + 1] - table[i]);
        acc += buffer[k] * h;
      }
      out[n] = acc;
      t += step;
    }
    // Keep what the next outputs still need: from `half` samples before the next position.
    const keepFrom = Math.max(0, Math.floor(t) - half + 1);
    if (keepFrom > 0) {
      buffer.copyWithin(0, keepFrom, this.length);
      this.length -= keepFrom;
      t -= keepFrom;
    }
    this.position = t;
    return out;
  }
}
