//! Who may act on what over the control channel. A router belongs to the connection that
//! created it; so do its transports, producers and consumers. A confined connection (one
//! accepted on `worker-i.sock`) may act only on what it owns; an admin connection (one
//! accepted on `worker-i.admin.sock`, mode 0600: the daemon's own user) may act on every
//! router. Worker-level methods and `router.create` are open to every connection.
//!
//! A refusal is the same `NotFound` error a missing id gets: a confined client learns
//! nothing about the ids of others, not even that they exist (docs/PROTOCOL.md).

use std::collections::HashSet;

use crate::channel::{ControlError, Method};
use crate::ids::{ConsumerId, ProducerId, RouterId, TransportId};
use crate::router::ConnId;
use crate::worker::core::WorkerCore;

/// What kind of connection a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnRole {
    /// Acts only on routers it created (`worker-i.sock`).
    Confined,
    /// Acts on every router (`worker-i.admin.sock`).
    Admin,
}

/// The admin connections of one worker.
#[derive(Debug, Default)]
pub(crate) struct AdminConns(HashSet<ConnId>);

impl AdminConns {
    pub(crate) fn contains(&self, conn: ConnId) -> bool {
        self.0.contains(&conn)
    }
}

impl WorkerCore {
    /// A control connection was accepted with `role`. Connections not opened this way
    /// are confined.
    pub fn open_connection(&mut self, conn: ConnId, role: ConnRole) {
        if role == ConnRole::Admin {
            self.admins.0.insert(conn);
        }
    }

    /// Forgets the role of a connection that went away.
    pub(crate) fn forget_connection(&mut self, conn: ConnId) {
        self.admins.0.remove(&conn);
    }

    /// Refuses, as `NotFound`, a request of `conn` on an entity of a router it does not
    /// own, unless `conn` is an admin connection. Targets that do not exist pass: the
    /// method's own lookup answers them with the same error.
    pub(crate) fn authorize(
        &self,
        conn: ConnId,
        method: Method,
        target: &str,
    ) -> Result<(), ControlError> {
        if self.admins.contains(conn) {
            return Ok(());
        }
        let Some((kind, router)) = self.router_of(method, target) else {
            return Ok(());
        };
        match self.routers.get(&router) {
            Some(r) if r.owner != conn => Err(ControlError::NotFound {
                kind,
                id: target.chars().take(128).collect(),
            }),
            _ => Ok(()),
        }
    }

    /// The kind of entity `method` targets and the router it belongs to, when it exists.
    fn router_of(&self, method: Method, target: &str) -> Option<(&'static str, RouterId)> {
        use Method::*;
        match method {
            WorkerLoad | WorkerGetStats | WorkerGetLatency | RouterCreate => None,
            RouterClose | RouterGetStats | TransportCreate | RouterCreateActiveSpeakerObserver => {
                Some(("router", RouterId(target.to_owned())))
            }
            TransportConnect | TransportProduce | TransportConsume | TransportClose
            | TransportGetStats => {
                let tk = self.transport_ids.get(&TransportId(target.to_owned()))?;
                let t = self.transports.get(*tk)?;
                Some(("transport", t.router.clone()))
            }
            ProducerPause | ProducerResume | ProducerClose | ProducerGetStats => {
                let pk = self.producer_ids.get(&ProducerId(target.to_owned()))?;
                let p = self.producers.get(*pk)?;
                Some(("producer", p.router().clone()))
            }
            ConsumerPause
            | ConsumerResume
            | ConsumerClose
            | ConsumerGetStats
            | ConsumerRequestKeyFrame
            | ConsumerSetPreferredLayers
            | ConsumerSetPriority
            | ConsumerSetProducer => {
                let ck = self.consumer_ids.get(&ConsumerId(target.to_owned()))?;
                let c = self.consumers.get(*ck)?;
                let t = self.transports.get(c.transport())?;
                Some(("consumer", t.router.clone()))
            }
            RtpObserverAddProducer
            | RtpObserverRemoveProducer
            | RtpObserverPause
            | RtpObserverResume
            | RtpObserverClose => Some(("rtpObserver", self.rtp_observers.router_of(target)?)),
        }
    }
}
