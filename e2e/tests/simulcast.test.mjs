// Simulcast from a Chromium publisher (issue 13, "How it is shown"): a tile made small
// receives a lower layer, and the publisher stops sending an encoding nobody needs
// (dynacast), then sends it again when a tile grows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor, waitForMedia } from '../lib/wait.mjs';
import { chromiumSuite } from '../lib/suite.mjs';
import { ownId, pageErrors } from '../lib/page.mjs';

const suite = chromiumSuite();
const { open } = suite;

/**
 * What the subscriber's tile of `peerId` shows in its layer badge ("S1T2 · 480p · 300
 * kbit/s"): the layer the server forwards and the height received.
 */
function received(page, peerId) {
  return page.evaluate((id) => {
    const el = document.querySelector(`.tile[data-peer-id="${id}"] .layer`);
    const shown = el ? el.textContent : '';
    const layer = /S(\d+)/.exec(shown);
    const height = /(\d+)p/.exec(shown);
    return shown ? { shown, spatialLayer: layer ? Number(layer[1]) : null, height: height ? Number(height[1]) : 0 } : null;
  }, peerId);
}

/** The publisher's camera encodings: rids lowest first, bytes sent so far by rid, and which are active. */
function sent(page) {
  return page.evaluate(async () => {
    const pc = window.sfuTest.peerConnections().send;
    const out = { rids: [], bytes: {}, active: {} };
    if (!pc) return out;
    const tr = pc.getTransceivers().find((t) => t.sender.track && t.sender.track.kind === 'video');
    if (!tr) return out;
    for (const e of tr.sender.getParameters().encodings) {
      out.rids.push(e.rid);
      out.active[e.rid] = e.active;
    }
    for (const s of (await tr.sender.getStats()).values()) {
      if (s.type === 'outbound-rtp' && s.rid) out.bytes[s.rid] = s.bytesSent || 0;
    }
    return out;
  });
}

/** Makes every tile of the page `height` CSS pixels high (null: back to the layout's). */
function tileHeight(page, height) {
  return page.evaluate((h) => {
    for (const t of document.querySelectorAll('.tile')) t.style.height = h === null ? '' : `${h}px`;
    for (const t of document.querySelectorAll('.tile')) t.style.aspectRatio = h === null ? '' : 'auto';
  }, height);
}

test('a small tile receives a lower layer; an encoding nobody needs stops and comes back', async () => {
  const room = `e2e-simulcast-${process.pid}`;
  const pub = await open(room, 'Pub');
  const sub = await open(room, 'Sub');
  const pubId = await ownId(pub);
  await waitForMedia(sub, [pubId], 'Sub receiving Pub');
  // The publisher kept simulcast (the server took it): its own tile lists the encodings sent.
  await pub.waitForFunction(() => /^sending /.test(document.querySelector('.tile.self .layer').textContent), null, { timeout: 10000 });
  // The fake camera is 640x480: two encodings, h (320x240) and f (640x480).
  const { rids } = await sent(pub);
  assert.ok(rids.length >= 2, `simulcast encodings ${rids}`);
  const top = rids.length - 1;
  const lowest = rids[0];

  // A large tile: the top layer.
  const big = await waitFor('Sub receiving the top layer', () => received(sub, pubId),
    (r) => r && r.height >= 480 && r.spatialLayer === top, { timeout: 20000 });
  assert.match(big.shown, new RegExp(`S${top}`));

  // Small tiles: layer 0 on Sub's side...
  await tileHeight(sub, 120);
  const small = await waitFor('Sub receiving the lowest layer', () => received(sub, pubId),
    (r) => r && r.spatialLayer === 0 && r.height > 0 && r.height < 480, { timeout: 20000 });
  // ...and nobody needs the upper ones: Pub turns them off and stops sending them.
  await waitFor('Pub told to stop its upper encodings', () => sent(pub),
    (s) => s.rids.every((rid, i) => s.active[rid] === (i === 0)), { timeout: 15000 });
  const a = await sent(pub);
  await waitFor(`Pub sending ${lowest} only`, () => sent(pub),
    (s) => s.bytes[lowest] > a.bytes[lowest] + 1000 && s.rids.slice(1).every((rid) => s.bytes[rid] === a.bytes[rid]),
    { timeout: 10000 });
  const own = await pub.evaluate(() => document.querySelector('.tile.self .layer').textContent);
  assert.equal(own, `sending ${lowest}`);

  // The tile grows back: the top encoding is sent again and Sub climbs back to it.
  await tileHeight(sub, null);
  await waitFor('Pub sending its top encoding again', () => sent(pub), (s) => s.active[s.rids[top]] === true, { timeout: 5000 });
  const back = await waitFor('Sub back on the top layer', () => received(sub, pubId),
    (r) => r && r.spatialLayer === top && r.height >= 480, { timeout: 30000 });
  console.log(`# Sub: ${big.shown} -> ${small.shown} -> ${back.shown}; Pub's own tile said "${own}" meanwhile`);
  for (const p of [pub, sub]) assert.deepEqual(await pageErrors(p), []);
});
