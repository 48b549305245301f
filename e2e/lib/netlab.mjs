// A network lab for browser tests on real-network conditions: the server and every
// participant in network namespaces of their own, each participant behind its own link
// whose rate, delay and loss the test sets (shared/real-clients.md, "Shaped and
// impaired links").
//
//   [client i: eth0 10.77.0.(10+i)] --veth-- [link i: lc | ls] --veth-- [switch: br0] --veth-- [server: eth0 10.77.0.1]
//
// The link namespace joins its two veths with a kernel bridge, or, when the link has
// delay or loss, with sfu-impair (e2e/impair: this kernel has no netem qdisc), an
// AF_PACKET relay that holds each frame for the delay and drops a seeded Bernoulli share.
// Rates are `tbf` qdiscs on the link's veths: on `lc` (toward the client) the downlink,
// on `ls` (toward the switch) the uplink. GSO is off on every veth so frames stay
// MTU-sized through the relay and the shaper.
//
// Needs root (run.sh runs inside `unshare -n`; namespaces made here are named ones, torn
// down by close()). Only addresses inside these namespaces carry traffic.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { signalingBin, metricsToken, repo } from './server.mjs';
import { CHROMIUM, launchChromium } from './browsers.mjs';

const targetDir = process.env.CARGO_TARGET_DIR || path.join(repo, 'target');
const impairBin = process.env.SFU_IMPAIR_BIN || path.join(targetDir, 'debug', 'sfu-impair');
export const SERVER_IP = '10.77.0.1';

