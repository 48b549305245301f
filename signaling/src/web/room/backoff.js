// When to try the WebSocket again after it closed.
import { RECONNECT_MIN_MS, RECONNECT_MAX_MS } from './config.js';

/**
 * The delay before reconnection attempt `attempt` (0 first): 250 ms doubling up to 5 s,
 * times a jitter factor from `random()` in [0, 1) mapped to [0.75, 1.25).
 */
export function reconnectDelay(attempt, random = Math.random) {
  const base = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(attempt, 16));
  return Math.round(base * (0.75 + random() * 0.5));
}
