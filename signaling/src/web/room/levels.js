// The microphone's level, for the pre-join meter and the "you are muted" notice: the RMS
// of the signal over a short window, 0 to 1. One AudioContext per page.

let context = null;

export class AudioLevel {
  constructor() {
    this.source = null;
    this.analyser = null;
    this.buffer = null;
  }

  /** Measures `stream`'s audio track (none: level 0). */
  attach(stream) {
    this.detach();
    const track = stream && stream.getAudioTracks()[0];
    if (!track || !window.AudioContext) return;
    context = context || new AudioContext();
    this.source = context.createMediaStreamSource(new MediaStream([track]));
    this.analyser = context.createAnalyser();
    this.analyser.fftSize = 1024;
    this.buffer = new Float32Array(this.analyser.fftSize);
    this.source.connect(this.analyser);
  }

  detach() {
    if (this.source) this.source.disconnect();
    this.source = null;
    this.analyser = null;
  }

  /** Browsers start an AudioContext suspended until the person clicks: call on a click. */
  static resume() {
    if (context && context.state === 'suspended') context.resume().catch(() => {});
  }

  /** The current level: 0 (silence) to 1 (full scale). */
  level() {
    if (!this.analyser) return 0;
    this.analyser.getFloatTimeDomainData(this.buffer);
    let sum = 0;
    for (const v of this.buffer) sum += v * v;
    return Math.min(1, Math.sqrt(sum / this.buffer.length) * 4);
  }
}
