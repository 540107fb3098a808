//! The end-of-run report of `costream bench play`, as text or JSON.
//!
//! # JSON (`--json`)
//!
//! One object on one line. Field names are stable; fields may be added.
//! Durations and latencies are milliseconds (floating point), bitrates
//! kbit/s. Distributions (`*_ms` objects) are
//! `{count, min, median, p95, p99, max}` by the nearest-rank method, or
//! `null` when there is no sample.
//!
//! * `protocol`: `"http-flv"` or `"rtmp"`; `url`: the play URL.
//! * `duration_s`: seconds from the tool's start to the report.
//! * `clients`: `requested` (`--clients`); `started` (those whose turn
//!   came before the end, at `--connect-rate`); `connected` (the play was
//!   accepted: HTTP 200, RTMP NetStream.Play.Start, or media);
//!   `failed` (started, never connected); `disconnected` (connected,
//!   then ended with an error before the end); `without_video` (connected
//!   but no video frame).
//! * `first_video_ms`: from the start of the TCP connect to the full
//!   receipt of the first video frame that is not a sequence header.
//! * `first_video_not_keyframe`: clients whose first video frame was not a
//!   keyframe.
//! * `bitrate_kbps`: `{mean, min, max, total}` over connected clients
//!   (bytes read from the socket, from acceptance to the client's end;
//!   clients with less than 0.5 s are left out); `total` is the sum of
//!   the per-client rates. `null` if none. `bytes_received`: all clients.
//! * `fell_behind`: `clients` (either condition below);
//!   `gap_clients` with a jump between consecutive video timestamps above
//!   max(1000 ms, 5 × the client's median frame interval), as when the
//!   server skips a lagging viewer to the next keyframe; `gaps` (how many
//!   such jumps); `max_gap_ms`; `lagging_clients` whose media time since
//!   their first frame trails the wall time since it by more than
//!   `lag_threshold_ms` (2000) at their end; `max_lag_ms` (`null` without
//!   media); `median_frame_interval_ms` (median over clients of their own
//!   median; `null` without video).
//! * `latency_ms`: with `--publish`, push-to-play latency of every video
//!   frame received (receipt instant − publisher's send instant of the same
//!   timestamp), plus `unmatched`: frames whose timestamp the publisher had
//!   not recorded (older than 30 s, or not ours). `null` without
//!   `--publish`. It includes the frames a server sends from its cache
//!   when a viewer joins (the GOP), sent before the viewer connected;
//!   `latency_live_ms` (same shape) leaves those out: only frames the
//!   publisher sent after the viewer started connecting.
//! * `publish`: `null` without `--publish`, else `{url, error, stats}`
//!   where `error` is `null` or a message and `stats` is `null` or
//!   `{video_frames, audio_frames, bytes_sent, loops_completed,
//!   elapsed, first_keyframe_after, max_late}` (durations in ms).
//! * `errors`: `[{message, count}]`, most frequent first: why clients
//!   ended before the end of the run.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::publish::PublishStats;
use super::stats::{percentile, Histogram, Summary};
use super::viewer::ViewerSummary;

