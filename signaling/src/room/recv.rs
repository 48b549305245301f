//! One participant's receive side: the m-lines of the server's offers, one per consumer,
//! and the offer/answer state. Pure bookkeeping (no I/O), so the rules are unit-tested:
//!
//! - mids are never reused (a counter); m-line positions are: a closed m-line (port 0)
//!   is recycled by the next consumer, with a new mid, once its closing was offered
//!   (JSEP, RFC 8829 section 5.2.2);
//! - m-line 0 carries the BUNDLE transport, so closing it only makes it inactive;
//! - one offer is outstanding at a time: changes made meanwhile go in the next one, sent
//!   after the answer (this serialises negotiation per participant, so there is no glare:
//!   the browser never offers on this peer connection).

use sfu_control::params::{MediaKind, RtpParameters};

use crate::protocol::{ConsumerView, Source};
use crate::sdp::offer::{build_recv_offer, OfferedMedia};
use sfu_control::responses::TransportCreated;

/// A consumer shown in an m-line.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerSlot {
    pub consumer_id: String,
    pub producer_id: String,
    /// The publishing participant (the msid stream id, so the browser groups its tracks).
    pub peer_id: String,
    pub kind: MediaKind,
    /// Camera/microphone or screen share (from the producer).
    pub source: Source,
    pub rtp: RtpParameters,
    /// The browser's answer that first included it arrived (and it was resumed unless
    /// `hidden`).
    pub resumed: bool,
    /// The daemon's last consumer score (0-10; a consumer starts at 10, as in mediasoup).
    pub score: u8,
    /// Paused by its page (`pauseConsumer`: its tile is hidden).
    pub hidden: bool,
    /// The layers its page asked for (`preferredLayers`), if it did.
    pub preferred_spatial: Option<u8>,
    pub preferred_temporal: Option<u8>,
    /// A simulcast consumer (the daemon takes preferred layers for it).
    pub simulcast: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum SlotState {
    Active(Box<ConsumerSlot>),
    Disabled,
    Closed,
}

#[derive(Debug, Clone)]
struct Slot {
    mid: String,
    kind: MediaKind,
    /// The last parameters shown (closed m-lines keep their formats).
    rtp: RtpParameters,
    state: SlotState,
    /// Whether the slot's current state was in an offer already sent.
    offered: bool,
    /// For a recycled slot not offered yet: the closed mid it replaced.
    recycled_from: Option<(String, MediaKind, RtpParameters)>,
}

/// An offer waiting for its answer.
#[derive(Debug, Clone)]
pub struct PendingOffer {
    pub offer_id: u64,
    /// Mids in m-line order, with whether each was live.
    pub mids: Vec<(String, bool)>,
    /// Consumers shown for the first time, to resume once answered.
    pub to_resume: Vec<String>,
}

/// An offer to send.
#[derive(Debug, Clone)]
pub struct OutgoingOffer {
    pub offer_id: u64,
    pub sdp: String,
    pub consumers: Vec<ConsumerView>,
}

/// The receive side of one participant.
#[derive(Debug)]
pub struct RecvSession {
    pub transport: Option<TransportCreated>,
    /// `transport.connect` done (after the first answer).
    pub connected: bool,
    slots: Vec<Slot>,
    next_mid: u64,
    session_id: u64,
    version: u64,
    /// Offer ids below this were made for transports that no longer exist.
    stale_below: u64,
    pending: Option<PendingOffer>,
    dirty: bool,
    /// The m-lines are the client's (a WHEP player's offer): consumers are placed in
    /// them, and this side never offers.
    client_offered: bool,
}

impl RecvSession {
    pub fn new(session_id: u64) -> Self {
        Self {
            transport: None,
            connected: false,
            slots: Vec::new(),
            next_mid: 0,
            session_id,
            version: 0,
            stale_below: 0,
            pending: None,
            dirty: false,
            client_offered: false,
        }
    }

    /// The receive side of a player (WHEP), whose m-lines its own offer made.
    pub fn client_offered(session_id: u64) -> Self {
        Self {
            client_offered: true,
            ..Self::new(session_id)
        }
    }

