// HTTPS served by sfu-signaling itself (issue 14, "How it is shown"): each Chromium in its
// own network namespace opens the room at https://<server address> with a test
// certificate it trusts (by its SPKI hash; no --unsafely-treat-insecure-origin-as-secure),
// publishes its camera and microphone, and the other decodes them. Over plain http from
// that address the page cannot open the camera and says why.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NetLab, SERVER_IP, canMakeNamespaces } from '../lib/netlab.mjs';
import { recordConsole, removeTmpDirs } from '../lib/browsers.mjs';
import { waitForMedia } from '../lib/wait.mjs';
import { waitJoined, ownId } from '../lib/page.mjs';

const logs = [];
let lab = null;
/** Every browser context opened, closed at the end (an open browser keeps the test file's process alive). */
const contexts = [];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-https-'));
after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  if (lab) await lab.close();
  removeTmpDirs();
  fs.rmSync(dir, { recursive: true, force: true });
  if (process.exitCode) for (const l of logs) console.error(l);
});

/** A self-signed P-256 certificate for the server's address; returns its files and SPKI hash. */
function testCertificate() {
  const cert = path.join(dir, 'tls.crt');
  const key = path.join(dir, 'tls.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=sfu e2e', '-addext', `subjectAltName=IP:${SERVER_IP}`],
  { stdio: 'ignore' });
  // base64(sha256(SubjectPublicKeyInfo DER)): what --ignore-certificate-errors-spki-list takes.
  const pub = execFileSync('openssl', ['x509', '-in', cert, '-pubkey', '-noout']);
  const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: pub });
  const spki = execFileSync('openssl', ['dgst', '-sha256', '-binary'], { input: der }).toString('base64');
  return { cert, key, spki };
}

test('Chromium on another address opens the room over https and publishes without the insecure-origin flag',
  { skip: !canMakeNamespaces() && 'needs root for network namespaces' }, async () => {
    const { cert, key, spki } = testCertificate();
    lab = new NetLab();
    const { url } = await lab.server(['--tls-cert', cert, '--tls-key', key]);
    assert.match(url, new RegExp(`^https://${SERVER_IP.replace(/\./g, '\\.')}:\\d+$`));
    const room = `e2e-https-${process.pid}`;
    const pages = {};
    for (const name of ['Ada', 'Bob']) {
      const ctx = await lab.chromium(lab.client(name), [`--ignore-certificate-errors-spki-list=${spki}`],
        { insecureOrigin: false });
      contexts.push(ctx);
      const page = await ctx.newPage();
      recordConsole(page, name, logs);
      await page.goto(`${url}/r/${room}?name=${name}`);
      await waitJoined(page, 20000);
      const seen = await page.evaluate(() => ({
        secure: window.isSecureContext,
        camera: Boolean(document.querySelector('.tile.self video')?.srcObject?.getVideoTracks().length),
        notice: document.getElementById('insecure-notice').hidden,
      }));
      assert.deepEqual(seen, { secure: true, camera: true, notice: true }, name);
      pages[name] = page;
    }
    const id = (name) => ownId(pages[name]);
    const [ada, bob] = [await id('Ada'), await id('Bob')];
    const got = await waitForMedia(pages.Bob, [ada], 'Bob decodes Ada over the https page', 45000);
    await waitForMedia(pages.Ada, [bob], 'Ada decodes Bob over the https page', 45000);
    assert.ok(got[ada].video.frameWidth > 0);
    console.log(`# over https: Bob decoded ${got[ada].video.framesDecoded} frames of Ada (${got[ada].video.frameWidth}x${got[ada].video.frameHeight})`);

    // The same page over plain http from another address: no camera, and the page says why.
    const plain = await lab.server([]);
    assert.match(plain.url, /^http:\/\//);
    const ctx = await lab.chromium(lab.client('Cy'), [], { insecureOrigin: false });
    contexts.push(ctx);
    const page = await ctx.newPage();
    recordConsole(page, 'Cy', logs);
    await page.goto(`${plain.url}/r/${room}?name=Cy`);
    await waitJoined(page, 20000);
    const notice = page.locator('#insecure-notice');
    assert.ok(await notice.isVisible(), 'the insecure-page notice is shown');
    assert.match(await notice.textContent(), /not secure/);
    assert.equal(await page.evaluate(() => Boolean(document.querySelector('.tile.self video')?.srcObject?.getVideoTracks().length)),
      false, 'joined as a viewer: no camera');
  });
