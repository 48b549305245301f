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
    let (at, len) = locate(buf, header, id)?;
    buf.get(at..at + len)
}

/// Offset in `buf` and length of the data of the first element `id` (see
/// [`find_extension`]).
fn locate(buf: &[u8], header: &RtpHeader, id: u8) -> Option<(usize, usize)> {
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
                    return Some((ext.start + data_start, data));
                }
                pos = data_start + data;
            }
        }
    }
}

/// Reads a 2-byte big-endian element, such as the transport-wide sequence number
/// (draft-holmer-rmcat-transport-wide-cc-extensions-01 2), in either RFC 8285 form.
/// `None` when absent, malformed, or not exactly 2 bytes long.
pub fn read_extension_u16(buf: &[u8], header: &RtpHeader, id: u8) -> Option<u16> {
    let data = find_extension(buf, header, id)?;
    let &[a, b] = data else {
        return None;
    };
    Some(u16::from_be_bytes([a, b]))
}

/// Reads a string-valued element such as the MID (RFC 8843 15.2), RID or repaired RID
/// (RFC 8852 3.1, 3.2), in either RFC 8285 form, as the bytes of the packet (no
/// allocation). Trailing 0 bytes are cut off (some senders pad the value rather than
/// the block). `None` when absent, malformed, or empty.
pub fn read_extension_str<'a>(buf: &'a [u8], header: &RtpHeader, id: u8) -> Option<&'a [u8]> {
    let data = find_extension(buf, header, id)?;
    let end = data.iter().rposition(|&b| b != 0)? + 1;
    data.get(..end)
}

/// Overwrites the value of an existing 2-byte element `id` in place (e.g. our own
/// transport-wide sequence number over the publisher's, after the ids were
/// remapped). Returns `false`, changing nothing, if there is no such element or it
/// is not 2 bytes long.
pub fn set_extension_u16(buf: &mut [u8], header: &RtpHeader, id: u8, value: u16) -> bool {
    let Some((at, 2)) = locate(buf, header, id) else {
        return false;
    };
    match buf.get_mut(at..at + 2) {
        Some(data) => {
            data.copy_from_slice(&value.to_be_bytes());
            true
        }
        None => false,
    }
}

/// The most [`copy_with_extension`], [`insert_extension_u16`] and [`insert_extension`]
/// grow a packet by: a new extension block header and two 32-bit words of element (a
/// 3-byte element in the two-byte form; one word for anything in the one-byte form).
pub const MAX_EXTENSION_GROWTH: usize = 12;
/// The most data bytes [`insert_extension`] writes.
pub const MAX_INSERTED_DATA: usize = 3;

/// How a 2-byte element gets into a packet.
enum Plan {
    /// It is there already: its data is at this offset.
    Overwrite(usize),
    Insert(Insertion),
}

/// Source bytes `start..end` are replaced by `len` bytes: `element[..element_len]`
/// followed by zeros (RFC 8285 4.1 padding). `len >= end - start`.
struct Insertion {
    start: usize,
    end: usize,
    len: usize,
    element: [u8; MAX_EXTENSION_GROWTH],
    element_len: usize,
    /// Offset of the extension length field and its new value, when it changes.
    length_field: Option<(usize, u16)>,
    /// The packet had no extension block: set the X bit (RFC 3550 5.1).
    set_x: bool,
}

impl Insertion {
    fn growth(&self) -> usize {
        self.len - (self.end - self.start)
    }

    /// Writes the replacement at `at` and patches the header; `out` is the whole
    /// new packet.
    fn finish(&self, out: &mut [u8], at: usize) {
        if let Some(area) = out.get_mut(at..at + self.len) {
            area.fill(0);
            if let (Some(dst), Some(src)) = (
                area.get_mut(..self.element_len),
                self.element.get(..self.element_len),
            ) {
                dst.copy_from_slice(src);
            }
        }
        if let Some((offset, words)) = self.length_field {
            if let Some(field) = out.get_mut(offset..offset + 2) {
                field.copy_from_slice(&words.to_be_bytes());
            }
        }
        if self.set_x {
            if let Some(b0) = out.first_mut() {
                *b0 |= 0x10;
            }
        }
    }
}

