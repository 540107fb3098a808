#!/usr/bin/env node
// Headless Chromium publishes its fake camera and microphone over WHIP and a
// second page plays the stream back over WHEP; prints ONE JSON line with what
// the viewer decoded.
//
//   node whip_whep.mjs [--whip http://127.0.0.1:PORT/whip/live/s] \
//                      --whep http://127.0.0.1:PORT/whep/live/s \
//                      [--seconds 6] [--codec h264|vp8|any] [--simulcast] [--token TOKEN]
//                      [--timeout 40] [--whep-wait 5] [--page URL] [--chromium PATH] [--verbose]
//
// The viewer's numbers are over the --seconds window that starts at its first
// Without --whip only the viewer runs (the stream is published some other
// way, e.g. ffmpeg over RTMP).
// decoded frame (frames_decoded, fps, audio packets and energy are deltas over
// it); width/height are the decoder's at the end. A WHEP POST answered 404
// (stream not live yet) is retried for --whep-wait seconds. Both session URLs
// are DELETEd at the end, on failure too.
//
// Success: {"ok":true,"publish_status":201,"play_status":201,
//           "video":{"frames_decoded":N,"fps":F,"width":W,"height":H,...},
//           "audio":{"packets":N,"energy":E,...},
//           "connect_ms":{"whip":..,"whep_first_frame":..},"delete_status":{...},...}
// Failure: {"ok":false,"error":"...", ...whatever was measured...}, exit code 1.
//
// The pages run on the server's own origin (--page, default /healthz of the
// WHIP URL): http://127.0.0.1 is a secure context, so getUserMedia works, and
// the WHIP/WHEP requests are same-origin fetches. Media goes to the
// candidates the server announces (127.0.0.1 in the tests); Chromium may send
// it from any of this host's own addresses (the chosen pairs are in
// play.pair and sent.pair). Requires Debian's chromium (/usr/bin/chromium)
// and playwright-core (npm ci here); scripts/test installs both.

import { parseArgs } from 'node:util';
import { startRun } from './run.mjs';

function usage(msg) {
  process.stderr.write(
    `${msg}\nusage: node whip_whep.mjs [--whip URL] --whep URL [--seconds 6] [--codec h264|vp8|any] ` +
      `[--token T] [--timeout 40] [--whep-wait 5] [--page URL] [--chromium PATH] [--verbose]\n`,
  );
  process.exit(2);
}

let opts;
try {
  opts = parseArgs({
    options: {
      whip: { type: 'string' },
      whep: { type: 'string' },
      seconds: { type: 'string', default: '6' },
      codec: { type: 'string', default: 'h264' },
      simulcast: { type: 'boolean', default: false },
      token: { type: 'string' },
      timeout: { type: 'string', default: '40' },
      'whep-wait': { type: 'string', default: '5' },
      page: { type: 'string' },
      chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
      verbose: { type: 'boolean', default: false },
    },
  }).values;
} catch (e) {
  usage(e.message);
}
if (!opts.whep) usage('--whep is required');
const seconds = Number(opts.seconds);
const timeoutS = Number(opts.timeout);
const whepWaitS = Number(opts['whep-wait']);
if (!(seconds > 0) || !(timeoutS > 0) || !(whepWaitS >= 0)) usage('bad --seconds, --timeout or --whep-wait');
const codec = opts.codec.toLowerCase();
let whipUrl, whepUrl, pageUrl;
try {
  whipUrl = opts.whip ? new URL(opts.whip).href : null;
  whepUrl = new URL(opts.whep).href;
  pageUrl = opts.page ? new URL(opts.page).href : new URL('/healthz', whepUrl).href;
} catch (e) {
  usage(e.message);
}
const run = startRun({
  name: 'whip_whep',
  timeoutS,
  verbose: opts.verbose,
  beforeFail: () => endLeftSessions(),
});
const { result, log, finish } = run;
const pages = {}; // publisher, viewer

// ---------------------------------------------------------------------------
// In-page code. The *Steps functions are installed in both pages as globals
// (page.addScriptTag); the *InPage ones are passed to page.evaluate, which
// serialises them, so they use only their argument and those globals.

