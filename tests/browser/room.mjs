#!/usr/bin/env node
// Link-mic room in headless Chromium: one page per token joins the room with
// the server's JavaScript SDK (/sdk/costream.js), publishes its fake camera
// and microphone and auto-subscribes to the others; prints ONE JSON line with
// what each page decoded from each other participant.
//
//   node room.mjs --http http://127.0.0.1:PORT --tokens T1,T2,T3 [--seconds 6]
//                 [--timeout 60] [--browsers 1] [--chromium PATH] [--verbose]
//                 [--colours red:440,blue:1000]
//
// --colours gives page i a picture and a sound of its own instead of the
// fake camera and microphone: a canvas filled with colour i and a sine tone
// at frequency i Hz (what a server-side mix is checked against).
//
// The tokens are for one room, each for its own identity, each allowed to
// publish. All pages join at once. join_ms is the time connect() took;
// first_remote_frame_ms runs from the start of connect() to the first video
// frame decoded from any other participant (per remote: first_frame_ms).
// Once every page decodes video from every other, all measure over the same
// --seconds window: fps, frames_decoded, audio_packets and audio_energy are
// deltas over it (inbound-rtp stats of the subscription's peer connection);
// width/height are the decoder's at the end. Every page leaves at the end
// (on failure too).
//
// Success: {"ok":true,"participants":[{"identity":"a","join_ms":..,"publish_ms":..,
//             "first_remote_frame_ms":..,"remotes":{"b":{"fps":..,"frames_decoded":..,
//             "width":..,"height":..,"audio_packets":..,"audio_energy":..,...},...},
//             "sent":{...}},...],"seconds":..,"elapsed_ms":..}
// Failure: {"ok":false,"error":"...",...whatever was measured...}, exit code 1.
//
// The pages run on the server's own origin (/healthz): http://127.0.0.1 is a
// secure context, so getUserMedia works, and the SDK is a same-origin module.
// By default the pages share one Chromium (--browsers N spreads them over N
// browsers, each with its own fresh profile). Requires Debian's chromium
// (/usr/bin/chromium) and playwright-core (npm ci here); scripts/test
// installs both.

import { parseArgs } from 'node:util';
import { startRun } from './run.mjs';

function usage(msg) {
  process.stderr.write(
    `${msg}\nusage: node room.mjs --http URL --tokens T1,T2[,...] [--seconds 6] [--timeout 60] ` +
      `[--browsers 1] [--chromium PATH] [--verbose]\n`,
  );
  process.exit(2);
}

let opts;
try {
  opts = parseArgs({
    options: {
      http: { type: 'string' },
      tokens: { type: 'string' },
      seconds: { type: 'string', default: '6' },
      timeout: { type: 'string', default: '60' },
      browsers: { type: 'string', default: '1' },
      simulcast: { type: 'boolean', default: false },
      colours: { type: 'string' },
      chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
      verbose: { type: 'boolean', default: false },
    },
  }).values;
} catch (e) {
  usage(e.message);
}
if (!opts.http) usage('--http is required');
if (!opts.tokens) usage('--tokens is required');
const tokens = opts.tokens.split(',').map((t) => t.trim()).filter(Boolean);
if (tokens.length < 2) usage('--tokens needs at least two tokens');
const colours = opts.colours
  ? opts.colours.split(',').map((c) => {
      const [colour, freq] = c.split(':');
      return { colour, freq: Number(freq) };
    })
  : [];
if (colours.length && colours.length !== tokens.length) usage('--colours needs one colour:freq per token');
const seconds = Number(opts.seconds);
const timeoutS = Number(opts.timeout);
const browsersN = Math.min(tokens.length, Math.max(1, Math.floor(Number(opts.browsers)) || 1));
if (!(seconds > 0) || !(timeoutS > 0)) usage('bad --seconds or --timeout');
let pageUrl, wsUrl;
try {
  const base = new URL(opts.http);
  pageUrl = new URL('/healthz', base).href;
  wsUrl = `${base.protocol === 'https:' ? 'wss' : 'ws'}://${base.host}/rtc`;
} catch (e) {
  usage(e.message);
}
const { result, log, finish, launch, left } = startRun({
  name: 'room',
  timeoutS,
  verbose: opts.verbose,
  beforeFail: () => leaveAll(),
});
const contexts = [];
const pages = [];

// ---------------------------------------------------------------------------
// In-page code, passed to page.evaluate (serialised: each function uses only
// its argument and the page's globals). The page's state is window.__rt.