fn plan(src: &[u8], header: &RtpHeader, id: u8, value: &[u8]) -> Result<Plan, RtpError> {
    let n = value.len();
    if id == 0 || n == 0 || n > MAX_INSERTED_DATA {
        return Err(RtpError::MalformedExtension);
    }
    // The element as the one-byte (id and length - 1 in a byte) or the two-byte form
    // (id, length) writes it.
    let mut one = [0; 1 + MAX_INSERTED_DATA];
    let mut two = [0; 2 + MAX_INSERTED_DATA];
    one[0] = (id << 4) | (n as u8 - 1);
    two[0] = id;
    two[1] = n as u8;
    for (i, b) in value.iter().enumerate() {
        if let Some(x) = one.get_mut(1 + i) {
            *x = *b;
        }
        if let Some(x) = two.get_mut(2 + i) {
            *x = *b;
        }
    }
    let (one, two) = (&one[..1 + n], &two[..2 + n]);
    let Some(ext) = header.extension else {
        // No block: add one after the CSRCs holding just this element, in the
        // one-byte form when the id allows it (RFC 8285 4.2), else the two-byte
        // form (4.3).
        let at = super::FIXED_HEADER_LEN + 4 * usize::from(header.csrc_count);
        if at > src.len() {
            return Err(RtpError::TooShort {
                len: src.len(),
                needed: at,
            });
        }
        let (magic, elem): ([u8; 2], &[u8]) = if id <= ONE_BYTE_MAX_ID {
            ([0xBE, 0xDE], one)
        } else {
            ([0x10, 0x00], two)
        };
        let words = elem.len().div_ceil(4);
        let mut element = [0; MAX_EXTENSION_GROWTH];
        element[..2].copy_from_slice(&magic);
        element[3] = words as u8;
        if let Some(dst) = element.get_mut(4..4 + elem.len()) {
            dst.copy_from_slice(elem);
        }
        let len = 4 + 4 * words;
        return Ok(Plan::Insert(Insertion {
            start: at,
            end: at,
            len,
            element,
            element_len: len,
            length_field: None,
            set_x: true,
        }));
    };
    // A block that is not RFC 8285 cannot take an element (RFC 3550 5.3.1 allows one
    // block per packet), nor can the one-byte form take an id above 14.
    let form = Form::of(&ext).ok_or(RtpError::MalformedExtension)?;
    if form == Form::OneByte && id > ONE_BYTE_MAX_ID {
        return Err(RtpError::MalformedExtension);
    }
    let block = element_area(src, &ext)?;
    // Where the last element ends (trailing padding, or everything from a one-byte
    // id 15 on, is reused), and whether `id` is there already.
    let mut pos = 0;
    let mut used = 0;
    loop {
        match step(block, pos, form) {
            Step::End => break,
            Step::Stop => break,
            Step::Malformed => return Err(RtpError::MalformedExtension),
            Step::Padding => pos += 1,
            Step::Element {
                id: found,
                hdr,
                data,
            } => {
                if found == id {
                    if data != n {
                        return Err(RtpError::MalformedExtension);
                    }
                    return Ok(Plan::Overwrite(ext.start + pos + hdr));
                }
                pos += hdr + data;
                used = pos;
            }
        }
    }
    let elem = match form {
        Form::OneByte => one,
        Form::TwoByte => two,
    };
    let mut element = [0; MAX_EXTENSION_GROWTH];
    if let Some(dst) = element.get_mut(..elem.len()) {
        dst.copy_from_slice(elem);
    }
    let element_len = elem.len();
    let (area_len, length_field) = if used + element_len <= ext.len {
        (ext.len, None)
    } else {
        let area = (used + element_len).next_multiple_of(4);
        let words = u16::try_from(area / 4).map_err(|_| RtpError::MalformedExtension)?;
        (area, Some((ext.start - 2, words)))
    };
    Ok(Plan::Insert(Insertion {
        start: ext.start + used,
        end: ext.start + ext.len,
        len: area_len - used,
        element,
        element_len,
        length_field,
        set_x: false,
    }))
}

