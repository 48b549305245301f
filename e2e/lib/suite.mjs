// What a suite of Chromium pages on one server shares: the server (run.sh's, or a
// private one), the browser contexts it opened (closed after the suite) and the pages'
// console errors (printed when the suite failed).
import { before, after } from 'node:test';
import { server } from './server.mjs';
import { launchChromium, recordConsole, removeTmpDirs } from './browsers.mjs';
import { waitJoined } from './page.mjs';

/**
 * Registers the suite's before/after hooks; returns { srv (set once the server is up),
 * page(label), open(room, name) }.
 */
export function chromiumSuite() {
  const suite = { srv: null };
  const contexts = [];
  const logs = [];
  before(async () => {
    suite.srv = await server();
  });
  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    if (suite.srv) await suite.srv.stop();
    removeTmpDirs();
    if (process.exitCode) for (const l of logs) console.error(l);
  });
  /**
   * A fresh Chromium's page, its console errors recorded under `label`; `args` as
   * launchChromium's. The page's context is `page.context()`.
   */
  suite.page = async (label, args = []) => {
    const ctx = await launchChromium(args);
    contexts.push(ctx);
    const page = await ctx.newPage();
    recordConsole(page, label, logs);
    return page;
  };
  /** A page joined to `room` as `name`. */
  suite.open = async (room, name) => {
    const page = await suite.page(name);
    await page.goto(`${suite.srv.url}/r/${room}?name=${encodeURIComponent(name)}`);
    await waitJoined(page, 20000);
    return page;
  };
  return suite;
}
