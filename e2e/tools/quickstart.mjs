// The browser half of scripts/check-quickstart.sh: does what a newcomer does with the URL
// that `scripts/run.sh` printed. Opens the home page in Debian's Chromium, clicks "Open the
// room", types a name, clicks Join, and passes once the page has joined, its own video tile
// plays and getStats shows its camera going out (outbound-rtp video packets growing).
//   node e2e/tools/quickstart.mjs http://127.0.0.1:PORT
// Exits 1 with the page's state and console on any failure. Lives outside e2e/tests/ because
// e2e/run.sh runs those against its own server.
import { launchChromium, recordConsole, removeTmpDirs } from '../lib/browsers.mjs';
import { waitFor } from '../lib/wait.mjs';
import { waitJoined } from '../lib/page.mjs';

const url = (process.argv[2] || '').replace(/\/$/, '');
if (!/^http:\/\/\S+$/.test(url)) {
  console.error('usage: node e2e/tools/quickstart.mjs http://HOST:PORT');
  process.exit(2);
}

/** The send side's outbound video as getStats reports it (null before it exists). */
function outboundVideo(page) {
  return page.evaluate(async () => {
    const pc = window.sfuTest && window.sfuTest.peerConnections().send;
    if (!pc) return null;
    const report = await pc.getStats();
    for (const s of report.values()) {
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        return { packetsSent: s.packetsSent || 0, framesEncoded: s.framesEncoded || 0, frameWidth: s.frameWidth || 0 };
      }
    }
    return null;
  });
}

const logs = [];
let ctx;
let page;
let status = 0;
try {
  ctx = await launchChromium();
  page = await ctx.newPage();
  recordConsole(page, 'newcomer', logs);

  // Home page: it offers a fresh room link; a newcomer opens it.
  await page.goto(`${url}/`, { timeout: 15000 });
  await page.waitForFunction(() => document.getElementById('room-link').value.includes('/r/'), null,
    { timeout: 10000 });
  await page.click('#open-room');
  await page.waitForURL(/\/r\/[a-z0-9-]+$/, { timeout: 10000 });
  const room = new URL(page.url()).pathname.split('/')[2];

  // Room page: it asks for a name.
  await page.waitForSelector('#name-input', { state: 'visible', timeout: 10000 });
  await page.fill('#name-input', 'Newcomer');
  await page.click('#prompt button[type=submit]');
  await waitJoined(page, 20000);

  // Their own tile plays the camera...
  await page.waitForFunction(() => {
    const v = document.querySelector('.tile.self video');
    return Boolean(v && v.videoWidth > 0 && !v.paused);
  }, null, { timeout: 20000 });
  // ... and the camera reaches the server: outbound video packets are sent and keep growing.
  const first = await waitFor('outbound video', () => outboundVideo(page), (s) => s && s.packetsSent > 0
    && s.framesEncoded > 0, { timeout: 20000 });
  const later = await waitFor('outbound video growth', () => outboundVideo(page),
    (s) => s && s.packetsSent >= first.packetsSent + 20, { timeout: 15000 });
  const statusText = await page.textContent('#status');
  console.log(`quickstart: joined room ${room} at ${url}: status "${statusText}",`
    + ` outbound video ${JSON.stringify(later)}`);
} catch (e) {
  status = 1;
  console.error(`quickstart: FAILED in the browser: ${e.message}`);
  if (page) {
    const state = await page.evaluate(() => {
      if (!window.sfuTest) return { url: location.href, body: document.body.innerText.slice(0, 500) };
      // The own tile's video as the user would see it: a failure says which part is missing.
      const v = document.querySelector('.tile.self video');
      const stream = v && v.srcObject;
      return {
        url: location.href, phase: document.getElementById('status').dataset.phase,
        status: document.getElementById('status').textContent, errors: window.sfuTest.errors(),
        selfVideo: v ? {
          paused: v.paused, readyState: v.readyState, width: v.videoWidth,
          tracks: stream ? stream.getTracks().map((t) => `${t.kind}:${t.readyState}:${t.enabled}`) : null,
        } : null,
      };
    }).catch((x) => String(x));
    console.error(`quickstart: page state ${JSON.stringify(state)}`);
  }
  for (const l of logs) console.error(l);
} finally {
  if (ctx) await ctx.close().catch(() => {});
  removeTmpDirs();
}
process.exit(status);
