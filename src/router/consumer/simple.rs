//! The simple consumer (mediasoup's `SimpleConsumer`): one producer stream in, one
//! stream out. Its forwarding policy is the sequence/timestamp munger (`rtp::munger`)
//! and, for video whose keyframes we can detect, waiting for a keyframe to start or
//! resume on.

use crate::rtp::munger::SeqTsMunger;

/// What a simple consumer adds to the common consumer state.
#[derive(Debug)]
pub struct SimpleConsumer {
    munger: SeqTsMunger,
    /// Whether keyframes are detectable in the producer's stream (VP8 video): then the
    /// consumer starts and resumes on one.
    keyframe_gated: bool,
    /// Waiting for a keyframe before forwarding anything.
    wait_keyframe: bool,
}

impl SimpleConsumer {
    /// `keyframe_gated`: see the field. `munger` numbers the consumer's stream.
    pub fn new(munger: SeqTsMunger, keyframe_gated: bool) -> Self {
        Self {
            munger,
            keyframe_gated,
            wait_keyframe: keyframe_gated,
        }
    }

    /// Whether a packet (a keyframe's first or not) may be forwarded now; the first
    /// keyframe after a (re)start ends the wait.
    #[inline]
    pub fn admit(&mut self, keyframe: bool) -> bool {
        if self.wait_keyframe {
            if !keyframe {
                return false;
            }
            self.wait_keyframe = false;
        }
        true
    }

    /// The output sequence number and timestamp of a forwarded packet, or None when the
    /// munger drops it (a duplicate, or too old).
    #[inline]
    pub fn forward(&mut self, seq: u16, ts: u32, arrival: u32) -> Option<(u16, u32)> {
        self.munger.process(seq, ts, Some(arrival))
    }

    /// The producer's sequence number behind an output one (a subscriber's NACK).
    pub fn original_seq(&self, out_seq: u16) -> Option<u16> {
        self.munger.original_seq(out_seq)
    }

    /// The output timestamp of a producer timestamp under the current mapping.
    pub fn output_ts(&self, in_ts: u32) -> Option<u32> {
        self.munger.output_ts(in_ts)
    }

    /// At a switch to another producer (at its keyframe, or any audio packet): continue
    /// the sequence right after the last packet sent.
    pub fn switch_source(&mut self) {
        self.munger.mark_resync();
        self.wait_keyframe = false;
    }

    /// After a pause: continue the sequence right after the last packet sent, from a
    /// keyframe when they are detectable.
    pub fn resume(&mut self) {
        self.munger.mark_resync();
        self.wait_keyframe = self.keyframe_gated;
    }
}
