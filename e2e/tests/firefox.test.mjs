// Firefox ESR and Chromium in one room: each decodes the other's video and receives its
// audio (issue 3, "How it is shown").
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { server } from '../lib/server.mjs';
import { launchChromium, launchFirefox, recordConsole, removeTmpDirs } from '../lib/browsers.mjs';
import { waitForMedia, waitForGrowth } from '../lib/wait.mjs';
import { ownId, pageErrors, waitJoined } from '../lib/page.mjs';

let srv;
let firefox;
let chromiumCtx;
const logs = [];

before(async () => {
  srv = await server();
});

after(async () => {
  if (firefox) await firefox.close().catch(() => {});
  if (chromiumCtx) await chromiumCtx.close().catch(() => {});
  if (srv) await srv.stop();
  removeTmpDirs();
  if (process.exitCode) for (const l of logs) console.error(l);
});

test('Firefox ESR and Chromium decode each other', async () => {
  const room = `e2e-firefox-${process.pid}`;
  const start = Date.now();
  firefox = await launchFirefox(srv.url);
  const fox = await firefox.newPage();
  fox.on('console', (m) => { if (m.type() === 'error') logs.push(`[firefox] ${m.text()}`); });
  await fox.goto(`${srv.url}/r/${room}?name=Fox`);
  await waitJoined(fox, 20000);

  chromiumCtx = await launchChromium();
  const chrome = await chromiumCtx.newPage();
  recordConsole(chrome, 'chromium', logs);
  await chrome.goto(`${srv.url}/r/${room}?name=Chrome`);
  await waitJoined(chrome, 20000);

  const foxId = await ownId(fox);
  const chromeId = await ownId(chrome);
  const [foxFirst, chromeFirst] = await Promise.all([
    waitForMedia(fox, [chromeId], 'Firefox receiving Chromium'),
    waitForMedia(chrome, [foxId], 'Chromium receiving Firefox'),
  ]);
  const mediaAt = Date.now() - start;
  const [foxLater, chromeLater] = await Promise.all([
    waitForGrowth(fox, foxFirst, 'Firefox media growth'),
    waitForGrowth(chrome, chromeFirst, 'Chromium media growth'),
  ]);
  const inFox = foxLater[chromeId];
  const inChrome = chromeLater[foxId];
  console.log(`# media both ways after ${mediaAt} ms; Firefox receives ${JSON.stringify(inFox)}; Chromium receives ${JSON.stringify(inChrome)}`);
  assert.ok(inFox.video.frameWidth > 0 && inChrome.video.frameWidth > 0);
  assert.equal(inFox.video.codec.toLowerCase(), 'video/vp8');
  assert.equal(inChrome.audio.codec, 'audio/opus');
  assert.deepEqual(await pageErrors(fox), []);
  assert.deepEqual(await pageErrors(chrome), []);
});
