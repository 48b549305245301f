// The room page's tunables, in one place (style.css mirrors the tile gap).

export const PC_CONFIG = { bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' };
// Reconnection backoff: 250 ms doubling up to 5 s, each with +-25 % jitter so that the
// pages of a restarted server do not all come back in the same instant.
export const RECONNECT_MIN_MS = 250;
export const RECONNECT_MAX_MS = 5000;
// Join refusals worth retrying after a reconnection (the old session may linger on the
// server for a moment; the server may be busy); others need the person.
export const RETRY_JOIN = new Set(['NameTaken', 'ServerError', 'RoomFull']);
// Quality indicator: the lowest 0-10 score that lights each of its bars.
export const QUALITY_BARS = [1, 4, 7, 9];
// The camera's simulcast encodings, lowest first: for 720p 320x180, 640x360 and 1280x720.
// The bitrates suit those sizes. A smaller camera sends the top ones only (see
// simulcastLayers): for 640x480, h and f (320x240 and 640x480).
export const CAMERA_ENCODINGS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1500000 },
];
// A smaller camera's lowest layer (320x240 for 640x480) is what a narrow downlink gets:
// its bitrate suits that size, and its base temporal layer (about 40 % of it) of two
// publishers, with their audio, fits a 400 kbit/s link.
export const SMALL_CAMERA_LOW_BITRATE = 250000;
export const TEMPORAL_MODE = 'L1T3';
// Before the server said which layer a tile receives: a tile up to this many CSS pixels
// high needs spatial layer 0, 1; higher ones layer 2.
export const LAYER_HEIGHTS = [180, 360];
// A layer this much smaller than its tile still looks sharp enough (a little upscaling).
export const LAYER_SLACK = 0.9;
// Tiles' width : height, and the gap between them (CSS pixels, as style.css).
export const TILE_ASPECT = 4 / 3;
export const TILE_GAP = 10;
// How often each tile's received layer and bitrate are measured.
export const TILE_STATS_MS = 1000;
// Names: letters, digits and - _ . ' with single spaces between words, up to 32 characters
// (the server checks the same).
export const NAME_RE = /^[\p{L}\p{N}_.'-]+( [\p{L}\p{N}_.'-]+)*$/u;
export const NAME_MAX_CHARS = 32;
