//! Connection caps for a listener: in all and per client address. A
//! connection holds a [`Slot`] for its life; a client over the cap is
//! turned away at accept, before it costs a task or a parser, and counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

/// One listener's connections (HTTP, RTMP).
#[derive(Clone)]
pub struct Connections {
    inner: Arc<Inner>,
}

struct Inner {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was turned away (a metrics label).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Full {
    Total,
    PerIp,
}

impl Full {
    pub fn reason(self) -> &'static str {
        match self {
            Full::Total => "connections_total",
            Full::PerIp => "connections_per_ip",
        }
    }
}

/// A connection's place; given back when dropped.
pub struct Slot {
    inner: Arc<Inner>,
    ip: IpAddr,
}

impl Connections {
    pub fn new(max_total: usize, max_per_ip: usize) -> Connections {
        Connections {
            inner: Arc::new(Inner {
                max_total,
                max_per_ip,
                counts: Mutex::default(),
            }),
        }
    }

    /// Admits a connection of `protocol` from `ip`, or counts (and logs)
    /// its refusal.
    pub fn admit_or_refuse(&self, protocol: &'static str, ip: IpAddr) -> Option<Slot> {
        self.admit(ip)
            .map_err(|full| {
                crate::metrics::refused(
                    protocol,
                    full.reason(),
                    Some(ip),
                    format_args!("connection cap"),
                )
            })
            .ok()
    }

    pub fn admit(&self, ip: IpAddr) -> Result<Slot, Full> {
        let mut c = self.inner.counts.lock();
        if c.total >= self.inner.max_total {
            return Err(Full::Total);
        }
        let n = c.by_ip.entry(ip).or_insert(0);
        if *n >= self.inner.max_per_ip {
            return Err(Full::PerIp);
        }
        *n += 1;
        c.total += 1;
        Ok(Slot {
            inner: self.inner.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.inner.counts.lock();
        c.total -= 1;
        if let Some(n) = c.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.by_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_in_all_and_per_address_and_places_come_back() {
        let conns = Connections::new(3, 2);
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        let a1 = conns.admit(a).unwrap();
        let _a2 = conns.admit(a).unwrap();
        assert_eq!(conns.admit(a).err(), Some(Full::PerIp));
        let _b1 = conns.admit(b).unwrap();
        assert_eq!(conns.admit(b).err(), Some(Full::Total));
        drop(a1);
        assert!(conns.admit(b).is_ok(), "a place came back");
        assert_eq!(conns.inner.counts.lock().by_ip.len(), 2);
    }
}