/** "video sendonly H264/90000, audio sendonly opus/48000/2": what an SDP's
 *  m-sections carry (their first codec) and in which direction. */
function mediaSummary(sdp) {
  return sdp
    .split(/^(?=m=)/m)
    .slice(1)
    .map((sec) => {
      const kind = sec.slice(2, sec.indexOf(' '));
      const port = sec.split(' ')[1];
      const dir = (sec.match(/^a=(sendrecv|sendonly|recvonly|inactive)\s*$/m) || [, 'sendrecv'])[1];
      const pt = sec.split(/\r?\n/)[0].split(' ')[3];
      const rtpmap = (sec.match(new RegExp(`^a=rtpmap:${pt} (\\S+)`, 'm')) || [, '?'])[1];
      return `${kind} ${port === '0' ? 'rejected' : dir} ${rtpmap}`;
    })
    .join(', ');
}

/** The publisher: getUserMedia, sendonly transceivers, non-trickle WHIP POST. */
async function publishInPage(args) {
  const out = {};
  try {
    return await publishSteps(args, out);
  } catch (e) {
    out.error = String(e && e.message ? e.message : e);
    return out;
  }
}

async function publishSteps({ url, token, codec, simulcast, timeoutMs }, out) {
  const deadline = performance.now() + timeoutMs;
  const left = () => Math.max(0, deadline - performance.now());
  const withTimeout = (p, what) =>
    Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: timed out`)), left()))]);
  const stream = await withTimeout(
    navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: true }),
    'getUserMedia',
  );
  const vt = stream.getVideoTracks()[0];
  const at = stream.getAudioTracks()[0];
  if (!vt || !at) throw new Error('getUserMedia gave no video or no audio track');
  const s = vt.getSettings();
  out.camera = { width: s.width, height: s.height, frame_rate: s.frameRate, label: vt.label };
  // Keep the published size: under CPU or bandwidth pressure the encoder
  // drops frames instead of scaling down (the viewer asserts the size).
  vt.contentHint = 'detail';

  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
  window.__pub = { pc, stream };
  // Simulcast: three encodings of the camera (quarter, half and full size).
  const sendEncodings = simulcast
    ? [
        { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
        { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
        { rid: 'f', maxBitrate: 1500000 },
      ]
    : undefined;
  const vtr = pc.addTransceiver(vt, { direction: 'sendonly', streams: [stream], sendEncodings });
  pc.addTransceiver(at, { direction: 'sendonly', streams: [stream] });
  const caps = RTCRtpSender.getCapabilities('video').codecs;
  out.video_send_codecs = [...new Set(caps.map((c) => c.mimeType))];
  if (codec !== 'any') {
    const mime = `video/${codec}`;
    // H.264: packetization-mode=1 first, Constrained Baseline (42e01f) first of those.
    const score = (c) =>
      (/packetization-mode=1/.test(c.sdpFmtpLine || '') ? 0 : 2) + (/profile-level-id=42e01f/i.test(c.sdpFmtpLine || '') ? 0 : 1);
    const wanted = caps.filter((c) => c.mimeType.toLowerCase() === mime).sort((a, b) => score(a) - score(b));
    if (!wanted.length) throw new Error(`this Chromium cannot send ${mime}; it sends ${out.video_send_codecs.join(', ')}`);
    const rtx = caps.filter((c) => c.mimeType.toLowerCase() === 'video/rtx');
    vtr.setCodecPreferences([...wanted, ...rtx]);
  }

  await pc.setLocalDescription(await pc.createOffer());
  await withTimeout(
    new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
    }),
    'ICE gathering',
  );
  const offer = pc.localDescription.sdp;
  out.offer_candidates = offer.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:')).length;

  const headers = { 'Content-Type': 'application/sdp' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const t0 = performance.now();
  const res = await withTimeout(fetch(url, { method: 'POST', headers, body: offer }), 'WHIP POST');
  const body = await res.text();
  out.status = res.status;
  out.post_ms = Math.round(performance.now() - t0);
  out.content_type = res.headers.get('Content-Type');
  const loc = res.headers.get('Location');
  out.location = loc ? new URL(loc, url).href : null;
  window.__session = out.location;
  if (res.status !== 201) throw new Error(`WHIP POST ${url}: ${res.status} ${body.slice(0, 300)}`);
  if (!loc) throw new Error('WHIP POST answered 201 without a Location header');
  out.answer_media = mediaSummary(body);
  await pc.setRemoteDescription({ type: 'answer', sdp: body });
  out.answer_ice_lite = /^a=ice-lite/m.test(body);

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
  ).catch((e) => {
    throw new Error(`${e.message} (ice ${pc.iceConnectionState}, connection ${pc.connectionState})`);
  });
  out.connected_ms = Math.round(performance.now() - t0);
  return out;
}

/** The publisher's own view of what it sends (for diagnosis). */
async function publisherStatsInPage() {
  const { pc } = window.__pub;
  const stats = await pc.getStats();
  const out = {};
  stats.forEach((r) => {
    if (r.type === 'outbound-rtp' && r.kind === 'video') {
      const codec = stats.get(r.codecId);
      Object.assign(out, {
        codec: codec && codec.mimeType,
        fmtp: codec && codec.sdpFmtpLine,
        frames_encoded: r.framesEncoded,
        frames_sent: r.framesSent,
        width: r.frameWidth,
        height: r.frameHeight,
        fps: r.framesPerSecond,
        quality_limitation: r.qualityLimitationReason,
        encoder: r.encoderImplementation,
        nacks: r.nackCount,
        plis: r.pliCount,
        firs: r.firCount,
      });
    }
    if (r.type === 'outbound-rtp' && r.kind === 'audio') {
      const codec = stats.get(r.codecId);
      out.audio_codec = codec && codec.mimeType;
      out.audio_packets_sent = r.packetsSent;
    }
    if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') {
      const l = stats.get(r.localCandidateId);
      const rm = stats.get(r.remoteCandidateId);
      out.pair = `${l && l.address}:${l && l.port} -> ${rm && rm.address}:${rm && rm.port}/${rm && rm.protocol}`;
      out.rtt_ms = r.currentRoundTripTime != null ? Math.round(r.currentRoundTripTime * 1000) : undefined;
    }
  });
  return out;
}

/** The viewer: recvonly transceivers, WHEP POST (retried on 404 until the
 *  stream is live), then measures decoded video and received audio. */
async function playInPage(args) {
  const out = { video: {}, audio: {} };
  try {
    return await playSteps(args, out);
  } catch (e) {
    out.error = String(e && e.message ? e.message : e);
    return out;
  }
}

async function playSteps({ url, token, codec, seconds, whepWaitMs, timeoutMs }, out) {
  const deadline = performance.now() + timeoutMs;
  const left = () => Math.max(0, deadline - performance.now());
  const withTimeout = (p, what) =>
    Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: timed out`)), left()))]);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const fail = (msg) => new Error(msg);

  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
  window.__play = { pc };
  const vtr = pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  if (codec !== 'any') {
    const caps = RTCRtpReceiver.getCapabilities('video').codecs;
    const mine = caps.filter((c) => c.mimeType.toLowerCase() === `video/${codec}`);
    if (!mine.length) throw fail(`this Chromium cannot receive video/${codec}`);
    vtr.setCodecPreferences([...mine, ...caps.filter((c) => !mine.includes(c))]);
  }
  const remote = new MediaStream();
  pc.addEventListener('track', (e) => remote.addTrack(e.track));

  await pc.setLocalDescription(await pc.createOffer());
  await withTimeout(
    new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
    }),
    'ICE gathering',
  );
  const offer = pc.localDescription.sdp;
  out.offer_mdns_candidates = /^a=candidate:.* [0-9a-f-]+\.local /m.test(offer);

  const headers = { 'Content-Type': 'application/sdp' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const t0 = performance.now();
  let res;
  let body;
  out.post_attempts = 0;
  for (;;) {
    out.post_attempts++;
    res = await withTimeout(fetch(url, { method: 'POST', headers, body: offer }), 'WHEP POST');
    body = await res.text();
    // The stream may not be in the hub yet right after WHIP connects.
    if (res.status === 404 && performance.now() - t0 < whepWaitMs) {
      await sleep(200);
      continue;
    }
    break;
  }
  const tAnswered = performance.now();
  out.status = res.status;
  out.post_ms = Math.round(tAnswered - t0);
  out.content_type = res.headers.get('Content-Type');
  const loc = res.headers.get('Location');
  out.location = loc ? new URL(loc, url).href : null;
  window.__session = out.location;
  if (res.status !== 201) throw fail(`WHEP POST ${url}: ${res.status} ${body.slice(0, 300)}`);
  if (!loc) throw fail('WHEP POST answered 201 without a Location header');
  out.answer_media = mediaSummary(body);
  await pc.setRemoteDescription({ type: 'answer', sdp: body });

  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.srcObject = remote;
  document.body.append(video);
  video.play().catch(() => {}); // autoplay is allowed by flag; play() resolves only once media flows

  // Presented frames, counted by the compositor's frame callbacks.
  const presented = { count: 0, first: null, width: 0, height: 0 };
  if ('requestVideoFrameCallback' in video) {
    const onFrame = (now, meta) => {
      if (presented.first === null) presented.first = performance.now();
      presented.count++;
      presented.width = meta.width;
      presented.height = meta.height;
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  async function snapshot() {
    const stats = await pc.getStats();
    const s = { at: performance.now(), video: null, audio: null, pair: null };
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') {
        const c = stats.get(r.codecId);
        s.video = {
          codec: c && c.mimeType,
          fmtp: c && c.sdpFmtpLine,
          frames_decoded: r.framesDecoded || 0,
          frames_received: r.framesReceived || 0,
          key_frames: r.keyFramesDecoded || 0,
          frames_dropped: r.framesDropped || 0,
          width: r.frameWidth || 0,
          height: r.frameHeight || 0,
          packets: r.packetsReceived || 0,
          packets_lost: r.packetsLost || 0,
          nacks: r.nackCount || 0,
          plis: r.pliCount || 0,
          freezes: r.freezeCount || 0,
          decoder: r.decoderImplementation,
          jitter_ms: r.jitter != null ? Math.round(r.jitter * 1000) : undefined,
        };
      }
      if (r.type === 'inbound-rtp' && r.kind === 'audio') {
        const c = stats.get(r.codecId);
        s.audio = {
          codec: c && c.mimeType,
          packets: r.packetsReceived || 0,
          packets_lost: r.packetsLost || 0,
          energy: r.totalAudioEnergy || 0,
          level: r.audioLevel || 0,
          samples: r.totalSamplesReceived || 0,
          concealed: r.concealedSamples || 0,
        };
      }
      if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') {
        const l = stats.get(r.localCandidateId);
        const rm = stats.get(r.remoteCandidateId);
        s.pair = `${l && l.address}:${l && l.port} -> ${rm && rm.address}:${rm && rm.port}/${rm && rm.protocol}`;
      }
    });
    return s;
  }

  // Wait for the first decoded frame.
  let first = null;
  let last = null;
  while (first === null) {
    if (left() === 0) {
      throw fail(
        `no video frame decoded ${Math.round(performance.now() - t0)} ms after the WHEP POST ` +
          `(ice ${pc.iceConnectionState}, connection ${pc.connectionState}, stats ${JSON.stringify(last)})`,
      );
    }
    if (pc.connectionState === 'failed') throw fail('viewer connection failed');
    last = await snapshot();
    if ((last.video && last.video.frames_decoded > 0) || presented.first !== null) {
      first = presented.first !== null ? Math.min(presented.first, last.at) : last.at;
    } else {
      await sleep(20);
    }
  }
  out.first_frame_ms = Math.round(first - t0);
  out.first_frame_after_answer_ms = Math.round(first - tAnswered);

  // WebAudio on the received audio: peak RMS over the window (a second,
  // independent look at the sound besides the RTP stats).
  let analyser = null;
  let audioCtx = null;
  const rms = { max: 0, sum: 0, n: 0 };
  try {
    if (remote.getAudioTracks().length) {
      audioCtx = new AudioContext();
      await audioCtx.resume().catch(() => {});
      analyser = audioCtx.createAnalyser();
      analyser.fftSize = 2048;
      audioCtx.createMediaStreamSource(new MediaStream(remote.getAudioTracks())).connect(analyser);
    }
  } catch (e) {
    out.audio.analyser_error = String(e);
  }
  const buf = new Float32Array(2048);

  // The measuring window.
  const s0 = await snapshot();
  const presented0 = presented.count;
  let levelMax = 0;
  const windowEnd = s0.at + seconds * 1000;
  while (performance.now() < windowEnd) {
    if (left() === 0) throw fail('timed out while measuring');
    await sleep(100);
    if (analyser) {
      analyser.getFloatTimeDomainData(buf);
      let acc = 0;
      for (const x of buf) acc += x * x;
      const r = Math.sqrt(acc / buf.length);
      rms.max = Math.max(rms.max, r);
      rms.sum += r;
      rms.n++;
    }
  }
  const s1 = await snapshot();
  levelMax = Math.max(s0.audio ? s0.audio.level : 0, s1.audio ? s1.audio.level : 0);
  const span = (s1.at - s0.at) / 1000;
  const v0 = s0.video || { frames_decoded: 0 };
  const v1 = s1.video || {};
  const frames = (v1.frames_decoded || 0) - v0.frames_decoded;
  out.video = {
    frames_decoded: frames,
    fps: Math.round((frames / span) * 10) / 10,
    width: v1.width || 0,
    height: v1.height || 0,
    seconds: Math.round(span * 100) / 100,
    presented_frames: presented.count - presented0,
    element_width: video.videoWidth,
    element_height: video.videoHeight,
    presented_width: presented.width,
    presented_height: presented.height,
    ...Object.fromEntries(Object.entries(v1).filter(([k]) => !['frames_decoded', 'width', 'height'].includes(k))),
    frames_decoded_total: v1.frames_decoded || 0,
  };
  const a0 = s0.audio || { packets: 0, energy: 0 };
  const a1 = s1.audio || { packets: 0, energy: 0 };
  out.audio = {
    ...out.audio,
    codec: a1.codec,
    packets: a1.packets - a0.packets,
    packets_total: a1.packets,
    packets_lost: a1.packets_lost,
    energy: a1.energy - a0.energy,
    level_max: levelMax,
    samples: a1.samples - (a0.samples || 0),
    concealed: a1.concealed - (a0.concealed || 0),
    analyser_rms_max: analyser ? Math.round(rms.max * 10000) / 10000 : null,
    analyser_rms_mean: analyser && rms.n ? Math.round((rms.sum / rms.n) * 10000) / 10000 : null,
  };
  out.pair = s1.pair;
  out.connection = pc.connectionState;
  if (audioCtx) audioCtx.close().catch(() => {});
  return out;
}

