// What the page tells the person about the call: the status line and each tile's
// quality indicator, computed from the room state.
import { QUALITY_BARS } from './config.js';

/**
 * The tile's quality: for another participant, the worse of their upload (producerScore)
 * and this browser's download (score) over their unmuted tracks; for one's own tile, the
 * upload of one's unmuted tracks. Null until a score is known.
 * `scores`: kind -> {score, producerScore} (others) or kind -> score (own).
 */
export function tileQuality({ self, scores, audioMuted, videoMuted }) {
  const counts = (kind) => !((kind === 'audio' && audioMuted) || (kind === 'video' && videoMuted));
  let value = null;
  let detail = '';
  if (self) {
    for (const [kind, score] of Object.entries(scores || {})) {
      if (counts(kind)) value = value === null ? score : Math.min(value, score);
    }
    detail = 'your upload';
  } else {
    let up = null;
    let down = null;
    for (const [kind, s] of Object.entries(scores || {})) {
      if (!counts(kind)) continue;
      up = up === null ? s.producerScore : Math.min(up, s.producerScore);
      down = down === null ? s.score : Math.min(down, s.score);
    }
    if (up !== null) {
      value = Math.min(up, down);
      detail = `their upload ${up}, your download ${down}`;
    }
  }
  if (value === null) return null;
  return {
    value,
    lit: QUALITY_BARS.filter((min) => value >= min).length,
    level: value >= 7 ? 'good' : value >= 4 ? 'fair' : 'poor',
    label: `Connection quality ${value} of 10 (${detail})`,
  };
}

/**
 * The status line: where the call stands. `phase` is the signaling side (see
 * state.js), `pcs` the peer connections' connectionState values.
 */
export function statusText(phase, pcs) {
  switch (phase) {
    case 'idle': return 'Not joined';
    case 'left': return 'Left';
    case 'connecting': return 'Connecting…';
    case 'reconnecting': return 'Reconnecting…';
    case 'closed': return 'Disconnected';
    case 'joining': return 'Joining…';
    default: break;
  }
  if (pcs.includes('failed')) return 'Media failed';
  if (pcs.includes('disconnected')) return 'Reconnecting…';
  if (pcs.length && pcs.every((s) => s === 'connected')) return 'Connected';
  if (pcs.length) return 'Connecting media…';
  return 'Connected (waiting for others)';
}

/** What a received video's layer badge says: layer, height and bitrate. */
export function receivedText(r) {
  if (!r) return '';
  const parts = [];
  if (r.spatialLayer !== null && r.spatialLayer !== undefined) {
    parts.push(r.temporalLayer === null || r.temporalLayer === undefined ? `S${r.spatialLayer}` : `S${r.spatialLayer}T${r.temporalLayer}`);
  }
  if (r.height) parts.push(`${r.height}p`);
  if (r.kbps !== null && r.kbps !== undefined) parts.push(`${r.kbps} kbit/s`);
  return parts.join(' · ');
}

/**
 * The stats overlay of a received video: one line each for bitrate, resolution and frame
 * rate, loss and round-trip time, as far as known.
 */
export function statsLines(r) {
  if (!r) return ['No video received'];
  const lines = [];
  lines.push(`Bitrate ${r.kbps === null || r.kbps === undefined ? '–' : `${r.kbps} kbit/s`}`);
  lines.push(`Resolution ${r.width && r.height ? `${r.width}×${r.height}` : '–'}`);
  lines.push(`Frame rate ${Number.isFinite(r.fps) ? `${Math.round(r.fps)} fps` : '–'}`);
  lines.push(`Loss ${Number.isFinite(r.lossPct) ? `${r.lossPct.toFixed(1)} %` : '–'}`);
  lines.push(`RTT ${Number.isFinite(r.rttMs) ? `${Math.round(r.rttMs)} ms` : '–'}`);
  if (r.spatialLayer !== null && r.spatialLayer !== undefined) lines.push(`Layer S${r.spatialLayer}${r.temporalLayer === null || r.temporalLayer === undefined ? '' : `T${r.temporalLayer}`}`);
  return lines;
}
