//! Allocation-free structural view of a STUN message (RFC 5389 section 6 and 15).
//!
//! Everything here works on borrowed datagram bytes with checked slicing only, so no input
//! can make it panic. It validates layout (header, attribute TLVs, padding) but not
//! semantics; `IceLite` does that on top.

/// RFC 5389 section 6: fixed 20-byte header.
pub(super) const HEADER_LEN: usize = 20;
/// RFC 5389 section 15: type (2) + length (2).
const ATTR_HEADER_LEN: usize = 4;
/// RFC 5389 section 6: the magic cookie, network byte order.
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];

/// Attribute types we look at (RFC 5389 section 18.2, RFC 8445 section 16.1), taken from
/// the stun crate's constants so the two cannot drift.
pub(super) const ATTR_USERNAME: u16 = stun::attributes::ATTR_USERNAME.0;
pub(super) const ATTR_MESSAGE_INTEGRITY: u16 = stun::attributes::ATTR_MESSAGE_INTEGRITY.0;
pub(super) const ATTR_PRIORITY: u16 = stun::attributes::ATTR_PRIORITY.0;
pub(super) const ATTR_USE_CANDIDATE: u16 = stun::attributes::ATTR_USE_CANDIDATE.0;
pub(super) const ATTR_FINGERPRINT: u16 = stun::attributes::ATTR_FINGERPRINT.0;
pub(super) const ATTR_ICE_CONTROLLED: u16 = stun::attributes::ATTR_ICE_CONTROLLED.0;
pub(super) const ATTR_ICE_CONTROLLING: u16 = stun::attributes::ATTR_ICE_CONTROLLING.0;

/// Message types (method Binding = 0x001 with the class bits of RFC 5389 section 6).
pub(super) const BINDING_REQUEST: u16 = 0x0001;
pub(super) const BINDING_INDICATION: u16 = 0x0011;
pub(super) const BINDING_SUCCESS: u16 = 0x0101;
pub(super) const BINDING_ERROR: u16 = 0x0111;

/// A STUN message whose header and attribute layout have been checked.
#[derive(Debug, Clone, Copy)]
pub(super) struct Frame<'a> {
    pub(super) msg_type: u16,
    pub(super) transaction_id: [u8; 12],
    /// Attribute bytes (everything after the header); its TLVs are known to be in bounds.
    body: &'a [u8],
}

/// One attribute TLV.
#[derive(Debug, Clone, Copy)]
pub(super) struct Attr<'a> {
    pub(super) typ: u16,
    /// Value without padding.
    pub(super) value: &'a [u8],
    /// Offset of the attribute header from the start of the message; MESSAGE-INTEGRITY and
    /// FINGERPRINT are computed over the bytes before it (RFC 5389 sections 15.4, 15.5).
    pub(super) offset: usize,
}

impl<'a> Frame<'a> {
    /// Checks the header and walks every attribute once. `None` if any of:
    /// - shorter than a header, top two type bits set, wrong magic cookie (RFC 5389 section 6);
    /// - length not a multiple of 4 (section 6: attributes are 32-bit aligned);
    /// - datagram size != 20 + length: over UDP one datagram is exactly one message, and
    ///   trailing bytes would make FINGERPRINT not the last thing in it (section 15.5);
    /// - an attribute header or padded value running past the end (section 15).
    pub(super) fn parse(datagram: &'a [u8]) -> Option<Self> {
        let header: &[u8; HEADER_LEN] = datagram.get(..HEADER_LEN)?.try_into().ok()?;
        let [t0, t1, l0, l1, c0, c1, c2, c3, tid @ ..] = *header;
        let msg_type = u16::from_be_bytes([t0, t1]);
        if msg_type & 0xC000 != 0 || [c0, c1, c2, c3] != MAGIC_COOKIE {
            return None;
        }
        let length = usize::from(u16::from_be_bytes([l0, l1]));
        if length % 4 != 0 || datagram.len() != HEADER_LEN.checked_add(length)? {
            return None;
        }
        let frame = Self {
            msg_type,
            transaction_id: tid,
            body: datagram.get(HEADER_LEN..)?,
        };
        // Validate the whole TLV chain up front so `attrs()` can be a plain iterator.
        let mut attrs = frame.attrs();
        for _ in attrs.by_ref() {}
        if attrs.broken {
            return None;
        }
        Some(frame)
    }

    /// Attributes in wire order.
    pub(super) fn attrs(&self) -> Attrs<'a> {
        Attrs {
            body: self.body,
            pos: 0,
            broken: false,
        }
    }
}

/// Iterator over attribute TLVs; stops (setting `broken`) at the first one out of bounds.
#[derive(Debug, Clone)]
pub(super) struct Attrs<'a> {
    body: &'a [u8],
    pos: usize,
    broken: bool,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        if self.broken || self.pos >= self.body.len() {
            return None;
        }
        let attr = self.read();
        if attr.is_none() {
            self.broken = true;
        }
        attr
    }
}

impl<'a> Attrs<'a> {
    fn read(&mut self) -> Option<Attr<'a>> {
        let rest = self.body.get(self.pos..)?;
        let head: &[u8; ATTR_HEADER_LEN] = rest.get(..ATTR_HEADER_LEN)?.try_into().ok()?;
        let [t0, t1, l0, l1] = *head;
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        // RFC 5389 section 15: values are padded to a multiple of 4 bytes; the padding
        // must be present even though the length field excludes it.
        let padded = len.checked_add(3)? & !3;
        let value = rest.get(ATTR_HEADER_LEN..)?.get(..len)?;
        let end = ATTR_HEADER_LEN.checked_add(padded)?;
        if rest.len() < end {
            return None;
        }
        let attr = Attr {
            typ: u16::from_be_bytes([t0, t1]),
            value,
            offset: HEADER_LEN.checked_add(self.pos)?,
        };
        self.pos = self.pos.checked_add(end)?;
        Some(attr)
    }
}

/// See [`crate::ice::local_ufrag_of`].
pub(super) fn local_ufrag_of(datagram: &[u8]) -> Option<&str> {
    let frame = Frame::parse(datagram)?;
    for attr in frame.attrs() {
        match attr.typ {
            // RFC 5389 section 15.4: attributes after MESSAGE-INTEGRITY are ignored, so a
            // USERNAME there is not the one the full check would use.
            ATTR_MESSAGE_INTEGRITY => return None,
            ATTR_USERNAME => return local_part(attr.value),
            _ => {}
        }
    }
    None
}

/// RFC 8445 section 7.2.2: USERNAME is "<receiver ufrag>:<sender ufrag>"; returns the
/// receiver (local) part if it is non-empty UTF-8 and a colon follows it.
pub(super) fn local_part(username: &[u8]) -> Option<&str> {
    let colon = username.iter().position(|&b| b == b':')?;
    let local = username.get(..colon)?;
    if local.is_empty() {
        return None;
    }
    std::str::from_utf8(local).ok()
}
