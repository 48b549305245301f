// Starts sfu-signaling (which starts sfu) on a free loopback port and waits for its
// "ready: open URL" line. run.sh starts one for all suites and passes SFU_E2E_URL; a
// suite run on its own starts its own.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import readline from 'node:readline';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '..', '..');
const targetDir = process.env.CARGO_TARGET_DIR || path.join(repo, 'target');
export const signalingBin = process.env.SFU_SIGNALING_BIN || path.join(targetDir, 'debug', 'sfu-signaling');

/** Spawns the server; resolves { url, stop } once it printed its URL. */
export function spawnServer(extraArgs = [], { timeoutMs = 30000 } = {}) {
  const child = spawn(signalingBin, ['--listen', '127.0.0.1:0', '--workers', '2', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, SFU_SIGNALING_LOG: process.env.SFU_SIGNALING_LOG || 'warn' },
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
      const m = /open (http:\/\/\S+)/.exec(line);
      if (!m) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      const exited = new Promise((r) => child.once('exit', r));
      resolve({
        url: m[1].replace(/\/$/, ''),
        stop: async () => {
          child.kill('SIGTERM');
          await exited;
        },
      });
    });
  });
}

/** The shared server of run.sh, or a private one. */
export async function server() {
  if (process.env.SFU_E2E_URL) return { url: process.env.SFU_E2E_URL.replace(/\/$/, ''), stop: async () => {} };
  return spawnServer();
}
