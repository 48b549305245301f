// The room page's features through its visible controls (issue 15, "How it is shown"):
// the pre-join screen with a device choice, text chat (to everyone, a late joiner in
// Firefox included), a screen share seen by Chromium and Firefox, and the layouts (grid,
// speaker view following who speaks, pin, stats overlay, keyboard, notices, a phone).
// Screenshots go to e2e/artifacts (README.md shows them from docs/screenshots).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { repo } from '../lib/server.mjs';
import { inbound, launchFirefox } from '../lib/browsers.mjs';
import { waitFor, waitForMedia } from '../lib/wait.mjs';
import { chromiumSuite } from '../lib/suite.mjs';
import { ownId, pageErrors, waitJoined } from '../lib/page.mjs';

const artifacts = path.join(repo, 'e2e', 'artifacts');
fs.mkdirSync(artifacts, { recursive: true });
const suite = chromiumSuite();
const { open } = suite;
// Two fake cameras, so that there is a choice to make.
const TWO_CAMERAS = ['--use-fake-device-for-media-stream=device-count=2'];

let firefox = null;
after(async () => {
  if (firefox) await firefox.close().catch(() => {});
});

/** The chat log as the page shows it: [{name, text}]. Works in Playwright and Puppeteer. */
function chatLog(page) {
  return page.evaluate(() => [...document.querySelectorAll('#chat-log li')].map((li) => ({
    name: li.querySelector('.chat-name').textContent,
    text: li.querySelector('.chat-text').textContent,
    time: li.querySelector('time').textContent,
  })));
}

const unreadBadge = (page) => page.evaluate(() => {
  const b = document.getElementById('chat-unread');
  return b.hidden ? null : b.textContent;
});

/**
 * Ends a test's call: closes its pages (Chromium: the page's whole browser; Firefox: the
 * tab), so that the next test has the cores to itself.
 */
async function hangUp(...pages) {
  for (const p of pages) {
    if (typeof p.context === 'function') await p.context().close().catch(() => {});
    else await p.close().catch(() => {});
  }
}

const tileOf = (page, id) => page.locator(`.tile[data-peer-id="${id}"]`);

test('pre-join: preview, level, camera and microphone chosen, joined with camera off; the choice is remembered', async () => {
  const room = `e2e-prejoin-${process.pid}`;
  const bob = await open(room, 'Bob');
  const bobId = await ownId(bob);
  const ann = await suite.page('Ann', TWO_CAMERAS);
  await ann.goto(`${suite.srv.url}/r/${room}`);
  await ann.waitForSelector('#prompt', { state: 'visible' });
  // The preview plays and the microphone meter moves (the fake microphone beeps).
  await ann.waitForFunction(() => document.getElementById('preview').videoWidth > 0, null, { timeout: 10000 });
  await waitFor('the microphone level to move', () => ann.evaluate(() => document.getElementById('mic-level').value),
    (v) => v > 0.01, { timeout: 10000 });
  const cameras = await ann.locator('#camera-select option').evaluateAll((os) => os.map((o) => ({ id: o.value, label: o.textContent })));
  assert.ok(cameras.length >= 2, `two cameras offered: ${JSON.stringify(cameras)}`);
  assert.equal(await ann.inputValue('#camera-select'), cameras[0].id);
  await ann.screenshot({ path: path.join(artifacts, 'prejoin.png') });

  // The second camera: the preview restarts on it. (Chromium's second fake camera
  // delivers Y16 depth frames, which its encoder does not send: back to the first one.)
  const previewOn = (id) => ann.waitForFunction((dev) => {
    const v = document.getElementById('preview');
    const t = v.srcObject && v.srcObject.getVideoTracks()[0];
    return t && t.readyState === 'live' && t.getSettings().deviceId === dev;
  }, id, { timeout: 10000 });
  await ann.selectOption('#camera-select', cameras[1].id);
  await previewOn(cameras[1].id);
  await ann.selectOption('#camera-select', cameras[0].id);
  await previewOn(cameras[0].id);
  // Another microphone than the default one.
  const mics = await ann.locator('#mic-select option').evaluateAll((os) => os.map((o) => o.value));
  assert.ok(mics.length >= 2, `microphones offered: ${mics}`);
  const mic = mics[mics.length - 1];
  await ann.selectOption('#mic-select', mic);
  await ann.waitForFunction((dev) => {
    const v = document.getElementById('preview');
    const t = v.srcObject && v.srcObject.getAudioTracks()[0];
    return t && t.readyState === 'live' && t.getSettings().deviceId === dev;
  }, mic, { timeout: 10000 });

  await ann.fill('#name-input', 'Ann');
  await ann.check('#join-camera-off');
  await ann.click('#join');
  await waitJoined(ann);
  const annId = await ownId(ann);
  // Camera off from the start: her own tile and Bob's tile of her say so; Bob hears her.
  await ann.waitForFunction(() => document.querySelector('.tile.self .badges').textContent.includes('camera off'), null, { timeout: 5000 });
  assert.equal(await ann.getAttribute('#cam', 'aria-pressed'), 'true');
  await bob.waitForFunction((id) => {
    const t = document.querySelector(`.tile[data-peer-id="${id}"]`);
    return t && t.classList.contains('no-video') && t.querySelector('.badges').textContent.includes('camera off');
  }, annId, { timeout: 10000 });
  await waitFor('Bob hearing Ann', () => inbound(bob), (st) => st[annId] && st[annId].audio && st[annId].audio.packetsReceived > 50);
  await waitForMedia(ann, [bobId], 'Ann receiving Bob');
  assert.ok(await tileOf(bob, annId).isVisible());

  // Another room in the same browser: the name and the microphone are remembered.
  const again = await ann.context().newPage();
  await again.goto(`${suite.srv.url}/r/${room}-again`);
  await again.waitForFunction(() => document.getElementById('mic-select').options.length >= 2, null, { timeout: 10000 });
  assert.equal(await again.inputValue('#mic-select'), mic);
  assert.equal(await again.inputValue('#camera-select'), cameras[0].id);
  assert.equal(await again.inputValue('#name-input'), 'Ann');
  await again.close();
  for (const p of [ann, bob]) assert.deepEqual(await pageErrors(p), []);
  await hangUp(ann, bob);
});

