//! In-place SRTP / SRTCP (RFC 3711) for the forwarding hot path.
//!
//! Profiles: `SRTP_AES128_CM_HMAC_SHA1_80` (RFC 3711, RFC 5764 4.1.2) and
//! `SRTP_AEAD_AES_128_GCM` (RFC 7714). Keys come from DTLS-SRTP (RFC 5764 4.2),
//! so there is no MKI and the key derivation rate is 0.
//!
//! Unlike `webrtc-srtp`, which allocates several buffers per packet, every
//! operation here works inside the caller's buffer. The only allocation is a
//! per-SSRC map entry the first time an SSRC is seen (after it authenticated,
//! when receiving), bounded by [`MAX_SSRCS`] per map.
//!
//! All packet parsing treats input as untrusted: failures are [`SrtpError`]s,
//! never panics. On error the buffer's contents are unspecified (it may have
//! been partly decrypted or rewritten) and the packet must be dropped.

mod cm;
mod gcm;
mod header;
mod kdf;
mod replay;
mod state;
#[cfg(test)]
mod tests;

use std::fmt;

use cm::CmTransform;
use gcm::GcmTransform;
use header::{parse_rtcp_ssrc, parse_rtp, RTCP_CLEAR_LEN};
use kdf::Prf;
use replay::RocState;
use state::{new_map, RtcpState, RtpState, RtpStates, SsrcHashBuilder, SsrcMap};

pub use replay::REPLAY_WINDOW;
pub use state::MAX_SSRCS;

/// The E flag of the ESRTCP word (RFC 3711 3.4): set when the payload is encrypted.
const E_FLAG: u32 = 1 << 31;
/// Largest SRTCP index (31 bits, RFC 3711 3.4).
const MAX_SRTCP_INDEX: u32 = E_FLAG - 1;
/// Size of the `E || SRTCP index` word.
const ESRTCP_LEN: usize = 4;

/// DTLS-SRTP protection profiles we negotiate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    /// `SRTP_AES128_CM_HMAC_SHA1_80`, id 0x0001 (RFC 5764 4.1.2).
    Aes128CmHmacSha1_80,
    /// `SRTP_AEAD_AES_128_GCM`, id 0x0007 (RFC 7714 14.2).
    AeadAes128Gcm,
}

impl SrtpProfile {
    /// Master key length in bytes.
    pub const fn key_len(self) -> usize {
        16
    }

    /// Master (and session) salt length: 112 bits for AES-CM (RFC 3711 8.2),
    /// 96 bits for GCM (RFC 7714 12).
    pub const fn salt_len(self) -> usize {
        match self {
            Self::Aes128CmHmacSha1_80 => 14,
            Self::AeadAes128Gcm => 12,
        }
    }

    /// Bytes `protect_rtp` appends: the 80-bit HMAC tag or the 128-bit GCM tag.
    pub const fn rtp_overhead(self) -> usize {
        match self {
            Self::Aes128CmHmacSha1_80 => cm::TAG_LEN,
            Self::AeadAes128Gcm => gcm::TAG_LEN,
        }
    }

    /// Bytes `protect_rtcp` appends: the tag plus the `E || SRTCP index` word.
    pub const fn rtcp_overhead(self) -> usize {
        self.rtp_overhead() + ESRTCP_LEN
    }

    /// Length of the DTLS exporter output needed (RFC 5764 4.2): two keys and
    /// two salts.
    pub const fn keying_material_len(self) -> usize {
        2 * (self.key_len() + self.salt_len())
    }

    /// The DTLS `use_srtp` profile id (RFC 5764 4.1.2, RFC 7714 14.2).
    pub const fn dtls_id(self) -> u16 {
        match self {
            Self::Aes128CmHmacSha1_80 => 0x0001,
            Self::AeadAes128Gcm => 0x0007,
        }
    }

    /// Inverse of [`Self::dtls_id`]; `None` for profiles we do not implement.
    pub const fn from_dtls_id(id: u16) -> Option<Self> {
        match id {
            0x0001 => Some(Self::Aes128CmHmacSha1_80),
            0x0007 => Some(Self::AeadAes128Gcm),
            _ => None,
        }
    }
}

