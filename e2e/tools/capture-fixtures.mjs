// Captures real send-side offers and receive capabilities from Chromium and Firefox ESR, for
// the SDP translation tests in signaling/tests/fixtures. Run inside a network namespace:
//   unshare -n sh -c 'ip link set lo up; node e2e/tools/capture-fixtures.mjs OUTDIR'
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';

const out = process.argv[2] ?? '.';
const server = http.createServer((req, res) => {
  res.setHeader('content-type', 'text/html');
  res.end('<!doctype html><title>capture</title>');
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${server.address().port}/`;

// `simulcast`: the camera with three rid encodings, as the web client publishes it.
const capture = async (simulcast) => {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
  for (const t of stream.getTracks()) {
    const init = { direction: 'sendonly', streams: [stream] };
    if (simulcast && t.kind === 'video') {
      init.sendEncodings = [
        { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
        { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
        { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1500000 },
      ];
    }
    pc.addTransceiver(t, init);
  }
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  const caps = {
    audio: RTCRtpReceiver.getCapabilities('audio'),
    video: RTCRtpReceiver.getCapabilities('video'),
  };
  return { sdp: pc.localDescription.sdp, caps };
};

const chromeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cap-chromium-'));
const ctx = await chromium.launchPersistentContext(chromeDir, {
  executablePath: '/usr/lib/chromium/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns'],
});
const page = await ctx.newPage();
await page.goto(url);
const c = await page.evaluate(capture, false);
fs.writeFileSync(path.join(out, 'chromium-send-offer.sdp'), c.sdp);
fs.writeFileSync(path.join(out, 'chromium-simulcast-offer.sdp'), (await page.evaluate(capture, true)).sdp);
fs.writeFileSync(path.join(out, 'chromium-recv-caps.json'), JSON.stringify(c.caps, null, 1));
await ctx.close();

const ffDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cap-firefox-'));
const perms = path.join(ffDir, 'permissions.txt');
fs.writeFileSync(perms, `origin\tcamera\t1\t${url.slice(0, -1)}\norigin\tmicrophone\t1\t${url.slice(0, -1)}\n`);
const ff = await puppeteer.launch({
  browser: 'firefox', executablePath: '/usr/bin/firefox-esr', headless: true,
  extraPrefsFirefox: {
    'media.navigator.streams.fake': true, 'media.navigator.permission.disabled': true,
    'media.peerconnection.ice.loopback': true, 'media.peerconnection.ice.obfuscate_host_addresses': false,
    'permissions.manager.defaultsUrl': `file://${perms}`,
  },
});
const fpage = await ff.newPage();
await fpage.goto(url);
const f = await fpage.evaluate(capture, false);
fs.writeFileSync(path.join(out, 'firefox-send-offer.sdp'), f.sdp);
fs.writeFileSync(path.join(out, 'firefox-simulcast-offer.sdp'), (await fpage.evaluate(capture, true)).sdp);
fs.writeFileSync(path.join(out, 'firefox-recv-caps.json'), JSON.stringify(f.caps, null, 1));
await ff.close();
server.close();
console.log('captured');
