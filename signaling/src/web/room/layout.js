// Tile geometry: how many columns the grid needs, and which simulcast layer a tile of a
// given height needs. Pure functions; the view measures, these decide.
import { LAYER_HEIGHTS, LAYER_SLACK, TILE_ASPECT, TILE_GAP } from './config.js';

/**
 * The column count that makes `n` tiles largest at TILE_ASPECT in a `width` x `height`
 * box (inner size, padding already taken off), and the tile width then. A smaller window
 * makes smaller tiles (which then ask for lower layers) rather than tiles out of sight.
 * Null when there is nothing to lay out.
 */
export function gridColumns(n, width, height, gap = TILE_GAP, aspect = TILE_ASPECT) {
  if (!n || width <= 0 || height <= 0) return null;
  let best = { cols: 1, tile: 0 };
  for (let cols = 1; cols <= n; cols += 1) {
    const rows = Math.ceil(n / cols);
    const w = Math.min((width - (cols - 1) * gap) / cols, ((height - (rows - 1) * gap) / rows) * aspect);
    if (w > best.tile) best = { cols, tile: w };
  }
  return { cols: best.cols, tileWidth: Math.max(40, Math.floor(best.tile)) };
}

/**
 * The spatial layer a tile `height` CSS pixels high needs. Once a layer is received
 * (`now`: the server's layers of this consumer; `received`: the measured frame height of
 * it), from its height: each layer below is half as high (as the web client publishes),
 * so the lowest layer at least about as high as the tile is chosen (the server clamps a
 * layer above the top to the top). Before that, fixed heights (LAYER_HEIGHTS).
 */
export function layerForHeight(height, now, receivedHeight) {
  if (now && now.spatialLayer !== null && now.spatialLayer !== undefined && receivedHeight > 0) {
    const want = height * LAYER_SLACK;
    let layer = 0;
    while (layer < now.spatialLayer + 4 && receivedHeight * 2 ** (layer - now.spatialLayer) < want) layer += 1;
    return layer;
  }
  const i = LAYER_HEIGHTS.findIndex((h) => height <= h);
  return i === -1 ? LAYER_HEIGHTS.length : i;
}

/**
 * Which tile leads the layout, if any: the pinned one; else a screen share; else, in
 * speaker view, the participant last heard (not oneself). `keys`: the tiles shown (own
 * camera tile under `selfKey`); `screens`: the screen tiles among them. Null: a plain grid.
 */
export function featuredTile({ layout, keys, screens = [], pinned = null, speaker = null, selfKey = null }) {
  if (pinned && keys.includes(pinned)) return pinned;
  const screen = screens.find((k) => keys.includes(k));
  if (screen) return screen;
  if (layout !== 'speaker') return null;
  if (speaker && speaker !== selfKey && keys.includes(speaker)) return speaker;
  return keys.find((k) => k !== selfKey) || null;
}
