//! Caps on concurrent connections, per source address and in total. A connection holds a
//! [`Permit`] for as long as its socket is open (an upgraded WebSocket included), so the
//! counts are the file descriptors that unauthenticated clients make us hold.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its address already has `max_connections_per_ip` connections.
    PerIp,
    /// The server already has `max_connections` connections.
    Total,
}

impl Refusal {
    /// The `reason` label of `sfu_signaling_connections_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::PerIp => "per_ip",
            Self::Total => "total",
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    /// Only addresses with at least one connection: at most `max_total` entries.
    per_ip: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct Inner {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

/// The connection caps of one listener.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    inner: Arc<Inner>,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                max_total,
                max_per_ip,
                counts: Mutex::default(),
            }),
        }
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // The critical sections only add and subtract: a panic cannot leave them torn.
        self.inner
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a connection from `ip` if both caps allow it.
    pub fn try_admit(&self, ip: IpAddr) -> Result<Permit, Refusal> {
        // IPv4 clients of a dual-stack socket arrive as ::ffff:a.b.c.d: count them as a.b.c.d.
        let ip = ip.to_canonical();
        let mut c = self.counts();
        if c.total >= self.inner.max_total {
            return Err(Refusal::Total);
        }
        let n = c.per_ip.entry(ip).or_insert(0);
        if *n >= self.inner.max_per_ip {
            return Err(Refusal::PerIp);
        }
        *n += 1;
        c.total += 1;
        Ok(Permit {
            limits: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts().total
    }

    pub fn max_total(&self) -> usize {
        self.inner.max_total
    }

    fn release(&self, ip: IpAddr) {
        let mut c = self.counts();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_ip.remove(&ip);
            }
        }
    }
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    limits: ConnectionLimits,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limits.release(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_ip_cap_leaves_other_addresses_in() {
        let l = ConnectionLimits::new(10, 2);
        let a1 = l.try_admit(ip("10.0.0.1")).unwrap();
        let _a2 = l.try_admit(ip("10.0.0.1")).unwrap();
        assert_eq!(l.try_admit(ip("10.0.0.1")).unwrap_err(), Refusal::PerIp);
        // The same address over IPv4-mapped IPv6 is the same client.
        assert_eq!(
            l.try_admit(ip("::ffff:10.0.0.1")).unwrap_err(),
            Refusal::PerIp
        );
        let _b = l.try_admit(ip("10.0.0.2")).unwrap();
        drop(a1);
        let _a3 = l.try_admit(ip("10.0.0.1")).unwrap();
        assert_eq!(l.open(), 3);
    }

    #[test]
    fn total_cap_and_release() {
        let l = ConnectionLimits::new(2, 2);
        let a = l.try_admit(ip("10.0.0.1")).unwrap();
        let b = l.try_admit(ip("10.0.0.2")).unwrap();
        assert_eq!(l.try_admit(ip("10.0.0.3")).unwrap_err(), Refusal::Total);
        drop((a, b));
        assert_eq!(l.open(), 0);
        assert!(
            l.counts().per_ip.is_empty(),
            "no entry outlives its connections"
        );
        let _c = l.try_admit(ip("10.0.0.3")).unwrap();
    }
}
