//! `SRTP_AES128_CM_HMAC_SHA1_80` (RFC 3711 4.1.1 AES-CM, 4.2.1 HMAC-SHA1;
//! RFC 5764 4.1.2), in place.
//!
//! Everything key-dependent is prepared once: the AES key schedule (the
//! per-packet CTR core only borrows it) and the HMAC inner/outer pads (`Hmac`
//! holds the SHA-1 states after absorbing them, so cloning it per packet is a
//! stack copy instead of two extra compression calls).

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher, StreamCipherCoreWrapper};
use aes::Aes128;
use ctr::flavors::Ctr128BE;
use ctr::CtrCore;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::header::RTCP_CLEAR_LEN;
use super::kdf::{self, Prf};
use super::{ct_eq, SrtpError, E_FLAG};

/// n_tag = 80 bits for both SRTP and SRTCP (RFC 3711 5.2, RFC 5764 4.1.2).
pub(crate) const TAG_LEN: usize = 10;
/// n_s = 112 bits (RFC 3711 8.2).
const SALT_LEN: usize = 14;
/// n_a = 160 bits (RFC 3711 8.2).
const AUTH_KEY_LEN: usize = 20;
const ESRTCP_LEN: usize = 4;

/// Session keys of one of SRTP / SRTCP.
struct Keys {
    aes: Aes128,
    salt: [u8; SALT_LEN],
    mac: Hmac<Sha1>,
}

impl Keys {
    fn derive(prf: &Prf, enc: u8, auth: u8, salt: u8) -> Result<Self, SrtpError> {
        let enc_key: [u8; 16] = prf.derive(enc);
        let auth_key: [u8; AUTH_KEY_LEN] = prf.derive(auth);
        Ok(Self {
            aes: Aes128::new(&enc_key.into()),
            salt: prf.derive(salt),
            mac: <Hmac<Sha1> as Mac>::new_from_slice(&auth_key)
                .map_err(|_| SrtpError::BadKeyLength)?,
        })
    }

    /// XORs the AES-CM keystream into `data`. RFC 3711 4.1.1:
    /// `IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16)`, where `i` is the
    /// 48-bit SRTP packet index or the 31-bit SRTCP index (3.4).
    fn xor_keystream(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[..SALT_LEN].copy_from_slice(&self.salt);
        for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= s;
        }
        for (b, i) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *b ^= i;
        }
        // A 2^16-block limit per packet (4.1.1) keeps the 128-bit counter far
        // from wrapping, so `apply_keystream` cannot run out.
        let core = CtrCore::<&Aes128, Ctr128BE>::inner_iv_init(&self.aes, &iv.into());
        StreamCipherCoreWrapper::from_core(core).apply_keystream(data);
    }

    /// HMAC-SHA1 (RFC 3711 4.2.1) over `authenticated` (and the ROC for
    /// SRTP), truncated to the leftmost n_tag bits.
    fn tag(&self, authenticated: &[u8], roc: Option<u32>) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(authenticated);
        if let Some(roc) = roc {
            // 4.2: SRTP authenticates `Authenticated Portion || ROC`.
            mac.update(&roc.to_be_bytes());
        }
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        for (t, f) in tag.iter_mut().zip(full.iter()) {
            *t = *f;
        }
        tag
    }
}

pub(crate) struct CmTransform {
    rtp: Keys,
    rtcp: Keys,
}

impl CmTransform {
    pub(crate) fn new(prf: &Prf) -> Result<Self, SrtpError> {
        Ok(Self {
            rtp: Keys::derive(
                prf,
                kdf::LABEL_RTP_ENCRYPTION,
                kdf::LABEL_RTP_AUTH,
                kdf::LABEL_RTP_SALT,
            )?,
            rtcp: Keys::derive(
                prf,
                kdf::LABEL_RTCP_ENCRYPTION,
                kdf::LABEL_RTCP_AUTH,
                kdf::LABEL_RTCP_SALT,
            )?,
        })
    }