/// Why a packet could not be protected or unprotected; the packet must be dropped.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpError {
    #[error("packet too short")]
    TooShort,
    #[error("malformed RTP/RTCP header")]
    BadHeader,
    #[error("authentication failed")]
    AuthFailed,
    #[error("replayed packet")]
    Replayed,
    #[error("packet index is behind the replay window")]
    TooOld,
    #[error("buffer too small for the protected packet")]
    BufferTooSmall,
    #[error("bad master key or keying material length")]
    BadKeyLength,
    #[error("bad master salt length")]
    BadSaltLength,
    #[error("too many SSRCs on this SRTP context")]
    TooManySsrcs,
    /// ROC or SRTCP index would wrap, reusing keystream: RFC 3711 9.2 requires
    /// a rekey first.
    #[error("SRTP/SRTCP index space exhausted; rekey required")]
    IndexExhausted,
}

// One per context and never moved on the hot path: keeping the keys inline
// saves a pointer chase per packet, which matters more than the enum's size.
#[allow(clippy::large_enum_variant)]
enum Transform {
    Cm(CmTransform),
    Gcm(GcmTransform),
}

/// One direction (all SSRCs) of one transport.
///
/// A context either only protects (outbound) or only unprotects (inbound):
/// DTLS-SRTP keys each direction separately (RFC 5764 4.2), and the per-SSRC
/// state (RFC 3711 3.2.3) is shared by both operations, so mixing them on one
/// context is not supported.
pub struct SrtpContext {
    profile: SrtpProfile,
    transform: Transform,
    rtp: RtpStates,
    rtcp: SsrcMap<RtcpState>,
}

impl fmt::Debug for SrtpContext {
    /// Deliberately omits all key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .field("rtp_ssrcs", &self.rtp.len())
            .field("rtcp_ssrcs", &self.rtcp.len())
            .finish_non_exhaustive()
    }
}

