#!/usr/bin/env node
// Second times in a link-mic room, in headless Chromium with the server's
// JavaScript SDK: a host, a guest and an audience member join one room; the
// host publishes; the guest publishes, unpublishes and publishes again three
// times, is kicked to the audience, requests, is accepted and publishes,
// then reloads its page and publishes once more. Each publication of the
// guest is a canvas of a colour of its own, so "the guest's new picture"
// is checked by colour: after each step the host and the audience member
// must decode the new colour. Prints ONE JSON line.
//
//   node republish.mjs --http http://127.0.0.1:PORT --tokens HOST,GUEST,AUDIENCE
//                      [--timeout 120] [--chromium PATH] [--verbose]
//
// With --scenario host-leaves: {"ok":true,"took_over_ms":..,"mix_event":{"reason":"host_left",..},
//   "given_back_ms":..} (given_back_ms from the host's page closing).
// Success: {"ok":true,"steps":[{"step":"publish 1","colour":"red","publish_ms":..,
//   "seen_ms":{"host":..,"audience":..}},...],"errors":[],"resets":[],...}
// seen_ms runs from publish() resolving (the publisher connected) to the
// first decoded picture of the new colour on that page. errors lists every
// `error` event and page error of any page; resets every `subscriber_reset`.
// The test (crates/costream/tests/browser.rs) judges them.

import { parseArgs } from 'node:util';
import { startRun } from './run.mjs';

const opts = parseArgs({
  options: {
    http: { type: 'string' },
    tokens: { type: 'string' },
    timeout: { type: 'string', default: '120' },
    see: { type: 'string', default: '8000' },
    // 'republish' (the default) or 'host-leaves': the host (live on --replace,
    // pushed by the test) has the room's mix replace her stream, a guest
    // publishes, then her page closes; the mix must stop and give the
    // stream back (rooms.mix_on_host_leave = "stop").
    scenario: { type: 'string', default: 'republish' },
    replace: { type: 'string', default: '' },
    'own-width': { type: 'string', default: '640' },
    chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
    verbose: { type: 'boolean', default: false },
  },
}).values;
const tokens = (opts.tokens || '').split(',').filter(Boolean);
if (!opts.http || tokens.length !== 3 || (opts.scenario === 'host-leaves' && !opts.replace)) {
  process.stderr.write('usage: node republish.mjs --http URL --tokens HOST,GUEST,AUDIENCE\n');
  process.exit(2);
}
const base = new URL(opts.http);
const pageUrl = new URL('/healthz', base).href;
const wsUrl = `${base.protocol === 'https:' ? 'wss' : 'ws'}://${base.host}/rtc`;
const seeTimeout = Number(opts.see);

const { result, log, finish, launch } = startRun({
  name: 'republish',
  timeoutS: Number(opts.timeout),
  verbose: opts.verbose,
  beforeFail: () => Promise.all(pages.map((p) => p.evaluate(leaveInPage).catch(() => null))),
});
const pages = [];
result.steps = [];
result.errors = [];
result.resets = [];

// Colours the guest publishes, one per publication; the decoded picture is
// matched to the nearest of them.
const PALETTE = {
  red: [255, 0, 0],
  lime: [0, 255, 0],
  blue: [0, 0, 255],
  yellow: [255, 255, 0],
  magenta: [255, 0, 255],
  cyan: [0, 255, 255],
  white: [255, 255, 255],
  grey: [128, 128, 128],
};

// ---------------------------------------------------------------------------
// In-page code (window.__rp is the page's state).

async function joinInPage({ wsUrl, token }) {
  const sdk = await import(new URL('/sdk/costream.js', location.href).href);
  const st = (window.__rp = { t0: performance.now(), videos: {}, notes: [] });
  const room = new sdk.Room({ url: wsUrl, token });
  st.room = room;
  const note = (type, m) => {
    const e = { at: Math.round(performance.now() - st.t0), type };
    for (const k of ['identity', 'reason', 'code', 'message', 'request', 'action']) if (m && m[k] != null) e[k] = m[k];
    st.notes.push(e);
    console.log(`room event ${JSON.stringify(e)}`);
  };
  for (const type of ['error', 'subscriber_reset', 'track_published', 'track_unpublished', 'subscription_closed', 'link_mic', 'closed']) {
    room.on(type, (m) => note(type, m));
  }
  room.on('track', ({ identity, stream }) => {
    note('track', { identity });
    let v = st.videos[identity];
    if (!v) {
      v = st.videos[identity] = document.createElement('video');
      v.autoplay = true;
      v.muted = true;
      v.playsInline = true;
      document.body.append(v);
    }
    v.srcObject = stream;
    v.play().catch(() => {});
  });
  const joined = await room.connect();
  return { identity: joined.you.identity, role: joined.you.role, resumed: !!joined.resumed };
}