/// Copies the RTP packet `src` (whose parsed header is `header`) into `dst` with a
/// 2-byte element `id` = `value`, and returns the new length: for stamping our
/// transport-wide sequence number (draft-holmer-rmcat-transport-wide-cc-extensions-01
/// 2) on packets whose publisher did not send one.
///
/// - An existing 2-byte element `id` is overwritten (same length).
/// - Otherwise the element goes after the last element of an RFC 8285 block, into
///   its trailing padding when there is room, else growing the block by one 32-bit
///   word (the length field updated).
/// - Without a block, one is created after the CSRCs (8 bytes: 0xBEDE header, or
///   0x1000 for ids above 14, and one word of element) and the X bit set.
///
/// The packet grows by 0, 4 or 8 bytes ([`MAX_EXTENSION_GROWTH`]); the 32-bit
/// alignment of the block is kept and the payload and RTP padding (P bit and count
/// in the last byte, RFC 3550 5.1) follow unchanged. Errors, writing nothing
/// meaningful to `dst`: `TooShort` if `dst` cannot hold the result or `src` does
/// not match `header`, `MalformedExtension` for a malformed block, an opaque
/// (non-RFC 8285) block, an id the block's form cannot carry, id 0, or an existing
/// `id` element of another size.
pub fn copy_with_extension(
    dst: &mut [u8],
    src: &[u8],
    header: &RtpHeader,
    id: u8,
    value: u16,
) -> Result<usize, RtpError> {
    let dst_len = dst.len();
    let too_short = |needed| RtpError::TooShort {
        len: dst_len,
        needed,
    };
    match plan(src, header, id, &value.to_be_bytes())? {
        Plan::Overwrite(at) => {
            let out = dst.get_mut(..src.len()).ok_or(too_short(src.len()))?;
            out.copy_from_slice(src);
            if let Some(data) = out.get_mut(at..at + 2) {
                data.copy_from_slice(&value.to_be_bytes());
            }
            Ok(src.len())
        }
        Plan::Insert(ins) => {
            let total = src.len() + ins.growth();
            let needed = too_short(total);
            let out = dst.get_mut(..total).ok_or(needed)?;
            let (Some(head), Some(tail)) = (src.get(..ins.start), src.get(ins.end..)) else {
                return Err(RtpError::MalformedExtension);
            };
            // total = ins.start + ins.len + tail.len(), so the split lands exactly.
            let Some((h, rest)) = out.split_at_mut_checked(ins.start) else {
                return Err(needed);
            };
            match rest.get_mut(ins.len..) {
                Some(t) if t.len() == tail.len() => {
                    h.copy_from_slice(head);
                    t.copy_from_slice(tail);
                }
                _ => return Err(needed),
            }
            ins.finish(out, ins.start);
            Ok(total)
        }
    }
}

/// [`copy_with_extension`] in place: `buf[..len]` is the packet (with `header`
/// parsed from it) and `buf` has room for up to [`MAX_EXTENSION_GROWTH`] more bytes;
/// the payload is moved back as needed. Returns the new length; on `Err` the buffer
/// is unchanged.
pub fn insert_extension_u16(
    buf: &mut [u8],
    len: usize,
    header: &RtpHeader,
    id: u8,
    value: u16,
) -> Result<usize, RtpError> {
    insert_extension(buf, len, header, id, &value.to_be_bytes())
}

