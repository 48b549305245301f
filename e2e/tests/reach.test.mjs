// Reaching the SFU from networks that are not open loopback UDP (issue 14):
//  (a) ICE over TCP: a participant whose namespace drops every UDP datagram it sends
//      (nftables) still receives and sends video and audio; its selected candidate pairs
//      are TCP, the other participant's stay UDP.
//  (b) TURN: a participant that may send only to the signaling port and to coturn's
//      (Debian `coturn`, in the server's namespace, REST API credentials from the
//      `ice_servers` setting) joins through a relay candidate.
//  (c) IPv6: signaling and daemon on an IPv6 address only, two pages call over it.
// All three need root: (a) and (b) build a network lab (lib/netlab.mjs), (c) a namespace
// with an IPv6 interface.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { NetLab, canMakeNamespaces } from '../lib/netlab.mjs';
import { CHROMIUM, launchChromium, recordConsole, removeTmpDirs } from '../lib/browsers.mjs';
import { signalingBin } from '../lib/server.mjs';
import { waitFor, waitForMedia } from '../lib/wait.mjs';
import { waitJoined, ownId } from '../lib/page.mjs';

const TURN_SECRET = 'e2e-turn-secret';
const logs = [];

after(() => {
  removeTmpDirs();
  if (process.exitCode) for (const l of logs) console.error(l);
});

/** Each peer connection's selected candidate pair, as getStats tells it. */
function selectedPaths(page) {
  return page.evaluate(async () => {
    const out = {};
    for (const [kind, pc] of [['send', window.sfuTest.peerConnections().send], ['recv', window.sfuTest.peerConnections().recv]]) {
      if (!pc) continue;
      const stats = await pc.getStats();
      let pair = null;
      stats.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
      });
      if (!pair || pair.state !== 'succeeded') continue;
      const local = stats.get(pair.localCandidateId);
      const remote = stats.get(pair.remoteCandidateId);
      out[kind] = {
        protocol: local.protocol,
        localType: local.candidateType,
        relayProtocol: local.relayProtocol,
        remoteProtocol: remote.protocol,
        remoteAddress: remote.address,
      };
    }
    return out;
  });
}

const bothSelected = (p) => Boolean(p.send && p.recv);

/** Joins `room` as `name` in the lab; returns { ctx, page, id }. */
async function labJoin(lab, client, room, name) {
  const ctx = await lab.chromium(client);
  const page = await ctx.newPage();
  recordConsole(page, name, logs);
  await page.goto(`${lab.url}/r/${room}?name=${name}`);
  await waitJoined(page, 30000);
  const id = await ownId(page);
  return { ctx, page, id };
}

test('a participant whose network drops UDP calls over ICE-TCP', { skip: !canMakeNamespaces() && 'needs root (network namespaces)' }, async () => {
  const lab = new NetLab();
  const people = [];
  try {
    await lab.server();
    const open = lab.client('open');
    const blocked = lab.client('noudp');
    lab.firewall(blocked, `table inet e2e {
      chain out { type filter hook output priority 0; policy accept; meta l4proto udp drop; }
    }`);
    const room = `e2e-tcp-${process.pid}`;
    const a = await labJoin(lab, open, room, 'open');
    const b = await labJoin(lab, blocked, room, 'noudp');
    people.push(a, b);
    await waitForMedia(b.page, [a.id], 'the UDP-blocked participant decodes the other', 45000);
    await waitForMedia(a.page, [b.id], 'the other decodes the UDP-blocked participant', 45000);
    const tcp = await waitFor('the blocked participant\'s selected pairs', () => selectedPaths(b.page), bothSelected);
    for (const side of ['send', 'recv']) {
      assert.equal(tcp[side].protocol, 'tcp', `${side}: ${JSON.stringify(tcp)}`);
      assert.equal(tcp[side].remoteProtocol, 'tcp', `${side}: ${JSON.stringify(tcp)}`);
      assert.equal(tcp[side].remoteAddress, lab.serverIp);
    }
    const udp = await waitFor('the open participant\'s selected pairs', () => selectedPaths(a.page), bothSelected);
    assert.equal(udp.send.protocol, 'udp', JSON.stringify(udp));
    assert.equal(udp.recv.protocol, 'udp', JSON.stringify(udp));
    // The daemon counted the frames it sent over TCP (Prometheus, summed over workers).
    const sent = [...lab.metrics().matchAll(/^sfu_worker_tcp_frames_sent_total\{[^}]*\} (\d+)/gm)]
      .reduce((sum, m) => sum + Number(m[1]), 0);
    assert.ok(sent > 0, `tcp frames sent: ${sent}`);
  } finally {
    for (const p of people) await p.ctx.close().catch(() => {});
    await lab.close();
  }
});