test('chat: delivered to everyone, shown as text, unread badge, history for a late joiner in Firefox', async () => {
  const room = `e2e-chat-${process.pid}`;
  const ann = await open(room, 'Ann');
  const bob = await open(room, 'Bob');
  await ann.click('#chat-toggle');
  assert.equal(await ann.getAttribute('#chat-toggle', 'aria-expanded'), 'true');
  const markup = '<img src=x onerror="document.title=1"> <b>bold?</b>';
  for (const text of ['Hello everyone', markup]) {
    await ann.fill('#chat-input', text);
    await ann.click('#chat-send');
  }
  await waitFor('Ann seeing her own messages', () => chatLog(ann), (l) => l.length === 2);
  assert.equal(await ann.inputValue('#chat-input'), '', 'the input is cleared after sending');
  // Bob has the panel closed: a badge counts what he has not read.
  assert.equal(await waitFor('Bob\'s unread badge', () => unreadBadge(bob), (b) => b === '2'), '2');
  await bob.click('#chat-toggle');
  const inBob = await chatLog(bob);
  assert.deepEqual(inBob.map((m) => [m.name, m.text]), [['Ann', 'Hello everyone'], ['Ann', markup]]);
  assert.match(inBob[0].time, /^\d\d:\d\d$/);
  assert.equal(await bob.locator('#chat-log img, #chat-log b').count(), 0, 'text, never markup');
  assert.equal(await unreadBadge(bob), null);
  // Bob answers with the keyboard (Enter sends).
  await bob.fill('#chat-input', 'Hi Ann');
  await bob.press('#chat-input', 'Enter');
  await waitFor('Ann getting Bob\'s answer', () => chatLog(ann), (l) => l.length === 3 && l[2].text === 'Hi Ann' && l[2].name === 'Bob');

  // A late joiner, in Firefox: the history is there when she opens the chat.
  firefox = await launchFirefox(suite.srv.url);
  const cat = await firefox.newPage();
  await cat.goto(`${suite.srv.url}/r/${room}?name=Cat`);
  await waitJoined(cat, 20000);
  await cat.click('#chat-toggle');
  const inCat = await waitFor('the history in Cat\'s chat', () => chatLog(cat), (l) => l.length === 3);
  assert.deepEqual(inCat.map((m) => [m.name, m.text]), [['Ann', 'Hello everyone'], ['Ann', markup], ['Bob', 'Hi Ann']]);
  await cat.type('#chat-input', 'Hi both, from Firefox');
  await cat.click('#chat-send');
  for (const p of [ann, bob]) {
    await waitFor('Cat\'s message', () => chatLog(p), (l) => l.length === 4 && l[3].name === 'Cat');
  }
  await bob.screenshot({ path: path.join(artifacts, 'chat.png') });
  for (const p of [ann, bob, cat]) assert.deepEqual(await pageErrors(p), []);
  await hangUp(ann, bob, cat);
});