    /// `buf[..len]` is RTP with a `hdr_len`-byte header. RFC 3711 3.1: the
    /// payload (including RTP padding) is encrypted, then the tag over
    /// header || ciphertext || ROC is appended.
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
        let payload = packet.get_mut(hdr_len..).ok_or(SrtpError::BadHeader)?;
        self.rtp.xor_keystream(ssrc, index, payload);
        tag_out.copy_from_slice(&self.rtp.tag(packet, Some(roc_of(index))));
        Ok(out_len)
    }

    /// Verifies then decrypts a whole SRTP packet in `buf`; returns the RTP length.
    pub(crate) fn unprotect_rtp(
        &self,
        buf: &mut [u8],
        hdr_len: usize,
        ssrc: u32,
        index: u64,
    ) -> Result<usize, SrtpError> {
        let len = buf.len().checked_sub(TAG_LEN).ok_or(SrtpError::TooShort)?;
        let (packet, tag) = buf.split_at_mut(len);
        // RFC 3711 3.3 steps 6-7: authenticate before touching the payload.
        if !ct_eq(tag, &self.rtp.tag(packet, Some(roc_of(index)))) {
            return Err(SrtpError::AuthFailed);
        }
        let payload = packet.get_mut(hdr_len..).ok_or(SrtpError::BadHeader)?;
        self.rtp.xor_keystream(ssrc, index, payload);
        Ok(len)
    }

    /// `buf[..len]` is a compound RTCP packet. RFC 3711 3.4: everything after
    /// the first 8 bytes is encrypted, then `E || SRTCP index` and the tag
    /// over header || ciphertext || E || index are appended.
    pub(crate) fn protect_rtcp(
        &self,
        buf: &mut [u8],
        len: usize,
        ssrc: u32,
        index: u32,
    ) -> Result<usize, SrtpError> {
        let auth_len = len
            .checked_add(ESRTCP_LEN)
            .ok_or(SrtpError::BufferTooSmall)?;
        let out_len = auth_len
            .checked_add(TAG_LEN)
            .ok_or(SrtpError::BufferTooSmall)?;
        let out = buf.get_mut(..out_len).ok_or(SrtpError::BufferTooSmall)?;
        let (authenticated, tag_out) = out.split_at_mut(auth_len);
        let (packet, trailer) = authenticated.split_at_mut(len);
        let payload = packet
            .get_mut(RTCP_CLEAR_LEN..)
            .ok_or(SrtpError::TooShort)?;
        self.rtcp.xor_keystream(ssrc, u64::from(index), payload);
        trailer.copy_from_slice(&(E_FLAG | index).to_be_bytes());
        tag_out.copy_from_slice(&self.rtcp.tag(authenticated, None));
        Ok(out_len)
    }

    /// Verifies and (if the E flag is set) decrypts a whole SRTCP packet whose
    /// trailer has already been parsed; returns the RTCP length.
    pub(crate) fn unprotect_rtcp(
        &self,
        buf: &mut [u8],
        ssrc: u32,
        index: u32,
        encrypted: bool,
    ) -> Result<usize, SrtpError> {
        let auth_len = buf.len().checked_sub(TAG_LEN).ok_or(SrtpError::TooShort)?;
        let (authenticated, tag) = buf.split_at_mut(auth_len);
        // RFC 3711 3.4: SRTCP authentication is mandatory, also when E = 0.
        if !ct_eq(tag, &self.rtcp.tag(authenticated, None)) {
            return Err(SrtpError::AuthFailed);
        }
        let len = auth_len
            .checked_sub(ESRTCP_LEN)
            .ok_or(SrtpError::TooShort)?;
        if encrypted {
            let payload = authenticated
                .get_mut(RTCP_CLEAR_LEN..len)
                .ok_or(SrtpError::TooShort)?;
            self.rtcp.xor_keystream(ssrc, u64::from(index), payload);
        }
        Ok(len)
    }
}

/// ROC = packet index DIV 2^16 (RFC 3711 3.3.1).
fn roc_of(index: u64) -> u32 {
    (index >> 16) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 3711 Appendix B.2: with SSRC = 0 and index = 0 the IV is the
    /// (already shifted) salt, so encrypting zeros yields the keystream.
    #[test]
    fn rfc3711_b2_keystream() {
        let keys = Keys {
            aes: Aes128::new_from_slice(&hex("2B7E151628AED2A6ABF7158809CF4F3C")).unwrap(),
            salt: hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap(),
            mac: <Hmac<Sha1> as Mac>::new_from_slice(&[0; 20]).unwrap(),
        };
        // Keystream segment length: 1044512 octets = 65282 blocks.
        let mut ks = vec![0u8; 65_282 * 16];
        keys.xor_keystream(0, 0, &mut ks);
        assert_eq!(
            ks[..48],
            hex("E03EAD0935C95E80E166B16DD92B4EB4
                 D23513162B02D0F72A43A2FE4A5F97AB
                 41E95B3BB0A2E8DD477901E4FCA894C0")[..]
        );
        assert_eq!(
            ks[ks.len() - 48..],
            hex("EC8CDF7398607CB0F2D21675EA9EA1E4
                 362B7C3C6773516318A077D7FC5073AE
                 6A2CC3787889374FBEB4C81B17BA6C44")[..]
        );
        // Counter mode is its own inverse.
        keys.xor_keystream(0, 0, &mut ks);
        assert!(ks.iter().all(|&b| b == 0));
    }
}
