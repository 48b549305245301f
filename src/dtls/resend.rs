//! Answers a client that repeats its ClientHello with the server's last flight again.
//!
//! RFC 6347 4.2.4: a peer that repeats its previous flight has not received ours, so ours
//! is sent again. rtc-dtls 0.21 does not: while it waits for the client's second flight,
//! any handshake record it receives clears its retransmission timer, and a repeated
//! ClientHello yields no new flight either. If the server's flight 4 (ServerHello ..
//! ServerHelloDone) is lost, the client keeps repeating its ClientHello, the server never
//! answers again and the handshake hangs until ICE gives up (seen at 15 % loss in the
//! simulation and in the lab). This remembers the datagrams of the server's last flight and
//! queues them again when the engine's timer was cleared by a repeated ClientHello.
//!
//! The datagrams are resent verbatim: the client never saw them (that is why it repeats),
//! so its replay window does not hold their record numbers; any it did see it drops.
//! Resends are budgeted, so a peer replaying ClientHellos cannot make us send without end.

use std::collections::VecDeque;

use bytes::BytesMut;

/// Resends per association: BoringSSL and NSS give up after about as many repeats.
const MAX_RESENDS: u32 = 10;
/// A flight larger than this is not remembered (ours are 1-3 datagrams).
const MAX_FLIGHT_DATAGRAMS: usize = 8;

/// The server's last handshake flight and the resends queued from it.
#[derive(Debug, Default)]
pub(super) struct FlightResend {
    /// The datagrams sent since the last input: the flight that input produced.
    flight: Vec<BytesMut>,
    /// True while datagrams sent belong to the flight in `flight`; an input ends it.
    collecting: bool,
    queued: VecDeque<BytesMut>,
    resent: u32,
}

impl FlightResend {
    /// A datagram or timer reached the engine: what it sends next is a new flight.
    pub(super) fn input(&mut self) {
        self.collecting = false;
    }

    /// The engine sent `datagram` during the handshake.
    pub(super) fn sent(&mut self, datagram: &BytesMut) {
        if !self.collecting {
            self.flight.clear();
            self.collecting = true;
        }
        if self.flight.len() < MAX_FLIGHT_DATAGRAMS {
            self.flight.push(datagram.clone());
        }
    }

    /// The peer repeated its ClientHello and the engine stopped waiting for an answer:
    /// queues the last flight again, within the budget. True if it was queued.
    pub(super) fn peer_repeated(&mut self) -> bool {
        if self.flight.is_empty() || self.resent >= MAX_RESENDS {
            return false;
        }
        self.resent += 1;
        self.queued.extend(self.flight.iter().cloned());
        true
    }

    /// The next resent datagram.
    pub(super) fn poll(&mut self) -> Option<BytesMut> {
        self.queued.pop_front()
    }

    /// The handshake is over: nothing more is remembered or resent.
    pub(super) fn clear(&mut self) {
        self.flight = Vec::new();
        self.queued = VecDeque::new();
    }
}

/// Whether `datagram` starts with a ClientHello record: a handshake record (22) of epoch 0
/// whose message type is client_hello (1).
pub(super) fn starts_with_client_hello(datagram: &[u8]) -> bool {
    matches!(
        (datagram.first(), datagram.get(3..5), datagram.get(13)),
        (Some(22), Some([0, 0]), Some(1))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(b: u8) -> BytesMut {
        BytesMut::from(&[b][..])
    }

    #[test]
    fn the_last_flight_is_resent_within_a_budget() {
        let mut r = FlightResend::default();
        assert!(!r.peer_repeated(), "nothing sent yet");
        r.input();
        r.sent(&d(1));
        r.input();
        r.sent(&d(2));
        r.sent(&d(3));
        r.input();
        assert!(r.peer_repeated());
        assert_eq!(r.poll(), Some(d(2)));
        assert_eq!(r.poll(), Some(d(3)));
        assert_eq!(r.poll(), None);
        for _ in 1..MAX_RESENDS {
            assert!(r.peer_repeated());
        }
        assert!(!r.peer_repeated(), "the budget is spent");
        r.clear();
        assert_eq!(r.poll(), None);
    }

    #[test]
    fn client_hellos_are_told_from_other_records() {
        let mut hello = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 4, 1, 0, 0, 0];
        assert!(starts_with_client_hello(&hello));
        hello[13] = 16; // client_key_exchange
        assert!(!starts_with_client_hello(&hello));
        hello[13] = 1;
        hello[4] = 1; // epoch 1: encrypted
        assert!(!starts_with_client_hello(&hello));
        assert!(!starts_with_client_hello(&[22, 0xfe]));
    }
}
