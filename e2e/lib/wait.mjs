// Waiting on conditions with deadlines (never a fixed sleep as synchronisation).
//
// Note: Playwright's page.waitForFunction does not await an async predicate (the Promise
// itself is truthy), so conditions on getStats() are polled from here instead.
import { inbound } from './browsers.mjs';

/** Polls `probe()` until `accept(value)` holds; returns that value. Fails after `timeout`. */
export async function waitFor(label, probe, accept, { timeout = 30000, interval = 200 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await probe();
    if (accept(last)) return last;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${label}; last value: ${JSON.stringify(last)}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

const media = (s, id) => Boolean(s[id] && s[id].video && s[id].video.framesDecoded > 0 && s[id].video.frameWidth > 0
  && s[id].audio && s[id].audio.packetsReceived > 0);

/** Waits until every other participant's video is decoded and its audio received. */
export function waitForMedia(page, otherIds, label = 'media', timeout = 30000) {
  return waitFor(label, () => inbound(page), (s) => otherIds.every((id) => media(s, id)), { timeout });
}

/**
 * Waits until, for every participant of `before`, decoded frames grew by `frames` and
 * audio packets by `packets` (defaults: about a second of each).
 */
export function waitForGrowth(page, before, label = 'growth', { frames = 15, packets = 40, timeout = 15000 } = {}) {
  return waitFor(label, () => inbound(page), (s) => Object.keys(before).length > 0
    && Object.entries(before).every(([id, b]) => media(s, id)
      && s[id].video.framesDecoded >= b.video.framesDecoded + frames
      && s[id].audio.packetsReceived >= b.audio.packetsReceived + packets), { timeout });
}