// ---------------------------------------------------------------------------

/** On failure: DELETE the sessions the pages created and nobody ended yet
 *  (a page may still be stuck in its evaluate; another evaluate still runs). */
async function endLeftSessions() {
  for (const [name, kind] of [['viewer', 'whep'], ['publisher', 'whip']]) {
    const page = pages[name];
    if (!page || (result.delete_status && result.delete_status[kind] != null)) continue;
    const url = await Promise.race([
      page.evaluate(() => window.__session).catch(() => null),
      new Promise((r) => setTimeout(() => r(null), 2000)),
    ]);
    await endSession(kind, url);
  }
}

/** DELETE a session (whip or whep) and note the status in the result. */
async function endSession(kind, url) {
  if (!url) return;
  const status = await del(url, opts.token);
  result.delete_status = { ...result.delete_status, [kind]: status };
}

const deleted = new Map(); // session URL -> promise of the DELETE's status

/** DELETE a session URL once; its status, or null without a URL. */
function del(url, token) {
  if (!url) return Promise.resolve(null);
  if (!deleted.has(url)) {
    deleted.set(
      url,
      (async () => {
        try {
          const headers = token ? { Authorization: `Bearer ${token}` } : {};
          const res = await fetch(url, { method: 'DELETE', headers, signal: AbortSignal.timeout(5000) });
          await res.arrayBuffer().catch(() => {});
          return res.status;
        } catch (e) {
          return `error: ${e.message}`;
        }
      })(),
    );
  }
  return deleted.get(url);
}

