// Three Chromium participants in one room, one in another room (issue 3, "How it is shown").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { repo, metricsToken } from '../lib/server.mjs';
import { inbound } from '../lib/browsers.mjs';
import { waitForMedia, waitForGrowth } from '../lib/wait.mjs';
import { chromiumSuite } from '../lib/suite.mjs';
import { ownId, pageErrors, waitJoined } from '../lib/page.mjs';

const artifacts = path.join(repo, 'e2e', 'artifacts');
const suite = chromiumSuite();
const { open } = suite;

async function roomStats(room) {
  const r = await fetch(`${suite.srv.url}/api/rooms/${room}`, { headers: { Authorization: `Bearer ${metricsToken}` } });
  return r.status === 200 ? r.json() : null;
}

test('three Chromium participants decode each other; one leaves; another room sees none of them', async () => {
  const room = `e2e-three-${process.pid}`;
  const lonely = `e2e-other-${process.pid}`;
  const names = ['Ada', 'Bob', 'Cy'];
  const start = Date.now();
  const pages = {};
  for (const n of names) pages[n] = await open(room, n);
  const dora = await open(lonely, 'Dora');
  const ids = {};
  for (const n of names) ids[n] = await ownId(pages[n]);
  const others = (n) => names.filter((x) => x !== n);

  // Each decodes the other two's video and receives their audio...
  const snap = {};
  await Promise.all(names.map(async (n) => {
    snap[n] = await waitForMedia(pages[n], others(n).map((o) => ids[o]), `${n}'s media`);
  }));
  const mediaAt = Date.now() - start;
  // ... and keeps doing so (counters grow).
  const grown = {};
  await Promise.all(names.map(async (n) => { grown[n] = await waitForGrowth(pages[n], snap[n], `${n}'s media growth`); }));
  const report = {};
  for (const n of names) {
    const s = grown[n];
    report[n] = Object.fromEntries(others(n).map((o) => {
      const x = s[ids[o]];
      return [o, { framesDecoded: x.video.framesDecoded, frameWidth: x.video.frameWidth, videoCodec: x.video.codec,
        audioPackets: x.audio.packetsReceived, audioCodec: x.audio.codec }];
    }));
    for (const o of others(n)) {
      assert.ok(report[n][o].frameWidth > 0, `${n} sees ${o}`);
      assert.equal(report[n][o].videoCodec, 'video/VP8');
      assert.equal(report[n][o].audioCodec, 'audio/opus');
    }
    // Three tiles: own and the two others, with their names.
    const tileNames = await pages[n].locator('.tile .name').allTextContents();
    assert.deepEqual(tileNames.map((t) => t.replace(' (you)', '')).sort(), [...names].sort());
  }
  console.log(`# media flowing in all three after ${mediaAt} ms; stats ${JSON.stringify(report)}`);

  fs.mkdirSync(artifacts, { recursive: true });
  // Wait until the tiles actually paint video before taking the picture.
  await pages.Ada.waitForFunction(() => [...document.querySelectorAll('.tile video')]
    .filter((v) => v.videoWidth > 0 && !v.paused).length === 3, null, { timeout: 10000 });
  await pages.Ada.screenshot({ path: path.join(artifacts, 'three-way-call.png') });

  // The participant of the other room sees none of them, and none of them sees her.
  const doraState = await dora.evaluate(() => ({
    tiles: document.querySelectorAll('.tile').length,
    recv: Boolean(window.sfuTest.peerConnections().recv),
  }));
  assert.deepEqual(doraState, { tiles: 1, recv: false });
  assert.deepEqual(await inbound(dora), {});
  for (const n of names) {
    const seen = await pages[n].locator('.tile .name').allTextContents();
    assert.ok(!seen.includes('Dora'), `${n} must not see Dora`);
  }
  const lonelyStats = await roomStats(lonely);
  assert.deepEqual(lonelyStats.peers.map((p) => [p.name, p.producers, p.consumers]), [['Dora', 2, 0]]);
  const before = await roomStats(room);
  assert.deepEqual(before.peers.map((p) => [p.name, p.producers, p.consumers]),
    [['Ada', 2, 4], ['Bob', 2, 4], ['Cy', 2, 4]]);

  // Cy leaves: the others' tile of Cy goes and their consumers of Cy are closed (the
  // transceivers that received Cy stop).
  const cyConsumers = {};
  for (const n of ['Ada', 'Bob']) {
    cyConsumers[n] = Object.values((await inbound(pages[n]))[ids.Cy]).map((x) => x.mid);
    assert.equal(cyConsumers[n].length, 2);
  }
  const leftAt = Date.now();
  await pages.Cy.click('#leave');
  await pages.Cy.waitForSelector('#left', { state: 'visible', timeout: 5000 });
  for (const n of ['Ada', 'Bob']) {
    await pages[n].waitForFunction(
      ([cy, mids]) => !document.querySelector(`.tile[data-peer-id="${cy}"]`)
        && mids.every((mid) => !window.sfuTest.consumer(mid))
        && mids.every((mid) => {
          const tr = window.sfuTest.peerConnections().recv.getTransceivers().find((t) => t.mid === mid);
          return !tr || ['stopped', 'inactive'].includes(tr.currentDirection);
        }),
      [ids.Cy, cyConsumers[n]],
      { timeout: 5000, polling: 50 },
    );
  }
  const goneAfter = Date.now() - leftAt;
  // On the server: Cy's transports are closed (no producers left; the others' consumers of
  // Cy closed) well within 2 s.
  let after;
  for (;;) {
    after = await roomStats(room);
    if (after.peers.length === 2 && after.peers.every((p) => p.consumers === 2)) break;
    assert.ok(Date.now() - leftAt < 2000, `server state after leave: ${JSON.stringify(after)}`);
    await new Promise((r) => setImmediate(r));
  }
  const serverGoneAfter = Date.now() - leftAt;
  assert.deepEqual(after.peers.map((p) => [p.name, p.producers, p.consumers]), [['Ada', 2, 2], ['Bob', 2, 2]]);
  console.log(`# Cy's tile and consumers gone from Ada and Bob after ${goneAfter} ms; server state after ${serverGoneAfter} ms`);
  assert.ok(goneAfter < 2000, `took ${goneAfter} ms`);

  // The remaining two still receive each other after the renegotiation.
  const s2 = { Ada: await inbound(pages.Ada), Bob: await inbound(pages.Bob) };
  assert.deepEqual(Object.keys(s2.Ada), [ids.Bob]);
  assert.deepEqual(Object.keys(s2.Bob), [ids.Ada]);
  const s3 = {};
  await Promise.all(['Ada', 'Bob'].map(async (n) => { s3[n] = await waitForGrowth(pages[n], s2[n], `${n}'s media after Cy left`); }));
  console.log(`# after Cy left: Ada decodes Bob ${s3.Ada[ids.Bob].video.framesDecoded} frames (was ${s2.Ada[ids.Bob].video.framesDecoded}), Bob decodes Ada ${s3.Bob[ids.Ada].video.framesDecoded} (was ${s2.Bob[ids.Ada].video.framesDecoded})`);

  for (const n of [...names, 'Dora']) {
    const p = n === 'Dora' ? dora : pages[n];
    const errors = await pageErrors(p);
    assert.deepEqual(errors, [], `${n} got errors`);
  }
});

