// What the suites read from a room page, the way a person would where a person can: the
// status line (its data-phase), the tiles, the banner; and the page's documented test hook
// (signaling/src/web/room/testhook.js) for what nobody sees, such as decoded-frame counts.
// Works with Playwright's and Puppeteer's pages alike (page.evaluate only).
import { waitFor } from './wait.mjs';

/** The call's phase as the status line carries it (room/state.js PHASES). */
export function phase(page) {
  return page.evaluate(() => {
    const s = document.getElementById('status');
    return s ? s.dataset.phase || null : null;
  });
}

/** Waits until the page has joined its room (or, with `joined: false`, until it is out of it). */
export function waitJoined(page, timeout = 20000, { joined = true } = {}) {
  return waitFor(joined ? 'the page to join' : 'the page to lose its room', () => phase(page).catch(() => null),
    (p) => (joined ? p === 'joined' : p !== null && p !== 'joined'), { timeout, interval: 50 });
}

/** The page's own participant id, from its own tile. */
export function ownId(page) {
  return page.evaluate(() => {
    const t = document.querySelector('.tile.self');
    return t ? t.dataset.peerId : null;
  });
}

/** The errors the page showed, in order. */
export function pageErrors(page) {
  return page.evaluate(() => window.sfuTest.errors());
}
