// Codec negotiation across browsers, on a server that asks publishers for H264:
// Chromium publishes H264 to Chromium; Firefox (no H264 here) publishes VP8 and cannot
// receive the H264 video, which is reported to it alone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnServer } from '../lib/server.mjs';
import { launchChromium, launchFirefox, inbound, recordConsole, removeTmpDirs } from '../lib/browsers.mjs';
import { waitFor, waitForMedia } from '../lib/wait.mjs';
import { ownId, pageErrors, waitJoined } from '../lib/page.mjs';

let srv;
const contexts = [];
let firefox;
const logs = [];

before(async () => {
  srv = await spawnServer(['--video-codec', 'h264']);
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  if (firefox) await firefox.close().catch(() => {});
  if (srv) await srv.stop();
  removeTmpDirs();
  if (process.exitCode) for (const l of logs) console.error(l);
});

async function chromiumPage(room, name) {
  const ctx = await launchChromium();
  contexts.push(ctx);
  const page = await ctx.newPage();
  recordConsole(page, name, logs);
  await page.goto(`${srv.url}/r/${room}?name=${name}`);
  await waitJoined(page, 20000);
  return page;
}

test('H264 between Chromiums; VP8 from Firefox; Firefox told it cannot decode H264', async () => {
  const room = `e2e-codecs-${process.pid}`;
  const ann = await chromiumPage(room, 'Ann');
  const ben = await chromiumPage(room, 'Ben');
  firefox = await launchFirefox(srv.url);
  const fox = await firefox.newPage();
  await fox.goto(`${srv.url}/r/${room}?name=Fox`);
  await waitJoined(fox, 20000);
  const id = {};
  for (const [n, p] of [['Ann', ann], ['Ben', ben], ['Fox', fox]]) id[n] = await ownId(p);

  const inBen = await waitForMedia(ben, [id.Ann, id.Fox], 'Ben receiving Ann and Fox');
  assert.equal(inBen[id.Ann].video.codec, 'video/H264');
  assert.equal(inBen[id.Fox].video.codec, 'video/VP8');
  // Firefox gets the others' audio, and an error for each H264 video it cannot decode.
  const inFox = await waitFor('Fox receiving audio', () => inbound(fox),
    (s) => [id.Ann, id.Ben].every((p) => s[p] && s[p].audio && s[p].audio.packetsReceived > 0));
  assert.equal(inFox[id.Ann].video, undefined);
  const errors = await waitFor('Fox told about H264', () => pageErrors(fox),
    (e) => e.filter((x) => x.code === 'NoCommonCodec').length === 2);
  assert.match(errors[0].message, /cannot receive (Ann|Ben)'s video/);
  console.log(`# Ben decodes Ann's H264 (${inBen[id.Ann].video.framesDecoded} frames, ${inBen[id.Ann].video.frameWidth}px) and Fox's VP8; Fox: ${errors[0].message}`);
  assert.deepEqual(await pageErrors(ann), []);
  assert.deepEqual(await pageErrors(ben), []);
});
