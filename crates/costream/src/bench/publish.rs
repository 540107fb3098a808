//! Publishing an FLV file over RTMP in real time, like an encoder: tags
//! are paced by their timestamps, the file loops with timestamps carried
//! on monotonically, and the send instant of every video frame can be
//! recorded for viewers to measure push-to-play latency.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::BytesMut;
use costream_flv::{FlvReader, FlvTag, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use costream_rtmp::{amf0, Amf0Value, ClientEvent, ClientSession};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};

use super::media::{classify_video, is_audio_config, VideoTag};
use super::url::{BenchUrl, Scheme};

/// Largest FLV tag accepted from the file.
const MAX_FILE_TAG: usize = 16 << 20;
/// How long the server may take to accept the publish.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// Frame interval assumed when the file has fewer than two video frames.
const DEFAULT_FRAME_INTERVAL_MS: u64 = 40;

/// Wall-clock send instants of recent video frames, by timestamp; written
/// by the publisher, read by every viewer. Only the last `window` is kept.
#[derive(Debug)]
pub struct SendTimes {
    window: Duration,
    /// Ascending timestamps.
    entries: RwLock<VecDeque<(u32, Instant)>>,
}

impl SendTimes {
    pub fn new(window: Duration) -> Self {
        SendTimes {
            window,
            entries: RwLock::new(VecDeque::with_capacity(4096)),
        }
    }

    /// Records that the frame with `timestamp` was sent at `at`. Timestamps
    /// must not decrease; a smaller one is ignored.
    pub fn record(&self, timestamp: u32, at: Instant) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.back().is_some_and(|(ts, _)| *ts > timestamp) {
            return;
        }
        while entries
            .front()
            .is_some_and(|(_, t)| at.saturating_duration_since(*t) > self.window)
        {
            entries.pop_front();
        }
        entries.push_back((timestamp, at));
    }

    pub fn lookup(&self, timestamp: u32) -> Option<Instant> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let i = entries
            .binary_search_by_key(&timestamp, |(ts, _)| *ts)
            .ok()?;
        entries.get(i).map(|(_, at)| *at)
    }
}

/// What a publish run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PublishStats {
    pub video_frames: u64,
    pub audio_frames: u64,
    /// Bytes written to the socket (RTMP framing included).
    pub bytes_sent: u64,
    /// Complete passes over the file.
    pub loops_completed: u64,
    /// From the publish being accepted to the end.
    #[serde(serialize_with = "as_millis")]
    pub elapsed: Duration,
    /// From the publish being accepted to the first keyframe being sent.
    #[serde(serialize_with = "opt_as_millis")]
    pub first_keyframe_after: Option<Duration>,
    /// How far behind its schedule a tag was sent, at worst (a slow
    /// socket or an overloaded machine).
    #[serde(serialize_with = "as_millis")]
    pub max_late: Duration,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

fn opt_as_millis<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => as_millis(d, s),
        None => s.serialize_none(),
    }
}

/// Publishes the FLV file at `path` to the RTMP `url`
/// (`rtmp://host[:port]/app/stream`), paced in real time by its tag
/// timestamps. With `loops` the file repeats until `stop` turns true,
/// timestamps continuing monotonically (each pass is offset by the file's
/// duration plus one frame interval); sequence headers and onMetaData are
/// sent once, at the start. Without `loops` it returns at the end of the
/// file (or earlier on `stop`). A dropped `stop` sender stops nothing:
/// drop the future to abort.
pub async fn publish_flv_file(
    url: &str,
    path: &Path,
    stop: watch::Receiver<bool>,
    loops: bool,
) -> anyhow::Result<PublishStats> {
    let url = BenchUrl::parse(url)?;
    publish(Publish {
        url: &url,
        path,
        stop,
        loops,
        send_times: None,
        first_keyframe: None,
    })
    .await
}

/// Everything [`publish`] takes.
pub(crate) struct Publish<'a> {
    pub url: &'a BenchUrl,
    pub path: &'a Path,
    pub stop: watch::Receiver<bool>,
    pub loops: bool,
    /// Where to record video frame send instants.
    pub send_times: Option<Arc<SendTimes>>,
    /// Signalled once the first keyframe has been written.
    pub first_keyframe: Option<oneshot::Sender<()>>,
}