/** Publishes a canvas of `colour` (and a quiet tone); resolves once the
 *  publisher connection is up, with the time publish() took. */
async function publishInPage({ rgb }) {
  const st = window.__rp;
  const canvas = document.createElement('canvas');
  canvas.width = 320;
  canvas.height = 240;
  const g = canvas.getContext('2d');
  const paint = () => {
    g.fillStyle = `rgb(${rgb.join(',')})`;
    g.fillRect(0, 0, canvas.width, canvas.height);
  };
  paint();
  clearInterval(st.painter);
  st.painter = setInterval(paint, 50);
  const audio = new AudioContext({ sampleRate: 48000 });
  const osc = audio.createOscillator();
  const dest = audio.createMediaStreamDestination();
  osc.connect(dest);
  osc.start();
  st.stream = new MediaStream([...canvas.captureStream(15).getVideoTracks(), ...dest.stream.getAudioTracks()]);
  const t = performance.now();
  await st.room.publish(st.stream);
  const pc = st.room.publication.pc;
  await new Promise((resolve, reject) => {
    const check = () => {
      if (pc.connectionState === 'connected') resolve();
      else if (['failed', 'closed'].includes(pc.connectionState)) reject(new Error(`publisher connection ${pc.connectionState}`));
    };
    pc.addEventListener('connectionstatechange', check);
    check();
  });
  return Math.round(performance.now() - t);
}

function unpublishInPage() {
  const st = window.__rp;
  st.room.unpublish();
  clearInterval(st.painter);
  if (st.stream) for (const t of st.stream.getTracks()) t.stop();
  st.stream = null;
}

/** Waits until the video of `identity` shows `want` (nearest palette
 *  colour at the centre); returns ms waited, or an error naming what it saw. */
