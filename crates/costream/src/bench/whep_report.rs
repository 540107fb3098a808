//! The end-of-run report of `costream bench whep`, as text or JSON.
//!
//! # JSON (`--json`)
//!
//! One object on one line; durations in milliseconds, distributions
//! (`*_ms`) as in `bench play` (`{count, min, median, p95, p99, max}`,
//! nearest rank, `null` without samples).
//!
//! * `protocol`: `"whep"`; `url`; `duration_s`.
//! * `clients`: `requested`, `started`, `connected` (ICE and DTLS up),
//!   `failed` (started, never connected: refused offer, no answer, ICE or
//!   DTLS timeout), `disconnected` (connected, then ended with an error
//!   before the end), `without_video` (connected, no video frame).
//! * `answer_ms`: offer POST to the `201` answer. `connect_ms`: offer POST
//!   to ICE+DTLS connected. `first_video_ms`: offer POST to the first
//!   complete video frame. `first_video_not_keyframe`: viewers whose first
//!   frame held no IDR.
//! * `video_frames`, `audio_packets`: `{mean, min, max}` over connected
//!   viewers of what each received; `video_fps`, `audio_pps`: the same per
//!   second (from connected to the end); `bitrate_kbps` as in `bench play` (UDP payload bytes);
//!   `bytes_received`.
//! * `loss`: `packets_expected` and `packets_lost` (RTP sequence numbers
//!   in no delivered frame, from each stream's first delivered frame on,
//!   audio and video, all viewers; NACKed and recovered packets are not
//!   lost), `percent`,
//!   `viewers_over_1pct`, `max_viewer_percent`, `nacks_sent`,
//!   `discontinuities` (frames str0m flagged as not contiguous),
//!   `gap_viewers` (viewers with a video timestamp jump over 1 s: skipped
//!   ahead by the server, or stalled), `max_gap_ms`.
//! * `cpu`: `bench_cpu_s`, `bench_cpu_percent`, and with `--server-pid`
//!   `server_pid`, `server_cpu_s`, `server_cpu_percent` (percent of one
//!   core over the run, from the start to the deadline).
//! * `errors`: `[{message, count}]`, most frequent first.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::cpu::CpuReport;
use super::report::{write_bitrate, Bitrate, ClientCounts, ErrorCount};
use super::rtc_stats::RtcViewerSummary;
use super::stats::Summary;

/// A viewer losing more than this share of packets counts as lossy.
const LOSSY_PERCENT: f64 = 1.0;