test('screen share: seen by the others (Chromium and Firefox) as its own large tile with decoded frames; stops', async () => {
  const room = `e2e-screen-${process.pid}`;
  const ann = await open(room, 'Ann');
  const bob = await open(room, 'Bob');
  const annId = await ownId(ann);
  firefox = firefox || await launchFirefox(suite.srv.url);
  const fox = await firefox.newPage();
  await fox.goto(`${suite.srv.url}/r/${room}?name=Fox`);
  await waitJoined(fox, 20000);

  await ann.click('#share');
  await ann.waitForSelector('.tile.screen.self-screen', { timeout: 10000 });
  assert.equal(await ann.textContent('#share'), 'Stop sharing');
  // Both others decode it, on a tile of its own that leads the layout.
  for (const [label, page] of [['Bob', bob], ['Fox', fox]]) {
    const st = await waitFor(`${label} decoding Ann's screen`, () => inbound(page),
      (s) => s[annId] && s[annId].screen && s[annId].screen.framesDecoded > 10 && s[annId].screen.frameWidth > 0);
    const tile = await waitFor(`${label}'s screen tile of Ann`, () => page.evaluate((id) => {
      const t = document.querySelector(`.tile.screen[data-peer-id="${id}"]`);
      const cam = document.querySelector(`.tile:not(.screen)[data-peer-id="${id}"]`);
      if (!t || !cam) return null;
      return {
        name: t.querySelector('.name').textContent,
        playing: t.querySelector('video').videoWidth > 0,
        larger: t.getBoundingClientRect().width > 1.5 * cam.getBoundingClientRect().width,
        first: document.querySelector('#grid .tile') === t,
      };
    }, annId), (t) => t && t.playing);
    assert.deepEqual(tile, { name: 'Ann (screen)', playing: true, larger: true, first: true }, label);
    console.log(`# ${label} decodes Ann's screen: ${st[annId].screen.framesDecoded} frames at ${st[annId].screen.frameWidth}x${st[annId].screen.frameHeight}`);
  }
  await bob.screenshot({ path: path.join(artifacts, 'screen-share.png') });

  // Stopping: the screen tile goes everywhere; the camera stays.
  await ann.click('#share');
  for (const page of [bob, fox]) {
    await waitFor('the screen tile to go', () => page.evaluate((id) => ({
      screen: Boolean(document.querySelector(`.tile.screen[data-peer-id="${id}"]`)),
      camera: Boolean(document.querySelector(`.tile[data-peer-id="${id}"]`)),
    }), annId), (t) => !t.screen && t.camera);
  }
  assert.equal(await ann.textContent('#share'), 'Share screen');
  await waitForMedia(bob, [annId], 'Bob still receiving Ann\'s camera');
  for (const p of [ann, bob, fox]) assert.deepEqual(await pageErrors(p), []);
  await hangUp(ann, bob, fox);
});

/** Which tile leads the page's layout: its data-key, or null in a plain grid. */
const mainTile = (page) => page.evaluate(() => {
  const t = document.querySelector('#grid.featured .tile.main');
  return t ? t.dataset.key : null;
});
const noticesText = (page) => page.evaluate(() => document.getElementById('notices').textContent);

