// What the browser test scripts share: how Chromium is started (the
// developers' guide's flags, a fresh profile each time) and the result
// protocol: ONE JSON line on stdout, {"ok":true|false, ...}, printed on
// success and failure alike, exit code 1 on failure; the whole run bounded.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM_ARGS = [
  // The developers' guide's set.
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Loopback host candidates, so that ICE can pair 127.0.0.1 with 127.0.0.1.
  '--allow-loopback-in-peer-connection',
  // Viewers play sound without a user gesture (their audio is measured).
  '--autoplay-policy=no-user-gesture-required',
  // Several pages at once: none of them may be throttled as a background tab.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

/** Starts a run named `name` bounded by `timeoutS`. `beforeFail` runs
 *  (best effort) before a failed run's browsers close: ending sessions. */
export function startRun({ name, timeoutS, verbose, beforeFail }) {
  const started = Date.now();
  // Everything measured so far; printed on success and on failure alike.
  const result = { ok: false };
  const contexts = [];
  const dirs = [];
  let finished = false;

  const log = (...a) => {
    if (verbose) process.stderr.write(`[${name} ${((Date.now() - started) / 1000).toFixed(2)}s] ${a.join(' ')}\n`);
  };

  async function cleanup() {
    for (const c of contexts.splice(0)) {
      await Promise.race([c.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
    }
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true }).catch(() => {});
  }

  async function finish(ok, error) {
    if (finished) return;
    finished = true;
    clearTimeout(overall);
    result.ok = ok;
    if (error) result.error = String(error).split('\n')[0].slice(0, 2000);
    result.elapsed_ms = Date.now() - started;
    if (!ok && beforeFail) await Promise.resolve().then(beforeFail).catch(() => {});
    await cleanup();
    // ok first, error second: easy to read in a test failure message.
    const { ok: o, error: e, ...rest } = result;
    process.stdout.write(JSON.stringify(e === undefined ? { ok: o, ...rest } : { ok: o, error: e, ...rest }) + '\n');
    process.exit(ok ? 0 : 1);
  }

  const overall = setTimeout(() => {
    finish(false, `timed out after ${timeoutS} s (at: ${result.stage || 'start'})`);
  }, timeoutS * 1000);
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => finish(false, `killed by ${sig}`));

  /** A Chromium with a fresh profile, closed and removed by finish();
   *  `extraArgs` after the common ones (e.g. a certificate to trust). */
  async function launch(executablePath, extraArgs = []) {
    const dir = await mkdtemp(path.join(tmpdir(), 'costream-chromium-'));
    dirs.push(dir);
    const context = await chromium.launchPersistentContext(dir, {
      executablePath,
      headless: true,
      args: [...CHROMIUM_ARGS, ...extraArgs],
      timeout: 20000,
    });
    contexts.push(context);
    return context;
  }

  return {
    result,
    log,
    finish,
    launch,
    /** Milliseconds left of the run. */
    left: () => Math.max(0, timeoutS * 1000 - (Date.now() - started)),
  };
}