async function main() {
  result.stage = 'launching chromium';
  const context = await run.launch(opts.chromium);
  const origin = new URL(pageUrl).origin;
  await context.grantPermissions(['camera', 'microphone'], { origin });
  result.browser = context.browser() ? context.browser().version() : undefined;
  const pub = context.pages()[0] || (await context.newPage());
  const view = await context.newPage();
  Object.assign(pages, { publisher: pub, viewer: view });
  for (const [name, p] of [['publisher', pub], ['viewer', view]]) {
    p.on('console', (m) => log(`${name} console.${m.type()}: ${m.text()}`));
    p.on('pageerror', (e) => log(`${name} page error: ${e.message}`));
  }

  result.stage = `opening ${pageUrl}`;
  for (const p of [pub, view]) {
    await p.goto(pageUrl, { timeout: 10000 });
    await p.addScriptTag({ content: [mediaSummary, publishSteps, playSteps].map(String).join('\n') });
  }
  const inPageTimeout = Math.max(5000, run.left() - 8000);

  result.stage = 'publishing (WHIP)';
  log('WHIP', whipUrl || '(none: the stream is published otherwise)');
  const published = whipUrl
    ? await pub
        .evaluate(publishInPage, { url: whipUrl, token: opts.token, codec, simulcast: opts.simulcast, timeoutMs: inPageTimeout })
        .catch((e) => ({ error: pageError(e) }))
    : {};
  result.publish_status = published.status;
  result.publish = published;
  log('published:', JSON.stringify(published));
  if (published.error) {
    await endSession('whip', published.location);
    throw new Error(`publish: ${published.error}`);
  }

  result.stage = 'playing (WHEP)';
  log('WHEP', whepUrl);
  const played = await view
    .evaluate(playInPage, {
      url: whepUrl,
      token: opts.token,
      codec,
      seconds,
      whepWaitMs: whepWaitS * 1000,
      timeoutMs: Math.max(5000, run.left() - 6000),
    })
    .catch((e) => ({ error: pageError(e) }));
  log('played:', JSON.stringify(played));
  result.play_status = played.status;
  if (played.error) {
    result.play = played;
    if (whipUrl) result.sent = await pub.evaluate(publisherStatsInPage).catch((e) => ({ error: e.message }));
    await endSession('whep', played.location);
    await endSession('whip', published.location);
    throw new Error(`play: ${played.error}`);
  }
  result.video = played.video;
  result.audio = played.audio;
  result.connect_ms = {
    whip: published.connected_ms,
    whip_post: published.post_ms,
    whep_post: played.post_ms,
    whep_first_frame: played.first_frame_ms,
  };
  result.play = {
    answer_media: played.answer_media,
    location: played.location,
    content_type: played.content_type,
    post_attempts: played.post_attempts,
    pair: played.pair,
    offer_mdns_candidates: played.offer_mdns_candidates,
  };
  if (whipUrl) result.sent = await pub.evaluate(publisherStatsInPage).catch((e) => ({ error: e.message }));

  result.stage = 'deleting the sessions';
  await endSession('whep', played.location);
  await endSession('whip', published.location);
  delete result.stage;
  const bad = Object.entries(result.delete_status || {}).filter(([, s]) => !(typeof s === 'number' && s >= 200 && s < 300));
  if (bad.length) throw new Error(`DELETE of the session URL failed: ${bad.map(([k, s]) => `${k} ${s}`).join(', ')}`);
}

// The first line of an error page.evaluate threw (the page crashed or closed).
function pageError(e) {
  return String(e && e.message ? e.message : e)
    .replace(/^page\.evaluate: (Error: )?/, '')
    .split('\n')[0];
}

main().then(
  () => finish(true),
  (e) => finish(false, e && e.message ? e.message : e),
);
