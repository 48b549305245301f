//! The one list of control methods.

/// Every control method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    WorkerLoad,
    WorkerGetStats,
    WorkerGetLatency,
    RouterCreate,
    RouterClose,
    RouterGetStats,
    TransportCreate,
    TransportConnect,
    TransportProduce,
    TransportConsume,
    TransportClose,
    TransportGetStats,
    ProducerPause,
    ProducerResume,
    ProducerClose,
    ProducerGetStats,
    ConsumerPause,
    ConsumerResume,
    ConsumerClose,
    ConsumerGetStats,
    ConsumerRequestKeyFrame,
    ConsumerSetPreferredLayers,
    ConsumerSetPriority,
    ConsumerSetProducer,
    RouterCreateActiveSpeakerObserver,
    RtpObserverAddProducer,
    RtpObserverRemoveProducer,
    RtpObserverPause,
    RtpObserverResume,
    RtpObserverClose,
}

impl Method {
    /// Every method with its wire name.
    pub const ALL: [(&'static str, Self); 30] = [
        ("worker.load", Self::WorkerLoad),
        ("worker.getStats", Self::WorkerGetStats),
        ("worker.getLatency", Self::WorkerGetLatency),
        ("router.create", Self::RouterCreate),
        ("router.close", Self::RouterClose),
        ("router.getStats", Self::RouterGetStats),
        ("transport.create", Self::TransportCreate),
        ("transport.connect", Self::TransportConnect),
        ("transport.produce", Self::TransportProduce),
        ("transport.consume", Self::TransportConsume),
        ("transport.close", Self::TransportClose),
        ("transport.getStats", Self::TransportGetStats),
        ("producer.pause", Self::ProducerPause),
        ("producer.resume", Self::ProducerResume),
        ("producer.close", Self::ProducerClose),
        ("producer.getStats", Self::ProducerGetStats),
        ("consumer.pause", Self::ConsumerPause),
        ("consumer.resume", Self::ConsumerResume),
        ("consumer.close", Self::ConsumerClose),
        ("consumer.getStats", Self::ConsumerGetStats),
        ("consumer.requestKeyFrame", Self::ConsumerRequestKeyFrame),
        (
            "consumer.setPreferredLayers",
            Self::ConsumerSetPreferredLayers,
        ),
        ("consumer.setPriority", Self::ConsumerSetPriority),
        ("consumer.setProducer", Self::ConsumerSetProducer),
        (
            "router.createActiveSpeakerObserver",
            Self::RouterCreateActiveSpeakerObserver,
        ),
        ("rtpObserver.addProducer", Self::RtpObserverAddProducer),
        (
            "rtpObserver.removeProducer",
            Self::RtpObserverRemoveProducer,
        ),
        ("rtpObserver.pause", Self::RtpObserverPause),
        ("rtpObserver.resume", Self::RtpObserverResume),
        ("rtpObserver.close", Self::RtpObserverClose),
    ];

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
    }

    /// The wire name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("?", |(n, _)| *n)
    }

    /// Whether the method acts on an entity named by `target`.
    pub fn needs_target(self) -> bool {
        !matches!(
            self,
            Self::WorkerLoad | Self::WorkerGetStats | Self::WorkerGetLatency | Self::RouterCreate
        )
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip() {
        for (name, m) in Method::ALL {
            assert_eq!(Method::parse(name), Some(m));
            assert_eq!(m.name(), name);
        }
        assert_eq!(Method::parse("router.explode"), None);
    }
}