/** Imports the SDK, connects, publishes the fake camera and microphone.
 *  Remote video goes to <video> elements (played: audio is only decoded
 *  when played out); a poller notes each remote's first decoded frame. */
async function joinInPage({ wsUrl, token, simulcast, timeoutMs, synthetic }) {
  const out = {};
  const deadline = performance.now() + timeoutMs;
  const withTimeout = (p, what) =>
    Promise.race([
      p,
      new Promise((_, rej) =>
        setTimeout(() => rej(new Error(`${what}: timed out`)), Math.max(0, deadline - performance.now())),
      ),
    ]);
  const describe = (e) => (e && e.code ? `${e.code}: ${e.message}` : String(e && e.message ? e.message : e));
  try {
    const sdk = await withTimeout(import(new URL('/sdk/costream.js', location.href).href), 'import /sdk/costream.js');
    const st = (window.__rt = { t0: performance.now(), remotes: {}, events: [], stream: null, paused: new Set() });
    const room = new sdk.Room({ url: wsUrl, token, autoSubscribe: true, simulcast });
    st.room = room;
    // Remotes whose video the server's bandwidth budget paused.
    room.on('video_paused', (m) => (m.paused ? st.paused.add(m.identity) : st.paused.delete(m.identity)));
    const at = () => Math.round(performance.now() - st.t0);
    for (const type of ['participant_joined', 'participant_left', 'track_published', 'track_unpublished',
      'subscription_closed', 'error', 'reconnecting', 'reconnected', 'closed', 'video_paused']) {
      room.on(type, (m) => {
        const e = { at: at(), type };
        for (const k of ['identity', 'reason', 'code', 'message', 'request', 'paused']) if (m && m[k] != null) e[k] = m[k];
        if (m && m.participant) e.identity = m.participant.identity;
        if (st.events.length < 50) st.events.push(e);
        console.log(`room event ${JSON.stringify(e)}`);
      });
    }
    const remote = (identity) =>
      (st.remotes[identity] = st.remotes[identity] || { first_frame_at: null, presented: 0, video: null });
    room.on('track', ({ identity, stream }) => {
      const r = remote(identity);
      if (!r.video) {
        r.video = document.createElement('video');
        r.video.autoplay = true;
        r.video.playsInline = true;
        r.video.dataset.identity = identity;
        document.body.append(r.video);
        if ('requestVideoFrameCallback' in r.video) {
          const onFrame = () => {
            if (r.first_frame_at === null) r.first_frame_at = performance.now();
            r.presented++;
            r.video.requestVideoFrameCallback(onFrame);
          };
          r.video.requestVideoFrameCallback(onFrame);
        }
      }
      r.video.srcObject = stream;
      r.video.play().catch(() => {});
    });
    // First decoded frame per remote, from the stats (in case presentation lags).
    st.poller = setInterval(async () => {
      if (st.polling) return;
      st.polling = true;
      try {
        for (const [identity, sub] of room.subscriptions) {
          const r = remote(identity);
          if (r.first_frame_at !== null) continue;
          const stats = await sub.pc.getStats();
          stats.forEach((s) => {
            // On the shared subscriber connection, only this subscription's m-lines.
            if (sub.mids && sub.mids.length && !sub.mids.includes(s.mid)) return;
            if (s.type === 'inbound-rtp' && s.kind === 'video' && s.framesDecoded > 0 && r.first_frame_at === null) {
              r.first_frame_at = performance.now();
            }
          });
        }
      } catch (e) {
        // a subscription closed meanwhile
      } finally {
        st.polling = false;
      }
    }, 25);

    const joined = await withTimeout(room.connect(), 'connect');
    out.join_ms = at();
    out.identity = joined.you.identity;
    out.role = joined.you.role;
    out.others_at_join = (joined.participants || []).map((p) => p.identity);

    // A solid colour and a tone (--colours), or the fake camera and microphone.
    const colourAndTone = ({ colour, freq }) => {
      const canvas = document.createElement('canvas');
      canvas.width = 640;
      canvas.height = 480;
      const g = canvas.getContext('2d');
      const paint = () => {
        g.fillStyle = colour;
        g.fillRect(0, 0, canvas.width, canvas.height);
      };
      paint();
      st.painter = setInterval(paint, 50);
      const audio = new AudioContext({ sampleRate: 48000 });
      const osc = audio.createOscillator();
      osc.frequency.value = freq;
      const gain = audio.createGain();
      gain.gain.value = 0.3;
      const dest = audio.createMediaStreamDestination();
      osc.connect(gain).connect(dest);
      osc.start();
      audio.resume();
      return new MediaStream([...canvas.captureStream(15).getVideoTracks(), ...dest.stream.getAudioTracks()]);
    };
    const stream = synthetic
      ? colourAndTone(synthetic)
      : await withTimeout(
          navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: true }),
          'getUserMedia',
        );
    st.stream = stream;
    const vt = stream.getVideoTracks()[0];
    if (!vt || !stream.getAudioTracks()[0]) throw new Error('getUserMedia gave no video or no audio track');
    // Keep the published size: under CPU pressure drop frames, not pixels.
    vt.contentHint = 'detail';
    const s = vt.getSettings();
    out.camera = { width: s.width, height: s.height, frame_rate: s.frameRate };
    const tp = performance.now();
    const answer = await withTimeout(room.publish(stream), 'publish');
    out.publish_ms = Math.round(performance.now() - tp);
    out.session = answer.session;
    const pc = room.publication.pc;
    await withTimeout(
      new Promise((resolve, reject) => {
        const check = () => {
          if (pc.connectionState === 'connected') resolve();
          else if (pc.connectionState === 'failed' || pc.connectionState === 'closed')
            reject(new Error(`publisher connection ${pc.connectionState}`));
        };
        pc.addEventListener('connectionstatechange', check);
        check();
      }),
      'publisher connection',
    );
    out.publish_connected_ms = at();
    return out;
  } catch (e) {
    out.error = describe(e);
    if (window.__rt) out.events = window.__rt.events;
    return out;
  }
}

