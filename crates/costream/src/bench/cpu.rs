//! CPU time of the bench itself and, optionally, of the server it measures
//! (`--server-pid`), from `/proc/PID/stat`: both share a small machine, so
//! a run's figures mean little without knowing who used the cores.
//!
//! Percentages are of one core, as `top` shows them: 150 % is one and a
//! half cores busy on average over the run.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Linux reports `utime`/`stime` in USER_HZ ticks, which is 100 on every
/// architecture Linux runs on (it is part of the user-space ABI, unlike
/// the kernel's internal HZ).
const TICKS_PER_SECOND: u64 = 100;

/// User plus system CPU time of process `pid` (`None`: this process), all
/// threads; `None` where `/proc` is not available.
pub fn process_cpu_time(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

/// `utime + stime` from the text of `/proc/PID/stat`. The command name
/// (field 2) is in parentheses and may itself contain spaces and
/// parentheses, so fields are counted after the last `)`.
fn parse_stat(text: &str) -> Option<Duration> {
    let (_, after_name) = text.rsplit_once(')')?;
    // After the name come field 3 (state) onwards; utime is field 14.
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime.checked_add(stime)?;
    Some(Duration::from_millis(
        ticks.saturating_mul(1000 / TICKS_PER_SECOND),
    ))
}

/// CPU use over a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuReport {
    /// CPU seconds this bench process used during the run.
    pub bench_cpu_s: Option<f64>,
    pub bench_cpu_percent: Option<f64>,
    pub server_pid: Option<u32>,
    pub server_cpu_s: Option<f64>,
    pub server_cpu_percent: Option<f64>,
}

impl CpuReport {
    pub fn text(&self) -> String {
        let mut s = match (self.bench_cpu_s, self.bench_cpu_percent) {
            (Some(cpu), Some(pct)) => format!("bench {cpu:.1} s ({pct:.0} % of a core)"),
            _ => "bench n/a".to_owned(),
        };
        if let Some(pid) = self.server_pid {
            match (self.server_cpu_s, self.server_cpu_percent) {
                (Some(cpu), Some(pct)) => s.push_str(&format!(
                    "; server pid {pid} {cpu:.1} s ({pct:.0} % of a core)"
                )),
                _ => s.push_str(&format!("; server pid {pid} n/a (not readable)")),
            }
        }
        s
    }
}

/// Samples both processes at the start of a run; [`CpuSampler::finish`]
/// turns the second sample into a report.
#[derive(Debug, Clone)]
pub struct CpuSampler {
    started: Instant,
    bench: Option<Duration>,
    server_pid: Option<u32>,
    server: Option<Duration>,
}

impl CpuSampler {
    pub fn start(server_pid: Option<u32>) -> Self {
        CpuSampler {
            started: Instant::now(),
            bench: process_cpu_time(None),
            server_pid,
            server: server_pid.and_then(|p| process_cpu_time(Some(p))),
        }
    }

    pub fn finish(&self) -> CpuReport {
        let wall = self.started.elapsed().as_secs_f64().max(1e-3);
        let used = |before: Option<Duration>, pid: Option<u32>| {
            let spent = process_cpu_time(pid)?.checked_sub(before?)?.as_secs_f64();
            Some((spent, spent / wall * 100.0))
        };
        let bench = used(self.bench, None);
        let server = self.server_pid.and_then(|p| used(self.server, Some(p)));
        CpuReport {
            bench_cpu_s: bench.map(|b| b.0),
            bench_cpu_percent: bench.map(|b| b.1),
            server_pid: self.server_pid,
            server_cpu_s: server.map(|s| s.0),
            server_cpu_percent: server.map(|s| s.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_names() {
        let stat = "4242 (co st) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(parse_stat(stat), Some(Duration::from_millis(3250)));
        assert_eq!(parse_stat("4242 (x) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn samples_this_process() {
        let s = CpuSampler::start(Some(std::process::id()));
        // Burn a little CPU so the figures are not all zero.
        let mut x = 0u64;
        let until = Instant::now() + Duration::from_millis(30);
        while Instant::now() < until {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        let r = s.finish();
        if cfg!(target_os = "linux") {
            assert!(r.bench_cpu_s.is_some());
            assert!(r.server_cpu_percent.is_some());
        }
        assert!(r.text().starts_with("bench"));
    }
}
