//! A following consumer (`consumer.setProducer`, issue 14's WHEP player that follows the
//! active speaker): a str0m subscriber consumes one publisher's audio and video with
//! `follow`, and is pointed at a second publisher's. The video switches only at the new
//! publisher's keyframe, the audio at its next packet, each continuing the subscriber's
//! sequence numbers and timestamps; a closed producer leaves the consumer idle, not
//! closed.

use std::time::Duration;

use serde_json::Value;
use sfu_control::params;
use sfu_control::requests::{
    ConsumerGetStats, ConsumerSetProducer, ProducerClose, TransportConsume,
};
use sfu_control::ErrorKind;
use str0m::format::Codec;
use str0m::media::MediaKind;

use super::call::{
    produce, vp8_payload, Call, CallConfig, AUDIO_SSRC, PACKET_INTERVAL, VIDEO_RTX_SSRC, VIDEO_SSRC,
};
use super::*;

/// Payload indexes of the second publisher's packets carry this bit.
const BOB: u32 = 1 << 24;
/// The second publisher's video keyframe interval in packets; it ignores keyframe
/// requests, so a switch to it waits for its next periodic keyframe.
const BOB_KEYFRAME_EVERY: u32 = 50;

/// One packet the subscriber received: payload index, sequence number, timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Got {
    index: u32,
    seq: u16,
    ts: u32,
}

/// The first publisher ("pub", the [`Call`]'s), a second one ("bob") and a subscriber
/// ("sub") whose two consumers follow.
struct FollowCall {
    call: Call,
    bob: PeerId,
    bob_audio: String,
    bob_video: String,
    bob_sent: u32,
    audio_consumer: String,
    video_consumer: String,
}

impl FollowCall {
    fn new(seed: u64) -> Self {
        let config = CallConfig {
            subscribers: 0,
            ..CallConfig::default()
        };
        let mut call = Call::new(seed, config);
        let router = call.router.clone();
        let sim = &mut call.sim;
        let bob = sim.add_peer("bob", |b| b);
        let bob_transport = sim.connect(bob, &router);
        let (opus, _) = sim.peer(bob).pt(Codec::Opus);
        let (vp8, rtx) = sim.peer(bob).pt(Codec::Vp8);
        let p = sim.peer(bob);
        p.send_stream("a", MediaKind::Audio, AUDIO_SSRC, None);
        p.send_stream(
            "v",
            MediaKind::Video,
            VIDEO_SSRC,
            rtx.map(|_| VIDEO_RTX_SSRC),
        );
        let audio = params::MediaKind::Audio;
        let bob_audio = produce(sim, &bob_transport, audio, opus, None, config);
        let video = params::MediaKind::Video;
        let bob_video = produce(sim, &bob_transport, video, vp8, rtx, config);
        sim.label(&bob_audio, "bob-audio");
        sim.label(&bob_video, "bob-video");

        let sub = call.sim.add_peer("sub", |b| b);
        let transport = call.sim.connect(sub, &router);
        let caps = call.capabilities(sub);
        let consume = |call: &mut Call, producer: &str, mid: &str, kind: MediaKind| {
            let c = call.sim.ok(&TransportConsume {
                transport_id: transport.as_str().into(),
                producer_id: producer.into(),
                rtp_capabilities: caps.clone(),
                paused: false,
                mid: None,
                preferred_layers: None,
                follow: true,
                app_data: Value::Null,
            });
            let enc = c.rtp_parameters.encodings.first().expect("one encoding");
            let (ssrc, rtx) = (enc.ssrc.expect("an SSRC"), enc.rtx.map(|r| r.ssrc));
            call.sim
                .label(&c.consumer_id.0, &format!("sub-{mid}-consumer"));
            call.sim.peer(sub).recv_stream(mid, mid, kind, ssrc, rtx);
            c.consumer_id.0
        };
        let (a, v) = (call.audio_producer.clone(), call.video_producer.clone());
        let audio_consumer = consume(&mut call, &a, "a", MediaKind::Audio);
        let video_consumer = consume(&mut call, &v, "v", MediaKind::Video);
        let peers = [call.publisher, bob, sub];
        call.sim.run_until_connected(&peers, Duration::from_secs(5));
        Self {
            call,
            bob,
            bob_audio,
            bob_video,
            bob_sent: 0,
            audio_consumer,
            video_consumer,
        }
    }

    /// Both publishers send for `d`: video every [`PACKET_INTERVAL`], audio every
    /// other, never two streams at one instant.
    fn stream(&mut self, d: Duration) {
        let end = self.call.sim.now() + d;
        while self.call.sim.now() + PACKET_INTERVAL <= end {
            let at = self.call.sim.now();
            let i = self.call.send_video();
            self.call.sim.run_until(at + Duration::from_millis(2));
            self.bob_video();
            if i % 2 == 0 {
                self.call.sim.run_until(at + Duration::from_millis(5));
                self.call.send_audio();
                self.call.sim.run_until(at + Duration::from_millis(7));
                self.bob_audio();
            }
            self.call.sim.run_until(at + PACKET_INTERVAL);
            self.bob_sent += 1;
        }
    }

