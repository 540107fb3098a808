//! Prometheus metrics. Counters on hot paths are `metrics` handles taken once
//! per session (an atomic add per write); hub-wide gauges are read from the
//! hub when `/metrics` is scraped.

use std::sync::OnceLock;

use costream_hub::{Hub, Protocol};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const BYTES_SENT: &str = "costream_bytes_sent_total";
pub const BYTES_RECEIVED: &str = "costream_bytes_received_total";
pub const FIRST_FRAME: &str = "costream_first_frame_seconds";
pub const SESSIONS: &str = "costream_sessions_total";
pub const REJECTED: &str = "costream_rejected_total";
pub const REFUSED: &str = "costream_refused_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Counts a refusal (`costream_refused_total{protocol, reason}`) and logs
/// it at warn with `detail`, once a minute per client address and reason
/// (refusals of no known address share one): a flood is counted in full
/// but cannot fill the log.
pub fn refused(
    protocol: &'static str,
    reason: &'static str,
    ip: Option<std::net::IpAddr>,
    detail: std::fmt::Arguments<'_>,
) {
    metrics::counter!(REFUSED, "protocol" => protocol, "reason" => reason).increment(1);
    let who = ip.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    if refusal_log().should_log(who, reason, std::time::Instant::now()) {
        tracing::warn!(client = ?ip, protocol, reason, "refused: {detail} (logged once a minute per client and reason)");
    }
}

fn refusal_log() -> &'static RefusalLog {
    static LOG: OnceLock<RefusalLog> = OnceLock::new();
    LOG.get_or_init(RefusalLog::default)
}

/// When each (client, reason) was last logged; bounded in entries.
#[derive(Default)]
pub struct RefusalLog {
    last: parking_lot::Mutex<
        std::collections::HashMap<(std::net::IpAddr, &'static str), std::time::Instant>,
    >,
}

impl RefusalLog {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(60);
    const MAX_ENTRIES: usize = 4096;

    pub fn should_log(
        &self,
        ip: std::net::IpAddr,
        reason: &'static str,
        now: std::time::Instant,
    ) -> bool {
        let mut last = self.last.lock();
        if last.len() >= Self::MAX_ENTRIES {
            // Many clients at once: forget the old ones rather than grow.
            last.retain(|_, at| now.saturating_duration_since(*at) < Self::EVERY);
            if last.len() >= Self::MAX_ENTRIES {
                return false;
            }
        }
        match last.get(&(ip, reason)) {
            Some(at) if now.saturating_duration_since(*at) < Self::EVERY => false,
            _ => {
                last.insert((ip, reason), now);
                true
            }
        }
    }
}

/// Installs the process-wide recorder once (several servers in one test
/// process share it).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(FIRST_FRAME.into()),
                &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "a metrics recorder was already installed; /metrics shows hub gauges only"
            );
        }
        metrics::describe_counter!(BYTES_SENT, "Media bytes written to viewers, by protocol");
        metrics::describe_counter!(
            BYTES_RECEIVED,
            "Media bytes received from publishers, by protocol"
        );
        metrics::describe_histogram!(
            FIRST_FRAME,
            "Viewer connect to first video frame written, seconds"
        );
        metrics::describe_counter!(SESSIONS, "Sessions started, by protocol and role");
        metrics::describe_counter!(
            REJECTED,
            "Publish or play requests refused, by protocol and reason"
        );
        metrics::describe_counter!(
            REFUSED,
            "Requests and clients refused (access policy, limits, deadlines, memory budgets), by protocol and reason"
        );
        metrics::describe_gauge!(
            "costream_hub_bytes",
            "Bytes all streams' frames hold (payloads and muxed copies), against hub.max_memory_bytes"
        );
        handle
    })
}

/// Renders the Prometheus text, with hub gauges refreshed first.
pub fn render(hub: &Hub, rooms: &crate::room::Rooms) -> String {
    let handle = handle();
    let list = rooms.list();
    metrics::gauge!("costream_rooms").set(list.len() as f64);
    let participants: usize = list.iter().map(|r| r.participants).sum();
    let publishers: usize = list.iter().map(|r| r.publishers).sum();
    metrics::gauge!("costream_room_participants").set(participants as f64);
    metrics::gauge!("costream_room_publishers").set(publishers as f64);
    let streams = hub.streams();
    metrics::gauge!("costream_streams").set(streams.len() as f64);
    for p in Protocol::ALL {
        let n: u64 = streams.iter().map(|s| s.stats.viewers(p)).sum();
        metrics::gauge!("costream_viewers", "protocol" => p.name()).set(n as f64);
    }
    let totals = hub.totals();
    metrics::counter!("costream_frames_dropped_total").absolute(totals.frames_dropped());
    metrics::counter!("costream_viewer_skips_total").absolute(totals.viewer_skips());
    metrics::gauge!("costream_hub_bytes").set(totals.held_bytes() as f64);
    handle.render()
}

#[cfg(test)]
mod refusal_tests {
    use std::time::{Duration, Instant};

    use super::RefusalLog;

    #[test]
    fn once_a_minute_per_client_and_reason() {
        let log = RefusalLog::default();
        let t0 = Instant::now();
        let a = [192, 0, 2, 1].into();
        let b = [192, 0, 2, 2].into();
        assert!(log.should_log(a, "x", t0));
        assert!(!log.should_log(a, "x", t0 + Duration::from_secs(30)));
        assert!(log.should_log(a, "y", t0), "another reason");
        assert!(log.should_log(b, "x", t0), "another client");
        assert!(log.should_log(a, "x", t0 + Duration::from_secs(61)));
    }
}
