//! RTP observers on the worker core: the `router.createActiveSpeakerObserver` and
//! `rtpObserver.*` methods, the audio levels the packet path hands them, their interval
//! timer and the `dominantspeaker` notification, and their part in close cascades. The
//! decision itself is the observer's (`router::active_speaker`).
//!
//! An observer belongs to a router (and so to the router's owner, `worker::ownership`):
//! closing the router closes its observers (notified `routerclose`), closing a producer
//! takes it out of every observer of its router.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;
use sfu_control::requests::{
    RouterCreateActiveSpeakerObserver, RtpObserverAddProducer, RtpObserverRemoveProducer,
};
use sfu_control::responses::RtpObserverCreated;
use slab::Slab;

use crate::channel::params::MediaKind;
use crate::channel::{parse_data, response_data, ControlError, Event, Method};
use crate::ids::{ProducerId, RouterId, RtpObserverId};
use crate::router::active_speaker::{
    ActiveSpeakerObserver, DEFAULT_INTERVAL, MAX_INTERVAL, MAX_OBSERVERS_PER_ROUTER, MAX_SPEAKERS,
    MIN_INTERVAL,
};
use crate::router::{Ingested, Producer, ProducerKey, RtpObserverKey};
use crate::worker::core::WorkerCore;
use crate::worker::timers::TimerKey;

/// The longest id a client may choose for an observer.
const MAX_ID_LEN: usize = 64;

/// Every RTP observer of the core, by key and by id.
#[derive(Debug, Default)]
pub(crate) struct RtpObservers {
    pub(crate) slab: Slab<ActiveSpeakerObserver>,
    ids: HashMap<RtpObserverId, RtpObserverKey>,
}

impl RtpObservers {
    /// The router of observer `id`, for ownership checks.
    pub(crate) fn router_of(&self, id: &str) -> Option<RouterId> {
        let ok = self.ids.get(&RtpObserverId(id.to_owned()))?;
        self.slab.get(*ok).map(|o| o.router().clone())
    }

    /// The earliest comparison due of observer `ok`.
    pub(crate) fn deadline(&self, ok: RtpObserverKey) -> Option<Instant> {
        self.slab
            .get(ok)
            .and_then(ActiveSpeakerObserver::poll_timeout)
    }
}

fn not_found(kind: &'static str, id: &str) -> ControlError {
    ControlError::NotFound {
        kind,
        id: id.chars().take(128).collect(),
    }
}

fn invalid(method: Method, reason: impl Into<String>) -> ControlError {
    ControlError::InvalidData {
        method: method.name(),
        reason: reason.into(),
    }
}

impl WorkerCore {
    /// The producer the active-speaker observers of `router` last named dominant
    /// ([`crate::router::Router::active_speaker`], by id), for whoever ranks its
    /// streams.
    pub fn active_speaker(&self, router: &RouterId) -> Option<&ProducerId> {
        let pk = self.routers.get(router)?.active_speaker()?;
        self.producers.get(pk).map(Producer::id)
    }

    /// The observer methods (`router.createActiveSpeakerObserver`, `rtpObserver.*`).
    pub(crate) fn rtp_observer_request(
        &mut self,
        now: Instant,
        method: Method,
        target: &str,
        data: Value,
    ) -> Result<Value, ControlError> {
        if method == Method::RouterCreateActiveSpeakerObserver {
            let d: RouterCreateActiveSpeakerObserver = parse_data(data)?;
            return self.create_active_speaker_observer(now, target, d);
        }
        let ok = *self
            .rtp_observers
            .ids
            .get(&RtpObserverId(target.to_owned()))
            .ok_or_else(|| not_found("rtpObserver", target))?;
        match method {
            Method::RtpObserverAddProducer => {
                let d: RtpObserverAddProducer = parse_data(data)?;
                self.add_observed_producer(now, ok, &d.producer_id)?;
            }
            Method::RtpObserverRemoveProducer => {
                let d: RtpObserverRemoveProducer = parse_data(data)?;
                self.remove_observed_producer(ok, &d.producer_id)?;
            }
            Method::RtpObserverPause | Method::RtpObserverResume => {
                if let Some(o) = self.rtp_observers.slab.get_mut(ok) {
                    o.set_paused(now, method == Method::RtpObserverPause);
                }
            }
            _ => self.close_rtp_observer(ok, None),
        }
        Ok(Value::Null)
    }