/// [`insert_extension_u16`] for an element of 1 to [`MAX_INSERTED_DATA`] bytes: an
/// existing element `id` of that size is overwritten, otherwise one is added (in the
/// block's trailing padding, by growing it, or in a new block).
pub fn insert_extension(
    buf: &mut [u8],
    len: usize,
    header: &RtpHeader,
    id: u8,
    value: &[u8],
) -> Result<usize, RtpError> {
    let src = buf.get(..len).ok_or(RtpError::TooShort {
        len: buf.len(),
        needed: len,
    })?;
    match plan(src, header, id, value)? {
        Plan::Overwrite(at) => {
            if let Some(data) = buf.get_mut(at..at + value.len()) {
                data.copy_from_slice(value);
            }
            Ok(len)
        }
        Plan::Insert(ins) => {
            let total = len + ins.growth();
            if total > buf.len() || ins.end > len {
                return Err(RtpError::TooShort {
                    len: buf.len(),
                    needed: total,
                });
            }
            // Both ranges are within `buf` (checked above); the move is to the right.
            buf.copy_within(ins.end..len, ins.start + ins.len);
            ins.finish(buf, ins.start);
            Ok(total)
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

    // --- transport-wide sequence number helpers -------------------------------------

    use bytes::Bytes;
    use rand::{Rng, SeedableRng};
    use rtp::extension::HeaderExtension;
    use rtp::header::{Extension, Header};
    use rtp::packet::Packet;

    /// A packet serialised by the `rtp` crate (its `Marshal` trait is reachable only
    /// through `HeaderExtension::Custom`, see src/rtp/tests.rs).
    fn crate_packet(
        csrcs: usize,
        profile: Option<u16>,
        exts: &[(u8, Vec<u8>)],
        pad: bool,
        payload: &[u8],
    ) -> Vec<u8> {
        let header = Header {
            version: 2,
            padding: pad,
            extension: profile.is_some(),
            marker: false,
            payload_type: 96,
            sequence_number: 7,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x1234_5678,
            csrc: (0..csrcs as u32).collect(),
            extension_profile: profile.unwrap_or(0),
            extensions: exts
                .iter()
                .map(|(id, p)| Extension {
                    id: *id,
                    payload: Bytes::copy_from_slice(p),
                })
                .collect(),
            extensions_padding: 0,
        };
        let packet = Packet {
            header,
            payload: Bytes::copy_from_slice(payload),
        };
        let HeaderExtension::Custom { extension, .. } = (HeaderExtension::Custom {
            uri: "".into(),
            extension: Box::new(packet),
        }) else {
            unreachable!()
        };
        extension.marshal().expect("crate marshal").to_vec()
    }

    /// Both the copying and the in-place variant, which must agree.
    fn stamp(src: &[u8], id: u8, value: u16) -> Result<Vec<u8>, RtpError> {
        let h = RtpHeader::parse(src).expect("valid source");
        let mut dst = vec![0xEE; src.len() + MAX_EXTENSION_GROWTH];
        let copied = copy_with_extension(&mut dst, src, &h, id, value).map(|n| dst[..n].to_vec());
        let mut buf = src.to_vec();
        buf.resize(src.len() + MAX_EXTENSION_GROWTH, 0xEE);
        let in_place =
            insert_extension_u16(&mut buf, src.len(), &h, id, value).map(|n| buf[..n].to_vec());
        assert_eq!(copied, in_place);
        if in_place.is_err() {
            assert_eq!(&buf[..src.len()], src, "unchanged on error");
        }
        copied
    }

    #[test]
    fn copy_with_extension_matches_crate_serialisation() {
        let one: Vec<(u8, Vec<u8>)> = vec![
            (1, vec![0x11]),
            (3, vec![0x31, 0x32, 0x33]),
            (14, vec![0xE0; 16]),
        ];
        let two: Vec<(u8, Vec<u8>)> =
            vec![(1, vec![]), (20, vec![0x20; 17]), (200, vec![0xC8, 0xC9])];
        for csrcs in [0, 2, 15] {
            for (profile, exts) in [
                (None, vec![]),
                (Some(0xBEDE), one.clone()),
                (Some(0x1000), two.clone()),
            ] {
                for pad in [false, true] {
                    for payload_len in [0usize, 1, 5, 100] {
                        let payload: Vec<u8> = (0..payload_len as u8).collect();
                        let src = crate_packet(csrcs, profile, &exts, pad, &payload);
                        let ids: &[u8] = if profile == Some(0xBEDE) {
                            &[7]
                        } else {
                            &[7, 100]
                        };
                        for &id in ids {
                            let mut with = exts.clone();
                            with.push((id, vec![0xAB, 0xCD]));
                            let want_profile =
                                profile.or(Some(if id <= 14 { 0xBEDE } else { 0x1000 }));
                            let want = crate_packet(csrcs, want_profile, &with, pad, &payload);
                            let got = stamp(&src, id, 0xABCD).expect("stamped");
                            assert_eq!(
                                got, want,
                                "csrcs {csrcs} {profile:?} pad {pad} len {payload_len} id {id}"
                            );
                            assert!(got.len() - src.len() <= MAX_EXTENSION_GROWTH);
                            let h = RtpHeader::parse(&got).unwrap();
                            assert_eq!(read_extension_u16(&got, &h, id), Some(0xABCD));
                            assert_eq!(h.payload(&got), &payload[..]);
                            assert_eq!(h.padding_len, RtpHeader::parse(&src).unwrap().padding_len);
                            // Now present: stamping again overwrites in place.
                            let again = stamp(&got, id, 0x0102).unwrap();
                            assert_eq!(again.len(), got.len());
                            let mut set = got.clone();
                            assert!(set_extension_u16(&mut set, &h, id, 0x0102));
                            assert_eq!(set, again);
                            assert_eq!(read_extension_u16(&set, &h, id), Some(0x0102));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn element_goes_into_trailing_padding_or_over_id_15() {
        // Room after the last element: no growth.
        let p = one_byte_packet(&[0x10, 0xAA, 0, 0, 0, 0, 0, 0]);
        let got = stamp(&p, 7, 0x1234).unwrap();
        assert_eq!(got.len(), p.len());
        assert_eq!(&got[16..24], &[0x10, 0xAA, 0x71, 0x12, 0x34, 0, 0, 0]);
        // Padding between elements is kept, the element goes after the last one.
        let p = one_byte_packet(&[0x10, 0xAA, 0, 0, 0x20, 0xBB, 0, 0]);
        let got = stamp(&p, 7, 0x1234).unwrap();
        assert_eq!(&got[12..16], &[0xBE, 0xDE, 0, 3]);
        assert_eq!(
            &got[16..28],
            &[0x10, 0xAA, 0, 0, 0x20, 0xBB, 0x71, 0x12, 0x34, 0, 0, 0]
        );
        // RFC 8285 4.2: nothing after id 15 counts, so the element replaces it.
        let p = one_byte_packet(&[0x10, 0xAA, 0xF0, 0x21, 0xBB, 0, 0, 0]);
        let got = stamp(&p, 7, 0x1234).unwrap();
        assert_eq!(&got[16..24], &[0x10, 0xAA, 0x71, 0x12, 0x34, 0, 0, 0]);
        let h = RtpHeader::parse(&got).unwrap();
        assert_eq!(read_extension_u16(&got, &h, 7), Some(0x1234));
        assert_eq!(h.payload(&got), b"payload");
    }

    #[test]
    fn read_and_set_need_a_two_byte_element() {
        let mut p = one_byte_packet(&[0x30, 0x01, 0x51, 0x02, 0x03]);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(read_extension_u16(&p, &h, 5), Some(0x0203));
        assert_eq!(read_extension_u16(&p, &h, 3), None, "1 byte of data");
        assert_eq!(read_extension_u16(&p, &h, 4), None, "absent");
        assert!(!set_extension_u16(&mut p, &h, 3, 9));
        assert!(!set_extension_u16(&mut p, &h, 4, 9));
        assert!(set_extension_u16(&mut p, &h, 5, 0xFFEE));
        assert_eq!(&p[16..21], &[0x30, 0x01, 0x51, 0xFF, 0xEE]);
        // An existing element of the wrong size is not stamped over.
        assert_eq!(stamp(&p, 3, 1), Err(RtpError::MalformedExtension));
    }

    /// MID and RID values (RFC 8852) read in place in both forms; trailing 0 bytes
    /// cut; empty, absent or malformed elements give None.
    #[test]
    fn string_elements_in_both_forms() {
        // One-byte form: id 4 "v" then id 10 "hi\0" (padded value), then a 0 pad byte.
        let p = one_byte_packet(&[0x40, b'v', 0xA2, b'h', b'i', 0, 0]);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(read_extension_str(&p, &h, 4), Some(&b"v"[..]));
        assert_eq!(read_extension_str(&p, &h, 10), Some(&b"hi"[..]));
        assert_eq!(read_extension_str(&p, &h, 11), None);
        // A value of only 0 bytes is no value.
        let p = one_byte_packet(&[0x40, 0]);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(read_extension_str(&p, &h, 4), None);
        // Two-byte form (0x1000 profile): id 20, length 3 "low"; id 21 length 0.
        let mut p = vec![0x90, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0x10, 0x00, 0, 2];
        p.extend_from_slice(&[20, 3, b'l', b'o', b'w', 21, 0, 0]);
        p.extend_from_slice(b"payload");
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(read_extension_str(&p, &h, 20), Some(&b"low"[..]));
        assert_eq!(read_extension_str(&p, &h, 21), None);
        // A length running past the block.
        let p = one_byte_packet(&[0x4F, b'v']);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(read_extension_str(&p, &h, 4), None);
    }

    #[test]
    fn extension_stamping_errors() {
        let p = one_byte_packet(&[0x10, 0xAA]);
        assert_eq!(stamp(&p, 0, 1), Err(RtpError::MalformedExtension));
        assert_eq!(
            stamp(&p, 15, 1),
            Err(RtpError::MalformedExtension),
            "one-byte form"
        );
        let mut opaque = p.clone();
        opaque[12..14].copy_from_slice(&[0x12, 0x34]);
        assert_eq!(stamp(&opaque, 7, 1), Err(RtpError::MalformedExtension));
        let malformed = one_byte_packet(&[0x20, 0x01, 0, 0, 0, 0x13, 1, 2]);
        assert_eq!(stamp(&malformed, 7, 1), Err(RtpError::MalformedExtension));
        // Destination too small.
        let h = RtpHeader::parse(&p).unwrap();
        let mut dst = vec![0; p.len() + 3];
        assert_eq!(
            copy_with_extension(&mut dst, &p, &h, 7, 1),
            Err(RtpError::TooShort {
                len: p.len() + 3,
                needed: p.len() + 4
            })
        );
        let mut buf = p.clone();
        assert!(insert_extension_u16(&mut buf, p.len(), &h, 7, 1).is_err());
        assert_eq!(buf, p);
        // A header that does not belong to the buffer.
        let mut buf = vec![0x80; 8];
        assert!(insert_extension_u16(&mut buf, 4, &h, 7, 1).is_err());
        assert!(copy_with_extension(&mut [0; 64], &[0x80; 4], &h, 7, 1).is_err());
    }

    #[test]
    fn extension_stamping_garbage_never_panics() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x7E57);
        let seeds = [
            one_byte_packet(&[0x10, 0xAA, 0x21, 1, 2, 0, 0, 0]),
            crate_packet(
                3,
                Some(0x1000),
                &[(1, vec![]), (200, vec![1, 2, 3])],
                true,
                b"xyz",
            ),
            crate_packet(0, None, &[], true, b"abcdef"),
        ];
        for _ in 0..50_000 {
            let mut p = seeds[rng.gen_range(0..seeds.len())].clone();
            for _ in 0..rng.gen_range(0..4) {
                let at = rng.gen_range(0..p.len());
                p[at] = rng.gen();
            }
            let Ok(h) = RtpHeader::parse(&p) else {
                continue;
            };
            let (id, value) = (rng.gen::<u8>(), rng.gen::<u16>());
            let _ = read_extension_u16(&p, &h, id);
            let mut q = p.clone();
            let _ = set_extension_u16(&mut q, &h, id, value);
            let mut dst = vec![0; p.len() + rng.gen_range(0..=MAX_EXTENSION_GROWTH)];
            if let Ok(n) = copy_with_extension(&mut dst, &p, &h, id, value) {
                let h2 = RtpHeader::parse(&dst[..n]).expect("still parses");
                assert_eq!(read_extension_u16(&dst[..n], &h2, id), Some(value));
                assert_eq!(h2.payload(&dst[..n]), h.payload(&p));
            }
            let mut buf = p.clone();
            buf.resize(p.len() + MAX_EXTENSION_GROWTH, 0);
            let _ = insert_extension_u16(&mut buf, p.len(), &h, id, value);
            let _ = insert_extension_u16(&mut buf, rng.gen_range(0..p.len() + 20), &h, id, value);
        }
    }

    /// A 3-byte element (the playout-delay extension's size) is added in every place a
    /// 2-byte one is, the payload following intact, and reads back.
    #[test]
    fn a_three_byte_element_goes_into_padding_a_grown_block_or_a_new_one() {
        let data = [0x02, 0x43, 0xE8];
        // Into a block whose padding has room (one 2-byte element, 8 bytes of area).
        let mut p = one_byte_packet(&[0x11, 0xAA, 0xBB, 0, 0, 0, 0, 0]);
        let len = p.len();
        p.resize(len + MAX_EXTENSION_GROWTH, 0);
        let h = RtpHeader::parse(&p[..len]).unwrap();
        let n = insert_extension(&mut p, len, &h, 6, &data).unwrap();
        assert_eq!(n, len, "fits the padding");
        let h = RtpHeader::parse(&p[..n]).unwrap();
        assert_eq!(find_extension(&p[..n], &h, 6), Some(&data[..]));
        assert_eq!(find_extension(&p[..n], &h, 1), Some(&[0xAA, 0xBB][..]));
        assert!(p[..n].ends_with(b"payload"));
        // Growing a full block by a word.
        let mut p = one_byte_packet(&[0x11, 0xAA, 0xBB, 0]);
        let len = p.len();
        p.resize(len + MAX_EXTENSION_GROWTH, 0);
        let h = RtpHeader::parse(&p[..len]).unwrap();
        let n = insert_extension(&mut p, len, &h, 6, &data).unwrap();
        assert_eq!(n, len + 4);
        let h = RtpHeader::parse(&p[..n]).unwrap();
        assert_eq!(find_extension(&p[..n], &h, 6), Some(&data[..]));
        assert!(p[..n].ends_with(b"payload"));
        // Overwritten in place the second time.
        let again = [0, 0, 1];
        assert_eq!(insert_extension(&mut p, n, &h, 6, &again), Ok(n));
        assert_eq!(find_extension(&p[..n], &h, 6), Some(&again[..]));
        // A new block, one-byte form (8 bytes) and two-byte form (12 bytes).
        for (id, growth) in [(6u8, 8), (20, 12)] {
            let mut p = vec![0x80, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
            p.extend_from_slice(b"payload");
            let len = p.len();
            p.resize(len + MAX_EXTENSION_GROWTH, 0);
            let h = RtpHeader::parse(&p[..len]).unwrap();
            let n = insert_extension(&mut p, len, &h, id, &data).unwrap();
            assert_eq!(n, len + growth);
            let h = RtpHeader::parse(&p[..n]).unwrap();
            assert_eq!(find_extension(&p[..n], &h, id), Some(&data[..]), "id {id}");
            assert!(p[..n].ends_with(b"payload"));
        }
        // An existing element of another size is refused, the packet unchanged.
        let mut p = one_byte_packet(&[0x61, 0xAA, 0xBB, 0]);
        let len = p.len();
        let before = p.clone();
        p.resize(len + MAX_EXTENSION_GROWTH, 0);
        let h = RtpHeader::parse(&p[..len]).unwrap();
        assert!(insert_extension(&mut p, len, &h, 6, &data).is_err());
        assert_eq!(&p[..len], &before[..]);
    }
}
