//! `AEAD_AES_128_GCM` for SRTP / SRTCP (RFC 7714), in place with ring.
//!
//! The ring keys (AES key schedule + GHASH key) are built once per context;
//! per packet only the 12-byte IV and, for SRTCP, the 12-byte AAD are built on
//! the stack.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};

use super::header::RTCP_CLEAR_LEN;
use super::kdf::{self, Prf};
use super::{SrtpError, E_FLAG};

/// 16-octet authentication tag (RFC 7714 12).
pub(crate) const TAG_LEN: usize = 16;
/// 96-bit session salt (RFC 7714 12).
const SALT_LEN: usize = 12;
const ESRTCP_LEN: usize = 4;

struct Keys {
    aead: LessSafeKey,
    salt: [u8; SALT_LEN],
}

impl Keys {
    fn derive(prf: &Prf, enc: u8, salt: u8) -> Result<Self, SrtpError> {
        let key: [u8; 16] = prf.derive(enc);
        let key = UnboundKey::new(&AES_128_GCM, &key).map_err(|_| SrtpError::BadKeyLength)?;
        Ok(Self {
            aead: LessSafeKey::new(key),
            salt: prf.derive(salt),
        })
    }

    /// RFC 7714 8.1 (SRTP): `00 00 || SSRC || ROC || SEQ`, and 9.1 (SRTCP):
    /// `00 00 || SSRC || 00 00 || 0 || SRTCP index`; both XOR the session salt.
    /// `low48` is the 48-bit packet index `ROC || SEQ` or the 31-bit SRTCP
    /// index, which lands in the same bytes.
    fn nonce(&self, ssrc: u32, low48: u64) -> Nonce {
        let mut iv = self.salt;
        for (b, s) in iv[2..6].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= s;
        }
        for (b, i) in iv[6..].iter_mut().zip(&low48.to_be_bytes()[2..]) {
            *b ^= i;
        }
        Nonce::assume_unique_for_key(iv)
    }
}

pub(crate) struct GcmTransform {
    rtp: Keys,
    rtcp: Keys,
}

impl GcmTransform {
    pub(crate) fn new(prf: &Prf) -> Result<Self, SrtpError> {
        Ok(Self {
            rtp: Keys::derive(prf, kdf::LABEL_RTP_ENCRYPTION, kdf::LABEL_RTP_SALT)?,
            rtcp: Keys::derive(prf, kdf::LABEL_RTCP_ENCRYPTION, kdf::LABEL_RTCP_SALT)?,
        })
    }

    /// RFC 7714 8.2: the AAD is the whole RTP header (CSRCs and extension
    /// included), the payload (with padding) is the plaintext, and the tag
    /// follows the ciphertext.
    pub(crate) fn protect_rtp(
        &self,
        buf: &mut [u8],
        hdr_len: usize,
        len: usize,
        ssrc: u32,
        index: u64,
    ) -> Result<usize, SrtpError> {
        let out_len = len.checked_add(TAG_LEN).ok_or(SrtpError::BufferTooSmall)?;
        let out = buf.get_mut(..out_len).ok_or(SrtpError::BufferTooSmall)?;
        let (packet, tag_out) = out.split_at_mut(len);
        if hdr_len > packet.len() {
            return Err(SrtpError::BadHeader);
        }
        let (header, payload) = packet.split_at_mut(hdr_len);
        let tag = self
            .rtp
            .aead
            .seal_in_place_separate_tag(self.rtp.nonce(ssrc, index), Aad::from(header), payload)
            .map_err(|_| SrtpError::BufferTooSmall)?;
        tag_out.copy_from_slice(tag.as_ref());
        Ok(out_len)
    }

    /// Authenticates and decrypts a whole SRTP packet; returns the RTP length.
    pub(crate) fn unprotect_rtp(
        &self,
        buf: &mut [u8],
        hdr_len: usize,
        ssrc: u32,
        index: u64,
    ) -> Result<usize, SrtpError> {
        if buf.len().saturating_sub(hdr_len) < TAG_LEN {
            return Err(SrtpError::TooShort);
        }
        let (header, sealed) = buf.split_at_mut(hdr_len);
        let plain = self
            .rtp
            .aead
            .open_in_place(self.rtp.nonce(ssrc, index), Aad::from(header), sealed)
            .map_err(|_| SrtpError::AuthFailed)?;
        Ok(hdr_len + plain.len())
    }

