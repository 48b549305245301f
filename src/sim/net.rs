//! The in-memory network: directed links between addresses, each with a delay, jitter,
//! loss, reordering and an optional bandwidth cap, all drawn from one seeded RNG in the
//! order datagrams are sent, so a seed replays the same way.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::demux::{classify, PacketClass};

/// How one direction between two addresses behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Link {
    /// One-way delay every datagram takes.
    pub(crate) delay: Duration,
    /// Extra delay drawn uniformly from `0..jitter` per datagram.
    pub(crate) jitter: Duration,
    /// Fraction of datagrams lost.
    pub(crate) loss: f64,
    /// Fraction of datagrams held back by `reorder_delay`, so later ones overtake them.
    pub(crate) reorder: f64,
    pub(crate) reorder_delay: Duration,
    /// Bits per second the link drains at; None is unlimited.
    pub(crate) bandwidth_bps: Option<u64>,
    /// The longest a datagram may wait behind others on a capped link before the
    /// bottleneck's queue drops it (tail drop).
    pub(crate) queue_limit: Duration,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(15),
            bandwidth_bps: None,
            queue_limit: Duration::from_millis(200),
        }
    }
}

/// What became of a datagram handed to the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// It will arrive at this time.
    InFlight(Instant),
    /// Lost at random (the link's `loss`).
    Lost,
    /// Dropped by a full bottleneck queue (the link's `bandwidth_bps`).
    QueueFull,
}

/// A datagram on its way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Datagram {
    pub(crate) from: SocketAddr,
    pub(crate) to: SocketAddr,
    pub(crate) bytes: Vec<u8>,
}

#[derive(Debug)]
struct LinkState {
    link: Link,
    /// When the bottleneck finishes sending what it holds.
    busy_until: Option<Instant>,
    /// DTLS datagrams sent on this link so far, and which of them (by that count) are lost.
    dtls_sent: u32,
    lose_dtls: Range<u32>,
}

/// Every link and every datagram in flight, ordered by arrival time and then by the
/// order they were sent (ties never depend on anything but the seed).
#[derive(Debug)]
pub(crate) struct Net {
    rng: StdRng,
    default: Link,
    links: HashMap<(SocketAddr, SocketAddr), LinkState>,
    in_flight: BTreeMap<(Instant, u64), Datagram>,
    sent: u64,
}

impl Net {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            default: Link::default(),
            links: HashMap::new(),
            in_flight: BTreeMap::new(),
            sent: 0,
        }
    }

    /// Sets the link from `from` to `to` (one direction).
    pub(crate) fn set_link(&mut self, from: SocketAddr, to: SocketAddr, link: Link) {
        self.state(from, to).link = link;
    }

    /// Loses the DTLS datagrams on the link from `from` to `to` whose index (counting
    /// from 0, the DTLS datagrams this link carries) is in `which`: a handshake flight
    /// lost on purpose.
    pub(crate) fn lose_dtls(&mut self, from: SocketAddr, to: SocketAddr, which: Range<u32>) {
        self.state(from, to).lose_dtls = which;
    }

    fn state(&mut self, from: SocketAddr, to: SocketAddr) -> &mut LinkState {
        link_state(&mut self.links, self.default, from, to)
    }

    /// The link from `from` to `to` (the default one unless set).
    pub(crate) fn link(&self, from: SocketAddr, to: SocketAddr) -> Link {
        self.links.get(&(from, to)).map_or(self.default, |s| s.link)
    }

    /// Hands a datagram to the link from `from` to `to` at `now`.
    pub(crate) fn send(&mut self, now: Instant, d: Datagram) -> Fate {
        let state = link_state(&mut self.links, self.default, d.from, d.to);
        let link = state.link;
        if classify(&d.bytes) == PacketClass::Dtls {
            let index = state.dtls_sent;
            state.dtls_sent += 1;
            if state.lose_dtls.contains(&index) {
                return Fate::Lost;
            }
        }
        if link.loss > 0.0 && self.rng.gen_bool(link.loss.min(1.0)) {
            return Fate::Lost;
        }
        let mut leaves = now;
        if let Some(bps) = link.bandwidth_bps.filter(|b| *b > 0) {
            let start = state.busy_until.map_or(now, |b| b.max(now));
            if start - now > link.queue_limit {
                return Fate::QueueFull;
            }
            let bits = d.bytes.len() as u64 * 8;
            leaves = start + Duration::from_nanos(bits * 1_000_000_000 / bps);
            state.busy_until = Some(leaves);
        }
        let mut at = leaves + link.delay;
        if !link.jitter.is_zero() {
            at += link.jitter.mul_f64(self.rng.gen::<f64>());
        }
        if link.reorder > 0.0 && self.rng.gen_bool(link.reorder.min(1.0)) {
            at += link.reorder_delay;
        }
        self.sent += 1;
        self.in_flight.insert((at, self.sent), d);
        Fate::InFlight(at)
    }

    /// When the next datagram arrives.
    pub(crate) fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.keys().next().map(|(at, _)| *at)
    }

    /// The next datagram due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, Datagram)> {
        let (&(at, seq), _) = self.in_flight.iter().next()?;
        if at > now {
            return None;
        }
        self.in_flight.remove(&(at, seq)).map(|d| (at, d))
    }

    /// Takes every datagram due at or before `now` for `to`, up to `max`, in arrival
    /// order (a receive batch).
    pub(crate) fn take_due_for(
        &mut self,
        now: Instant,
        to: SocketAddr,
        max: usize,
    ) -> Vec<Datagram> {
        let keys: Vec<(Instant, u64)> = self
            .in_flight
            .iter()
            .take_while(|((at, _), _)| *at <= now)
            .filter(|(_, d)| d.to == to)
            .map(|(k, _)| *k)
            .take(max)
            .collect();
        keys.iter()
            .filter_map(|k| self.in_flight.remove(k))
            .collect()
    }
}