/** Waits until video from every expected identity has been decoded. */
async function waitRemotesInPage({ expected, timeoutMs }) {
  const st = window.__rt;
  const deadline = performance.now() + timeoutMs;
  const firstAt = (id) => (st.remotes[id] ? st.remotes[id].first_frame_at : null);
  while (expected.some((id) => firstAt(id) === null)) {
    if (performance.now() > deadline) {
      const missing = expected.filter((id) => firstAt(id) === null).map((id) => {
        const sub = st.room.subscriptions.get(id);
        const p = st.room.participants.get(id);
        return `${id} (${p ? `tracks ${JSON.stringify(p.tracks || [])}` : 'not in the room'}, ${
          sub ? `subscription ${sub.session != null ? 'answered' : 'unanswered'}, ice ${sub.pc.iceConnectionState}, connection ${sub.pc.connectionState}` : 'no subscription'
        })`;
      });
      return { error: `no video decoded from ${missing.join('; ')}`, events: st.events };
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  const first = {};
  for (const id of expected) first[id] = Math.round(firstAt(id) - st.t0);
  return { first_frame_ms: first };
}

/** Stats of every subscription (and the publication) over `seconds`. */
async function measureInPage({ seconds }) {
  const st = window.__rt;
  const room = st.room;
  async function snapshot(pc, mids) {
    const stats = await pc.getStats();
    const s = { at: performance.now(), video: {}, audio: {}, pair: null };
    stats.forEach((r) => {
      // On the shared subscriber connection, only this subscription's m-lines.
      if (mids && mids.length && r.type === 'inbound-rtp' && !mids.includes(r.mid)) return;
      if (r.type === 'inbound-rtp' && r.kind === 'video') {
        const c = stats.get(r.codecId);
        Object.assign(s.video, {
          codec: c && c.mimeType,
          frames_decoded: r.framesDecoded || 0,
          frames_dropped: r.framesDropped || 0,
          width: r.frameWidth || 0,
          height: r.frameHeight || 0,
          packets_lost: r.packetsLost || 0,
          freezes: r.freezeCount || 0,
          plis: r.pliCount || 0,
          decoder: r.decoderImplementation,
        });
      }
      if (r.type === 'inbound-rtp' && r.kind === 'audio') {
        const c = stats.get(r.codecId);
        Object.assign(s.audio, {
          codec: c && c.mimeType,
          packets: r.packetsReceived || 0,
          packets_lost: r.packetsLost || 0,
          energy: r.totalAudioEnergy || 0,
        });
      }
      if (r.type === 'outbound-rtp' && r.kind === 'video') {
        const c = stats.get(r.codecId);
        // One per simulcast encoding.
        (s.video.encodings = s.video.encodings || []).push({
          rid: r.rid || null,
          width: r.frameWidth || 0,
          height: r.frameHeight || 0,
          bytes: r.bytesSent || 0,
        });
        Object.assign(s.video, {
          codec: c && c.mimeType,
          frames_encoded: r.framesEncoded || 0,
          width: r.frameWidth || 0,
          height: r.frameHeight || 0,
          quality_limitation: r.qualityLimitationReason,
          encoder: r.encoderImplementation,
        });
      }
      if (r.type === 'outbound-rtp' && r.kind === 'audio') s.audio.packets_sent = r.packetsSent || 0;
      if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') {
        const l = stats.get(r.localCandidateId);
        const rm = stats.get(r.remoteCandidateId);
        s.pair = `${l && l.address}:${l && l.port} -> ${rm && rm.address}:${rm && rm.port}/${rm && rm.protocol}`;
      }
    });
    return s;
  }
  const subs = [...room.subscriptions.entries()];
  const presented0 = Object.fromEntries(subs.map(([id]) => [id, st.remotes[id] ? st.remotes[id].presented : 0]));
  const pub = room.publication;
  const [s0, p0] = await Promise.all([Promise.all(subs.map(([, sub]) => snapshot(sub.pc, sub.mids))), pub && snapshot(pub.pc)]);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const [s1, p1] = await Promise.all([Promise.all(subs.map(([, sub]) => snapshot(sub.pc, sub.mids))), pub && snapshot(pub.pc)]);
  const remotes = {};
  subs.forEach(([id, sub], i) => {
    const a = s0[i];
    const b = s1[i];
    const span = (b.at - a.at) / 1000;
    const frames = (b.video.frames_decoded || 0) - (a.video.frames_decoded || 0);
    remotes[id] = {
      fps: Math.round((frames / span) * 10) / 10,
      frames_decoded: frames,
      width: b.video.width || 0,
      height: b.video.height || 0,
      audio_packets: (b.audio.packets || 0) - (a.audio.packets || 0),
      audio_energy: (b.audio.energy || 0) - (a.audio.energy || 0),
      seconds: Math.round(span * 100) / 100,
      codec: b.video.codec,
      audio_codec: b.audio.codec,
      decoder: b.video.decoder,
      frames_dropped: (b.video.frames_dropped || 0) - (a.video.frames_dropped || 0),
      freezes: (b.video.freezes || 0) - (a.video.freezes || 0),
      video_packets_lost: b.video.packets_lost,
      audio_packets_lost: b.audio.packets_lost,
      presented_frames: (st.remotes[id] ? st.remotes[id].presented : 0) - presented0[id],
      session: sub.session,
      shared: !!sub.shared,
      mids: sub.mids || null,
      connection: sub.pc.connectionState,
      pair: b.pair,
    };
  });
  let sent = null;
  if (p0 && p1) {
    const span = (p1.at - p0.at) / 1000;
    sent = {
      codec: p1.video.codec,
      fps: Math.round((((p1.video.frames_encoded || 0) - (p0.video.frames_encoded || 0)) / span) * 10) / 10,
      width: p1.video.width,
      height: p1.video.height,
      quality_limitation: p1.video.quality_limitation,
      encoder: p1.video.encoder,
      audio_packets: (p1.audio.packets_sent || 0) - (p0.audio.packets_sent || 0),
      pair: p1.pair,
      // Per encoding: size at the end and bitrate over the window.
      encodings: (p1.video.encodings || []).map((e) => {
        const before = (p0.video.encodings || []).find((x) => x.rid === e.rid);
        return { ...e, kbps: Math.round((((e.bytes - (before ? before.bytes : 0)) * 8) / span) / 1000) };
      }),
    };
  }
  return { remotes, sent, events: st.events, paused: [...st.paused] };
}

/** Leaves the room and stops the camera and microphone. */
function leaveInPage() {
  const st = window.__rt;
  if (!st || !st.room) return null;
  clearInterval(st.poller);
  clearInterval(st.painter);
  st.room.leave();
  if (st.stream) for (const t of st.stream.getTracks()) t.stop();
  return st.room.state;
}

// ---------------------------------------------------------------------------

// The first line of an error page.evaluate threw (the page crashed or closed).
function pageError(e) {
  return String(e && e.message ? e.message : e)
    .replace(/^page\.evaluate: (Error: )?/, '')
    .split('\n')[0];
}

let leftAll = false;
/** Every page leaves (bounded: a page may be stuck or gone). */
async function leaveAll() {
  if (leftAll) return;
  leftAll = true;
  await Promise.all(
    pages.map((p) =>
      Promise.race([p.evaluate(leaveInPage).catch(() => null), new Promise((r) => setTimeout(() => r(null), 2000))]),
    ),
  );
  // Let the leave messages and close frames go out before the browser closes.
  await new Promise((r) => setTimeout(r, 300));
}

async function main() {
  result.stage = 'launching chromium';
  const origin = new URL(pageUrl).origin;
  for (let i = 0; i < browsersN; i++) {
    const context = await launch(opts.chromium);
    contexts.push(context);
    await context.grantPermissions(['camera', 'microphone'], { origin });
    if (!result.browser && context.browser()) result.browser = context.browser().version();
  }
  for (let i = 0; i < tokens.length; i++) {
    const context = contexts[i % contexts.length];
    const reuse = context.pages().find((p) => !pages.includes(p));
    const page = reuse || (await context.newPage());
    pages.push(page);
    page.on('console', (m) => log(`page ${i} console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log(`page ${i} page error: ${e.message}`));
  }

  result.stage = `opening ${pageUrl}`;
  await Promise.all(pages.map((p) => p.goto(pageUrl, { timeout: 10000 })));

  // All pages join and publish at once.
  result.stage = 'joining and publishing';
  const joinTimeout = Math.max(5000, left() - seconds * 1000 - 15000);
  const joins = await Promise.all(
    pages.map((p, i) =>
      p.evaluate(joinInPage, {
        wsUrl,
        token: tokens[i],
        simulcast: opts.simulcast,
        timeoutMs: joinTimeout,
        synthetic: colours[i] || null,
      }).catch((e) => ({ error: pageError(e) })),
    ),
  );
  log('joined:', JSON.stringify(joins));
  result.participants = joins.map((j) => ({ identity: j.identity, ...j }));
  const failed = joins.map((j, i) => [i, j]).filter(([, j]) => j.error);
  if (failed.length) {
    throw new Error(failed.map(([i, j]) => `page ${i}${j.identity ? ` (${j.identity})` : ''}: ${j.error}`).join('; '));
  }
  const identities = joins.map((j) => j.identity);
  if (new Set(identities).size !== identities.length) throw new Error(`identities not distinct: ${identities.join(', ')}`);

  result.stage = 'waiting for every remote video';
  const waitTimeout = Math.max(3000, left() - seconds * 1000 - 8000);
  const waits = await Promise.all(
    pages.map((p, i) =>
      p
        .evaluate(waitRemotesInPage, { expected: identities.filter((id) => id !== identities[i]), timeoutMs: waitTimeout })
        .catch((e) => ({ error: pageError(e) })),
    ),
  );
  waits.forEach((w, i) => {
    const firsts = Object.values(w.first_frame_ms || {});
    Object.assign(result.participants[i], {
      first_remote_frame_ms: firsts.length ? Math.min(...firsts) : null,
      all_remote_frames_ms: firsts.length ? Math.max(...firsts) : null,
    });
  });
  const waitFailed = waits.map((w, i) => [i, w]).filter(([, w]) => w.error);
  if (waitFailed.length) {
    waitFailed.forEach(([i, w]) => (result.participants[i].events = w.events));
    throw new Error(waitFailed.map(([i, w]) => `${identities[i]}: ${w.error}`).join('; '));
  }

  result.stage = 'measuring';
  const measures = await Promise.all(
    pages.map((p) => p.evaluate(measureInPage, { seconds }).catch((e) => ({ error: pageError(e) }))),
  );
  result.seconds = seconds;
  result.participants = joins.map((j, i) => {
    const m = measures[i];
    const remotes = m.remotes || {};
    for (const [id, r] of Object.entries(remotes)) r.first_frame_ms = (waits[i].first_frame_ms || {})[id];
    return {
      identity: j.identity,
      join_ms: j.join_ms,
      first_remote_frame_ms: result.participants[i].first_remote_frame_ms,
      all_remote_frames_ms: result.participants[i].all_remote_frames_ms,
      publish_ms: j.publish_ms,
      publish_connected_ms: j.publish_connected_ms,
      role: j.role,
      camera: j.camera,
      remotes,
      sent: m.sent,
      video_paused: m.paused || [],
      ...(m.error ? { error: m.error } : {}),
      ...(m.events && m.events.some((e) => e.type === 'error' || e.type === 'closed') ? { events: m.events } : {}),
    };
  });
  const problems = [];
  result.participants.forEach((p) => {
    if (p.error) problems.push(`${p.identity}: ${p.error}`);
    for (const id of identities.filter((x) => x !== p.identity)) {
      if (!p.remotes[id]) problems.push(`${p.identity} has no subscription to ${id} at the end`);
    }
  });
  if (problems.length) throw new Error(problems.join('; '));

  result.stage = 'leaving';
  await leaveAll();
  delete result.stage;
}

main().then(
  () => finish(true),
  (e) => finish(false, e && e.message ? e.message : e),
);
