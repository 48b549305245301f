//! SRTP session key derivation (RFC 3711 4.3) with the AES-CM PRF (4.3.3).
//!
//! Both supported profiles use AES_128_CM_PRF: RFC 5764 4.1.2 for
//! `SRTP_AES128_CM_HMAC_SHA1_80`, RFC 7714 11 for `AEAD_AES_128_GCM`. DTLS-SRTP
//! fixes the key derivation rate to 0 (RFC 5764 4.1.2), so `r = index DIV kdr`
//! is always 0 and every session key is derived exactly once per context.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;

use super::SrtpError;

/// Key derivation labels, RFC 3711 4.3.2 (SRTP) and 4.3.2/3.4 (SRTCP).
pub(crate) const LABEL_RTP_ENCRYPTION: u8 = 0x00;
pub(crate) const LABEL_RTP_AUTH: u8 = 0x01;
pub(crate) const LABEL_RTP_SALT: u8 = 0x02;
pub(crate) const LABEL_RTCP_ENCRYPTION: u8 = 0x03;
pub(crate) const LABEL_RTCP_AUTH: u8 = 0x04;
pub(crate) const LABEL_RTCP_SALT: u8 = 0x05;

/// The master salt field of the PRF input is 112 bits (RFC 3711 4.3.1). GCM's
/// 96-bit master salt is left-aligned in it and zero-padded, as libsrtp does.
const PRF_SALT_LEN: usize = 14;

/// The AES-CM PRF keyed with the master key, plus the master salt.
pub(crate) struct Prf {
    aes: Aes128,
    salt: [u8; PRF_SALT_LEN],
}

impl Prf {
    pub(crate) fn new(master_key: &[u8], master_salt: &[u8]) -> Result<Self, SrtpError> {
        let aes = Aes128::new_from_slice(master_key).map_err(|_| SrtpError::BadKeyLength)?;
        let mut salt = [0u8; PRF_SALT_LEN];
        salt.get_mut(..master_salt.len())
            .ok_or(SrtpError::BadSaltLength)?
            .copy_from_slice(master_salt);
        Ok(Self { aes, salt })
    }

    /// Returns the first `N` bytes of the PRF keystream for `label`.
    ///
    /// RFC 3711 4.3.1: `key_id = label || r` (r = 0 since kdr = 0),
    /// `x = key_id XOR master_salt`, and the output is AES-CM keyed with the
    /// master key over the IV `x * 2^16` (4.3.3), i.e. block `j` is
    /// `AES(k_master, x * 2^16 + j)`. The 56-bit key_id is right-aligned in the
    /// 112-bit salt, which puts the label at byte 7.
    pub(crate) fn derive<const N: usize>(&self, label: u8) -> [u8; N] {
        let mut out = [0u8; N];
        for (j, chunk) in (0u16..).zip(out.chunks_mut(16)) {
            let mut block = [0u8; 16];
            block[..PRF_SALT_LEN].copy_from_slice(&self.salt);
            block[7] ^= label;
            block[14..].copy_from_slice(&j.to_be_bytes());
            let mut block = GenericArray::from(block);
            self.aes.encrypt_block(&mut block);
            for (o, k) in chunk.iter_mut().zip(block.iter()) {
                *o = *k;
            }
        }
        out
    }
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

    /// RFC 3711 Appendix B.3.
    #[test]
    fn rfc3711_b3_key_derivation() {
        let prf = Prf::new(
            &hex("E1F97A0D3E018BE0D64FA32C06DE4139"),
            &hex("0EC675AD498AFEEBB6960B3AABE6"),
        )
        .unwrap();
        let key: [u8; 16] = prf.derive(LABEL_RTP_ENCRYPTION);
        assert_eq!(key[..], hex("C61E7A93744F39EE10734AFE3FF7A087")[..]);
        let salt: [u8; 14] = prf.derive(LABEL_RTP_SALT);
        assert_eq!(salt[..], hex("30CBBC08863D8C85D49DB34A9AE1")[..]);
        let auth: [u8; 20] = prf.derive(LABEL_RTP_AUTH);
        assert_eq!(
            auth[..],
            hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")[..]
        );
        // The RFC lists more of the label-1 keystream than the 160 bits HMAC-SHA1
        // uses; checking 32 bytes covers the block counter in the last two bytes.
        let auth32: [u8; 32] = prf.derive(LABEL_RTP_AUTH);
        assert_eq!(
            auth32[..],
            hex("CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE")[..]
        );
    }

    #[test]
    fn rejects_bad_lengths() {
        assert_eq!(
            Prf::new(&[0; 15], &[0; 14]).err(),
            Some(SrtpError::BadKeyLength)
        );
        assert_eq!(
            Prf::new(&[0; 16], &[0; 15]).err(),
            Some(SrtpError::BadSaltLength)
        );
    }
}
