// What the console's pages share: tokens from the server's development
// mode, the JSON API, WHIP and WHEP, and watching a <video> (first frame,
// stalls, frames decoded). An ES module; no build step.

/** A token for a room (`*` with role host for the dashboard). */
export async function devToken({ room, identity, role = 'audience', live }) {
  const q = new URLSearchParams({ room, role });
  if (identity) q.set('identity', identity);
  if (live) q.set('live', live); // the host's own live stream, which her room's mix may replace
  const res = await fetch(`/api/v1/dev/token?${q}`);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `token: HTTP ${res.status}`);
  return body;
}

/** GET a JSON API path, with a bearer token when given. */
export async function api(path, token) {
  const res = await fetch(path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `${path}: HTTP ${res.status}`);
  return body;
}

/** Waits for ICE gathering (host candidates on a LAN: quick), at most `ms`. */
function gathered(pc, ms = 2000) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const done = () => pc.iceGatheringState === 'complete' && resolve();
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, ms);
  });
}

/** One SDP offer/answer over HTTP (WHIP or WHEP, RFC 9725). */
async function exchange(pc, url) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/sdp' },
    body: pc.localDescription.sdp,
  });
  const text = await res.text();
  if (res.status !== 201) {
    let why = text;
    try { why = JSON.parse(text).error || text; } catch { /* plain text */ }
    throw new Error(`${url}: ${why || `HTTP ${res.status}`}`);
  }
  await pc.setRemoteDescription({ type: 'answer', sdp: text });
  return new URL(res.headers.get('location') || url, location.href).href;
}

function session(pc, resource) {
  return {
    pc,
    resource,
    async stop() {
      pc.close();
      await fetch(resource, { method: 'DELETE' }).catch(() => {});
    },
  };
}

/** Publishes `stream` to `app/name` over WHIP. */
export async function whip(key, stream) {
  const pc = new RTCPeerConnection();
  for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
  return session(pc, await exchange(pc, `/whip/${key}`));
}

/** Plays `app/name` over WHEP: the session, with `.stream`. */
export async function whep(key) {
  const pc = new RTCPeerConnection();
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const stream = new MediaStream();
  pc.addEventListener('track', (e) => stream.addTrack(e.track));
  const s = session(pc, await exchange(pc, `/whep/${key}`));
  s.stream = stream;
  return s;
}

/** Watches a <video>: first frame (ms from `since`), frames presented,
 *  stalls (the player waiting for data after it started), size. `report`
 *  gets the figures whenever they change. */
export function watch(video, since, report) {
  const w = { first_frame_ms: null, frames: 0, stalls: 0, width: 0, height: 0 };
  const tell = () => report && report(w);
  const onFrame = () => {
    if (w.first_frame_ms === null) w.first_frame_ms = Math.round(performance.now() - since);
    w.frames++;
    w.width = video.videoWidth;
    w.height = video.videoHeight;
    if (w.frames % 5 === 1) tell();
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  video.addEventListener('waiting', () => {
    if (w.first_frame_ms !== null) {
      w.stalls++;
      tell();
    }
  });
  return w;
}

/** `document.querySelector`. */
export const $ = (sel) => document.querySelector(sel);

/** An element with properties and children. */
export function el(tag, props = {}, ...children) {
  const e = Object.assign(document.createElement(tag), props);
  for (const c of children) e.append(c);
  return e;
}

/** Shows `text` in `#status` (bad when `bad`). */
export function status(text, bad = false) {
  const s = $('#status');
  if (!s) return;
  s.textContent = text;
  s.className = `status ${bad ? 'bad' : 'ok'}`;
}

/** Camera and microphone. */
export function camera() {
  return navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: true });
}

/** The page header with links to the others. */
export function header(here) {
  const pages = [['index.html', 'Home'], ['viewer.html', 'Watch'], ['host.html', 'Host'], ['dashboard.html', 'Dashboard']];
  const h = el('header', {}, el('b', { textContent: 'costream' }));
  for (const [file, name] of pages) {
    h.append(el('a', { href: `/console/${file}`, textContent: name, className: file === here ? 'here' : '' }));
  }
  document.body.prepend(h);
}
