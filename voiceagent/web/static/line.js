// The browser's side of a Twilio Media Stream: line formats, the G.711 μ-law codec, base64, and
// the messages a Twilio-side client sends (connected, start, media, mark echoes, stop).
//
// The μ-law tables follow the reference G.711 implementation (Sun's g711.c) bit for bit, like
// voiceagent's Python codec: encoding drops the two least significant bits (14-bit μ-law).

const SEG_ENDS = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];

function buildDecodeTable() {
  const table = new Int16Array(256);
  for (let code = 0; code < 256; code++) {
    const u = ~code & 0xff;
    const magnitude = (((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
    table[code] = u & 0x80 ? 0x84 - magnitude : magnitude - 0x84;
  }
  return table;
}

function buildEncodeTable() {
  // Index: the 16-bit sample as unsigned (negative samples at 32768..65535).
  const table = new Uint8Array(65536);
  for (let index = 0; index < 65536; index++) {
    const sample = (index >= 32768 ? index - 65536 : index) >> 2;
    const mask = sample < 0 ? 0x7f : 0xff;
    const magnitude = Math.min(Math.abs(sample), 8159) + (0x84 >> 2);
    let segment = 0;
    while (segment < 8 && SEG_ENDS[segment] < magnitude) segment++;
    const code =
      segment >= 8 ? 0x7f : (segment << 4) | ((magnitude >> (Math.min(segment, 7) + 1)) & 0x0f);
    table[index] = code ^ mask;
  }
  return table;
}

const ULAW_DECODE = buildDecodeTable();
const ULAW_ENCODE = buildEncodeTable();

/** @param {Int16Array} pcm @returns {Uint8Array} μ-law bytes */
export function ulawEncode(pcm) {
  const out = new Uint8Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) out[i] = ULAW_ENCODE[pcm[i] & 0xffff];
  return out;
}

/** @param {Uint8Array} ulaw @returns {Int16Array} */
export function ulawDecode(ulaw) {
  const out = new Int16Array(ulaw.length);
  for (let i = 0; i < ulaw.length; i++) out[i] = ULAW_DECODE[ulaw[i]];
  return out;
}

/** @param {Int16Array} pcm @returns {Uint8Array} little-endian bytes */
export function pcm16Encode(pcm) {
  const out = new Uint8Array(pcm.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < pcm.length; i++) view.setInt16(2 * i, pcm[i], true);
  return out;
}

/** @param {Uint8Array} bytes little-endian PCM16 @returns {Int16Array} */
export function pcm16Decode(bytes) {
  const count = bytes.length >> 1;
  const out = new Int16Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, count * 2);
  for (let i = 0; i < count; i++) out[i] = view.getInt16(2 * i, true);
  return out;
}

/** The formats a softphone call can carry; the name goes in the socket's `?line=`. */
export const LINE_FORMATS = {
  "mulaw-8k": {
    name: "mulaw-8k",
    label: "Narrowband (8 kHz μ-law, a phone line)",
    encoding: "audio/x-mulaw",
    rate: 8000,
    encode: ulawEncode,
    decode: ulawDecode,
  },
  "pcm16-16k": {
    name: "pcm16-16k",
    label: "Wideband (16 kHz PCM)",
    encoding: "audio/x-pcm16le",
    rate: 16000,
    encode: pcm16Encode,
    decode: pcm16Decode,
  },
};

/** @param {Uint8Array} bytes @returns {string} */
export function bytesToBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** @param {string} text @returns {Uint8Array} */
export function base64ToBytes(text) {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** Builds what a Twilio-side client sends on one stream, with real sequence numbers. */
export class StreamMessages {
  /**
   * @param {string} streamSid
   * @param {string} callSid
   */
  constructor(streamSid, callSid) {
    this.streamSid = streamSid;
    this.callSid = callSid;
    this.sequence = 0;
    this.chunk = 0;
  }

  _next() {
    this.sequence += 1;
    return String(this.sequence);
  }

  connected() {
    return JSON.stringify({ event: "connected", protocol: "Call", version: "1.0.0" });
  }

  /** @param {object} mediaFormat @param {Record<string,string>} parameters */
  start(mediaFormat, parameters = {}) {
    return JSON.stringify({
      event: "start",
      sequenceNumber: this._next(),
      streamSid: this.streamSid,
      start: {
        accountSid: "",
        streamSid: this.streamSid,
        callSid: this.callSid,
        tracks: ["inbound"],
        mediaFormat,
        customParameters: parameters,
      },
    });
  }

  /** @param {Uint8Array} payload one 20 ms frame in the line format */
  media(payload) {
    this.chunk += 1;
    return JSON.stringify({
      event: "media",
      sequenceNumber: this._next(),
      streamSid: this.streamSid,
      media: {
        track: "inbound",
        chunk: String(this.chunk),
        timestamp: String(20 * (this.chunk - 1)),
        payload: bytesToBase64(payload),
      },
    });
  }

  /** @param {string} name the mark whose audio has played */
  mark(name) {
    return JSON.stringify({
      event: "mark",
      sequenceNumber: this._next(),
      streamSid: this.streamSid,
      mark: { name },
    });
  }

  stop() {
    return JSON.stringify({
      event: "stop",
      sequenceNumber: this._next(),
      streamSid: this.streamSid,
      stop: { accountSid: "", callSid: this.callSid },
    });
  }
}