    fn create_active_speaker_observer(
        &mut self,
        now: Instant,
        target: &str,
        d: RouterCreateActiveSpeakerObserver,
    ) -> Result<Value, ControlError> {
        let method = Method::RouterCreateActiveSpeakerObserver;
        let rid = RouterId(target.to_owned());
        let router = self
            .routers
            .get(&rid)
            .ok_or_else(|| not_found("router", target))?;
        let interval = d
            .interval
            .map_or(DEFAULT_INTERVAL, |ms| Duration::from_millis(ms.into()));
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
            return Err(invalid(
                method,
                format!(
                    "interval must be {}-{} ms",
                    MIN_INTERVAL.as_millis(),
                    MAX_INTERVAL.as_millis()
                ),
            ));
        }
        if router.observers.len() >= MAX_OBSERVERS_PER_ROUTER {
            return Err(ControlError::InvalidState(format!(
                "the router has its maximum of {MAX_OBSERVERS_PER_ROUTER} observers"
            )));
        }
        let id = match d.rtp_observer_id {
            Some(id) => {
                let valid = !id.0.is_empty()
                    && id.0.len() <= MAX_ID_LEN
                    && id
                        .0
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !valid {
                    return Err(invalid(
                        method,
                        format!("rtpObserverId must be 1-{MAX_ID_LEN} letters, digits, - or _"),
                    ));
                }
                if self.rtp_observers.ids.contains_key(&id) {
                    return Err(ControlError::InvalidState(format!(
                        "rtpObserverId {} is already used",
                        id.0
                    )));
                }
                id
            }
            None => loop {
                let id = RtpObserverId(format!("{:016x}", self.rng.gen::<u64>()));
                if !self.rtp_observers.ids.contains_key(&id) {
                    break id;
                }
            },
        };
        let observer = ActiveSpeakerObserver::new(id.clone(), rid.clone(), interval, now);
        let ok = self.rtp_observers.slab.insert(observer);
        self.rtp_observers.ids.insert(id.clone(), ok);
        if let Some(r) = self.routers.get_mut(&rid) {
            r.observers.push(ok);
        }
        tracing::info!(rtp_observer = %id, router = %rid, "active-speaker observer created");
        Ok(response_data(&RtpObserverCreated {
            rtp_observer_id: id,
        }))
    }

    /// The observer `ok` and the producer `producer` of its router (a producer of
    /// another router is as unknown here as one that does not exist).
    fn observer_and_producer(
        &mut self,
        ok: RtpObserverKey,
        producer: &ProducerId,
    ) -> Result<(&mut ActiveSpeakerObserver, ProducerKey, &Producer), ControlError> {
        let o = self
            .rtp_observers
            .slab
            .get_mut(ok)
            .ok_or_else(|| not_found("rtpObserver", ""))?;
        let (pk, p) = self
            .producer_ids
            .get(producer)
            .and_then(|pk| Some((*pk, self.producers.get(*pk)?)))
            .filter(|(_, p)| p.router() == o.router())
            .ok_or_else(|| not_found("producer", &producer.0))?;
        Ok((o, pk, p))
    }

    /// `rtpObserver.addProducer`: an audio producer of the observer's router, once.
    fn add_observed_producer(
        &mut self,
        now: Instant,
        ok: RtpObserverKey,
        producer: &ProducerId,
    ) -> Result<(), ControlError> {
        let (o, pk, p) = self.observer_and_producer(ok, producer)?;
        if p.kind() != MediaKind::Audio {
            return Err(invalid(
                Method::RtpObserverAddProducer,
                "only audio producers can be observed",
            ));
        }
        if o.observes(pk) {
            return Err(ControlError::InvalidState(format!(
                "producer {} is already observed",
                producer.0
            )));
        }
        if !o.add_producer(now, pk) {
            return Err(ControlError::InvalidState(format!(
                "the observer has its maximum of {MAX_SPEAKERS} producers"
            )));
        }
        Ok(())
    }

    /// `rtpObserver.removeProducer`: one the observer observes.
    fn remove_observed_producer(
        &mut self,
        ok: RtpObserverKey,
        producer: &ProducerId,
    ) -> Result<(), ControlError> {
        let (o, pk, p) = self.observer_and_producer(ok, producer)?;
        let router = p.router().clone();
        if !o.remove_producer(pk) {
            return Err(not_found("producer", &producer.0));
        }
        self.refresh_dominant_speaker(&router);
        Ok(())
    }

    /// The packet path's part: an audio producer's packet, just ingested, gives its
    /// level to the observers of its router. No allocation; the router is one hash
    /// lookup, done only for packets that carry a level.
    pub(crate) fn observe_audio_level(
        &mut self,
        now: Instant,
        pk: ProducerKey,
        buf: &[u8],
        packet: &Ingested,
    ) {
        let Some(p) = self.producers.get_mut(pk) else {
            return;
        };
        let Some(level) = buf
            .get(..packet.len)
            .and_then(|pkt| p.audio_levels_mut().on_packet(pkt, &packet.hdr))
        else {
            return;
        };
        let Some(r) = self.routers.get(p.router()) else {
            return;
        };
        for &ok in &r.observers {
            let Some(o) = self.rtp_observers.slab.get_mut(ok) else {
                continue;
            };
            // A sound wakes an observer that slept through silence.
            if let Some(at) = o.on_level(now, pk, level) {
                self.timers.lower(TimerKey::RtpObserver(ok), at);
            }
        }
    }

    /// An observer's comparison is due (`worker::timers`): a new dominant speaker
    /// becomes the router's and is notified.
    pub(crate) fn rtp_observer_timeout(&mut self, now: Instant, ok: RtpObserverKey) {
        let Some(o) = self.rtp_observers.slab.get_mut(ok) else {
            return;
        };
        o.handle_timeout(now);
        let Some(pk) = o.poll_event() else {
            return;
        };
        let (rid, target) = (o.router().clone(), o.id().0.clone());
        let Some(producer_id) = self.producers.get(pk).map(|p| p.id().clone()) else {
            return;
        };
        if let Some(r) = self.routers.get_mut(&rid) {
            r.dominant_speaker = Some(pk);
        }
        self.totals.dominant_speaker_changes += 1;
        tracing::debug!(rtp_observer = %target, producer = %producer_id, "dominant speaker");
        self.notify(&rid, &target, Event::DominantSpeaker { producer_id });
    }

    /// A producer of router `rid` closed: no observer may keep its key (slab keys are
    /// reused).
    pub(crate) fn unobserve_producer(&mut self, pk: ProducerKey, rid: &RouterId) {
        let Some(r) = self.routers.get(rid) else {
            return;
        };
        for &ok in &r.observers {
            if let Some(o) = self.rtp_observers.slab.get_mut(ok) {
                o.remove_producer(pk);
            }
        }
        self.refresh_dominant_speaker(rid);
    }

    /// Closes observer `ok`; `reason` is notified for it when the close was not
    /// requested for the observer itself.
    pub(crate) fn close_rtp_observer(&mut self, ok: RtpObserverKey, reason: Option<Event>) {
        if !self.rtp_observers.slab.contains(ok) {
            return;
        }
        let o = self.rtp_observers.slab.remove(ok);
        self.rtp_observers.ids.remove(o.id());
        if let Some(r) = self.routers.get_mut(o.router()) {
            r.observers.retain(|k| *k != ok);
        }
        self.refresh_dominant_speaker(o.router());
        if let Some(event) = reason {
            self.notify(o.router(), &o.id().0, event);
        }
        tracing::info!(rtp_observer = %o.id(), "rtp observer closed");
    }

    /// Closes a closing router's observers (notified `routerclose`).
    pub(crate) fn close_router_observers(&mut self, rid: &RouterId) {
        let observers = self
            .routers
            .get(rid)
            .map(|r| r.observers.clone())
            .unwrap_or_default();
        for ok in observers {
            self.close_rtp_observer(ok, Some(Event::RouterClose));
        }
    }

    /// The router's dominant speaker after one of its observers lost its own: kept when
    /// some observer still has it, else the first other observer's.
    fn refresh_dominant_speaker(&mut self, rid: &RouterId) {
        let Some(r) = self.routers.get_mut(rid) else {
            return;
        };
        let dominants = r
            .observers
            .iter()
            .filter_map(|ok| self.rtp_observers.slab.get(*ok))
            .filter_map(ActiveSpeakerObserver::dominant);
        let mut still = dominants
            .clone()
            .filter(|pk| Some(*pk) == r.dominant_speaker);
        r.dominant_speaker = still.next().or_else(|| dominants.clone().next());
    }
}
