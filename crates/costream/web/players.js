// Plays a live stream in a <video> over WHEP, HTTP-FLV (mpegts.js) or HLS
// (hls.js, or the browser's own HLS). The vendored players are loaded as
// classic scripts by the page: window.mpegts, window.Hls.
import { whep } from '/console/console.js';

/** Starts `key` (app/name) in `video` over `protocol`; returns stop(). */
export async function play(video, key, protocol) {
  video.muted = true; // autoplay; the page offers unmute
  if (protocol === 'whep') {
    const s = await whep(key);
    video.srcObject = s.stream;
    await video.play().catch(() => {});
    return () => s.stop();
  }
  if (protocol === 'flv') {
    const mpegts = window.mpegts;
    if (!mpegts || !mpegts.isSupported()) throw new Error('this browser cannot play HTTP-FLV (no MSE)');
    const player = mpegts.createPlayer(
      { type: 'flv', isLive: true, url: new URL(`/${key}.flv`, location.href).href },
      { enableStashBuffer: false, liveBufferLatencyChasing: true },
    );
    window.__player = player;
    player.attachMediaElement(video);
    player.load();
    player.play();
    // Keep to the live edge. A stream from a browser (WHIP) has long GOPs,
    // so a new viewer gets seconds of cached video before the audio its
    // bridge starts making now; playback could not start in that gap.
    const edge = setInterval(() => {
      const b = video.buffered;
      if (!b.length) return;
      const end = b.end(b.length - 1);
      if (video.currentTime < b.start(0) || end - video.currentTime > 3) {
        video.currentTime = Math.max(b.start(b.length - 1), end - 0.3);
        video.play().catch(() => {});
      }
    }, 500);
    return () => {
      clearInterval(edge);
      player.destroy();
    };
  }
  if (protocol === 'hls') {
    const url = `/${key}.m3u8`;
    const Hls = window.Hls;
    if (Hls && Hls.isSupported()) {
      const hls = new Hls({ lowLatencyMode: false, liveSyncDurationCount: 2 });
      hls.loadSource(url);
      hls.attachMedia(video);
      await video.play().catch(() => {});
      return () => hls.destroy();
    }
    video.src = url;
    await video.play().catch(() => {});
    return () => video.removeAttribute('src');
  }
  throw new Error(`unknown protocol ${protocol}`);
}