    /// Shows consumer `c` in the client's m-line `mid` (a closed consumer's m-line is
    /// reused: the client keeps receiving on it).
    pub fn place(&mut self, mid: &str, c: ConsumerSlot) {
        let (kind, rtp) = (c.kind, c.rtp.clone());
        let state = SlotState::Active(Box::new(c));
        match self.slots.iter_mut().find(|s| s.mid == mid) {
            Some(s) => {
                s.kind = kind;
                s.rtp = rtp;
                s.state = state;
                s.offered = true;
            }
            None => self.slots.push(Slot {
                mid: mid.to_owned(),
                kind,
                rtp,
                state,
                offered: true,
                recycled_from: None,
            }),
        }
    }

    /// The live consumers with their mids.
    pub fn shown(&self) -> impl Iterator<Item = (&str, &ConsumerSlot)> {
        self.slots.iter().filter_map(|s| match &s.state {
            SlotState::Active(c) => Some((s.mid.as_str(), &**c)),
            _ => None,
        })
    }

    /// Starts over for a new transport (the media server was lost): no m-lines, no
    /// outstanding offer. Offer ids keep increasing, so that a late answer to an offer
    /// made before is recognised ([`RecvSession::is_stale`]) and not mistaken for one to
    /// the new transport.
    pub fn reset(&mut self, session_id: u64) {
        let version = self.version;
        *self = Self::new(session_id);
        self.version = version;
        self.stale_below = version + 1;
    }

    /// Whether `offer_id` was made before the last [`RecvSession::reset`].
    pub fn is_stale(&self, offer_id: u64) -> bool {
        offer_id < self.stale_below
    }

    /// Adds a consumer; returns its mid.
    pub fn add(&mut self, c: ConsumerSlot) -> String {
        let mid = self.next_mid.to_string();
        self.next_mid += 1;
        self.dirty = true;
        // Slot 0 is never closed (only disabled), so recycling never touches it.
        let recyclable = self
            .slots
            .iter_mut()
            .find(|s| s.state == SlotState::Closed && s.offered && s.recycled_from.is_none());
        if let Some(s) = recyclable {
            s.recycled_from = Some((std::mem::take(&mut s.mid), s.kind, s.rtp.clone()));
            s.mid = mid.clone();
            s.kind = c.kind;
            s.rtp = c.rtp.clone();
            s.state = SlotState::Active(Box::new(c));
            s.offered = false;
        } else {
            self.slots.push(Slot {
                mid: mid.clone(),
                kind: c.kind,
                rtp: c.rtp.clone(),
                state: SlotState::Active(Box::new(c)),
                offered: false,
                recycled_from: None,
            });
        }
        mid
    }

    /// Removes the consumer; returns it if it was here.
    pub fn remove(&mut self, consumer_id: &str) -> Option<ConsumerSlot> {
        let idx = self.slots.iter().position(
            |s| matches!(&s.state, SlotState::Active(c) if c.consumer_id == consumer_id),
        )?;
        let slot = self.slots.get_mut(idx)?;
        let SlotState::Active(c) = std::mem::replace(&mut slot.state, SlotState::Closed) else {
            return None;
        };
        if slot.offered {
            if idx == 0 {
                slot.state = SlotState::Disabled;
            }
            slot.offered = false;
            self.dirty = true;
        } else if let Some((mid, kind, rtp)) = slot.recycled_from.take() {
            // Never shown: the browser still knows the m-line as the closed one it was.
            slot.mid = mid;
            slot.kind = kind;
            slot.rtp = rtp;
            slot.offered = true;
        } else {
            // Never shown and appended after every shown m-line: forget it.
            self.slots.remove(idx);
        }
        Some(*c)
    }

    /// Removes every consumer of `producer_id`.
    pub fn remove_producer(&mut self, producer_id: &str) -> Vec<ConsumerSlot> {
        let ids: Vec<String> = self
            .consumers()
            .filter(|c| c.producer_id == producer_id)
            .map(|c| c.consumer_id.clone())
            .collect();
        ids.iter().filter_map(|id| self.remove(id)).collect()
    }

