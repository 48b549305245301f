//! RFC 8285 header extension id remapping and lookup, in place.
//!
//! Extension ids are negotiated per m-section (RFC 8285 5, `a=extmap`), so the ids a
//! producer uses need not match what a consumer negotiated: an SFU has to rewrite them
//! and drop the elements the consumer did not negotiate, or the consumer would
//! misinterpret them under its own id assignment.

use super::{ExtensionBlock, RtpError, RtpHeader};

/// Highest id usable in the one-byte form: 15 is reserved (RFC 8285 4.2).
const ONE_BYTE_MAX_ID: u8 = 14;

/// Maps a producer's extension ids to one consumer's ids.
///
/// Ids 1..=14 are valid in the one-byte form and 1..=255 in the two-byte form
/// (RFC 8285 4.2, 4.3). A target of 0 means "not negotiated by the consumer": the
/// element is removed. Every id starts unmapped.
#[derive(Clone, PartialEq, Eq)]
pub struct ExtensionMap {
    to: [u8; 256],
}

impl ExtensionMap {
    /// A map that removes every extension until ids are inserted.
    pub fn new() -> Self {
        Self { to: [0; 256] }
    }

    /// Maps producer id `from` to consumer id `to` (0 = remove). Mapping id 0 is a
    /// no-op: 0 is padding in both forms, never an element id.
    pub fn insert(&mut self, from: u8, to: u8) {
        if from != 0 {
            if let Some(slot) = self.to.get_mut(usize::from(from)) {
                *slot = to;
            }
        }
    }

    /// The consumer id for producer id `from`, 0 if not negotiated.
    pub fn get(&self, from: u8) -> u8 {
        self.to.get(usize::from(from)).copied().unwrap_or(0)
    }
}

impl Default for ExtensionMap {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ExtensionMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the mapped entries: 256 zeros would drown the useful part.
        f.debug_map()
            .entries(
                (0u8..=255)
                    .map(|id| (id, self.get(id)))
                    .filter(|&(_, to)| to != 0),
            )
            .finish()
    }
}

/// Which RFC 8285 element form a block uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    OneByte,
    TwoByte,
}

impl Form {
    fn of(block: &ExtensionBlock) -> Option<Self> {
        if block.is_one_byte() {
            Some(Self::OneByte)
        } else if block.is_two_byte() {
            Some(Self::TwoByte)
        } else {
            None
        }
    }
}

/// One step of walking an element area.
enum Step {
    /// End of the block.
    End,
    /// A single 0 padding byte (allowed between elements, RFC 8285 4.1).
    Padding,
    /// One-byte id 15: RFC 8285 4.2 says processing stops here and the rest of the
    /// block is ignored.
    Stop,
    /// An element: its id, header size (1 or 2) and data size.
    Element { id: u8, hdr: usize, data: usize },
    /// The element's length runs past the end of the block.
    Malformed,
}

fn step(block: &[u8], pos: usize, form: Form) -> Step {
    let Some(&b) = block.get(pos) else {
        return Step::End;
    };
    if b == 0 {
        return Step::Padding;
    }
    let (id, hdr, data) = match form {
        // RFC 8285 4.2: 4-bit id, 4-bit length-minus-one.
        Form::OneByte => {
            let id = b >> 4;
            if id == 15 {
                return Step::Stop;
            }
            (id, 1, usize::from(b & 0x0F) + 1)
        }
        // RFC 8285 4.3: 8-bit id, 8-bit length (0 allowed).
        Form::TwoByte => {
            let Some(&len) = block.get(pos + 1) else {
                return Step::Malformed;
            };
            (b, 2, usize::from(len))
        }
    };
    // pos < block.len() and hdr + data <= 257, so this cannot overflow.
    if pos + hdr + data > block.len() {
        return Step::Malformed;
    }
    Step::Element { id, hdr, data }
}

fn element_area<'a>(buf: &'a [u8], block: &ExtensionBlock) -> Result<&'a [u8], RtpError> {
    let end = block.start.checked_add(block.len);
    end.and_then(|end| buf.get(block.start..end))
        .ok_or(RtpError::TooShort {
            len: buf.len(),
            needed: end.unwrap_or(usize::MAX),
        })
}

/// Rewrites extension ids in place from the producer's to the consumer's numbering.
///
/// Elements the consumer did not negotiate (map target 0), and elements whose target
/// id cannot be expressed in the block's form (above 14 in the one-byte form, which
/// we cannot widen without changing the packet length), are removed by compacting
/// the remaining elements to the front and filling the tail with 0 padding bytes
/// (RFC 8285 4.1 allows padding anywhere between/after elements), so the packet
/// length and the extension length field stay unchanged. Padding between kept
/// elements is squeezed out as a side effect; receivers ignore it anyway.
///
/// A one-byte id 15 ends processing (RFC 8285 4.2): everything from it on is turned
/// into padding so no producer-numbered bytes leak past it. Non-RFC 8285 profiles
/// are opaque to us and left as they are.
///
/// The block is validated before anything is written, so on `Err` the buffer is
/// unchanged.
pub fn remap_extensions(
    buf: &mut [u8],
    header: &RtpHeader,
    map: &ExtensionMap,
) -> Result<(), RtpError> {
    let Some(ext) = header.extension else {
        return Ok(());
    };
    let Some(form) = Form::of(&ext) else {
        return Ok(());
    };
    validate(element_area(buf, &ext)?, form)?;

    let end = ext.start.saturating_add(ext.len);
    let Some(block) = buf.get_mut(ext.start..end) else {
        return Err(RtpError::MalformedExtension);
    };
    let mut r = 0;
    let mut w = 0;
    loop {
        match step(block, r, form) {
            Step::End | Step::Stop => break,
            Step::Malformed => return Err(RtpError::MalformedExtension),
            Step::Padding => r += 1,
            Step::Element { id, hdr, data } => {
                let total = hdr + data;
                let to = map.get(id);
                let keep = to != 0 && (form == Form::TwoByte || to <= ONE_BYTE_MAX_ID);
                if keep {
                    // w <= r always, and step() checked r + total <= block.len().
                    if w != r {
                        block.copy_within(r..r + total, w);
                    }
                    if let Some(b) = block.get_mut(w) {
                        *b = match form {
                            Form::OneByte => (to << 4) | (*b & 0x0F),
                            Form::TwoByte => to,
                        };
                    }
                    w += total;
                }
                r += total;
            }
        }
    }
    if let Some(tail) = block.get_mut(w..) {
        tail.fill(0);
    }
    Ok(())
}

