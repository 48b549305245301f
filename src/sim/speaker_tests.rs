//! The active speaker (issue 13, item 7): str0m publishers send Opus with the RFC 6464
//! audio level, as browsers do; the router's active-speaker observer notifies
//! `dominantspeaker` for the one who talks, switches when the other takes over, stays
//! through silence, and lets go of a producer that closes.

use std::time::Duration;

use sfu_control::requests::{
    ProducerClose, ProducerGetStats, RouterCreateActiveSpeakerObserver, RtpObserverAddProducer,
    RtpObserverPause, RtpObserverResume, WorkerGetStats,
};
use str0m::format::Codec;
use str0m::media::MediaKind;
use str0m::rtp::{ExtensionValues, RtpWrite};

use super::call::{observe_speakers, produce_leveled_opus};
use super::*;

/// One Opus frame per 20 ms.
const FRAME: Duration = Duration::from_millis(20);
/// Speech, and the quiet of a microphone nobody talks into (dBov).
const TALKING: i8 = -25;
const QUIET: i8 = -110;

/// One publishing participant: its peer, SSRC, Opus payload type and producer.
struct Speaker {
    peer: PeerId,
    ssrc: u32,
    opus: u8,
    producer: String,
    sent: u32,
}

/// A router with `names.len()` audio publishers, all observed by one observer.
struct Room {
    sim: Sim,
    router: String,
    speakers: Vec<Speaker>,
    observer: String,
}

impl Room {
    fn new(seed: u64, names: &[&str]) -> Self {
        let mut sim = Sim::new(seed);
        let router = sim.create_router();
        let mut speakers = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let peer = sim.add_peer(name, |b| b);
            let transport = sim.connect(peer, &router);
            let ssrc = 0x5eed_0000 + i as u32;
            let (opus, _) = sim.peer(peer).pt(Codec::Opus);
            sim.peer(peer)
                .send_stream("a", MediaKind::Audio, ssrc, None);
            let producer = produce_leveled_opus(&mut sim, &transport, opus, ssrc, name);
            sim.label(&producer, &format!("{name}-audio"));
            speakers.push(Speaker {
                peer,
                ssrc,
                opus,
                producer,
                sent: 0,
            });
        }
        let peers: Vec<PeerId> = speakers.iter().map(|s| s.peer).collect();
        sim.run_until_connected(&peers, Duration::from_secs(5));
        let producers: Vec<String> = speakers.iter().map(|s| s.producer.clone()).collect();
        let observer = observe_speakers(&mut sim, &router, &producers);
        Self {
            sim,
            router,
            speakers,
            observer,
        }
    }

    /// `d` of audio: every 20 ms each speaker sends one packet at the level `level_of`
    /// gives its index (speakers a millisecond apart: str0m must never have two
    /// streams due at one instant).
    fn talk(&mut self, d: Duration, level_of: impl Fn(usize) -> i8) {
        let end = self.sim.now() + d;
        while self.sim.now() + FRAME <= end {
            let frame_start = self.sim.now();
            for i in 0..self.speakers.len() {
                self.sim
                    .run_until(frame_start + Duration::from_millis(i as u64 + 1));
                self.send(i, level_of(i));
            }
            self.sim.run_until(frame_start + FRAME);
        }
        self.sim.run_until(end);
    }

    /// The router's active speaker as the core exposes it to bandwidth allocation.
    fn active_speaker(&self) -> Option<String> {
        self.sim.core.active_speaker(&self.router)
    }

    fn send(&mut self, i: usize, level: i8) {
        let now = self.sim.now();
        let s = &mut self.speakers[i];
        let seq = 100 + u64::from(s.sent);
        let ts = s.sent * 960;
        let mut payload = vec![0xfc];
        payload.extend(std::iter::repeat_n(0x55, 60));
        let payload = indexed(payload, s.sent);
        s.sent += 1;
        let ext = ExtensionValues {
            audio_level: Some(level),
            voice_activity: Some(level > -60),
            ..Default::default()
        };
        let (ssrc, opus, peer) = (s.ssrc, s.opus, s.peer);
        let mut api = self.sim.peer(peer).rtc.direct_api();
        let stream = api.stream_tx(&ssrc.into()).expect("a declared stream");
        stream.write_rtp(RtpWrite::new(opus.into(), seq.into(), ts, now, payload).ext_vals(ext));
    }

    /// The producers named by `dominantspeaker` notifications so far, in order.
    fn dominant_speakers(&self) -> Vec<String> {
        self.sim
            .trace()
            .records()
            .filter_map(|r| match r {
                Record::Notification { target, event } if target == "observer" => {
                    event.strip_prefix("dominantspeaker ").map(str::to_owned)
                }
                _ => None,
            })
            .collect()
    }
}

