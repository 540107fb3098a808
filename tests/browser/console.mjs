#!/usr/bin/env node
// The web console in headless Chromium (fake camera and microphone), as a
// person would use it: the host page goes live, a viewer page watches over
// WebRTC, another over HTTP-FLV asks to join, the host accepts, the guest
// page shows the stream with the guest in it, the first viewer's page then
// shows the composite without reloading, a third viewer plays it over HLS,
// and the dashboard lists it all with figures that move. Screenshots of
// every page go to --shots.
//
//   node console.mjs --http http://127.0.0.1:PORT --shots DIR [--timeout 120] [--verbose]
//                    [--chromium-arg ARG]...
//
// --http may be https:// (the console over TLS, with WSS signaling); pass
// the certificate for Chromium to trust as a --chromium-arg
// (--ignore-certificate-errors-spki-list=...).
//
// Prints ONE JSON line: {"ok":true, "host":{..}, "viewer":{..}, "flv_viewer":{..},
// "guest":{..}, "composite":{..}, "hls_viewer":{..}, "dashboard":{..}} or {"ok":false,"error":..}.

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startRun } from './run.mjs';

const { values: opts } = parseArgs({
  options: {
    http: { type: 'string' },
    shots: { type: 'string' },
    name: { type: 'string', default: 'show' },
    timeout: { type: 'string', default: '120' },
    chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
    'chromium-arg': { type: 'string', multiple: true, default: [] },
    verbose: { type: 'boolean', default: false },
  },
});
if (!opts.http || !opts.shots) {
  process.stderr.write('usage: node console.mjs --http URL --shots DIR [--timeout 120]\n');
  process.exit(2);
}
const base = new URL(opts.http);
const name = opts.name;
const pages = {};
const { result, log, finish, launch } = startRun({
  name: 'console',
  timeoutS: Number(opts.timeout),
  verbose: opts.verbose,
  beforeFail: () => shots(),
});

const at = (p) => new URL(p, base).href;

/** Screenshots of every open page (on failure too). */
async function shots() {
  await mkdir(opts.shots, { recursive: true });
  result.screenshots = [];
  for (const [label, page] of Object.entries(pages)) {
    const file = path.join(opts.shots, `${label}.png`);
    await page.screenshot({ path: file, fullPage: true }).then(() => result.screenshots.push(file)).catch(() => {});
  }
}

/** Waits until `fn` (run in the page) is truthy; returns its value. */
async function until(page, what, fn, arg, timeoutMs = 30000) {
  result.stage = what;
  log(what);
  // Pages behind others may not render: the one measured is in front.
  await page.bringToFront();
  try {
    const handle = await page.waitForFunction(fn, arg, { timeout: timeoutMs, polling: 100 });
    return await handle.jsonValue();
  } catch (e) {
    result.player = await page.evaluate(() => window.__viewer && window.__viewer.media && window.__viewer.media()).catch(() => null);
    throw e;
  }
}

async function open(context, label, url) {
  const page = await context.newPage();
  pages[label] = page;
  page.on('console', (m) => log(`${label}: ${m.text()}`));
  page.on('pageerror', (e) => log(`${label} page error: ${e.message}`));
  await page.goto(at(url));
  return page;
}

async function main() {
  result.stage = 'launching chromium';
  const context = await launch(opts.chromium, opts['chromium-arg']);
  await context.grantPermissions(['camera', 'microphone'], { origin: base.origin });
  (context.pages()[0] && (await context.pages()[0].close().catch(() => {})));

  // 1. The host goes live from the host page.
  const host = await open(context, 'host', `/console/host.html?name=${name}&autostart=1`);
  await until(host, 'the host goes live', () => window.__host && window.__host.live);
  result.host = await host.evaluate(() => ({ mix: window.__host.mix, status: document.querySelector('#status').textContent }));

  // 2. A viewer watches over WebRTC: moving video.
  const viewer = await open(context, 'viewer', `/console/viewer.html?stream=live/${name}&protocol=whep&identity=bob`);
  result.viewer = await until(viewer, 'the WebRTC viewer decodes frames',
    () => window.__viewer.figures && window.__viewer.figures.frames >= 30 && { ...window.__viewer.figures });
  const loadedAt = await viewer.evaluate(() => window.__viewer.loadedAt);

  // 3. Another watches over HTTP-FLV and asks to join.
  const carol = await open(context, 'flv-viewer', `/console/viewer.html?stream=live/${name}&protocol=flv&identity=carol`);
  result.flv_viewer = await until(carol, 'the HTTP-FLV viewer decodes frames',
    () => window.__viewer.figures && window.__viewer.figures.frames >= 20 && { ...window.__viewer.figures });
  await until(carol, 'the join button shows', () => !document.querySelector('#request').hidden);
  await carol.click('#request');

  // 4. The host sees the request and accepts.
  await until(host, 'the host sees the request', () => window.__host.requests.includes('carol'));
  await host.click('button[data-accept="carol"]');

  // 5. Carol is on stage: the guest page shows the stream with the host.
  await carol.waitForURL(/guest\.html/, { timeout: 15000 });
  pages.guest = carol;
  delete pages['flv-viewer'];
  result.guest = await until(carol, 'the guest page shows the host',
    () => window.__guest && window.__guest.published && window.__guest.figures && window.__guest.figures.frames >= 20 &&
      { ...window.__guest.figures });

  // 6. The first viewer now sees the composite, on the same page.
  result.composite = await until(viewer, 'the WebRTC viewer shows the composite',
    () => window.__viewer.figures.height === 360 && { ...window.__viewer.figures });
  result.composite.reloaded = (await viewer.evaluate(() => window.__viewer.loadedAt)) !== loadedAt;
  const before = result.composite.frames;
  await viewer.bringToFront();
  await viewer.waitForTimeout(1000);
  result.composite.frames_after_1s = (await viewer.evaluate(() => window.__viewer.figures.frames)) - before;

  // 7. HLS (hls.js) plays the composite too.
  await open(context, 'hls-viewer', `/console/viewer.html?stream=live/${name}&protocol=hls&identity=dave`);
  result.hls_viewer = await until(pages['hls-viewer'], 'the HLS viewer decodes frames',
    () => window.__viewer.figures && window.__viewer.figures.frames >= 15 && { ...window.__viewer.figures });

  // 8. The dashboard lists the stream and the room, and its figures move.
  const dash = await open(context, 'dashboard', '/console/dashboard.html');
  result.dashboard = await until(dash, 'the dashboard polls three times',
    () => window.__dash.polls >= 3 && { streams: window.__dash.streams, rooms: window.__dash.rooms, samples: window.__dash.samples },
    undefined, 20000);
  result.dashboard.tables = await dash.evaluate(() => ({
    streams: document.querySelector('#streams').textContent,
    rooms: document.querySelector('#rooms').textContent,
    mixes: document.querySelector('#mixes').textContent,
  }));

  await shots();
  await finish(true);
}

main().catch((e) => finish(false, e));