pub(crate) async fn publish(opts: Publish<'_>) -> anyhow::Result<PublishStats> {
    if opts.url.scheme != Scheme::Rtmp {
        bail!("the publish URL must be rtmp://host[:port]/app/stream");
    }
    let target = opts.url.rtmp_target()?;
    // Fail on a bad file before connecting.
    let mut tags = FileTags::open(opts.path).await?;
    let sock = TcpStream::connect((opts.url.host.as_str(), opts.url.port))
        .await
        .with_context(|| format!("connect to {}", opts.url.authority()))?;
    sock.set_nodelay(true)?;
    let session = target.publish_session();
    let mut p = Publisher {
        sock,
        session,
        rbuf: BytesMut::with_capacity(16 * 1024),
        stop: opts.stop,
        stop_open: true,
        stats: PublishStats::default(),
    };
    p.flush().await?;
    if p.stopped() {
        return Ok(p.stats);
    }
    tokio::time::timeout(PUBLISH_TIMEOUT, p.wait_publishing())
        .await
        .map_err(|_| anyhow!("publish not accepted within {PUBLISH_TIMEOUT:?}"))??;

    let start = Instant::now();
    let mut first_keyframe = opts.first_keyframe;
    let mut base_ts: Option<u32> = None;
    let mut offset: u64 = 0;
    let mut pass = 0u64;
    let mut latest_due: Option<Instant> = None;
    let result = 'passes: loop {
        let (mut min_ts, mut max_ts) = (u32::MAX, 0u32);
        let mut last_video: Option<u32> = None;
        let mut interval: Option<u64> = None;
        let mut media = 0u64;
        loop {
            let tag = match tags.next().await {
                Ok(Some(tag)) => tag,
                Ok(None) => break,
                Err(e) => break 'passes Err(e),
            };
            let is_config = match tag.tag_type {
                TAG_VIDEO => match classify_video(&tag.body) {
                    VideoTag::SequenceHeader => true,
                    VideoTag::Frame { .. } => false,
                    // An end of sequence would reset players at every loop.
                    VideoTag::Other => continue,
                },
                TAG_AUDIO => is_audio_config(&tag.body),
                TAG_SCRIPT => true,
                _ => continue,
            };
            if is_config && pass > 0 {
                continue;
            }
            if !is_config {
                media += 1;
                min_ts = min_ts.min(tag.timestamp);
                max_ts = max_ts.max(tag.timestamp);
                if tag.tag_type == TAG_VIDEO {
                    if let Some(d) = last_video
                        .map(|prev| tag.timestamp.saturating_sub(prev))
                        .filter(|d| *d > 0)
                    {
                        interval = Some(u64::from(d));
                    }
                    last_video = Some(tag.timestamp);
                }
            }
            // The schedule starts at the first media tag (files cut from a
            // live stream need not start at 0); configuration before it
            // goes out at once.
            if !is_config && base_ts.is_none() {
                base_ts = Some(tag.timestamp);
            }
            let base = u64::from(base_ts.unwrap_or(tag.timestamp));
            let ts64 = u64::from(tag.timestamp) + offset;
            let due = start + Duration::from_millis(ts64.saturating_sub(base));
            match p.wait_until(due).await {
                Ok(true) => {}
                Ok(false) => break 'passes Ok(()),
                Err(e) => break 'passes Err(e),
            }
            let now = Instant::now();
            // Tags muxed out of timestamp order are sent at once; only those
            // in order measure how well the schedule is kept.
            if latest_due.is_none_or(|d| due >= d) {
                latest_due = Some(due);
                p.stats.max_late = p.stats.max_late.max(now.saturating_duration_since(due));
            }
            // RTMP timestamps are 32-bit milliseconds and wrap.
            let ts = ts64 as u32;
            if let Err(e) = p.send(&tag, ts, now, opts.send_times.as_deref()).await {
                break 'passes Err(e);
            }
            if tag.tag_type == TAG_VIDEO
                && p.stats.first_keyframe_after.is_none()
                && classify_video(&tag.body) == (VideoTag::Frame { keyframe: true })
            {
                p.stats.first_keyframe_after = Some(now.saturating_duration_since(start));
                if let Some(tx) = first_keyframe.take() {
                    let _ = tx.send(());
                }
            }
        }
        if media == 0 {
            break Err(anyhow!("{}: no audio or video tags", opts.path.display()));
        }
        p.stats.loops_completed += 1;
        if !opts.loops {
            break Ok(());
        }
        let duration = u64::from(max_ts - min_ts);
        offset += duration + interval.unwrap_or(DEFAULT_FRAME_INTERVAL_MS);
        pass += 1;
        if let Err(e) = tags.rewind().await {
            break Err(e);
        }
    };
    p.stats.elapsed = start.elapsed();
    result?;
    p.session.close();
    // Best effort: the server may already be gone.
    let _ = p.flush().await;
    let _ = p.sock.shutdown().await;
    Ok(p.stats)
}

fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(16 * 1024);
    }
}

struct Publisher {
    sock: TcpStream,
    session: ClientSession,
    rbuf: BytesMut,
    stop: watch::Receiver<bool>,
    /// False once the stop sender is gone.
    stop_open: bool,
    stats: PublishStats,
}

impl Publisher {
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.session.has_output() {
            let out = self.session.take_output();
            self.sock
                .write_all(&out)
                .await
                .context("write to the server")?;
            self.stats.bytes_sent += out.len() as u64;
        }
        Ok(())
    }

    /// Reads from the server and reacts to what it says.
    async fn on_readable(&mut self) -> anyhow::Result<()> {
        reserve(&mut self.rbuf);
        let n = self.sock.read_buf(&mut self.rbuf).await;
        self.on_read(n).await
    }

    /// Handles the result of a read into `rbuf`.
    async fn on_read(&mut self, n: std::io::Result<usize>) -> anyhow::Result<()> {
        if n.context("read from the server")? == 0 {
            bail!("the server closed the publishing connection");
        }
        self.session
            .feed(&mut self.rbuf)
            .map_err(|e| anyhow!("RTMP: {e}"))?;
        while let Some(event) = self.session.poll_event() {
            match event {
                ClientEvent::Error { code, description } => {
                    bail!("publish rejected: {code} {description}")
                }
                ClientEvent::Status { level, code, .. } if level == "error" => {
                    bail!("publish stopped: {code}")
                }
                _ => {}
            }
        }
        self.flush().await
    }

    async fn wait_publishing(&mut self) -> anyhow::Result<()> {
        while !self.session.is_publishing() {
            self.on_readable().await?;
        }
        Ok(())
    }

    /// Serves the connection until `due`; false if told to stop.
    async fn wait_until(&mut self, due: Instant) -> anyhow::Result<bool> {
        let sleep = tokio::time::sleep_until(due.into());
        tokio::pin!(sleep);
        loop {
            if self.stopped() {
                return Ok(false);
            }
            reserve(&mut self.rbuf);
            tokio::select! {
                biased;
                changed = self.stop.changed(), if self.stop_open => {
                    if changed.is_err() {
                        self.stop_open = false;
                    }
                }
                n = self.sock.read_buf(&mut self.rbuf) => self.on_read(n).await?,
                () = &mut sleep => return Ok(true),
            }
        }
    }

    async fn send(
        &mut self,
        tag: &FlvTag,
        ts: u32,
        now: Instant,
        send_times: Option<&SendTimes>,
    ) -> anyhow::Result<()> {
        let not_publishing = |e| anyhow!("RTMP: {e}");
        match tag.tag_type {
            TAG_VIDEO => {
                if let VideoTag::Frame { .. } = classify_video(&tag.body) {
                    self.stats.video_frames += 1;
                    // Before the write: the server may forward the frame
                    // before this task runs again.
                    if let Some(times) = send_times {
                        times.record(ts, now);
                    }
                }
                self.session
                    .send_video(ts, &tag.body)
                    .map_err(not_publishing)?;
            }
            TAG_AUDIO => {
                if !is_audio_config(&tag.body) {
                    self.stats.audio_frames += 1;
                }
                self.session
                    .send_audio(ts, &tag.body)
                    .map_err(not_publishing)?;
            }
            _ => {
                if let Some(values) = metadata_values(&tag.body) {
                    self.session
                        .send_metadata(&values)
                        .map_err(not_publishing)?;
                }
            }
        }
        self.flush().await
    }
}

