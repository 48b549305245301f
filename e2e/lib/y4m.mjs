// A synthetic camera for Chromium's --use-file-for-fake-video-capture: a Y4M file (YUV
// 4:2:0) of a drifting gradient under fresh noise in every frame. Chromium's own fake
// camera draws a mostly flat picture that VP8 codes in a few hundred kbit/s whatever the
// encoder is allowed, so it cannot show a bitrate rising; noise makes every frame cost
// bits, and the encoder then sends about what its target allows.
import fs from 'node:fs';

/**
 * Writes `frames` frames of `width` x `height` at `fps` to `file`. `noise` is the
 * amplitude (+-) of the luma noise: more noise, more bits per frame at a given quality.
 */
export function writeNoiseY4m(file, { width = 640, height = 480, fps = 30, frames = 60, noise = 24 } = {}) {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, `YUV4MPEG2 W${width} H${height} F${fps}:1 Ip A1:1 C420jpeg\n`);
    const ySize = width * height;
    const cSize = (width / 2) * (height / 2);
    const frame = Buffer.alloc(6 + ySize + 2 * cSize);
    frame.write('FRAME\n', 0, 'latin1');
    // xorshift32: fast, deterministic (the same file every run).
    let x = 2463534242;
    const rand = () => {
      x ^= x << 13; x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5; x >>>= 0;
      return x;
    };
    for (let f = 0; f < frames; f += 1) {
      let o = 6;
      for (let row = 0; row < height; row += 1) {
        for (let col = 0; col < width; col += 1) {
          const base = 64 + ((row + col + 4 * f) % 128);
          const v = base + (rand() % (2 * noise + 1)) - noise;
          frame[o] = v < 16 ? 16 : v > 235 ? 235 : v;
          o += 1;
        }
      }
      for (let i = 0; i < 2 * cSize; i += 1) {
        frame[o] = 128 + (rand() % 17) - 8;
        o += 1;
      }
      fs.writeSync(fd, frame);
    }
  } finally {
    fs.closeSync(fd);
  }
}