function run(...args) {
  return execFileSync(args[0], args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

function inNs(ns, ...args) {
  return run('ip', 'netns', 'exec', ns, ...args);
}

/** Whether this process may make namespaces (root), for tests to skip with a reason. */
export function canMakeNamespaces() {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * The lab: `lab.server(args)` starts sfu-signaling in the server namespace, `lab.client(name,
 * link)` makes a participant's namespace behind a link ({ downKbit, upKbit, delayMs, lossPct }),
 * `lab.chromium(client, extraArgs)` launches Chromium inside it, `lab.close()` tears it all down.
 */
export class NetLab {
  constructor() {
    // Namespace names unique to this process, so concurrent runs do not collide.
    this.prefix = `sfulab${process.pid}`;
    this.namespaces = [];
    this.children = [];
    this.clients = 0;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-netlab-'));
    this.sw = this.ns('sw');
    inNs(this.sw, 'ip', 'link', 'add', 'br0', 'type', 'bridge');
    inNs(this.sw, 'ip', 'link', 'set', 'br0', 'up');
    this.srv = this.ns('srv');
    this.attach(this.srv, 'eth0', `${SERVER_IP}/24`, 'srv');
  }

  ns(name) {
    const full = `${this.prefix}-${name}`;
    run('ip', 'netns', 'add', full);
    this.namespaces.push(full);
    // IPv4 only: an IPv6 link-local address appearing after duplicate address detection
    // is a network change to Chromium, which then aborts a navigation under way
    // (ERR_NETWORK_CHANGED).
    inNs(full, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1');
    inNs(full, 'ip', 'link', 'set', 'lo', 'up');
    return full;
  }

  /** A veth from `ns` (named `ifname`, with `addr`) to the switch's bridge. */
  attach(ns, ifname, addr, tag) {
    const peer = `s-${tag}`;
    run('ip', '-n', this.sw, 'link', 'add', peer, 'type', 'veth', 'peer', 'name', ifname, 'netns', ns);
    noGso(this.sw, peer);
    noGso(ns, ifname);
    run('ip', '-n', this.sw, 'link', 'set', peer, 'master', 'br0', 'up');
    if (addr) run('ip', '-n', ns, 'addr', 'add', addr, 'dev', ifname);
    run('ip', '-n', ns, 'link', 'set', ifname, 'up');
  }

  /**
   * A participant's namespace behind its own link: { downKbit, upKbit } shape the rate
   * (tbf), { delayMs, lossPct } add one-way delay and loss in both directions (sfu-impair).
   * Returns { ns, ip, link }.
   */
  client(name, link = {}) {
    this.clients += 1;
    const i = this.clients;
    const ip = `10.77.0.${10 + i}`;
    const cns = this.ns(`c${i}`);
    const lns = this.ns(`l${i}`);
    // client eth0 <-> link lc
    run('ip', '-n', lns, 'link', 'add', 'lc', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', cns);
    noGso(lns, 'lc');
    noGso(cns, 'eth0');
    run('ip', '-n', cns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0');
    run('ip', '-n', cns, 'link', 'set', 'eth0', 'up');
    // link ls <-> switch
    this.attach(lns, 'ls', null, `l${i}`);
    run('ip', '-n', lns, 'link', 'set', 'lc', 'up');
    const impaired = (link.delayMs || 0) > 0 || (link.lossPct || 0) > 0;
    if (impaired) {
      for (const dev of ['lc', 'ls']) run('ip', '-n', lns, 'link', 'set', dev, 'promisc', 'on');
      const relay = spawn('ip', ['netns', 'exec', lns, impairBin, '--a', 'lc', '--b', 'ls',
        '--delay-ms', String(link.delayMs || 0), '--loss', String(link.lossPct || 0), '--seed', String(i)],
      { stdio: ['ignore', 'ignore', 'inherit'] });
      this.children.push(relay);
    } else {
      inNs(lns, 'ip', 'link', 'add', 'lbr', 'type', 'bridge');
      run('ip', '-n', lns, 'link', 'set', 'lc', 'master', 'lbr');
      run('ip', '-n', lns, 'link', 'set', 'ls', 'master', 'lbr');
      run('ip', '-n', lns, 'link', 'set', 'lbr', 'up');
    }
    if (link.downKbit) shape(lns, 'lc', link.downKbit);
    if (link.upKbit) shape(lns, 'ls', link.upKbit);
    return { ns: cns, ip, link, name };
  }

  /**
   * Loads an nftables ruleset (nft syntax) into `client`'s namespace, e.g. to block its
   * UDP: what a corporate or hotel firewall does to WebRTC.
   */
  firewall(client, ruleset) {
    execFileSync('ip', ['netns', 'exec', client.ns, 'nft', '-f', '-'], { input: ruleset, stdio: ['pipe', 'pipe', 'pipe'] });
  }

  /**
   * A process in the server's namespace (e.g. a TURN server), stopped by close(). Returns
   * the child process.
   */
  serverProcess(bin, args) {
    const child = spawn('ip', ['netns', 'exec', this.srv, bin, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
    this.children.push(child);
    return child;
  }

  /** The server's address in the lab. */
  get serverIp() {
    return SERVER_IP;
  }

  /** sfu-signaling (which starts sfu) in the server namespace; resolves { url, stop }. */
  server(extraArgs = [], { timeoutMs = 30000 } = {}) {
    const child = spawn('ip', ['netns', 'exec', this.srv, signalingBin, '--listen', `${SERVER_IP}:0`,
      '--workers', '2', ...extraArgs], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, SFU_SIGNALING_LOG: process.env.SFU_SIGNALING_LOG || 'warn',
        SFU_SIGNALING_METRICS_TOKEN: metricsToken },
    });
    this.children.push(child);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`sfu-signaling printed no URL within ${timeoutMs} ms`)), timeoutMs);
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`sfu-signaling exited early (code ${code}, signal ${signal})`));
      });
      readline.createInterface({ input: child.stdout }).on('line', (line) => {
        const m = /open (https?:\/\/\S+)/.exec(line);
        if (!m) return;
        clearTimeout(timer);
        child.removeAllListeners('exit');
        this.url = m[1].replace(/\/$/, '');
        resolve({ url: this.url });
      });
    });
  }

  /**
   * The server's Prometheus metrics (scraped from inside its namespace, which the test
   * process cannot reach), for printing what the daemon did next to a test's figures.
   */
  metrics() {
    return inNs(this.srv, 'curl', '-sf', '-H', `Authorization: Bearer ${metricsToken}`, `${this.url}/metrics`);
  }

  /**
   * Chromium inside `client`'s namespace (a wrapper script enters it; Playwright talks to
   * the browser over a pipe, which the namespace does not affect). The page's origin is not
   * loopback, so it is declared secure for getUserMedia (unless `insecureOrigin` is false:
   * a server on https needs no such flag).
   */
  async chromium(client, extraArgs = [], { insecureOrigin = true } = {}) {
    const wrapper = path.join(this.dir, `chromium-${path.basename(client.ns)}`);
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${client.ns} ${CHROMIUM} "$@"\n`, { mode: 0o755 });
    const secure = insecureOrigin ? [`--unsafely-treat-insecure-origin-as-secure=${this.url}`] : [];
    return launchChromium([...secure, ...extraArgs], { executablePath: wrapper, loopback: false });
  }

  async close() {
    for (const c of this.children) {
      if (c.exitCode === null && c.signalCode === null) {
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      }
    }
    for (const ns of this.namespaces.reverse()) {
      try { run('ip', 'netns', 'del', ns); } catch { /* already gone */ }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function noGso(ns, dev) {
  // Frames stay MTU-sized: the relay cannot send a 64 KB GSO frame, and tbf should see
  // what a real link carries.
  run('ip', '-n', ns, 'link', 'set', dev, 'gso_max_segs', '1');
}

function shape(ns, dev, kbit) {
  // A bottleneck with a ~200 ms queue, as a home uplink or a congested cell has.
  run('ip', 'netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', `${kbit}kbit`,
    'burst', '4kb', 'latency', '200ms');
}