#[test]
fn the_louder_publisher_is_notified_and_the_other_takes_over_when_it_talks() {
    let mut room = Room::new(131, &["ada", "bob"]);
    room.talk(Duration::from_secs(1), |_| QUIET);
    assert!(room.dominant_speakers().is_empty(), "nobody spoke yet");
    // Ada talks, Bob is quiet.
    room.talk(
        Duration::from_secs(2),
        |i| if i == 0 { TALKING } else { QUIET },
    );
    assert_eq!(room.dominant_speakers(), ["ada-audio"]);
    let ada = room.speakers[0].producer.clone();
    assert_eq!(room.active_speaker().as_ref(), Some(&ada));
    let stats = room.sim.ok(&ProducerGetStats::new(ada.as_str()));
    assert_eq!(
        stats.audio_level,
        Some(TALKING),
        "the last level is in the stats"
    );
    // Bob answers for two seconds: he takes over, once.
    room.talk(
        Duration::from_secs(2),
        |i| if i == 1 { TALKING } else { QUIET },
    );
    assert_eq!(room.dominant_speakers(), ["ada-audio", "bob-audio"]);
    // Silence, then nothing at all: Bob stays the last speaker.
    room.talk(Duration::from_secs(3), |_| QUIET);
    room.sim.run_for(Duration::from_secs(3));
    assert_eq!(room.dominant_speakers(), ["ada-audio", "bob-audio"]);
    let worker = room.sim.ok(&WorkerGetStats::default());
    assert_eq!(
        worker.totals.dominant_speaker_changes, 2,
        "the worker's metric counts each change"
    );
}

#[test]
fn a_paused_observer_is_silent_and_a_closed_speaker_is_let_go() {
    let mut room = Room::new(132, &["ada", "bob", "cyd"]);
    room.talk(
        Duration::from_secs(2),
        |i| if i == 0 { TALKING } else { QUIET },
    );
    assert_eq!(room.dominant_speakers(), ["ada-audio"]);
    let observer = room.observer.clone();
    room.sim.ok(&RtpObserverPause::new(observer.as_str()));
    room.talk(
        Duration::from_secs(2),
        |i| if i == 1 { TALKING } else { QUIET },
    );
    assert_eq!(room.dominant_speakers(), ["ada-audio"], "paused: nothing");
    room.sim.ok(&RtpObserverResume::new(observer.as_str()));
    // Ada, the dominant speaker, leaves; Cyd is the next to speak.
    let ada = room.speakers[0].producer.clone();
    assert_eq!(room.active_speaker().as_ref(), Some(&ada));
    room.sim.ok(&ProducerClose::new(ada.as_str()));
    assert_eq!(
        room.active_speaker(),
        None,
        "a closed producer is nobody's speaker"
    );
    room.talk(
        Duration::from_secs(2),
        |i| if i == 2 { TALKING } else { QUIET },
    );
    assert_eq!(room.dominant_speakers(), ["ada-audio", "cyd-audio"]);
    assert_eq!(
        room.active_speaker(),
        Some(room.speakers[2].producer.clone())
    );
}