    fn bob_video(&mut self) {
        let i = self.bob_sent;
        let keyframe = i % BOB_KEYFRAME_EVERY == BOB_KEYFRAME_EVERY - 1;
        let (vp8, _) = self.call.sim.peer(self.bob).pt(Codec::Vp8);
        let now = self.call.sim.now();
        // Its own numbering and timeline, far from the first publisher's.
        let payload = indexed(vp8_payload(i, keyframe, 700), BOB | i);
        self.call.sim.peer(self.bob).write(
            now,
            VIDEO_SSRC,
            vp8,
            40_000 + u64::from(i),
            3_000_000_000u32.wrapping_add(i * 900),
            payload,
        );
    }

    fn bob_audio(&mut self) {
        let i = self.bob_sent / 2;
        let (opus, _) = self.call.sim.peer(self.bob).pt(Codec::Opus);
        let now = self.call.sim.now();
        let mut payload = vec![0xfc];
        payload.extend(std::iter::repeat_n(7u8, 80));
        self.call.sim.peer(self.bob).write(
            now,
            AUDIO_SSRC,
            opus,
            20_000 + u64::from(i),
            2_000_000_000u32.wrapping_add(i * 960),
            indexed(payload, BOB | i),
        );
    }

    fn point(&mut self, consumer: &str, producer: &str) {
        self.call.sim.ok(&ConsumerSetProducer {
            consumer_id: consumer.into(),
            producer_id: producer.into(),
        });
    }

    /// What the subscriber received on `stream`, in arrival order.
    fn received(&self, stream: &str) -> Vec<Got> {
        self.call
            .sim
            .trace()
            .records()
            .filter_map(|r| match r {
                Record::Rtp {
                    peer,
                    stream: s,
                    index,
                    seq,
                    ts,
                } if peer == "sub" && s == stream => Some(Got {
                    index: *index,
                    seq: *seq,
                    ts: *ts,
                }),
                _ => None,
            })
            .collect()
    }

    fn notified(&self, target: &str, name: &str) -> usize {
        self.call
            .sim
            .trace()
            .records()
            .filter(|r| {
                matches!(r, Record::Notification { target: t, event }
                    if t == target && event == name)
            })
            .count()
    }
}

fn from_bob(g: &Got) -> bool {
    g.index & BOB != 0
}

/// One unbroken stream: consecutive sequence numbers (no loss here), timestamps
/// stepping by `step` ticks a packet (within `slack`), and one switch from the first
/// publisher to the second whose timestamp step is the arrival time between the two
/// packets (`elapsed` ticks, within `slack`), not a jump to the second publisher's
/// timeline. Returns where the switch is.
#[track_caller]
fn assert_one_continuous_switch(got: &[Got], step: u32, elapsed: u32, slack: u32) -> usize {
    for w in got.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "sequence gap {w:?}");
        assert!(
            w[1].ts.wrapping_sub(w[0].ts) <= step + slack,
            "timestamp jump {w:?}"
        );
    }
    let at = got
        .iter()
        .position(from_bob)
        .expect("the second publisher's media arrives");
    assert!(at > 0, "the first publisher's media came first");
    assert!(
        got[at..].iter().all(from_bob),
        "nothing of the first publisher after the switch: {got:?}"
    );
    let gap = got[at].ts.wrapping_sub(got[at - 1].ts);
    assert!(
        gap.abs_diff(elapsed) <= slack,
        "the switch advances the timestamp by the elapsed time: {gap}"
    );
    at
}

/// Regression test for issue 14 (WHEP following the active speaker): a video consumer
/// pointed at another producer keeps forwarding the old one until the new one's
/// keyframe, then forwards only the new one, its sequence numbers and timestamps
/// continuing; the new producer is asked for a keyframe at once; `producerchange` is
/// notified once.
#[test]
fn video_switches_producer_at_its_keyframe_with_continuous_numbering() {
    let mut f = FollowCall::new(141);
    f.stream(Duration::from_millis(700));
    let before = f.received("v");
    assert!(!before.is_empty() && !before.iter().any(from_bob));
    let asked = |f: &FollowCall| {
        f.call
            .sim
            .trace()
            .records()
            .filter(|r| matches!(r, Record::KeyframeRequest { peer, .. } if peer == "bob"))
            .count()
    };
    let asked_before = asked(&f);
    let (consumer, bob_video) = (f.video_consumer.clone(), f.bob_video.clone());
    f.point(&consumer, &bob_video);
    f.stream(Duration::from_millis(100));
    assert!(
        asked(&f) > asked_before,
        "the new producer is asked for a keyframe"
    );
    f.stream(Duration::from_millis(600));
    f.call.sim.run_for(Duration::from_millis(100));

    let got = f.received("v");
    let at = assert_one_continuous_switch(&got, 900, 180, 20);
    // The first packet from the new producer is its keyframe: packet 49, 99, ...
    let first = got[at].index & !BOB;
    assert_eq!(
        first % BOB_KEYFRAME_EVERY,
        BOB_KEYFRAME_EVERY - 1,
        "{got:?}"
    );
    assert!(
        at > before.len(),
        "the old producer was forwarded until then"
    );
    assert_eq!(f.notified("sub-v-consumer", "producerchange bob-video"), 1);
    assert_eq!(f.notified("sub-a-consumer", "producerchange bob-audio"), 0);
    let stats = f.call.sim.ok(&ConsumerGetStats::new(consumer.as_str()));
    assert_eq!(stats.packets_sent, got.len() as u64);
}

