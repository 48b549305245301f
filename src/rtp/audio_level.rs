//! The client-to-mixer audio level (RFC 6464): one byte per audio packet that tells an
//! SFU how loud the packet is without decoding it, which is what active-speaker
//! detection (`router::active_speaker`) runs on.
//!
//! ```text
//!  0                   1
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  ID   | len=0 |V| level       |   (one-byte form, RFC 6464 3)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use crate::channel::params::{MediaKind, RtpParameters};
use crate::rtp::{find_extension, RtpHeader};

/// The extension's URI (RFC 6464 4).
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// One packet's audio level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioLevel {
    /// The V bit: the sender's voice activity detection found speech in the packet
    /// (meaningful only when the sender runs one; RFC 6464 3).
    pub voice: bool,
    /// How far below the loudest possible level the packet is, in dB (-dBov):
    /// 0 is full scale, 127 silence.
    pub attenuation: u8,
}

impl AudioLevel {
    /// The level in dBov (-127 to 0).
    pub fn dbov(self) -> i8 {
        // attenuation is at most 127 (7 bits), so the negation fits in an i8.
        -(self.attenuation as i8)
    }
}

/// Reads the audio level element `id` of the packet `buf` parsed as `header`; `None`
/// when the packet has none or it is not the one byte RFC 6464 defines. Allocates
/// nothing.
pub fn read_audio_level(buf: &[u8], header: &RtpHeader, id: u8) -> Option<AudioLevel> {
    let &[byte] = find_extension(buf, header, id)? else {
        return None;
    };
    Some(AudioLevel {
        voice: byte & 0x80 != 0,
        attenuation: byte & 0x7F,
    })
}

/// A producer's audio levels: the extension id its publisher sends them with, and the
/// last one received.
#[derive(Debug, Clone, Copy, Default)]
pub struct AudioLevels {
    id: Option<u8>,
    last: Option<AudioLevel>,
}

impl AudioLevels {
    /// Levels of an audio producer whose parameters negotiated the extension; nothing
    /// for others (their packets are not looked at).
    pub fn new(kind: MediaKind, params: &RtpParameters) -> Self {
        let id = (kind == MediaKind::Audio)
            .then(|| {
                params
                    .header_extensions
                    .iter()
                    .find(|e| e.uri == AUDIO_LEVEL_URI)
                    .map(|e| e.id)
            })
            .flatten();
        Self { id, last: None }
    }

    /// Reads one packet's level, if it carries one, and keeps it as the last.
    pub fn on_packet(&mut self, buf: &[u8], header: &RtpHeader) -> Option<AudioLevel> {
        let level = read_audio_level(buf, header, self.id?)?;
        self.last = Some(level);
        Some(level)
    }

    /// The last level received.
    pub fn last(&self) -> Option<AudioLevel> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::params::RtpHeaderExtensionParameters;

    /// An RTP packet with a one-byte-form extension block holding `elements`.
    fn packet(elements: &[u8]) -> Vec<u8> {
        let mut p = vec![0x90, 111, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xBE, 0xDE];
        let words = elements.len().div_ceil(4);
        p.extend_from_slice(&(words as u16).to_be_bytes());
        p.extend_from_slice(elements);
        p.resize(16 + words * 4, 0);
        p.extend_from_slice(b"opus");
        p
    }

    fn read(p: &[u8], id: u8) -> Option<AudioLevel> {
        let header = RtpHeader::parse(p).ok()?;
        read_audio_level(p, &header, id)
    }

    #[test]
    fn reads_the_voice_bit_and_the_level() {
        // id 1, len 0 (one byte): V=1, level 42; then the transport-wide seq as id 3.
        let p = packet(&[0x10, 0x80 | 42, 0x31, 0x12, 0x34]);
        let level = read(&p, 1).expect("a level");
        assert_eq!(
            level,
            AudioLevel {
                voice: true,
                attenuation: 42
            }
        );
        assert_eq!(level.dbov(), -42);
        let p = packet(&[0x10, 127]);
        assert_eq!(
            read(&p, 1).map(|l| (l.voice, l.dbov())),
            Some((false, -127))
        );
    }

    #[test]
    fn absent_or_malformed_elements_read_as_none() {
        // Another id only.
        assert_eq!(read(&packet(&[0x30, 42]), 1), None);
        // Two bytes long: not RFC 6464's element.
        assert_eq!(read(&packet(&[0x11, 42, 0]), 1), None);
        // No extension block at all.
        let mut plain = vec![0x80, 111, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        plain.extend_from_slice(b"opus");
        assert_eq!(read(&plain, 1), None);
        // A block announcing more than the packet holds does not parse.
        let mut truncated = packet(&[0x10, 42]);
        truncated.truncate(15);
        assert_eq!(read(&truncated, 1), None);
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        for len in 0..64 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        rng as u8
                    })
                    .collect();
                for id in [0, 1, 14, 15, 255] {
                    let _ = read(&bytes, id);
                }
            }
        }
    }

    #[test]
    fn only_audio_producers_that_negotiated_it_read_levels() {
        let mut params = RtpParameters::default();
        params.header_extensions.push(RtpHeaderExtensionParameters {
            uri: AUDIO_LEVEL_URI.into(),
            id: 1,
            encrypt: false,
            parameters: Default::default(),
        });
        let p = packet(&[0x10, 30]);
        let header = RtpHeader::parse(&p).expect("parses");
        let mut video = AudioLevels::new(MediaKind::Video, &params);
        assert_eq!(video.on_packet(&p, &header), None);
        let mut none = AudioLevels::new(MediaKind::Audio, &RtpParameters::default());
        assert_eq!(none.on_packet(&p, &header), None);
        let mut audio = AudioLevels::new(MediaKind::Audio, &params);
        assert_eq!(audio.last(), None);
        assert_eq!(
            audio.on_packet(&p, &header).map(AudioLevel::dbov),
            Some(-30)
        );
        assert_eq!(audio.last().map(AudioLevel::dbov), Some(-30));
    }
}