#[derive(Debug, Clone, Serialize)]
pub struct WhepReport {
    pub protocol: String,
    pub url: String,
    pub duration_s: f64,
    pub clients: ClientCounts,
    pub answer_ms: Option<Summary>,
    pub connect_ms: Option<Summary>,
    pub first_video_ms: Option<Summary>,
    pub first_video_not_keyframe: u64,
    pub video_frames: Option<Rate>,
    pub audio_packets: Option<Rate>,
    pub video_fps: Option<Rate>,
    pub audio_pps: Option<Rate>,
    pub bitrate_kbps: Option<Bitrate>,
    pub bytes_received: u64,
    pub loss: Loss,
    pub cpu: CpuReport,
    pub errors: Vec<ErrorCount>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rate {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

impl Rate {
    fn of(values: &[f64]) -> Option<Rate> {
        if values.is_empty() {
            return None;
        }
        Some(Rate {
            mean: values.iter().sum::<f64>() / values.len() as f64,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Loss {
    pub packets_expected: u64,
    pub packets_lost: u64,
    pub percent: f64,
    pub viewers_over_1pct: u64,
    pub max_viewer_percent: f64,
    pub nacks_sent: u64,
    pub discontinuities: u64,
    pub gap_viewers: u64,
    pub max_gap_ms: u64,
}

impl WhepReport {
    pub fn build(
        url: &str,
        requested: u64,
        duration_s: f64,
        viewers: &[RtcViewerSummary],
        cpu: CpuReport,
    ) -> WhepReport {
        let mut clients = ClientCounts {
            requested,
            started: viewers.len() as u64,
            ..ClientCounts::default()
        };
        let (mut answer, mut connect, mut first_video) = (Vec::new(), Vec::new(), Vec::new());
        let (mut fps, mut pps, mut rates) = (Vec::new(), Vec::new(), Vec::new());
        let (mut frames, mut packets) = (Vec::new(), Vec::new());
        let mut not_keyframe = 0;
        let mut bytes = 0;
        let mut loss = Loss::default();
        let mut errors: HashMap<&str, u64> = HashMap::new();
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        for v in viewers {
            bytes += v.udp_bytes;
            if let Some(e) = &v.error {
                *errors.entry(e).or_default() += 1;
            }
            answer.extend(v.answer.map(ms));
            if !v.connected {
                clients.failed += 1;
                continue;
            }
            clients.connected += 1;
            clients.disconnected += u64::from(v.error.is_some());
            connect.extend(v.connect.map(ms));
            match v.first_video {
                Some(d) => first_video.push(ms(d)),
                None => clients.without_video += 1,
            }
            not_keyframe += u64::from(v.first_video_keyframe == Some(false));
            frames.push(v.video_frames as f64);
            packets.push(v.audio_packets as f64);
            fps.extend(v.video_fps);
            pps.extend(v.audio_pps);
            rates.extend(v.bitrate_bps);
            loss.packets_expected += v.packets_expected;
            loss.packets_lost += v.packets_lost;
            if let Some(p) = v.loss_percent() {
                loss.viewers_over_1pct += u64::from(p > LOSSY_PERCENT);
                loss.max_viewer_percent = loss.max_viewer_percent.max(p);
            }
            loss.nacks_sent += v.nacks;
            loss.discontinuities += v.discontinuities;
            loss.gap_viewers += u64::from(v.video_gaps > 0);
            loss.max_gap_ms = loss.max_gap_ms.max(v.max_video_gap_ms);
        }
        if loss.packets_expected > 0 {
            loss.percent = loss.packets_lost as f64 * 100.0 / loss.packets_expected as f64;
        }
        let bitrate_kbps = (!rates.is_empty()).then(|| {
            let total: f64 = rates.iter().sum();
            Bitrate {
                mean: total / rates.len() as f64 / 1000.0,
                min: rates.iter().copied().fold(f64::INFINITY, f64::min) / 1000.0,
                max: rates.iter().copied().fold(0.0, f64::max) / 1000.0,
                total: total / 1000.0,
            }
        });
        let mut errors: Vec<ErrorCount> = errors
            .into_iter()
            .map(|(message, count)| ErrorCount {
                message: message.to_owned(),
                count,
            })
            .collect();
        errors.sort_by(|a, b| b.count.cmp(&a.count).then(a.message.cmp(&b.message)));
        WhepReport {
            protocol: "whep".to_owned(),
            url: url.to_owned(),
            duration_s,
            clients,
            answer_ms: Summary::of(&mut answer),
            connect_ms: Summary::of(&mut connect),
            first_video_ms: Summary::of(&mut first_video),
            first_video_not_keyframe: not_keyframe,
            video_frames: Rate::of(&frames),
            audio_packets: Rate::of(&packets),
            video_fps: Rate::of(&fps),
            audio_pps: Rate::of(&pps),
            bitrate_kbps,
            bytes_received: bytes,
            loss,
            cpu,
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
            "costream bench: whep {} for {:.1} s",
            self.url, self.duration_s
        );
        let _ = writeln!(
            s,
            "clients        {} requested, {} started, {} connected, {} failed, {} disconnected early, {} without video",
            c.requested, c.started, c.connected, c.failed, c.disconnected, c.without_video
        );
        for (label, summary) in [
            ("answer", &self.answer_ms),
            ("connected", &self.connect_ms),
            ("first video", &self.first_video_ms),
        ] {
            match summary {
                Some(f) => {
                    let _ = writeln!(
                        s,
                        "{label:<14} min {:.0} ms, median {:.0} ms, p95 {:.0} ms, max {:.0} ms ({} viewers, from the offer POST)",
                        f.min, f.median, f.p95, f.max, f.count
                    );
                }
                None => {
                    let _ = writeln!(s, "{label:<14} none");
                }
            }
        }
        if self.first_video_not_keyframe > 0 {
            let _ = writeln!(
                s,
                "               {} viewers' first frame was not a keyframe",
                self.first_video_not_keyframe
            );
        }
        let rate = |r: &Option<Rate>| {
            r.map_or("n/a".to_owned(), |r| {
                format!("mean {:.1}, min {:.1}, max {:.1}", r.mean, r.min, r.max)
            })
        };
        let _ = writeln!(
            s,
            "received       video frames {}; audio packets {} (per viewer)",
            rate(&self.video_frames),
            rate(&self.audio_packets)
        );
        let _ = writeln!(
            s,
            "per second     video frames {}; audio packets {} (per viewer)",
            rate(&self.video_fps),
            rate(&self.audio_pps)
        );
        write_bitrate(
            &mut s,
            self.bitrate_kbps.as_ref(),
            "viewer",
            self.bytes_received,
        );
        let l = &self.loss;
        let _ = writeln!(
            s,
            "loss           {:.3} % ({} of {} RTP packets), {} viewers over 1 % (max {:.2} %), {} NACKs sent, {} discontinuities",
            l.percent,
            l.packets_lost,
            l.packets_expected,
            l.viewers_over_1pct,
            l.max_viewer_percent,
            l.nacks_sent,
            l.discontinuities
        );
        let _ = writeln!(
            s,
            "video gaps     {} viewers with a timestamp jump over 1 s (max {} ms)",
            l.gap_viewers, l.max_gap_ms
        );
        let _ = writeln!(s, "cpu            {}", self.cpu.text());
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn viewer(connected: bool, lost: u64, error: Option<&str>) -> RtcViewerSummary {
        RtcViewerSummary {
            answered: true,
            connected,
            error: error.map(str::to_owned),
            answer: Some(Duration::from_millis(5)),
            connect: connected.then(|| Duration::from_millis(20)),
            first_video: connected.then(|| Duration::from_millis(30)),
            first_video_keyframe: connected.then_some(true),
            video_fps: connected.then_some(25.0),
            audio_pps: connected.then_some(50.0),
            bitrate_bps: connected.then_some(1_000_000.0),
            udp_bytes: 1000,
            packets_expected: if connected { 1000 } else { 0 },
            packets_lost: lost,
            ..RtcViewerSummary::default()
        }
    }

    #[test]
    fn loss_and_counts() {
        let viewers = [
            viewer(true, 0, None),
            viewer(true, 20, None),
            viewer(true, 5, Some("ICE disconnected")),
            viewer(false, 0, Some("offer refused: 404 Not Found")),
        ];
        let r = WhepReport::build("http://h/whep/a/b", 5, 3.0, &viewers, CpuReport::default());
        let c = &r.clients;
        assert_eq!(
            (
                c.requested,
                c.started,
                c.connected,
                c.failed,
                c.disconnected
            ),
            (5, 4, 3, 1, 1)
        );
        assert_eq!((r.loss.packets_expected, r.loss.packets_lost), (3000, 25));
        assert_eq!(r.loss.viewers_over_1pct, 1);
        assert!((r.loss.max_viewer_percent - 2.0).abs() < 1e-9);
        assert_eq!(r.answer_ms.unwrap().count, 4);
        assert_eq!(r.first_video_ms.unwrap().median, 30.0);
        assert_eq!(r.video_fps.unwrap().mean, 25.0);
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["clients"]["connected"], 3);
        assert_eq!(json["loss"]["packets_lost"], 25);
        assert!(json["cpu"]["server_pid"].is_null());
        let text = r.to_text();
        assert!(text.contains("3 connected"), "{text}");
        assert!(text.contains("1 viewers over 1 %"), "{text}");
    }
}
