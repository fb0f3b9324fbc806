// Raw pcm (s16le mono, the API's "pcm" format) played while it streams: every chunk that arrives
// becomes an AudioBuffer scheduled right after the previous one on one AudioContext clock.
// It keeps every sample, for the timeline cursor, replay from any point and the WAV download.

const LEAD_S = 0.05; // how far ahead of "now" a buffer starts when playback has run dry

export class PcmPlayer {
  constructor(rate) {
    this.rate = rate; // Hz of the pcm (the response's X-Sample-Rate)
    this.context = new AudioContext(); // plays buffers of any rate at the device's own
    this.chunks = []; // Int16Array pieces, in order
    this.samples = 0;
    this.stalls = 0; // times playback ran dry and waited for the stream
    this.schedule = []; // [context time, first sample] of each buffer, for position()
    this.sources = [];
    this.next = 0; // context time the next buffer starts at
    this.carry = null; // the odd byte a chunk ended with (a sample cut between chunks)
  }

  // Append the next bytes of the stream and schedule them; returns the samples added.
  push(bytes) {
    if (this.carry) {
      const joined = new Uint8Array(bytes.length + 1);
      joined.set(this.carry);
      joined.set(bytes, 1);
      bytes = joined;
    }
    const even = bytes.length - (bytes.length % 2);
    this.carry = even < bytes.length ? bytes.slice(even) : null;
    const n = even / 2;
    if (n === 0) return 0;
    const view = new DataView(bytes.buffer, bytes.byteOffset, even);
    const pcm = new Int16Array(n);
    const buffer = this.context.createBuffer(1, n, this.rate);
    const out = buffer.getChannelData(0);
    for (let i = 0; i < n; i++) {
      pcm[i] = view.getInt16(2 * i, true); // little-endian, whatever the machine is
      out[i] = pcm[i] / 32768;
    }
    const now = this.context.currentTime;
    if (this.next < now + LEAD_S) {
      if (this.samples > 0) this.stalls++;
      this.next = now + LEAD_S;
    }
    this.schedule.push([this.next, this.samples]);
    this.sources.push(this.#play(buffer, this.next, 0));
    this.next += buffer.duration;
    this.chunks.push(pcm);
    this.samples += n;
    return n;
  }

  get seconds() {
    return this.samples / this.rate;
  }

  // Seconds of the audio being heard now (null before the first buffer starts).
  position() {
    const now = this.context.currentTime;
    let at = null;
    for (const [start, first] of this.schedule) {
      if (start > now) break;
      at = first / this.rate + (now - start);
    }
    return at === null ? null : Math.min(at, this.seconds);
  }

  // Play the received audio again from `offset` seconds (a click on the timeline).
  replay(offset) {
    this.#silence();
    const all = this.#merged();
    if (all.length === 0) return;
    const buffer = this.context.createBuffer(1, all.length, this.rate);
    buffer.getChannelData(0).set(Float32Array.from(all, (x) => x / 32768));
    const start = this.context.currentTime + LEAD_S;
    this.schedule = [[start - offset, 0]];
    this.sources = [this.#play(buffer, start, offset)];
  }

  stop() {
    this.#silence();
    this.context.close();
  }

  // The received audio as a 16-bit mono WAV file (RIFF/WAVE, PCM format 1).
  wav() {
    const data = this.#merged();
    const header = new DataView(new ArrayBuffer(44));
    const ascii = (offset, text) => [...text].forEach((c, i) => header.setUint8(offset + i, c.charCodeAt(0)));
    ascii(0, "RIFF");
    header.setUint32(4, 36 + data.byteLength, true);
    ascii(8, "WAVE");
    ascii(12, "fmt ");
    header.setUint32(16, 16, true); // fmt chunk size
    header.setUint16(20, 1, true); // PCM
    header.setUint16(22, 1, true); // mono
    header.setUint32(24, this.rate, true);
    header.setUint32(28, this.rate * 2, true); // bytes per second
    header.setUint16(32, 2, true); // bytes per frame
    header.setUint16(34, 16, true); // bits per sample
    ascii(36, "data");
    header.setUint32(40, data.byteLength, true);
    const body = new DataView(new ArrayBuffer(data.byteLength));
    data.forEach((x, i) => body.setInt16(2 * i, x, true));
    return new Blob([header, body], { type: "audio/wav" });
  }

  #play(buffer, when, offset) {
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    source.start(when, offset);
    return source;
  }

  #silence() {
    for (const source of this.sources) source.stop();
    this.sources = [];
  }

  #merged() {
    const all = new Int16Array(this.samples);
    let at = 0;
    for (const chunk of this.chunks) {
      all.set(chunk, at);
      at += chunk.length;
    }
    return all;
  }
}
