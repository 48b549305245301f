//! RFC 4571 framing of ICE-TCP streams (RFC 6544 section 3): every STUN message, DTLS
//! record and SRTP/SRTCP packet travels as a 2-byte big-endian length and that many bytes.
//!
//! [`Deframer`] is fed the bytes a connection read and yields whole frames. Its buffer has
//! a fixed size, so a peer can make it hold at most one unfinished frame: a length above
//! [`MAX_FRAME_LEN`] (nothing we speak is that large) or of zero is a [`FramingError`],
//! after which the connection is closed; nothing here panics on any input.

use std::fmt;

use crate::batch::RECV_SLOT_SIZE;

/// The largest frame accepted: what a UDP receive slot holds, so a frame goes through the
/// same packet path as a datagram.
pub const MAX_FRAME_LEN: usize = RECV_SLOT_SIZE;

/// Bytes of the length prefix.
const PREFIX: usize = 2;

/// Read buffer of one connection: several frames per read, at least one whole frame.
const BUFFER_LEN: usize = 8 * 1024;
const _: () = assert!(BUFFER_LEN >= PREFIX + MAX_FRAME_LEN);

/// Why a stream cannot be read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// A frame announced more than [`MAX_FRAME_LEN`] bytes.
    Oversized(usize),
    /// A frame announced no bytes at all (no protocol we speak has an empty message).
    Empty,
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Oversized(len) => write!(f, "frame of {len} bytes exceeds {MAX_FRAME_LEN}"),
            Self::Empty => f.write_str("empty frame"),
        }
    }
}

impl std::error::Error for FramingError {}

/// Splits one connection's byte stream into frames. Fill [`spare`](Self::spare), report
/// what was written with [`filled`](Self::filled), then take frames with
/// [`next_frame`](Self::next_frame) until it returns `Ok(None)`.
pub struct Deframer {
    buf: Box<[u8]>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl Deframer {
    pub fn new() -> Self {
        Self {
            buf: vec![0; BUFFER_LEN].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Where the next read goes; never empty (a partial frame is moved to the front
    /// first, and a whole frame always fits).
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.buf.get_mut(self.end..).unwrap_or_default()
    }

    /// Notes that `n` bytes were written to the start of [`spare`](Self::spare).
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// The next whole frame's payload, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<&mut [u8]>, FramingError> {
        let pending = self.buf.get(self.start..self.end).unwrap_or_default();
        let Some(prefix) = pending.get(..PREFIX) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
        if len == 0 {
            return Err(FramingError::Empty);
        }
        if len > MAX_FRAME_LEN {
            return Err(FramingError::Oversized(len));
        }
        if pending.len() < PREFIX + len {
            return Ok(None);
        }
        let from = self.start + PREFIX;
        self.start = from + len;
        Ok(self.buf.get_mut(from..from + len))
    }

    /// Bytes read but not yet taken as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }
}

impl Default for Deframer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Deframer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deframer")
            .field("buffered", &self.buffered())
            .finish()
    }
}

/// Appends `payload` as one frame to `out`. False (and nothing appended) for a payload an
/// RFC 4571 length cannot describe.
pub fn push_frame(out: &mut Vec<u8>, payload: &[u8]) -> bool {
    let Ok(len) = u16::try_from(payload.len()) else {
        return false;
    };
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` in chunks of `chunk` bytes and collects the frames.
    fn deframe(stream: &[u8], chunk: usize) -> Result<Vec<Vec<u8>>, FramingError> {
        let mut d = Deframer::new();
        let mut frames = Vec::new();
        for mut piece in stream.chunks(chunk) {
            // As a socket read would: at most what the spare room holds.
            while !piece.is_empty() {
                let spare = d.spare();
                let n = piece.len().min(spare.len());
                spare[..n].copy_from_slice(&piece[..n]);
                d.filled(n);
                piece = &piece[n..];
                while let Some(f) = d.next_frame()? {
                    frames.push(f.to_vec());
                }
            }
        }
        Ok(frames)
    }

    #[test]
    fn frames_survive_any_split_of_the_stream() {
        let payloads: Vec<Vec<u8>> = (1..=40).map(|n| vec![n as u8; n * 37]).collect();
        let mut stream = Vec::new();
        for p in &payloads {
            assert!(push_frame(&mut stream, p));
        }
        for chunk in [1, 2, 3, 7, 1500, 8000] {
            assert_eq!(deframe(&stream, chunk).unwrap(), payloads, "chunk {chunk}");
        }
    }

    #[test]
    fn a_frame_of_the_maximum_length_fits_after_a_partial_one() {
        let mut stream = Vec::new();
        push_frame(&mut stream, &[1; 100]);
        push_frame(&mut stream, &vec![2; MAX_FRAME_LEN]);
        push_frame(&mut stream, &vec![3; MAX_FRAME_LEN]);
        let frames = deframe(&stream, 3000).unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[2], vec![3; MAX_FRAME_LEN]);
    }

    #[test]
    fn oversized_and_empty_lengths_are_errors() {
        let too_long = (MAX_FRAME_LEN as u16 + 1).to_be_bytes();
        assert_eq!(
            deframe(&too_long, 2),
            Err(FramingError::Oversized(MAX_FRAME_LEN + 1))
        );
        assert_eq!(deframe(&[0, 0, 1], 3), Err(FramingError::Empty));
        assert!(!push_frame(&mut Vec::new(), &vec![0; 70_000]));
    }
}