impl SrtpContext {
    /// Derives all session keys (RFC 3711 4.3) and prepares the ciphers once.
    pub fn new(
        profile: SrtpProfile,
        master_key: &[u8],
        master_salt: &[u8],
    ) -> Result<Self, SrtpError> {
        if master_key.len() != profile.key_len() {
            return Err(SrtpError::BadKeyLength);
        }
        if master_salt.len() != profile.salt_len() {
            return Err(SrtpError::BadSaltLength);
        }
        let prf = Prf::new(master_key, master_salt)?;
        let hasher = SsrcHashBuilder::from_master(master_key, master_salt);
        let transform = match profile {
            SrtpProfile::Aes128CmHmacSha1_80 => Transform::Cm(CmTransform::new(&prf)?),
            SrtpProfile::AeadAes128Gcm => Transform::Gcm(GcmTransform::new(&prf)?),
        };
        Ok(Self {
            profile,
            transform,
            rtp: RtpStates::new(hasher),
            rtcp: new_map(hasher),
        })
    }

    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// `buf[..len]` is plaintext RTP; `buf.len() >= len + rtp_overhead`.
    /// Encrypts in place, appends the tag, returns the protected length.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let needed = len
            .checked_add(self.profile.rtp_overhead())
            .ok_or(SrtpError::BufferTooSmall)?;
        if needed > buf.len() {
            return Err(SrtpError::BufferTooSmall);
        }
        let hdr = parse_rtp(buf.get(..len).ok_or(SrtpError::BufferTooSmall)?)?;
        // The sender tracks ROC the same way a receiver would (RFC 3711 3.3.1),
        // which also gives forwarded out-of-order packets their original ROC.
        let full = self.rtp.len() >= MAX_SSRCS;
        let state = self.rtp.get_mut(hdr.ssrc);
        let index = match &state {
            Some(s) => s.roc.estimate(hdr.seq)?,
            None if full => return Err(SrtpError::TooManySsrcs),
            None => RocState::first_index(hdr.seq),
        };
        let out = match &self.transform {
            Transform::Cm(t) => t.protect_rtp(buf, hdr.len, len, hdr.ssrc, index)?,
            Transform::Gcm(t) => t.protect_rtp(buf, hdr.len, len, hdr.ssrc, index)?,
        };
        match state {
            Some(s) => s.roc.update(index),
            None => {
                self.rtp.insert(hdr.ssrc, RtpState::new(index));
            }
        }
        Ok(out)
    }

    /// `buf` is a whole SRTP packet; verifies, replay-checks, decrypts in
    /// place; returns the plaintext RTP length (RTP padding, if any, is still
    /// there for the RTP layer to strip).
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let auth_end = buf
            .len()
            .checked_sub(self.profile.rtp_overhead())
            .ok_or(SrtpError::TooShort)?;
        let hdr = parse_rtp(buf.get(..auth_end).ok_or(SrtpError::TooShort)?)?;
        let full = self.rtp.len() >= MAX_SSRCS;
        let state = self.rtp.get_mut(hdr.ssrc);
        // RFC 3711 3.3 steps 2 and 5: estimate the index, then consult the
        // replay list before spending cycles on authentication.
        let index = match &state {
            Some(s) => {
                let index = s.roc.estimate(hdr.seq)?;
                s.replay.check(index)?;
                index
            }
            None if full => return Err(SrtpError::TooManySsrcs),
            None => RocState::first_index(hdr.seq),
        };
        let len = match &self.transform {
            Transform::Cm(t) => t.unprotect_rtp(buf, hdr.len, hdr.ssrc, index)?,
            Transform::Gcm(t) => t.unprotect_rtp(buf, hdr.len, hdr.ssrc, index)?,
        };
        // Step 8: only an authenticated packet may move ROC / s_l / the window.
        match state {
            Some(s) => {
                s.roc.update(index);
                s.replay.accept(index);
            }
            None => {
                let mut s = RtpState::new(index);
                s.replay.accept(index);
                self.rtp.insert(hdr.ssrc, s);
            }
        }
        Ok(len)
    }

    /// `buf[..len]` is a plaintext (compound) RTCP packet;
    /// `buf.len() >= len + rtcp_overhead`. Encrypts in place, appends
    /// `E || SRTCP index` and the tag, returns the protected length.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let needed = len
            .checked_add(self.profile.rtcp_overhead())
            .ok_or(SrtpError::BufferTooSmall)?;
        if needed > buf.len() {
            return Err(SrtpError::BufferTooSmall);
        }
        let ssrc = parse_rtcp_ssrc(buf.get(..len).ok_or(SrtpError::BufferTooSmall)?)?;
        let full = self.rtcp.len() >= MAX_SSRCS;
        let state = self.rtcp.get_mut(&ssrc);
        // RFC 3711 3.4 starts the SRTCP index at 0, but libsrtp and webrtc-srtp
        // increment before sending, so their first index is 1. Receivers take
        // either; following them keeps our output byte-identical to both. Do
        // not wrap mod 2^31 either: a reused index under the same key reuses
        // keystream, so 9.2 requires a rekey first.
        let index = match &state {
            Some(s) if s.sent >= MAX_SRTCP_INDEX => return Err(SrtpError::IndexExhausted),
            Some(s) => s.sent + 1,
            None if full => return Err(SrtpError::TooManySsrcs),
            None => 1,
        };
        let out = match &self.transform {
            Transform::Cm(t) => t.protect_rtcp(buf, len, ssrc, index)?,
            Transform::Gcm(t) => t.protect_rtcp(buf, len, ssrc, index)?,
        };
        match state {
            Some(s) => s.sent = index,
            None => {
                let s = RtcpState {
                    sent: index,
                    ..RtcpState::default()
                };
                self.rtcp.insert(ssrc, s);
            }
        }
        Ok(out)
    }

    /// `buf` is a whole SRTCP packet; verifies, replay-checks, decrypts in
    /// place (unless its E flag is clear); returns the plaintext RTCP length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let min = RTCP_CLEAR_LEN + self.profile.rtcp_overhead();
        if buf.len() < min {
            return Err(SrtpError::TooShort);
        }
        let ssrc = parse_rtcp_ssrc(buf)?;
        // The ESRTCP word follows the payload for AES-CM (RFC 3711 3.4) but
        // follows the tag, i.e. ends the packet, for GCM (RFC 7714 9.2).
        let word_at = match self.profile {
            SrtpProfile::Aes128CmHmacSha1_80 => buf.len().saturating_sub(cm::TAG_LEN + ESRTCP_LEN),
            SrtpProfile::AeadAes128Gcm => buf.len().saturating_sub(ESRTCP_LEN),
        };
        let Some(word) = buf
            .get(word_at..)
            .and_then(<[u8]>::first_chunk::<ESRTCP_LEN>)
        else {
            return Err(SrtpError::TooShort);
        };
        let word = u32::from_be_bytes(*word);
        let encrypted = word & E_FLAG != 0;
        let index = word & MAX_SRTCP_INDEX;

        let full = self.rtcp.len() >= MAX_SSRCS;
        let state = self.rtcp.get_mut(&ssrc);
        match &state {
            Some(s) => s.replay.check(u64::from(index))?,
            None if full => return Err(SrtpError::TooManySsrcs),
            None => {}
        }
        let len = match &self.transform {
            Transform::Cm(t) => t.unprotect_rtcp(buf, ssrc, index, encrypted)?,
            Transform::Gcm(t) => t.unprotect_rtcp(buf, ssrc, index, encrypted)?,
        };
        match state {
            Some(s) => s.replay.accept(u64::from(index)),
            None => {
                let mut s = RtcpState::default();
                s.replay.accept(u64::from(index));
                self.rtcp.insert(ssrc, s);
            }
        }
        Ok(len)
    }
}

