//! Length-prefixed framing: a 4-byte big-endian length, then that many bytes of JSON.
//!
//! The decoder is sans-IO: feed it bytes as they arrive, take frames out. An oversized
//! frame is skipped byte for byte (never buffered) so the connection stays in sync and the
//! next frame is served; the caller answers the oversized one with an error.

/// Hard maximum size of one frame's body.
pub const MAX_FRAME: usize = 1 << 20;

/// One decoded item.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete frame body.
    Body(Vec<u8>),
    /// A frame whose announced length exceeded [`MAX_FRAME`]; its body was discarded.
    Oversized(usize),
}

/// Incremental decoder.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of an oversized body still to discard.
    skipping: usize,
}

impl FrameDecoder {
    /// Feeds received bytes; complete frames are appended to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<Frame>) {
        loop {
            if self.skipping > 0 {
                let n = self.skipping.min(data.len());
                self.skipping -= n;
                data = data.get(n..).unwrap_or_default();
                if self.skipping > 0 {
                    return;
                }
            }
            self.buf.extend_from_slice(data);
            data = &[];
            let Some(header) = self.buf.get(..4) else {
                return;
            };
            let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
            if len > MAX_FRAME {
                out.push(Frame::Oversized(len));
                // Discard the header and whatever of the body is already buffered, then
                // keep discarding the rest as it arrives.
                let buffered = self.buf.len() - 4;
                let drop_now = buffered.min(len);
                self.skipping = len - drop_now;
                self.buf.drain(..4 + drop_now);
                if self.skipping > 0 {
                    // Everything buffered was part of the body: wait for more input.
                    return;
                }
                continue;
            }
            if self.buf.len() < 4 + len {
                return;
            }
            let rest = self.buf.split_off(4 + len);
            let mut body = std::mem::replace(&mut self.buf, rest);
            body.drain(..4);
            out.push(Frame::Body(body));
        }
    }
}

/// Encodes one frame (header + body).
pub fn encode(body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 4);
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_reads() {
        let mut wire = encode(b"{\"a\":1}");
        wire.extend(encode(b"[]"));
        let mut d = FrameDecoder::default();
        let mut out = Vec::new();
        for b in &wire {
            d.push(std::slice::from_ref(b), &mut out);
        }
        assert_eq!(
            out,
            vec![
                Frame::Body(b"{\"a\":1}".to_vec()),
                Frame::Body(b"[]".to_vec())
            ]
        );
    }

    #[test]
    fn oversized_frame_is_skipped_and_next_frame_served() {
        let big = MAX_FRAME + 10;
        let mut wire = (big as u32).to_be_bytes().to_vec();
        wire.extend(std::iter::repeat_n(b'x', big));
        wire.extend(encode(b"ok"));
        for chunk in [1usize, 7, 4096, wire.len()] {
            let mut d = FrameDecoder::default();
            let mut out = Vec::new();
            for c in wire.chunks(chunk) {
                d.push(c, &mut out);
            }
            assert_eq!(
                out,
                vec![Frame::Oversized(big), Frame::Body(b"ok".to_vec())],
                "chunk {chunk}"
            );
        }
    }
}
