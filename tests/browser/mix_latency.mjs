#!/usr/bin/env node
// Guest-to-viewer latency through the server's mixer, end to end: a
// Chromium page joins a room and publishes a canvas that flips between red
// and blue every few seconds; ffmpeg plays the room's mix over HTTP-FLV and
// hands each decoded picture to this script, which notes when a flip shows.
// Page and script read the same wall clock (one machine).
//
//   node mix_latency.mjs --http http://127.0.0.1:PORT --token T --flv URL
//                        [--flips 8] [--every 3] [--timeout 90] [--verbose]
//
// Success: {"ok":true,"latencies_ms":[...],"median_ms":..,"max_ms":..}
// Failure: {"ok":false,"error":"..."}, exit code 1.

import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { startRun } from './run.mjs';

const { values: opts } = parseArgs({
  options: {
    http: { type: 'string' },
    token: { type: 'string' },
    flv: { type: 'string' },
    flips: { type: 'string', default: '8' },
    every: { type: 'string', default: '3' },
    timeout: { type: 'string', default: '90' },
    chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
    verbose: { type: 'boolean', default: false },
  },
});
if (!opts.http || !opts.token || !opts.flv) {
  process.stderr.write('usage: node mix_latency.mjs --http URL --token T --flv URL [--flips 8] [--every 3]\n');
  process.exit(2);
}
const flips = Number(opts.flips);
const everyMs = Number(opts.every) * 1000;
const base = new URL(opts.http);
const wsUrl = `${base.protocol === 'https:' ? 'wss' : 'ws'}://${base.host}/rtc`;
const { result, log, finish, launch } = startRun({
  name: 'mix_latency',
  timeoutS: Number(opts.timeout),
  verbose: opts.verbose,
});

/** In the page: joins, publishes a red canvas (and a tone) that flipColour() turns. */
async function publishInPage({ wsUrl, token }) {
  const sdk = await import(new URL('/sdk/costream.js', location.href).href);
  const canvas = document.createElement('canvas');
  canvas.width = 640;
  canvas.height = 480;
  const g = canvas.getContext('2d');
  window.__colour = 'red';
  const paint = () => {
    g.fillStyle = window.__colour;
    g.fillRect(0, 0, canvas.width, canvas.height);
  };
  paint();
  setInterval(paint, 10);
  // Flips at once and says when (wall clock, ms).
  window.flipColour = (colour) => {
    window.__colour = colour;
    paint();
    return Date.now();
  };
  const audio = new AudioContext({ sampleRate: 48000 });
  const osc = audio.createOscillator();
  const dest = audio.createMediaStreamDestination();
  osc.connect(dest);
  osc.start();
  const stream = new MediaStream([...canvas.captureStream(30).getVideoTracks(), ...dest.stream.getAudioTracks()]);
  const room = new sdk.Room({ url: wsUrl, token });
  await room.connect();
  await room.publish(stream);
  return true;
}

/** The colour of a small RGB24 picture's centre: 'red', 'blue' or null. */
function colourOf(pic, w, h) {
  const i = ((h >> 1) * w + (w >> 1)) * 3;
  const [r, gr, b] = [pic[i], pic[i + 1], pic[i + 2]];
  if (r > 160 && gr < 90 && b < 90) return 'red';
  if (b > 160 && r < 90 && gr < 90) return 'blue';
  return null;
}

async function main() {
  result.stage = 'publishing';
  const context = await launch(opts.chromium);
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => log(`page: ${m.text()}`));
  await page.goto(new URL('/healthz', base).href);
  await page.evaluate(publishInPage, { wsUrl, token: opts.token });

  result.stage = 'playing';
  const [w, h] = [32, 18];
  const ffmpeg = spawn(
    'ffmpeg',
    ['-hide_banner', '-loglevel', 'error', '-fflags', 'nobuffer', '-flags', 'low_delay', '-i', opts.flv,
      '-an', '-vf', `scale=${w}:${h}`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-flush_packets', '1', '-'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let buf = Buffer.alloc(0);
  let shown = null;
  const seen = []; // [colour, wall ms] each time the shown colour changes
  ffmpeg.stdout.on('data', (chunk) => {
    const now = Date.now();
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= w * h * 3) {
      const c = colourOf(buf.subarray(0, w * h * 3), w, h);
      buf = buf.subarray(w * h * 3);
      if (c && c !== shown) {
        shown = c;
        seen.push([c, now]);
        log(`viewer shows ${c}`);
      }
    }
  });
  const waitFor = async (colour, limitMs) => {
    const t0 = Date.now();
    while (shown !== colour) {
      if (Date.now() - t0 > limitMs) throw new Error(`the viewer never showed ${colour}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  try {
    await waitFor('red', 30000);
    await new Promise((r) => setTimeout(r, everyMs));
    const latencies = [];
    for (let i = 0; i < flips; i++) {
      const colour = i % 2 === 0 ? 'blue' : 'red';
      result.stage = `flip ${i + 1} to ${colour}`;
      const at = await page.evaluate((c) => window.flipColour(c), colour);
      await waitFor(colour, 10000);
      const [, when] = seen[seen.length - 1];
      latencies.push(when - at);
      log(`flip ${i + 1}: ${when - at} ms`);
      await new Promise((r) => setTimeout(r, everyMs));
    }
    const sorted = [...latencies].sort((a, b) => a - b);
    result.latencies_ms = latencies;
    result.median_ms = sorted[sorted.length >> 1];
    result.max_ms = sorted[sorted.length - 1];
  } finally {
    ffmpeg.kill('SIGKILL');
  }
  await finish(true);
}

main().catch((e) => finish(false, e));