    /// The live consumers.
    pub fn consumers(&self) -> impl Iterator<Item = &ConsumerSlot> {
        self.slots.iter().filter_map(|s| match &s.state {
            SlotState::Active(c) => Some(&**c),
            _ => None,
        })
    }

    /// The live consumer shown at `mid`.
    pub fn consumer_at(&self, mid: &str) -> Option<&ConsumerSlot> {
        self.slots
            .iter()
            .find(|s| s.mid == mid)
            .and_then(|s| match &s.state {
                SlotState::Active(c) => Some(&**c),
                _ => None,
            })
    }

    /// The live consumer `consumer_id`, to update.
    pub fn consumer_mut(&mut self, consumer_id: &str) -> Option<&mut ConsumerSlot> {
        self.slots.iter_mut().find_map(|s| match &mut s.state {
            SlotState::Active(c) if c.consumer_id == consumer_id => Some(&mut **c),
            _ => None,
        })
    }

    /// The mid the next [`RecvSession::add`] will assign.
    pub fn next_mid(&self) -> String {
        self.next_mid.to_string()
    }

    /// Marks a consumer resumed.
    pub fn set_resumed(&mut self, consumer_id: &str) {
        for s in &mut self.slots {
            if let SlotState::Active(c) = &mut s.state {
                if c.consumer_id == consumer_id {
                    c.resumed = true;
                }
            }
        }
    }

    /// Whether an offer awaits its answer.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// The next offer, if something changed, nothing is outstanding and the transport
    /// exists.
    pub fn next_offer(&mut self) -> Option<OutgoingOffer> {
        if self.client_offered || !self.dirty || self.pending.is_some() {
            return None;
        }
        let transport = self.transport.as_ref()?;
        self.version += 1;
        let offer_id = self.version;
        let media: Vec<OfferedMedia<'_>> = self
            .slots
            .iter()
            .map(|s| match &s.state {
                SlotState::Active(c) => OfferedMedia::Active {
                    mid: &s.mid,
                    kind: s.kind,
                    rtp: &c.rtp,
                    stream_id: &c.peer_id,
                    track_id: &c.consumer_id,
                },
                SlotState::Disabled => OfferedMedia::Disabled {
                    mid: &s.mid,
                    kind: s.kind,
                    rtp: &s.rtp,
                },
                SlotState::Closed => OfferedMedia::Closed {
                    mid: &s.mid,
                    kind: s.kind,
                    rtp: &s.rtp,
                },
            })
            .collect();
        let sdp = build_recv_offer(transport, self.session_id, offer_id, &media);
        let mut consumers = Vec::new();
        let mut to_resume = Vec::new();
        let mut mids = Vec::new();
        for s in &mut self.slots {
            s.offered = true;
            s.recycled_from = None;
            let live = matches!(s.state, SlotState::Active(_));
            mids.push((s.mid.clone(), live));
            if let SlotState::Active(c) = &s.state {
                consumers.push(ConsumerView {
                    mid: s.mid.clone(),
                    consumer_id: c.consumer_id.clone(),
                    producer_id: c.producer_id.clone(),
                    peer_id: c.peer_id.clone(),
                    kind: c.kind,
                    source: c.source,
                });
                if !c.resumed {
                    to_resume.push(c.consumer_id.clone());
                }
            }
        }
        self.dirty = false;
        self.pending = Some(PendingOffer {
            offer_id,
            mids,
            to_resume,
        });
        Some(OutgoingOffer {
            offer_id,
            sdp,
            consumers,
        })
    }

    /// The pending offer `offer_id`, if it is the one outstanding.
    pub fn pending(&self, offer_id: u64) -> Option<&PendingOffer> {
        self.pending.as_ref().filter(|p| p.offer_id == offer_id)
    }