impl SrtpContext {
    /// Forgets an SSRC's RTP and RTCP state (RFC 3711 3.2.3 lets a context go when its
    /// stream ends): called when the consumer or producer that owned the SSRC closes, so
    /// a long-lived transport's churn never reaches [`MAX_SSRCS`]. Returns whether any
    /// state was there.
    ///
    /// On an outbound context the SSRC must never be sent again under these keys:
    /// its index would restart and reuse keystream (RFC 3711 9.1). Transports never
    /// reuse a consumer SSRC for that reason (`transport::SsrcAllocator`).
    pub fn remove_ssrc(&mut self, ssrc: u32) -> bool {
        let rtp = self.rtp.remove(ssrc);
        let rtcp = self.rtcp.remove(&ssrc).is_some();
        state::shrink_if_sparse(&mut self.rtcp);
        rtp || rtcp
    }

    /// SSRCs with RTP state, and with RTCP state (stats and tests).
    pub fn ssrc_counts(&self) -> (usize, usize) {
        (self.rtp.len(), self.rtcp.len())
    }
}

/// Splits DTLS-exported keying material (RFC 5764 4.2: client key, server key,
/// client salt, server salt) into (outbound context, inbound context) for the
/// side given by `we_are_dtls_client`.
pub fn contexts_from_keying_material(
    profile: SrtpProfile,
    material: &[u8],
    we_are_dtls_client: bool,
) -> Result<(SrtpContext, SrtpContext), SrtpError> {
    if material.len() != profile.keying_material_len() {
        return Err(SrtpError::BadKeyLength);
    }
    let (keys, salts) = material.split_at(2 * profile.key_len());
    let (client_key, server_key) = keys.split_at(profile.key_len());
    let (client_salt, server_salt) = salts.split_at(profile.salt_len());
    let client = SrtpContext::new(profile, client_key, client_salt)?;
    let server = SrtpContext::new(profile, server_key, server_salt)?;
    // Each side writes with its own keys (RFC 5764 4.2).
    Ok(if we_are_dtls_client {
        (client, server)
    } else {
        (server, client)
    })
}

/// Tag comparison whose time does not depend on where the first mismatch is:
/// an early-exit compare would let an attacker learn a valid tag byte by byte.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}
