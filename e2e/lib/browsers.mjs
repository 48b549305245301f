// Real browsers: Debian's Chromium through playwright-core, Firefox ESR through
// puppeteer-core (WebDriver BiDi). Flags and prefs from shared/real-clients.md.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/lib/chromium/chromium';
export const FIREFOX = process.env.FIREFOX_PATH || '/usr/bin/firefox-esr';

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-dev-shm-usage',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  // Remote audio plays without a click (the test has no user gesture).
  '--autoplay-policy=no-user-gesture-required',
];

const tmpDirs = [];
function tmp(prefix) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.push(d);
  return d;
}

export function removeTmpDirs() {
  for (const d of tmpDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

/**
 * A Chromium browser context (its own profile) with fake camera and microphone.
 * `extraArgs` are added to (or, for the same flag, replace) the default flags.
 * `executablePath` may be a wrapper (lib/netlab.mjs enters a namespace); `loopback: false`
 * leaves out --allow-loopback-in-peer-connection, for pages on a non-loopback address.
 */
export async function launchChromium(extraArgs = [], { executablePath = CHROMIUM, loopback = true } = {}) {
  const flag = (a) => a.split('=')[0];
  const base = loopback ? CHROMIUM_ARGS : CHROMIUM_ARGS.filter((a) => a !== '--allow-loopback-in-peer-connection');
  const args = [...base.filter((a) => !extraArgs.some((x) => flag(x) === flag(a))), ...extraArgs];
  return chromium.launchPersistentContext(tmp('e2e-chromium-'), {
    executablePath,
    headless: true,
    args,
    viewport: { width: 1280, height: 800 },
  });
}

/** Firefox ESR with fake devices, loopback ICE and camera/microphone granted to `origin`. */
export async function launchFirefox(origin) {
  const dir = tmp('e2e-firefox-');
  const perms = path.join(dir, 'permissions.txt');
  fs.writeFileSync(perms, `origin\tcamera\t1\t${origin}\norigin\tmicrophone\t1\t${origin}\n`);
  return puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    extraPrefsFirefox: {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'media.peerconnection.ice.loopback': true,
      'media.peerconnection.ice.obfuscate_host_addresses': false,
      'media.autoplay.default': 0,
      'media.autoplay.blocking_policy': 0,
      'permissions.manager.defaultsUrl': `file://${perms}`,
    },
  });
}

/** Stats of the page's receive side, per other participant (the page's test hook, signaling/src/web/room/testhook.js). */
export function inbound(page) {
  return page.evaluate(() => window.sfuTest.inboundStats());
}

/** Per-page log of console errors and page errors, for failure messages. */
export function recordConsole(page, label, sink) {
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') sink.push(`[${label}] console.${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => sink.push(`[${label}] pageerror: ${e.message}`));
}