fn validate(block: &[u8], form: Form) -> Result<(), RtpError> {
    let mut pos = 0;
    loop {
        match step(block, pos, form) {
            Step::End | Step::Stop => return Ok(()),
            Step::Malformed => return Err(RtpError::MalformedExtension),
            Step::Padding => pos += 1,
            Step::Element { hdr, data, .. } => pos += hdr + data,
        }
    }
}

/// Returns the data of the first element with (producer) id `id`, or `None` if the
/// packet has no RFC 8285 extension block, no such element, or a malformed block
/// before reaching it.
pub fn find_extension<'a>(buf: &'a [u8], header: &RtpHeader, id: u8) -> Option<&'a [u8]> {
    let ext = header.extension?;
    let form = Form::of(&ext)?;
    if id == 0 || (form == Form::OneByte && id > ONE_BYTE_MAX_ID) {
        return None;
    }
    let block = element_area(buf, &ext).ok()?;
    let mut pos = 0;
    loop {
        match step(block, pos, form) {
            Step::End | Step::Stop | Step::Malformed => return None,
            Step::Padding => pos += 1,
            Step::Element {
                id: found,
                hdr,
                data,
            } => {
                let data_start = pos + hdr;
                if found == id {
                    return block.get(data_start..data_start + data);
                }
                pos = data_start + data;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_byte_packet(elements: &[u8]) -> Vec<u8> {
        let mut p = vec![0x90, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xBE, 0xDE];
        let words = elements.len().div_ceil(4);
        p.extend_from_slice(&(words as u16).to_be_bytes());
        p.extend_from_slice(elements);
        p.resize(16 + words * 4, 0);
        p.extend_from_slice(b"payload");
        p
    }

    #[test]
    fn map_basics() {
        let mut m = ExtensionMap::new();
        assert_eq!(m.get(3), 0);
        m.insert(3, 7);
        m.insert(0, 9);
        assert_eq!(m.get(3), 7);
        assert_eq!(m.get(0), 0);
        assert_eq!(format!("{m:?}"), "{3: 7}");
    }

    #[test]
    fn id_15_stops_processing_and_is_padded_out() {
        // id 1 (len 1), then id 15, then bytes that must not be interpreted.
        let mut p = one_byte_packet(&[0x10, 0xAA, 0xF0, 0x21, 0xBB]);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(find_extension(&p, &h, 1), Some(&[0xAA][..]));
        assert_eq!(find_extension(&p, &h, 2), None);
        let mut m = ExtensionMap::new();
        m.insert(1, 4);
        m.insert(2, 5);
        remap_extensions(&mut p, &h, &m).unwrap();
        assert_eq!(&p[16..24], &[0x40, 0xAA, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn malformed_block_is_left_unchanged() {
        // id 1 claims 4 data bytes but the block holds only 2 after it.
        let mut p = one_byte_packet(&[0x20, 0x01, 0, 0, 0, 0x13, 1, 2]);
        let h = RtpHeader::parse(&p).unwrap();
        let before = p.clone();
        let mut m = ExtensionMap::new();
        m.insert(2, 3);
        assert_eq!(
            remap_extensions(&mut p, &h, &m),
            Err(RtpError::MalformedExtension)
        );
        assert_eq!(p, before);
        assert_eq!(find_extension(&p, &h, 2), Some(&[0x01][..]));
        assert_eq!(find_extension(&p, &h, 1), None);
    }

    #[test]
    fn one_byte_target_above_14_is_removed() {
        let mut p = one_byte_packet(&[0x10, 0xAA, 0x20, 0xBB]);
        let h = RtpHeader::parse(&p).unwrap();
        let mut m = ExtensionMap::new();
        m.insert(1, 20);
        m.insert(2, 2);
        remap_extensions(&mut p, &h, &m).unwrap();
        assert_eq!(&p[16..20], &[0x20, 0xBB, 0, 0]);
    }

    #[test]
    fn opaque_profile_untouched() {
        let mut p = one_byte_packet(&[0x10, 0xAA, 0x20, 0xBB]);
        p[12] = 0x12;
        p[13] = 0x34;
        let h = RtpHeader::parse(&p).unwrap();
        let before = p.clone();
        remap_extensions(&mut p, &h, &ExtensionMap::new()).unwrap();
        assert_eq!(p, before);
        assert_eq!(find_extension(&p, &h, 1), None);
    }
}