test('a participant that reaches only coturn joins through a relay', { skip: !canMakeNamespaces() && 'needs root (network namespaces)' }, async () => {
  const lab = new NetLab();
  const people = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-turn-'));
  try {
    const ip = lab.serverIp;
    lab.serverProcess('/usr/bin/turnserver', ['-n', '--listening-ip', ip, '--relay-ip', ip,
      '--listening-port', '3478', '--min-port', '49160', '--max-port', '49200', '--use-auth-secret',
      '--static-auth-secret', TURN_SECRET, '--realm', 'e2e', '--no-tls', '--no-dtls', '--no-cli',
      '--allowed-peer-ip', ip, '--no-stdout-log', '--log-file', path.join(dir, 'turn.log')]);
    const config = path.join(dir, 'signaling.toml');
    fs.writeFileSync(config, `[[ice_servers]]\nurls = ["turn:${ip}:3478?transport=udp"]\nsecret = "${TURN_SECRET}"\n`);
    await lab.server(['--config', config]);
    const signalingPort = new URL(lab.url).port;
    const open = lab.client('open');
    const relayed = lab.client('relayed');
    // Only the page's own server (HTTP, WebSocket) and the TURN server: no route to the
    // SFU's media ports, UDP or TCP.
    lab.firewall(relayed, `table inet e2e {
      chain out { type filter hook output priority 0; policy drop;
        oif lo accept;
        ip daddr ${ip} tcp dport ${signalingPort} accept;
        ip daddr ${ip} udp dport 3478 accept;
      }
    }`);
    const room = `e2e-turn-${process.pid}`;
    const a = await labJoin(lab, open, room, 'open');
    const b = await labJoin(lab, relayed, room, 'relayed');
    people.push(a, b);
    await waitForMedia(b.page, [a.id], 'the relayed participant decodes the other', 45000);
    await waitForMedia(a.page, [b.id], 'the other decodes the relayed participant', 45000);
    const paths = await waitFor('the relayed participant\'s selected pairs', () => selectedPaths(b.page), bothSelected);
    for (const side of ['send', 'recv']) {
      assert.equal(paths[side].localType, 'relay', `${side}: ${JSON.stringify(paths)}`);
    }
  } finally {
    for (const p of people) await p.ctx.close().catch(() => {});
    await lab.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('two pages call over IPv6', { skip: !canMakeNamespaces() && 'needs root (network namespaces)' }, async () => {
  // Chromium gathers no candidates on IPv6 loopback, so the namespace gets an interface
  // with an IPv6 unique local address. Nothing about the namespace's addresses may change
  // once the pages load (Chromium aborts the page's requests with ERR_NETWORK_CHANGED):
  // no duplicate address detection on that address, and no link-local addresses, whose
  // detection would end a second or two after the links come up. Server and browsers
  // run inside it.
  const ns = `sfuv6${process.pid}`;
  const ip = 'fd00:77::1';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-v6-'));
  const sh = (...args) => execFileSync('ip', ['-n', ns, ...args]);
  execFileSync('ip', ['netns', 'add', ns]);
  let server = null;
  const contexts = [];
  try {
    sh('link', 'set', 'lo', 'up');
    // A veth pair inside the namespace (this kernel has no dummy interfaces).
    sh('link', 'add', 'v6', 'type', 'veth', 'peer', 'name', 'v6peer');
    sh('link', 'set', 'v6', 'addrgenmode', 'none');
    sh('link', 'set', 'v6peer', 'addrgenmode', 'none');
    sh('addr', 'add', `${ip}/64`, 'dev', 'v6', 'nodad');
    sh('link', 'set', 'v6peer', 'up');
    sh('link', 'set', 'v6', 'up');
    server = spawn('ip', ['netns', 'exec', ns, signalingBin, '--listen', `[${ip}]:0`, '--workers', '2'],
      { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SFU_SIGNALING_LOG: 'warn' } });
    const url = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('sfu-signaling printed no URL')), 30000);
      readline.createInterface({ input: server.stdout }).on('line', (line) => {
        const m = /open (http:\/\/\S+)/.exec(line);
        if (m) { clearTimeout(timer); resolve(m[1].replace(/\/$/, '')); }
      });
    });
    assert.match(url, /\[fd00:77::1\]/);
    const wrapper = path.join(dir, 'chromium');
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns} ${CHROMIUM} "$@"\n`, { mode: 0o755 });
    const room = `e2e-v6-${process.pid}`;
    const pages = [];
    for (const name of ['ada', 'bob']) {
      const ctx = await launchChromium([`--unsafely-treat-insecure-origin-as-secure=${url}`],
        { executablePath: wrapper, loopback: false });
      contexts.push(ctx);
      const page = await ctx.newPage();
      recordConsole(page, `v6/${name}`, logs);
      await page.goto(`${url}/r/${room}?name=${name}`);
      await waitJoined(page, 20000);
      pages.push({ page, id: await ownId(page) });
    }
    await waitForMedia(pages[0].page, [pages[1].id], 'ada decodes bob over IPv6');
    await waitForMedia(pages[1].page, [pages[0].id], 'bob decodes ada over IPv6');
    const paths = await waitFor('selected pairs', () => selectedPaths(pages[0].page), bothSelected);
    assert.equal(paths.send.remoteAddress, ip, JSON.stringify(paths));
    assert.equal(paths.recv.remoteAddress, ip, JSON.stringify(paths));
    assert.equal(paths.send.protocol, 'udp', JSON.stringify(paths));
  } finally {
    for (const c of contexts) await c.close().catch(() => {});
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    }
    execFileSync('ip', ['netns', 'del', ns]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