/// `["onMetaData", {...}]` from a script tag body, without any
/// `@setDataFrame` prefix; `None` for other script data.
fn metadata_values(body: &[u8]) -> Option<Vec<Amf0Value>> {
    let mut values = amf0::decode_all(body).ok()?;
    if values.first().and_then(Amf0Value::as_str) == Some("@setDataFrame") {
        values.remove(0);
    }
    (values.first().and_then(Amf0Value::as_str) == Some("onMetaData")).then_some(values)
}

/// Tags of an FLV file, read in 64 KiB pieces.
struct FileTags<'a> {
    path: &'a Path,
    file: tokio::fs::File,
    buf: BytesMut,
    reader: FlvReader,
    eof: bool,
}

impl<'a> FileTags<'a> {
    async fn open(path: &'a Path) -> anyhow::Result<Self> {
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("open {}", path.display()))?;
        Ok(FileTags {
            path,
            file,
            buf: BytesMut::with_capacity(64 * 1024),
            reader: FlvReader::new(MAX_FILE_TAG),
            eof: false,
        })
    }

    /// Back to the first tag.
    async fn rewind(&mut self) -> anyhow::Result<()> {
        use tokio::io::AsyncSeekExt;
        self.file.seek(std::io::SeekFrom::Start(0)).await?;
        self.buf.clear();
        self.reader = FlvReader::new(MAX_FILE_TAG);
        self.eof = false;
        Ok(())
    }

    /// The next tag; `None` at the end (a truncated last tag is dropped).
    async fn next(&mut self) -> anyhow::Result<Option<FlvTag>> {
        loop {
            let tag = self
                .reader
                .next_tag(&mut self.buf)
                .with_context(|| format!("{}: not a valid FLV file", self.path.display()))?;
            if tag.is_some() || self.eof {
                return Ok(tag);
            }
            if self.buf.capacity() - self.buf.len() < 16 * 1024 {
                self.buf.reserve(64 * 1024);
            }
            let n = self
                .file
                .read_buf(&mut self.buf)
                .await
                .with_context(|| format!("read {}", self.path.display()))?;
            self.eof = n == 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_times_window_and_lookup() {
        let t0 = Instant::now();
        let times = SendTimes::new(Duration::from_secs(1));
        for i in 0..100u32 {
            times.record(i * 40, t0 + Duration::from_millis(u64::from(i) * 40));
        }
        // Older than 1 s before the last record: gone.
        assert_eq!(times.lookup(0), None);
        assert_eq!(times.lookup(2000), None);
        assert_eq!(
            times.lookup(99 * 40),
            Some(t0 + Duration::from_millis(99 * 40))
        );
        assert_eq!(times.lookup(3000), Some(t0 + Duration::from_millis(3000)));
        assert_eq!(times.lookup(3001), None);
        // Going backwards is ignored.
        times.record(10, t0 + Duration::from_secs(5));
        assert_eq!(times.lookup(10), None);
    }

    #[test]
    fn metadata() {
        let mut body = BytesMut::new();
        amf0::encode(
            &[
                Amf0Value::from("onMetaData"),
                Amf0Value::ecma_array([("width", Amf0Value::from(640.0))]),
            ],
            &mut body,
        );
        let v = metadata_values(&body).unwrap();
        assert_eq!(v.len(), 2);
        let mut prefixed = BytesMut::new();
        amf0::encode_value(&Amf0Value::from("@setDataFrame"), &mut prefixed);
        prefixed.extend_from_slice(&body);
        assert_eq!(metadata_values(&prefixed).unwrap(), v);
        let mut cue = BytesMut::new();
        amf0::encode(&[Amf0Value::from("onCuePoint")], &mut cue);
        assert!(metadata_values(&cue).is_none());
        assert!(metadata_values(&[0xff, 0xff]).is_none());
    }
}