    /// RFC 7714 9.2: AAD = first 8 bytes || `E || SRTCP index`; the rest
    /// of the RTCP packet is the plaintext; output is
    /// header || ciphertext || tag || `E || index`.
    pub(crate) fn protect_rtcp(
        &self,
        buf: &mut [u8],
        len: usize,
        ssrc: u32,
        index: u32,
    ) -> Result<usize, SrtpError> {
        let sealed_len = len.checked_add(TAG_LEN).ok_or(SrtpError::BufferTooSmall)?;
        let out_len = sealed_len
            .checked_add(ESRTCP_LEN)
            .ok_or(SrtpError::BufferTooSmall)?;
        let out = buf.get_mut(..out_len).ok_or(SrtpError::BufferTooSmall)?;
        let (sealed, trailer) = out.split_at_mut(sealed_len);
        let (packet, tag_out) = sealed.split_at_mut(len);
        let Some((header, payload)) = packet.split_first_chunk_mut::<RTCP_CLEAR_LEN>() else {
            return Err(SrtpError::TooShort);
        };
        let esrtcp = (E_FLAG | index).to_be_bytes();
        let aad = rtcp_aad(header, esrtcp);
        let tag = self
            .rtcp
            .aead
            .seal_in_place_separate_tag(
                self.rtcp.nonce(ssrc, u64::from(index)),
                Aad::from(aad),
                payload,
            )
            .map_err(|_| SrtpError::BufferTooSmall)?;
        tag_out.copy_from_slice(tag.as_ref());
        trailer.copy_from_slice(&esrtcp);
        Ok(out_len)
    }

    /// Authenticates and (if E is set) decrypts a whole SRTCP packet whose
    /// trailer has already been parsed; returns the RTCP length.
    pub(crate) fn unprotect_rtcp(
        &self,
        buf: &mut [u8],
        ssrc: u32,
        index: u32,
        encrypted: bool,
    ) -> Result<usize, SrtpError> {
        let Some((rest, esrtcp)) = buf.split_last_chunk_mut::<ESRTCP_LEN>() else {
            return Err(SrtpError::TooShort);
        };
        let esrtcp = *esrtcp;
        let len = rest.len().checked_sub(TAG_LEN).ok_or(SrtpError::TooShort)?;
        if len < RTCP_CLEAR_LEN {
            return Err(SrtpError::TooShort);
        }
        let nonce = self.rtcp.nonce(ssrc, u64::from(index));
        if encrypted {
            let Some((header, sealed)) = rest.split_first_chunk_mut::<RTCP_CLEAR_LEN>() else {
                return Err(SrtpError::TooShort);
            };
            let aad = rtcp_aad(header, esrtcp);
            self.rtcp
                .aead
                .open_in_place(nonce, Aad::from(aad), sealed)
                .map_err(|_| SrtpError::AuthFailed)?;
        } else {
            // RFC 7714 9.3: with E = 0 the whole RTCP packet plus the
            // ESRTCP word is AAD and the plaintext is empty. ring wants the AAD
            // contiguous, so keep the tag on the stack and move the word up
            // over it (on failure the buffer's contents are unspecified anyway).
            let Some(&tag) = rest.get(len..).and_then(<[u8]>::first_chunk::<TAG_LEN>) else {
                return Err(SrtpError::TooShort);
            };
            let mut tag = tag;
            let Some(word) = rest
                .get_mut(len..)
                .and_then(<[u8]>::first_chunk_mut::<ESRTCP_LEN>)
            else {
                return Err(SrtpError::TooShort);
            };
            *word = esrtcp;
            let aad = rest.get(..len + ESRTCP_LEN).ok_or(SrtpError::TooShort)?;
            self.rtcp
                .aead
                .open_in_place(nonce, Aad::from(aad), &mut tag)
                .map_err(|_| SrtpError::AuthFailed)?;
        }
        Ok(len)
    }
}

fn rtcp_aad(header: &[u8; RTCP_CLEAR_LEN], esrtcp: [u8; ESRTCP_LEN]) -> [u8; 12] {
    let mut aad = [0u8; RTCP_CLEAR_LEN + ESRTCP_LEN];
    aad[..RTCP_CLEAR_LEN].copy_from_slice(header);
    aad[RTCP_CLEAR_LEN..].copy_from_slice(&esrtcp);
    aad
}