async function seeInPage({ identity, want, palette, timeoutMs }) {
  const st = window.__rp;
  const t = performance.now();
  const c = document.createElement('canvas');
  c.width = c.height = 8;
  const g = c.getContext('2d', { willReadFrequently: true });
  let seen = 'no video';
  while (performance.now() - t < timeoutMs) {
    const v = st.videos[identity];
    if (v && v.videoWidth > 0 && v.readyState >= 2) {
      g.drawImage(v, 0, 0, 8, 8);
      const [r, gg, b] = g.getImageData(4, 4, 1, 1).data;
      let best = null;
      let dist = Infinity;
      for (const [name, [pr, pg, pb]] of Object.entries(palette)) {
        const d = (r - pr) ** 2 + (gg - pg) ** 2 + (b - pb) ** 2;
        if (d < dist) [best, dist] = [name, d];
      }
      seen = `${best} (${r},${gg},${b})`;
      if (best === want) return { ms: Math.round(performance.now() - t) };
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { error: `${identity} not seen as ${want} in ${timeoutMs} ms: last ${seen}` };
}

/** Resolves when this page's link_mic event says `action` for itself. */
function waitLinkMicInPage({ action, timeoutMs }) {
  const st = window.__rp;
  const me = st.room.you.identity;
  return new Promise((resolve, reject) => {
    const done = st.room.on('link_mic', (e) => {
      if (e.action === action && e.identity === me) {
        done();
        resolve(true);
      }
    });
    setTimeout(() => reject(new Error(`no link_mic ${action} in ${timeoutMs} ms`)), timeoutMs);
  });
}

function notesInPage() {
  return window.__rp ? window.__rp.notes : [];
}

function leaveInPage() {
  const st = window.__rp;
  if (!st) return null;
  clearInterval(st.painter);
  st.room.leave();
  return true;
}

// ---------------------------------------------------------------------------

const [HOST, GUEST, AUDIENCE] = [0, 1, 2];
const names = ['host', 'guest', 'audience'];
const identities = [];

function collectNotes(i, notes) {
  for (const n of notes) {
    if (n.type === 'error') result.errors.push({ page: names[i], ...n });
    if (n.type === 'subscriber_reset') result.resets.push({ page: names[i], ...n });
  }
}

async function join(i) {
  const j = await pages[i].evaluate(joinInPage, { wsUrl, token: tokens[i] });
  identities[i] = j.identity;
  return j;
}

/** The guest publishes `colour`; the host and the audience must see it. */
async function step(name, colour) {
  result.stage = name;
  const publish_ms = await pages[GUEST].evaluate(publishInPage, { rgb: PALETTE[colour] });
  const seen = await Promise.all(
    [HOST, AUDIENCE].map((i) =>
      pages[i].evaluate(seeInPage, { identity: identities[GUEST], want: colour, palette: PALETTE, timeoutMs: seeTimeout }),
    ),
  );
  const s = { step: name, colour, publish_ms, seen_ms: { host: seen[0].ms ?? null, audience: seen[1].ms ?? null } };
  result.steps.push(s);
  log(JSON.stringify(s));
  const failed = seen.map((r, k) => r.error && `${names[[HOST, AUDIENCE][k]]}: ${r.error}`).filter(Boolean);
  if (failed.length) throw new Error(`${name}: ${failed.join('; ')}`);
}

/** The live stream's picture width (the API), or null. */
async function streamWidth(key) {
  try {
    const r = await fetch(new URL(`/api/v1/streams/${key}`, base));
    if (!r.ok) return null;
    const j = await r.json();
    return j.video ? j.video.width : null;
  } catch (e) {
    return null;
  }
}

/** Polls until `ok(await probe())`; the time it took, or an error. */
async function until(what, limitMs, probe, ok) {
  const t = Date.now();
  let last;
  while (Date.now() - t < limitMs) {
    last = await probe();
    if (ok(last)) return Date.now() - t;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: not within ${limitMs} ms (last ${JSON.stringify(last)})`);
}

async function hostLeaves() {
  const ownWidth = Number(opts['own-width']);
  result.stage = 'the host starts the mix replacing her stream';
  const mix = await pages[HOST].evaluate(
    (replace) => window.__rp.room.mix({ replace, width: 480, height: 360, fps: 10, layout: 'pip' }),
    opts.replace,
  );
  result.mix = mix;
  result.stage = 'a guest publishes: the mix takes the stream over';
  await pages[GUEST].evaluate(publishInPage, { rgb: PALETTE.red });
  result.took_over_ms = await until('the mix taking the stream over', 15000, () => streamWidth(opts.replace), (w) => w === 480);
  result.stage = 'the host\'s page closes';
  const mixEvent = pages[GUEST].evaluate(
    () =>
      new Promise((resolve) => {
        const t0 = performance.now();
        const off = window.__rp.room.on('mix', (m) => {
          off();
          resolve({ reason: m.reason, mix: m.mix, ms: Math.round(performance.now() - t0) });
        });
        setTimeout(() => resolve(null), 20000);
      }),
  );
  const closed = Date.now();
  await pages[HOST].close();
  result.mix_event = await mixEvent;
  await until('the stream given back', 20000, () => streamWidth(opts.replace), (w) => w === ownWidth);
  result.given_back_ms = Date.now() - closed;
  await pages[GUEST].evaluate(leaveInPage).catch(() => null);
  await pages[AUDIENCE].evaluate(leaveInPage).catch(() => null);
  for (const i of [GUEST, AUDIENCE]) collectNotes(i, await pages[i].evaluate(notesInPage));
  delete result.stage;
}

async function main() {
  result.stage = 'launching chromium';
  const context = await launch(opts.chromium);
  if (context.browser()) result.browser = context.browser().version();
  for (let i = 0; i < 3; i++) {
    const page = context.pages().find((p) => !pages.includes(p)) || (await context.newPage());
    pages.push(page);
    page.on('console', (m) => log(`${names[i]} console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => result.errors.push({ page: names[i], type: 'pageerror', message: e.message }));
  }
  await Promise.all(pages.map((p) => p.goto(pageUrl, { timeout: 10000 })));

  result.stage = 'joining';
  for (const i of [HOST, GUEST, AUDIENCE]) await join(i);
  if (opts.scenario === 'host-leaves') return hostLeaves();
  result.stage = 'host publishes';
  await pages[HOST].evaluate(publishInPage, { rgb: PALETTE.grey });

  const colours = ['red', 'lime', 'blue', 'yellow', 'magenta', 'cyan'];
  await step('publish 1', colours[0]);
  for (let k = 1; k <= 3; k++) {
    await pages[GUEST].evaluate(unpublishInPage);
    await step(`unpublish and publish again ${k}`, colours[k]);
  }

  result.stage = 'kick to the audience, request, accept';
  const back = pages[GUEST].evaluate(waitLinkMicInPage, { action: 'accepted', timeoutMs: 10000 });
  await pages[HOST].evaluate((id) => window.__rp.room.kick(id, 'audience'), identities[GUEST]);
  // The kick ends the guest's publication; it asks to come back on stage.
  await pages[GUEST].evaluate(
    () =>
      new Promise((resolve, reject) => {
        const room = window.__rp.room;
        const t = setTimeout(() => reject(new Error('not moved to the audience in 10 s')), 10000);
        const check = () => {
          if (room.you && room.you.role === 'audience') {
            clearTimeout(t);
            resolve();
          } else setTimeout(check, 20);
        };
        check();
      }),
  );
  await pages[GUEST].evaluate(() => {
    window.__rp.room.request();
  });
  await pages[HOST].evaluate(
    (id) =>
      new Promise((resolve, reject) => {
        const room = window.__rp.room;
        const t = setTimeout(() => reject(new Error(`no request from ${id} in 10 s`)), 10000);
        const check = () => {
          if ((room.requests || []).includes(id)) {
            clearTimeout(t);
            room.accept(id);
            resolve();
          } else setTimeout(check, 20);
        };
        check();
      }),
    identities[GUEST],
  );
  await back;
  await step('kicked, accepted, publish', colours[4]);

  // A WebSocket that drops while the page lives: the SDK resumes with the
  // sessions it holds, and the server keeps them (no ghost rule applies).
  result.stage = 'the guest\'s WebSocket drops and resumes';
  const unpublishedBefore = (await pages[HOST].evaluate(notesInPage)).filter((n) => n.type === 'track_unpublished').length;
  const blip = await pages[GUEST].evaluate(
    () =>
      new Promise((resolve, reject) => {
        const room = window.__rp.room;
        const session = room.publication && room.publication.session;
        const t = setTimeout(() => reject(new Error('not reconnected in 10 s')), 10000);
        const off = room.on('reconnected', (e) => {
          off();
          clearTimeout(t);
          resolve({ resumed: e.resumed, session, after: room.publication && room.publication.session });
        });
        room._ws.close();
      }),
  );
  const still = await pages[HOST].evaluate(seeInPage, { identity: identities[GUEST], want: colours[4], palette: PALETTE, timeoutMs: 2000 });
  const unpublishedAfter = (await pages[HOST].evaluate(notesInPage)).filter((n) => n.type === 'track_unpublished').length;
  result.websocket_blip = { ...blip, still_seen: !still.error, track_unpublished: unpublishedAfter - unpublishedBefore };

  result.stage = 'reload';
  collectNotes(GUEST, await pages[GUEST].evaluate(notesInPage));
  await pages[GUEST].reload({ timeout: 10000 });
  const rejoined = await join(GUEST);
  result.reload_resumed = rejoined.resumed;
  // The old page's publication ends at once, not after the grace: the
  // host is told before the new page publishes anything.
  result.reload_ghost_ms = await pages[HOST].evaluate(
    ({ identity, before }) =>
      new Promise((resolve) => {
        const t0 = performance.now();
        const check = () => {
          const n = window.__rp.notes.filter((e) => e.type === 'track_unpublished' && e.identity === identity).length;
          if (n > before) resolve(Math.round(performance.now() - t0));
          else if (performance.now() - t0 > 5000) resolve(null);
          else setTimeout(check, 10);
        };
        check();
      }),
    { identity: identities[GUEST], before: unpublishedAfter },
  );
  await step('reloaded, publish', colours[5]);

  for (const i of [HOST, GUEST, AUDIENCE]) collectNotes(i, await pages[i].evaluate(notesInPage));

  // The SDK never stays silently broken: the audience's browser fails to
  // apply the next offer once; its subscriber connection is reset (an event
  // the app sees), the server offers a new one, and the guest is seen again.
  result.stage = 'an offer that fails to apply';
  const sessionBefore = await pages[AUDIENCE].evaluate(() => window.__rp.room._subSession);
  await pages[AUDIENCE].evaluate(() => {
    const st = window.__rp;
    st.notes = [];
    const real = RTCPeerConnection.prototype.setRemoteDescription;
    RTCPeerConnection.prototype.setRemoteDescription = function (desc) {
      if (desc && desc.type === 'offer') {
        RTCPeerConnection.prototype.setRemoteDescription = real;
        return Promise.reject(new Error('refused by the test'));
      }
      return real.call(this, desc);
    };
  });
  await pages[GUEST].evaluate(unpublishInPage);
  await step('an offer fails to apply, publish', 'white');
  const audienceNotes = await pages[AUDIENCE].evaluate(notesInPage);
  result.offer_failure = {
    resets: audienceNotes.filter((n) => n.type === 'subscriber_reset'),
    errors: audienceNotes.filter((n) => n.type === 'error'),
    sessions: [sessionBefore, await pages[AUDIENCE].evaluate(() => window.__rp.room._subSession)],
  };
  result.stage = 'leaving';
  await Promise.all(pages.map((p) => p.evaluate(leaveInPage).catch(() => null)));
  await new Promise((r) => setTimeout(r, 300));
  delete result.stage;
}

main().then(
  () => finish(true),
  async (e) => {
    for (const [i, p] of pages.entries()) collectNotes(i, await p.evaluate(notesInPage).catch(() => []));
    finish(false, e && e.message ? e.message : e);
  },
);
