// Starts sfu-signaling (which starts sfu) on a free loopback port and waits for its
// "ready: open URL" line. run.sh starts one for all suites and passes SFU_E2E_URL; a
// suite run on its own starts its own. Suites that kill and restart processes start
// their own daemon (spawnDaemon) and server (spawnServer with --daemon).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import readline from 'node:readline';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '..', '..');
const targetDir = process.env.CARGO_TARGET_DIR || path.join(repo, 'target');
export const signalingBin = process.env.SFU_SIGNALING_BIN || path.join(targetDir, 'debug', 'sfu-signaling');
export const sfuBin = process.env.SFU_BIN || path.join(targetDir, 'debug', 'sfu');
/** The servers' metrics_token (run.sh passes its own server the same one). */
export const metricsToken = process.env.SFU_SIGNALING_METRICS_TOKEN || 'e2e-metrics-token';

/** Resolves { code, signal, ms } when `child` exits, ms counted from `since`. */
function exitOf(child, since) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode, ms: Date.now() - since() });
      return;
    }
    child.once('exit', (code, signal) => resolve({ code, signal, ms: Date.now() - since() }));
  });
}

/**
 * Spawns the server; resolves { url, child, stop } once it printed its URL. `stop()` sends
 * SIGTERM and resolves { code, signal, ms } (ms: from the signal to the exit).
 */
export function spawnServer(extraArgs = [], { timeoutMs = 30000, listen = '127.0.0.1:0' } = {}) {
  const child = spawn(signalingBin, ['--listen', listen, '--workers', '2', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...process.env,
      SFU_SIGNALING_LOG: process.env.SFU_SIGNALING_LOG || 'warn',
      SFU_SIGNALING_METRICS_TOKEN: metricsToken,
    },
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sfu-signaling printed no URL within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${signalingBin}: ${e.message}`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`sfu-signaling exited early (code ${code}, signal ${signal})`));
    });
    const lines = readline.createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const m = /open (https?:\/\/\S+)/.exec(line);
      if (!m) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      let signalled = Date.now();
      const exited = exitOf(child, () => signalled);
      resolve({
        url: m[1].replace(/\/$/, ''),
        child,
        stop: async () => {
          signalled = Date.now();
          child.kill('SIGTERM');
          return exited;
        },
      });
    });
  });
}

/**
 * Spawns the media daemon with control directory `dir` (as systemd runs it, with the same
 * command line on every restart); resolves { child, exited } once it printed its ready line.
 */
export function spawnDaemon(dir, { timeoutMs = 30000 } = {}) {
  const child = spawn(sfuBin, ['--workers', '2', '--rtc-port', '0', '--pin', 'false', '--listen-ip', '127.0.0.1',
    '--control', dir, '--log', 'warn,rtc_dtls=error'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sfu was not ready within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${sfuBin}: ${e.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`sfu exited early (code ${code}, signal ${signal})`));
    });
    const lines = readline.createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      if (!line.includes('"ready"')) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      resolve({ child, exited: exitOf(child, () => Date.now()) });
    });
  });
}

/** The shared server of run.sh, or a private one. */
export async function server() {
  if (process.env.SFU_E2E_URL) return { url: process.env.SFU_E2E_URL.replace(/\/$/, ''), stop: async () => {} };
  return spawnServer();
}
