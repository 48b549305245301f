// The camera's send encodings (simulcast) and how the offer message describes them.
// No browser objects here: what the browser reports is passed in.
import { CAMERA_ENCODINGS, SMALL_CAMERA_LOW_BITRATE, TEMPORAL_MODE } from './config.js';

/**
 * A screen share's one encoding: resolution over frame rate (text must stay readable; a
 * slide changes rarely), so a high bitrate cap and few frames.
 */
export const SCREEN_ENCODING = Object.freeze({ maxBitrate: 2500000, maxFramerate: 15 });

/**
 * How many simulcast layers a camera of this size gets: what Chromium's encoder sends at
 * most (3 from 960x540 on, 2 from 480x270, else 1; it drops the top layers beyond that, so
 * asking for more would lose the full-size picture). Unknown size: all.
 */
export function simulcastLayers(width = 0, height = 0) {
  const pixels = width * height;
  if (!pixels || pixels >= 960 * 540) return CAMERA_ENCODINGS.length;
  return pixels >= 480 * 270 ? 2 : 1;
}

/**
 * The encodings to try for a camera with `layers` simulcast layers, best first: with
 * temporal layers (when `temporal`), then without. Empty for a single layer.
 */
export function cameraEncodingTries(layers, temporal) {
  if (layers < 2) return [];
  const encodings = CAMERA_ENCODINGS.slice(CAMERA_ENCODINGS.length - layers).map((e, i) =>
    (layers < CAMERA_ENCODINGS.length && i === 0 ? { ...e, maxBitrate: SMALL_CAMERA_LOW_BITRATE } : { ...e }));
  return temporal ? [encodings.map((e) => ({ ...e, scalabilityMode: TEMPORAL_MODE })), encodings] : [encodings];
}

/**
 * Whether to ask for temporal layers (L1T3), from the sender capabilities' VP8 entry:
 * unless it lists scalability modes without L1T3. (Chromium lists none yet takes L1T3; a
 * browser that refuses it makes addTransceiver throw, and the page tries again without.)
 */
export function temporalLayersSupported(codecs) {
  const vp8 = (codecs || []).find((c) => /\/vp8$/i.test(c.mimeType));
  return !vp8 || !Array.isArray(vp8.scalabilityModes) || vp8.scalabilityModes.includes(TEMPORAL_MODE);
}

/** A sender's encodings as the offer message describes them (SDP has no bitrates), or null. */
export function offerEncodings(encs) {
  if (!Array.isArray(encs) || encs.length < 2 || !encs.every((e) => typeof e.rid === 'string')) return null;
  return encs.map((e) => {
    const out = { rid: e.rid };
    if (Number.isFinite(e.maxBitrate) && e.maxBitrate > 0) out.maxBitrate = Math.round(e.maxBitrate);
    if (Number.isFinite(e.scaleResolutionDownBy) && e.scaleResolutionDownBy >= 1) out.scaleResolutionDownBy = e.scaleResolutionDownBy;
    if (e.scalabilityMode === TEMPORAL_MODE) out.scalabilityMode = e.scalabilityMode;
    return out;
  });
}

/**
 * Dynacast: applies the server's `setEncodings` list to a sender's encodings (in place);
 * returns whether any changed.
 */
export function applyActive(encodings, wanted) {
  let changed = false;
  for (const e of encodings) {
    const want = wanted.find((x) => x.rid === e.rid);
    if (want && e.active !== Boolean(want.active)) {
      e.active = Boolean(want.active);
      changed = true;
    }
  }
  return changed;
}