fn link_state(
    links: &mut HashMap<(SocketAddr, SocketAddr), LinkState>,
    default: Link,
    from: SocketAddr,
    to: SocketAddr,
) -> &mut LinkState {
    links.entry((from, to)).or_insert(LinkState {
        link: default,
        busy_until: None,
        dtls_sent: 0,
        lose_dtls: 0..0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    fn datagram(len: usize) -> Datagram {
        Datagram {
            from: addr(1),
            to: addr(2),
            bytes: vec![0; len],
        }
    }

    #[test]
    fn a_capped_link_spaces_datagrams_by_their_size_and_drops_past_its_queue() {
        let now = Instant::now();
        let mut net = Net::new(1);
        let link = Link {
            delay: Duration::from_millis(5),
            bandwidth_bps: Some(80_000),
            queue_limit: Duration::from_millis(30),
            ..Link::default()
        };
        net.set_link(addr(1), addr(2), link);
        // 100 bytes at 80 kbit/s take 10 ms each.
        let fates: Vec<Fate> = (0..5).map(|_| net.send(now, datagram(100))).collect();
        let ms = Duration::from_millis;
        assert_eq!(
            fates,
            [
                Fate::InFlight(now + ms(15)),
                Fate::InFlight(now + ms(25)),
                Fate::InFlight(now + ms(35)),
                Fate::InFlight(now + ms(45)),
                Fate::QueueFull,
            ]
        );
    }

    #[test]
    fn a_seed_draws_the_same_losses_and_delays() {
        let run = |seed| {
            let now = Instant::now();
            let mut net = Net::new(seed);
            let link = Link {
                loss: 0.3,
                jitter: Duration::from_millis(7),
                reorder: 0.2,
                ..Link::default()
            };
            net.set_link(addr(1), addr(2), link);
            (0..200)
                .map(|_| match net.send(now, datagram(10)) {
                    Fate::InFlight(at) => Some(at - now),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }

    #[test]
    fn datagrams_arrive_in_time_order_then_send_order() {
        let now = Instant::now();
        let mut net = Net::new(1);
        let mut slow = datagram(1);
        slow.bytes = vec![1];
        net.set_link(
            addr(1),
            addr(2),
            Link {
                delay: Duration::from_millis(20),
                ..Link::default()
            },
        );
        net.send(now, slow);
        net.set_link(addr(1), addr(2), Link::default());
        net.send(now, datagram(1));
        net.send(now, datagram(2));
        assert_eq!(net.next_arrival(), Some(now + Duration::from_millis(10)));
        let batch = net.take_due_for(now + Duration::from_millis(30), addr(2), 32);
        let lens: Vec<usize> = batch.iter().map(|d| d.bytes.len()).collect();
        assert_eq!(lens, [1, 2, 1]);
        assert_eq!(batch[2].bytes, [1]);
        assert!(net.pop_due(now + Duration::from_secs(1)).is_none());
    }
}