test('layouts: a 4-person grid, speaker view following who speaks, pin, stats, shortcuts, notices, phone', async () => {
  const room = `e2e-layout-${process.pid}`;
  const ann = await open(room, 'Ann');
  const others = {};
  for (const n of ['Bob', 'Cat']) {
    others[n] = await open(room, n);
    // Only Ann speaks at first: the others mute (a muted track is silent).
    await others[n].click('#mic');
  }
  const dan = await open(room, 'Dan');
  await dan.keyboard.press('m');
  assert.equal(await dan.getAttribute('#mic', 'aria-pressed'), 'true', 'M mutes');
  const { Bob: bob, Cat: cat } = others;
  await waitFor('Ann told that Dan joined', () => noticesText(ann), (t) => t.includes('Dan joined'), { timeout: 5000 });
  const id = { Ann: await ownId(ann), Bob: await ownId(bob), Cat: await ownId(cat) };
  await waitFor('Dan\'s four tiles playing', () => dan.evaluate(() => [...document.querySelectorAll('.tile')]
    .map((t) => `${t.dataset.key}:${t.querySelector('video').videoWidth}:${t.className}`)),
  (tiles) => tiles.length === 4 && tiles.every((t) => !/:0:/.test(t)), { timeout: 30000 });
  assert.equal(await mainTile(dan), null, 'a plain grid');
  await dan.screenshot({ path: path.join(artifacts, 'grid-4.png') });

  // Speaker view (L): Ann, the only one speaking, leads.
  await dan.keyboard.press('l');
  assert.equal(await dan.getAttribute('#layout', 'aria-pressed'), 'true');
  await waitFor('Ann leading Dan\'s speaker view', () => mainTile(dan), (k) => k === id.Ann);
  // Ann mutes, Bob speaks: the view follows him.
  await ann.keyboard.press('m');
  await bob.click('#mic');
  await waitFor('Bob leading Dan\'s speaker view', () => mainTile(dan), (k) => k === id.Bob, { timeout: 30000 });
  assert.equal(await ann.getAttribute('#mic', 'aria-pressed'), 'true', 'M mutes Ann too');

  // Pin Cat: she leads whoever speaks; unpin: Bob again.
  await dan.click(`.tile[data-key="${id.Cat}"] .pin`);
  await waitFor('Cat pinned', () => mainTile(dan), (k) => k === id.Cat);
  assert.equal(await dan.getAttribute(`.tile[data-key="${id.Cat}"] .pin`, 'aria-pressed'), 'true');
  await dan.click(`.tile[data-key="${id.Cat}"] .pin`);
  await waitFor('Bob back', () => mainTile(dan), (k) => k === id.Bob);

  // The stats overlay of Bob's tile: bitrate, resolution, frame rate, loss, RTT.
  await dan.click(`.tile[data-key="${id.Bob}"] .stats-toggle`);
  const stats = await waitFor('Bob\'s stats overlay', () => dan.textContent(`.tile[data-key="${id.Bob}"] .stats`),
    (t) => /Bitrate \d+ kbit\/s/.test(t) && /Resolution \d+×\d+/.test(t) && /Frame rate \d+ fps/.test(t) && /RTT \d+ ms/.test(t));
  console.log(`# Dan's stats overlay of Bob: ${stats}`);

  // Cat shares her screen: it leads the speaker view.
  await cat.click('#share');
  await waitFor('Cat\'s screen leading Dan\'s view', () => mainTile(dan), (k) => k === `${id.Cat}/screen`, { timeout: 20000 });
  await dan.waitForFunction((key) => document.querySelector(`.tile[data-key="${key}"] video`).videoWidth > 0, `${id.Cat}/screen`, { timeout: 20000 });
  await dan.screenshot({ path: path.join(artifacts, 'speaker-view-screen-share.png') });

  // A phone, 390 px wide: nothing wider than the screen, touch-sized controls.
  await dan.setViewportSize({ width: 390, height: 844 });
  const phone = await waitFor('the phone layout', () => dan.evaluate(() => ({
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    smallestButton: Math.min(...[...document.querySelectorAll('#controls button')].filter((b) => b.offsetParent)
      .map((b) => b.getBoundingClientRect().height)),
    mainWidth: document.querySelector('.tile.main').getBoundingClientRect().width,
  })), (p) => p.overflow <= 0 && p.mainWidth > 300);
  assert.ok(phone.smallestButton >= 44, `controls ${phone.smallestButton}px high`);
  await dan.screenshot({ path: path.join(artifacts, 'phone.png') });

  // Bob leaves: Dan is told.
  await bob.click('#leave');
  await waitFor('Dan told that Bob left', () => noticesText(dan), (t) => t.includes('Bob left'), { timeout: 5000 });
  for (const p of [ann, cat, dan]) assert.deepEqual(await pageErrors(p), []);
  await hangUp(ann, bob, cat, dan);
});