#[test]
fn observer_requests_are_checked_and_bounded() {
    use sfu_control::requests::{RtpObserverClose, RtpObserverRemoveProducer};
    use sfu_control::ErrorKind;

    use crate::router::active_speaker::MAX_OBSERVERS_PER_ROUTER;

    let mut room = Room::new(133, &["ada"]);
    let observer = room.observer.clone();
    let ada = room.speakers[0].producer.clone();
    // A second router (room), for the bounds and for a producer of another router.
    let router_id = room.sim.create_router();
    let create = |id: Option<&str>, interval: Option<u32>| RouterCreateActiveSpeakerObserver {
        router_id: router_id.as_str().into(),
        rtp_observer_id: id.map(Into::into),
        interval,
    };
    for interval in [0, 99, 10_001] {
        let refused = room.sim.request(&create(None, Some(interval))).err();
        assert_eq!(
            refused.map(|e| e.kind),
            Some(ErrorKind::InvalidData),
            "{interval} ms"
        );
    }
    for id in ["", "with space", &"x".repeat(65)] {
        let refused = room.sim.request(&create(Some(id), None)).err();
        assert_eq!(
            refused.map(|e| e.kind),
            Some(ErrorKind::InvalidData),
            "{id:?}"
        );
    }
    let named = room.sim.ok(&create(Some("room-speaker"), Some(1000)));
    assert_eq!(named.rtp_observer_id.0, "room-speaker");
    let again = room.sim.request(&create(Some("room-speaker"), None)).err();
    assert_eq!(again.map(|e| e.kind), Some(ErrorKind::InvalidState));
    for _ in 1..MAX_OBSERVERS_PER_ROUTER {
        room.sim.ok(&create(None, None));
    }
    let full = room.sim.request(&create(None, None)).err();
    assert_eq!(full.map(|e| e.kind), Some(ErrorKind::InvalidState));

    // The setup's observer: Ada is observed once; a producer of another router is unknown.
    let add = RtpObserverAddProducer {
        rtp_observer_id: observer.as_str().into(),
        producer_id: ada.as_str().into(),
    };
    let twice = room.sim.request(&add).err();
    assert_eq!(twice.map(|e| e.kind), Some(ErrorKind::InvalidState));
    let foreign = room
        .sim
        .request(&RtpObserverAddProducer {
            rtp_observer_id: "room-speaker".into(),
            producer_id: ada.as_str().into(),
        })
        .err();
    assert_eq!(foreign.map(|e| e.kind), Some(ErrorKind::NotFound));
    let remove = RtpObserverRemoveProducer {
        rtp_observer_id: observer.as_str().into(),
        producer_id: ada.as_str().into(),
    };
    room.sim.ok(&remove);
    let gone = room.sim.request(&remove).err();
    assert_eq!(gone.map(|e| e.kind), Some(ErrorKind::NotFound));
    room.sim.ok(&RtpObserverClose::new(observer.as_str()));
    let closed = room
        .sim
        .request(&RtpObserverPause::new(observer.as_str()))
        .err();
    assert_eq!(closed.map(|e| e.kind), Some(ErrorKind::NotFound));
}

#[test]
fn only_audio_producers_are_observed() {
    use sfu_control::ErrorKind;

    let mut call = Call::new(
        134,
        CallConfig {
            subscribers: 0,
            ..CallConfig::default()
        },
    );
    let observer = call
        .sim
        .ok(&RouterCreateActiveSpeakerObserver {
            router_id: call.router.as_str().into(),
            rtp_observer_id: None,
            interval: None,
        })
        .rtp_observer_id;
    let add = |producer: &str| RtpObserverAddProducer {
        rtp_observer_id: observer.clone(),
        producer_id: producer.into(),
    };
    let video = call.video_producer.clone();
    let refused = call.sim.request(&add(&video)).err();
    assert_eq!(refused.map(|e| e.kind), Some(ErrorKind::InvalidData));
    let audio = call.audio_producer.clone();
    call.sim.ok(&add(&audio));
}