/// Regression test for issue 14: an audio consumer pointed at another producer switches
/// at that producer's next packet, numbering continuous.
#[test]
fn audio_switches_producer_at_its_next_packet_with_continuous_numbering() {
    let mut f = FollowCall::new(142);
    f.stream(Duration::from_millis(500));
    assert!(!f.received("a").is_empty());
    let (consumer, bob_audio) = (f.audio_consumer.clone(), f.bob_audio.clone());
    f.point(&consumer, &bob_audio);
    let next = BOB | (f.bob_sent / 2);
    f.stream(Duration::from_millis(500));
    let got = f.received("a");
    let at = assert_one_continuous_switch(&got, 960, 96, 10);
    assert_eq!(got[at].index, next, "at the new producer's next packet");
    assert_eq!(f.notified("sub-a-consumer", "producerchange bob-audio"), 1);
}

/// Regression test for issue 14: a following consumer outlives its producer (idle, no
/// `producerclose`), and pointed at another producer it resumes its own numbering.
#[test]
fn a_following_consumer_goes_idle_when_its_producer_closes() {
    let mut f = FollowCall::new(143);
    f.stream(Duration::from_millis(300));
    let first_publisher = f.call.audio_producer.clone();
    f.call.sim.ok(&ProducerClose {
        producer_id: first_publisher.as_str().into(),
    });
    f.stream(Duration::from_millis(100));
    assert_eq!(f.notified("sub-a-consumer", "producerclose"), 0);
    let consumer = f.audio_consumer.clone();
    let idle = f.call.sim.ok(&ConsumerGetStats::new(consumer.as_str()));
    let bob_audio = f.bob_audio.clone();
    f.point(&consumer, &bob_audio);
    f.stream(Duration::from_millis(300));
    f.call.sim.run_for(Duration::from_millis(100));
    let got = f.received("a");
    assert_eq!(got.len() as u64, idle.packets_sent + 15, "{got:?}");
    for w in got.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "sequence gap {w:?}");
    }
    assert!(got.last().is_some_and(from_bob));
    assert_eq!(f.notified("sub-a-consumer", "producerchange bob-audio"), 1);
}

/// Regression test for issue 14: `consumer.setProducer` refuses another kind and an
/// unknown producer, and a second call before the switch replaces the first: the
/// consumer switches to the last producer named, never to the first.
#[test]
fn set_producer_refuses_another_kind_and_the_last_call_wins() {
    let mut f = FollowCall::new(144);
    f.stream(Duration::from_millis(300));
    let (video_consumer, bob_audio) = (f.video_consumer.clone(), f.bob_audio.clone());
    let other_kind = f.call.sim.request(&ConsumerSetProducer {
        consumer_id: video_consumer.as_str().into(),
        producer_id: bob_audio.as_str().into(),
    });
    assert_eq!(other_kind.map_err(|r| r.kind), Err(ErrorKind::InvalidState));
    let unknown = f.call.sim.request(&ConsumerSetProducer {
        consumer_id: video_consumer.as_str().into(),
        producer_id: "no-such-producer".into(),
    });
    assert_eq!(unknown.map_err(|r| r.kind), Err(ErrorKind::NotFound));

    // Pointed at the second publisher, then back at its own before that one's keyframe:
    // the switch is called off and the first publisher's video goes on unbroken.
    let (bob_video, own) = (f.bob_video.clone(), f.call.video_producer.clone());
    f.point(&video_consumer, &bob_video);
    f.stream(Duration::from_millis(100));
    f.point(&video_consumer, &own);
    f.stream(Duration::from_millis(1000));
    f.call.sim.run_for(Duration::from_millis(100));
    let got = f.received("v");
    assert!(!got.iter().any(from_bob), "no switch: {got:?}");
    for w in got.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "sequence gap {w:?}");
    }
    assert_eq!(f.notified("sub-v-consumer", "producerchange bob-video"), 0);
}