    /// Completes the outstanding offer.
    pub fn answered(&mut self) -> Option<PendingOffer> {
        self.pending.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::parse::parse;
    use sfu_control::params::{DtlsParameters, IceCandidate, IceParameters};

    fn transport() -> TransportCreated {
        TransportCreated {
            transport_id: "t".into(),
            ice_role: sfu_control::responses::IceRole::Controlled,
            ice_state: sfu_control::params::IceState::New,
            dtls_state: sfu_control::params::DtlsState::New,
            ice_parameters: IceParameters {
                username_fragment: "ufrag".into(),
                password: "pwdpwdpwdpwdpwdpwdpwdpwd".into(),
                ice_lite: true,
            },
            ice_candidates: vec![IceCandidate {
                foundation: "udpcandidate".into(),
                priority: 2130706431,
                ip: "127.0.0.1".into(),
                address: "127.0.0.1".into(),
                protocol: "udp".into(),
                port: 40000,
                kind: "host".into(),
                tcp_type: None,
            }],
            dtls_parameters: DtlsParameters {
                role: sfu_control::params::DtlsRole::Auto,
                fingerprints: vec![],
            },
        }
    }

    fn consumer(id: &str, kind: MediaKind) -> ConsumerSlot {
        ConsumerSlot {
            consumer_id: id.into(),
            producer_id: format!("p-{id}"),
            peer_id: "peer".into(),
            kind,
            source: Source::Camera,
            rtp: RtpParameters::default(),
            resumed: false,
            score: 10,
            hidden: false,
            preferred_spatial: None,
            preferred_temporal: None,
            simulcast: false,
        }
    }

    fn session() -> RecvSession {
        let mut s = RecvSession::new(7);
        s.transport = Some(transport());
        s
    }

    /// (mid, port, direction) of each m-line of an offer.
    fn lines(sdp: &str) -> Vec<(String, i64, &'static str)> {
        parse(sdp)
            .unwrap()
            .media
            .iter()
            .map(|m| {
                let dir = match m.direction {
                    crate::sdp::parse::Direction::SendOnly => "sendonly",
                    crate::sdp::parse::Direction::Inactive => "inactive",
                    _ => "other",
                };
                (m.mid.clone().unwrap(), m.port, dir)
            })
            .collect()
    }

    #[test]
    fn one_offer_at_a_time() {
        let mut s = session();
        assert!(s.next_offer().is_none(), "nothing to offer");
        s.add(consumer("a", MediaKind::Audio));
        let o1 = s.next_offer().unwrap();
        assert_eq!(o1.consumers.len(), 1);
        s.add(consumer("b", MediaKind::Video));
        assert!(s.next_offer().is_none(), "the first offer is outstanding");
        assert!(
            s.pending(o1.offer_id + 1).is_none(),
            "a stale id is not pending"
        );
        let p = s.answered().unwrap();
        assert_eq!(p.to_resume, vec!["a".to_owned()]);
        s.set_resumed("a");
        let o2 = s.next_offer().unwrap();
        assert!(o2.offer_id > o1.offer_id);
        assert_eq!(s.answered().unwrap().to_resume, vec!["b".to_owned()]);
        assert!(s.next_offer().is_none());
    }

    #[test]
    fn closing_disables_the_first_m_line_and_closes_others_then_recycles() {
        let mut s = session();
        s.add(consumer("a", MediaKind::Audio));
        s.add(consumer("b", MediaKind::Video));
        s.add(consumer("c", MediaKind::Video));
        s.next_offer().unwrap();
        s.answered();
        s.remove("a").unwrap();
        s.remove("b").unwrap();
        let o = s.next_offer().unwrap();
        assert_eq!(
            lines(&o.sdp),
            vec![
                ("0".into(), 40000, "inactive"),
                ("1".into(), 0, "inactive"),
                ("2".into(), 40000, "sendonly")
            ]
        );
        assert!(o.sdp.contains("a=group:BUNDLE 0 2\r\n"), "{}", o.sdp);
        s.answered();
        // The closed m-line 1 is reused with a new mid; the disabled m-line 0 is not.
        s.add(consumer("d", MediaKind::Audio));
        let o = s.next_offer().unwrap();
        assert_eq!(
            lines(&o.sdp),
            vec![
                ("0".into(), 40000, "inactive"),
                ("3".into(), 40000, "sendonly"),
                ("2".into(), 40000, "sendonly")
            ]
        );
        assert!(o.sdp.contains("a=group:BUNDLE 0 3 2\r\n"), "{}", o.sdp);
    }

    #[test]
    fn a_closed_m_line_is_recycled_only_after_its_closing_was_offered() {
        let mut s = session();
        s.add(consumer("a", MediaKind::Audio));
        s.add(consumer("b", MediaKind::Video));
        s.next_offer().unwrap();
        s.answered();
        s.remove("b");
        s.add(consumer("c", MediaKind::Video));
        let o = s.next_offer().unwrap();
        let l = lines(&o.sdp);
        assert_eq!(
            l.len(),
            3,
            "m-line 1 must be shown closed before reuse: {l:?}"
        );
        assert_eq!(l[1], ("1".into(), 0, "inactive"));
        assert_eq!(l[2], ("2".into(), 40000, "sendonly"));
    }

    #[test]
    fn consumers_never_offered_leave_no_trace() {
        let mut s = session();
        s.add(consumer("a", MediaKind::Audio));
        s.add(consumer("b", MediaKind::Video));
        s.next_offer().unwrap();
        s.answered();
        s.remove("b");
        s.next_offer().unwrap();
        s.answered();
        // Recycled then removed before it was offered: m-line 1 stays the closed "1".
        s.add(consumer("c", MediaKind::Audio));
        s.remove("c");
        // Appended then removed before it was offered: gone.
        s.add(consumer("d", MediaKind::Video));
        s.add(consumer("e", MediaKind::Video));
        s.remove("e");
        let o = s.next_offer().unwrap();
        let l = lines(&o.sdp);
        // d recycled the closed m-line 1 (as mid 3); e never existed for the browser.
        assert_eq!(
            l,
            vec![
                ("0".into(), 40000, "sendonly"),
                ("3".into(), 40000, "sendonly")
            ]
        );
    }

    #[test]
    fn a_reset_starts_over_and_keeps_offer_ids_increasing() {
        let mut s = session();
        s.add(consumer("a", MediaKind::Audio));
        let o1 = s.next_offer().unwrap();
        s.reset(8);
        assert!(s.is_stale(o1.offer_id));
        assert!(s.pending(o1.offer_id).is_none());
        assert_eq!(s.consumers().count(), 0);
        assert!(s.transport.is_none() && !s.connected);
        s.transport = Some(transport());
        assert_eq!(
            s.add(consumer("b", MediaKind::Video)),
            "0",
            "a new peer connection"
        );
        let o2 = s.next_offer().unwrap();
        assert!(o2.offer_id > o1.offer_id && !s.is_stale(o2.offer_id));
        assert_eq!(lines(&o2.sdp), vec![("0".into(), 40000, "sendonly")]);
    }

    #[test]
    fn a_client_offered_session_never_offers_and_reuses_the_clients_m_lines() {
        let mut s = RecvSession::client_offered(7);
        s.transport = Some(transport());
        s.place("v", consumer("a", MediaKind::Video));
        assert!(s.next_offer().is_none());
        assert_eq!(s.consumer_at("v").unwrap().consumer_id, "a");
        s.remove("a").unwrap();
        assert!(s.consumer_at("v").is_none());
        s.place("v", consumer("b", MediaKind::Video));
        assert_eq!(
            s.shown()
                .map(|(m, c)| (m, c.consumer_id.as_str()))
                .collect::<Vec<_>>(),
            [("v", "b")]
        );
        assert!(s.next_offer().is_none());
    }

    #[test]
    fn remove_producer_removes_its_consumers() {
        let mut s = session();
        s.add(consumer("a", MediaKind::Audio));
        assert_eq!(s.remove_producer("p-a").len(), 1);
        assert_eq!(s.consumers().count(), 0);
        assert!(s.remove("a").is_none());
    }
}