test('a participant whose camera and microphone are denied joins through the name prompt as a viewer', async () => {
  const room = `e2e-viewer-${process.pid}`;
  const pat = await open(room, 'Pat');
  const patId = await ownId(pat);
  const page = await suite.page('Viv');
  // What a browser does when the person clicks "Block".
  await page.addInitScript(() => {
    navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
  });
  await page.goto(`${suite.srv.url}/r/${room}`);
  assert.ok(await page.isVisible('#prompt'), 'no name in the link: the prompt shows');
  await page.fill('#name-input', '<b>Viv</b>');
  await page.click('#prompt button[type=submit]');
  assert.match(await page.textContent('#prompt-error'), /letters, digits/);
  await page.fill('#name-input', 'Viv');
  await page.click('#prompt button[type=submit]');
  await waitJoined(page, 20000);
  assert.match(page.url(), /\?name=Viv$/);
  assert.match(await page.textContent('#banner'), /denied: you joined as a viewer/);
  const received = await waitForMedia(page, [patId], 'the viewer receiving Pat');
  assert.ok(received[patId].video.frameWidth > 0);
  assert.equal(await page.evaluate(() => window.sfuTest.peerConnections().send), null, 'nothing published');

  // Pat sees Viv's tile without video; Pat's mute shows on Viv's side.
  const vivId = await ownId(page);
  await pat.waitForFunction((id) => {
    const t = document.querySelector(`.tile[data-peer-id="${id}"]`);
    return t && t.classList.contains('no-video') && t.textContent.includes('Viv');
  }, vivId, { timeout: 5000 });
  await pat.click('#mic');
  await page.waitForFunction((id) => {
    const b = document.querySelector(`.tile[data-peer-id="${id}"] .badges`);
    return b && b.textContent.includes('mic off');
  }, patId, { timeout: 5000 });
  await pat.click('#cam');
  await page.waitForFunction((id) => {
    const t = document.querySelector(`.tile[data-peer-id="${id}"]`);
    return t && t.classList.contains('no-video') && t.textContent.includes('camera off');
  }, patId, { timeout: 5000 });
  assert.deepEqual(await pageErrors(page), []);
});