/// Lag behind the wall clock that counts as having fallen behind.
pub const LAG_THRESHOLD_MS: f64 = 2000.0;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub protocol: String,
    pub url: String,
    pub duration_s: f64,
    pub clients: ClientCounts,
    pub first_video_ms: Option<Summary>,
    pub first_video_not_keyframe: u64,
    pub bitrate_kbps: Option<Bitrate>,
    pub bytes_received: u64,
    pub fell_behind: FellBehind,
    pub latency_ms: Option<Latency>,
    pub latency_live_ms: Option<Latency>,
    pub publish: Option<PublishReport>,
    pub errors: Vec<ErrorCount>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ClientCounts {
    pub requested: u64,
    pub started: u64,
    pub connected: u64,
    pub failed: u64,
    pub disconnected: u64,
    pub without_video: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bitrate {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub total: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FellBehind {
    pub clients: u64,
    pub gap_clients: u64,
    pub gaps: u64,
    pub max_gap_ms: u32,
    pub lagging_clients: u64,
    pub lag_threshold_ms: f64,
    pub max_lag_ms: Option<f64>,
    pub median_frame_interval_ms: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub count: u64,
    pub min: f64,
    pub median: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub unmatched: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublishReport {
    pub url: String,
    pub error: Option<String>,
    pub stats: Option<PublishStats>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorCount {
    pub message: String,
    pub count: u64,
}

impl Report {
    pub fn build(
        protocol: &str,
        url: &str,
        requested: u64,
        duration_s: f64,
        viewers: &[ViewerSummary],
        with_latency: bool,
        publish: Option<PublishReport>,
    ) -> Report {
        let mut clients = ClientCounts {
            requested,
            started: viewers.len() as u64,
            ..ClientCounts::default()
        };
        let mut first_video = Vec::new();
        let mut not_keyframe = 0;
        let mut rates = Vec::new();
        let mut bytes = 0;
        let mut fell = FellBehind {
            lag_threshold_ms: LAG_THRESHOLD_MS,
            ..FellBehind::default()
        };
        let mut intervals = Vec::new();
        let mut latency = Histogram::new();
        let mut latency_live = Histogram::new();
        let mut unmatched = 0;
        let mut errors: HashMap<&str, u64> = HashMap::new();
        for v in viewers {
            bytes += v.bytes;
            if let Some(e) = &v.error {
                *errors.entry(e).or_default() += 1;
            }
            if !v.connected {
                clients.failed += 1;
                continue;
            }
            clients.connected += 1;
            if v.error.is_some() {
                clients.disconnected += 1;
            }
            match v.first_video {
                Some(d) => first_video.push(d.as_secs_f64() * 1000.0),
                None => clients.without_video += 1,
            }
            if v.first_video_keyframe == Some(false) {
                not_keyframe += 1;
            }
            rates.extend(v.bitrate_bps);
            intervals.extend(v.median_interval_ms);
            let gapped = v.gaps_over_threshold > 0;
            let lagging = v.lag_ms.is_some_and(|l| l > LAG_THRESHOLD_MS);
            fell.gap_clients += u64::from(gapped);
            fell.gaps += u64::from(v.gaps_over_threshold);
            fell.max_gap_ms = fell.max_gap_ms.max(v.max_gap_ms);
            fell.lagging_clients += u64::from(lagging);
            fell.clients += u64::from(gapped || lagging);
            if let Some(lag) = v.lag_ms {
                fell.max_lag_ms = Some(fell.max_lag_ms.map_or(lag, |m: f64| m.max(lag)));
            }
            if let Some(h) = &v.latency {
                latency.merge(h);
            }
            if let Some(h) = &v.latency_live {
                latency_live.merge(h);
            }
            unmatched += v.latency_unmatched;
        }
        intervals.sort_unstable();
        fell.median_frame_interval_ms = percentile(&intervals, 50.0);
        let bitrate_kbps = (!rates.is_empty()).then(|| {
            let total: f64 = rates.iter().sum();
            Bitrate {
                mean: total / rates.len() as f64 / 1000.0,
                min: rates.iter().copied().fold(f64::INFINITY, f64::min) / 1000.0,
                max: rates.iter().copied().fold(0.0, f64::max) / 1000.0,
                total: total / 1000.0,
            }
        });
        let latency_of = |h: &Histogram| {
            h.summary_ms().filter(|_| with_latency).map(|s| Latency {
                count: s.count,
                min: s.min,
                median: s.median,
                p95: s.p95,
                p99: s.p99,
                max: s.max,
                unmatched,
            })
        };
        let latency_ms = latency_of(&latency);
        let latency_live_ms = latency_of(&latency_live);
        let mut errors: Vec<ErrorCount> = errors
            .into_iter()
            .map(|(message, count)| ErrorCount {
                message: message.to_owned(),
                count,
            })
            .collect();
        errors.sort_by(|a, b| b.count.cmp(&a.count).then(a.message.cmp(&b.message)));
        Report {
            protocol: protocol.to_owned(),
            url: url.to_owned(),
            duration_s,
            clients,
            first_video_ms: Summary::of(&mut first_video),
            first_video_not_keyframe: not_keyframe,
            bitrate_kbps,
            bytes_received: bytes,
            fell_behind: fell,
            latency_ms,
            latency_live_ms,
            publish,
            errors,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let c = &self.clients;
        let _ = writeln!(
            s,
            "costream bench: {} {} for {:.1} s",
            self.protocol, self.url, self.duration_s
        );
        let _ = writeln!(
            s,
            "clients        {} requested, {} started, {} connected, {} failed, {} disconnected early, {} without video",
            c.requested, c.started, c.connected, c.failed, c.disconnected, c.without_video
        );
        match &self.first_video_ms {
            Some(f) => {
                let _ = writeln!(
                    s,
                    "first video    min {:.0} ms, median {:.0} ms, p95 {:.0} ms, max {:.0} ms ({} clients; {} not starting with a keyframe)",
                    f.min, f.median, f.p95, f.max, f.count, self.first_video_not_keyframe
                );
            }
            None => s.push_str("first video    none received\n"),
        }
        write_bitrate(
            &mut s,
            self.bitrate_kbps.as_ref(),
            "client",
            self.bytes_received,
        );
        let f = &self.fell_behind;
        let _ = writeln!(
            s,
            "fell behind    {} clients: {} skipped ahead ({} timestamp gaps, max {} ms; median frame interval {}), {} lagging > {:.0} ms (max lag {})",
            f.clients,
            f.gap_clients,
            f.gaps,
            f.max_gap_ms,
            f.median_frame_interval_ms
                .map_or("n/a".to_owned(), |m| format!("{m} ms")),
            f.lagging_clients,
            f.lag_threshold_ms,
            f.max_lag_ms.map_or("n/a".to_owned(), |m| format!("{m:.0} ms")),
        );
        if let Some(l) = &self.latency_ms {
            let _ = writeln!(
                s,
                "latency        min {:.1} ms, median {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} frames, {} unmatched)",
                l.min, l.median, l.p95, l.p99, l.max, l.count, l.unmatched
            );
        } else if self.publish.is_some() {
            s.push_str("latency        no matching video frames\n");
        }
        if let Some(l) = &self.latency_live_ms {
            let _ = writeln!(
                s,
                "  live only    min {:.1} ms, median {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} frames sent after the viewer connected)",
                l.min, l.median, l.p95, l.p99, l.max, l.count
            );
        }
        if let Some(p) = &self.publish {
            let _ = write!(s, "publisher      {}", p.url);
            if let Some(st) = &p.stats {
                let _ = write!(
                    s,
                    ": {} video frames, {} loops, {:.1} MB sent, max {:.0} ms behind schedule",
                    st.video_frames,
                    st.loops_completed,
                    st.bytes_sent as f64 / 1e6,
                    st.max_late.as_secs_f64() * 1000.0
                );
            }
            if let Some(e) = &p.error {
                let _ = write!(s, " (error: {e})");
            }
            s.push('\n');
        }
        if self.errors.is_empty() {
            s.push_str("errors         none\n");
        } else {
            s.push_str("errors\n");
            for e in &self.errors {
                let _ = writeln!(s, "  {:>6}  {}", e.count, e.message);
            }
        }
        s
    }
}

/// The report's `bitrate` line; `who` names one client ("client", "viewer").
pub(crate) fn write_bitrate(s: &mut String, b: Option<&Bitrate>, who: &str, bytes: u64) {
    let mb = bytes as f64 / 1e6;
    let _ = match b {
        Some(b) => writeln!(
            s,
            "bitrate        per {who} mean {:.0} kbps, min {:.0} kbps, max {:.0} kbps; total {:.1} Mbps ({mb:.1} MB received)",
            b.mean,
            b.min,
            b.max,
            b.total / 1000.0,
        ),
        None => writeln!(s, "bitrate        n/a ({mb:.1} MB received)"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn viewer(connected: bool, error: Option<&str>, first_ms: Option<u64>) -> ViewerSummary {
        ViewerSummary {
            connected,
            error: error.map(str::to_owned),
            bytes: 1000,
            bitrate_bps: connected.then_some(1_000_000.0),
            first_video: first_ms.map(Duration::from_millis),
            first_video_keyframe: first_ms.map(|_| true),
            median_interval_ms: first_ms.map(|_| 40),
            gap_threshold_ms: 1000,
            gaps_over_threshold: 0,
            max_gap_ms: 40,
            lag_ms: first_ms.map(|_| 100.0),
            latency: None,
            latency_live: None,
            latency_unmatched: 0,
        }
    }

    #[test]
    fn counts_and_json() {
        let mut lagging = viewer(true, None, Some(30));
        lagging.lag_ms = Some(2500.0);
        lagging.gaps_over_threshold = 2;
        lagging.max_gap_ms = 1800;
        lagging.first_video_keyframe = Some(false);
        let viewers = vec![
            viewer(true, None, Some(10)),
            viewer(true, None, Some(20)),
            lagging,
            viewer(true, Some("the server closed the connection"), None),
            viewer(false, Some("connect: refused"), None),
            viewer(false, Some("connect: refused"), None),
        ];
        let r = Report::build(
            "http-flv",
            "http://h/a/b.flv",
            10,
            30.0,
            &viewers,
            false,
            None,
        );
        let c = &r.clients;
        assert_eq!(
            (
                c.requested,
                c.started,
                c.connected,
                c.failed,
                c.disconnected,
                c.without_video
            ),
            (10, 6, 4, 2, 1, 1)
        );
        let f = r.first_video_ms.unwrap();
        assert_eq!((f.count, f.min, f.median, f.max), (3, 10.0, 20.0, 30.0));
        assert_eq!(r.first_video_not_keyframe, 1);
        let b = r.bitrate_kbps.as_ref().unwrap();
        assert_eq!((b.mean, b.min, b.total), (1000.0, 1000.0, 4000.0));
        assert_eq!(r.bytes_received, 6000);
        let fb = &r.fell_behind;
        assert_eq!(
            (fb.clients, fb.gap_clients, fb.gaps, fb.lagging_clients),
            (1, 1, 2, 1)
        );
        assert_eq!(fb.max_lag_ms, Some(2500.0));
        assert_eq!(r.errors[0].message, "connect: refused");
        assert_eq!(r.errors[0].count, 2);
        assert!(r.latency_ms.is_none());

        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["clients"]["connected"], 4);
        assert_eq!(json["first_video_ms"]["p95"], 30.0);
        assert_eq!(json["fell_behind"]["lagging_clients"], 1);
        assert_eq!(json["errors"][1]["count"], 1);
        assert!(json["latency_ms"].is_null());
        assert!(json["publish"].is_null());
        let text = r.to_text();
        assert!(text.contains("4 connected"), "{text}");
        assert!(text.contains("2  connect: refused"), "{text}");
    }
}
