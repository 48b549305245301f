//! A blocking client over std's `UnixStream`, for tests and benchmarks.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::error::ClientError;
use crate::events::Notification;
use crate::framing::{encode, Frame, FrameDecoder};
use crate::message::{decode_response, request_frame, Message};
use crate::requests::Request;

/// One control connection. Requests are answered in order; notifications read while
/// waiting for a response are kept for [`Client::next_event`].
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    decoder: FrameDecoder,
    frames: VecDeque<Frame>,
    events: VecDeque<Notification>,
    next_id: u64,
    buf: Vec<u8>,
}

impl Client {
    /// Connects to a worker socket. Its `ready` notification is the first event.
    pub fn connect(path: impl AsRef<Path>) -> std::io::Result<Self> {
        UnixStream::connect(path).map(Self::new)
    }

    /// A client over a connected stream.
    pub fn new(stream: UnixStream) -> Self {
        Self {
            stream,
            decoder: FrameDecoder::default(),
            frames: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 1,
            buf: vec![0; 64 * 1024],
        }
    }

    /// The socket, e.g. to set a read timeout (a read that times out fails with
    /// [`ClientError::Io`] and loses nothing: partial frames stay buffered).
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Sends one frame with `body` as it is (for tests of malformed requests).
    pub fn send_frame(&mut self, body: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(&encode(body))
    }

    /// Sends bytes as they are, framed or not.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// The next frame's body.
    pub fn read_frame(&mut self) -> Result<Vec<u8>, ClientError> {
        loop {
            match self.frames.pop_front() {
                Some(Frame::Body(body)) => return Ok(body),
                Some(Frame::Oversized(len)) => {
                    return Err(ClientError::Protocol(format!("a frame of {len} bytes")))
                }
                None => {}
            }
            let n = self.stream.read(&mut self.buf)?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            let mut frames = Vec::new();
            self.decoder
                .push(self.buf.get(..n).unwrap_or_default(), &mut frames);
            self.frames.extend(frames);
        }
    }

    /// The next message, notifications queued by [`Client::request`] excepted.
    pub fn read_message(&mut self) -> Result<Message, ClientError> {
        let body = self.read_frame()?;
        Message::parse(&body).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Sends a typed request and returns its id without waiting for the response.
    pub fn send<R: Request>(&mut self, request: &R) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = request_frame(id, request).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let body = serde_json::to_vec(&frame).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.send_frame(&body)?;
        Ok(id)
    }

    /// Sends a request and waits for its response; notifications read meanwhile are
    /// queued for [`Client::next_event`].
    pub fn request<R: Request>(&mut self, request: &R) -> Result<R::Response, ClientError> {
        let id = self.send(request)?;
        loop {
            match self.read_message()? {
                Message::Notification(n) => self.events.push_back(n),
                Message::Response(r) if r.id == Some(id) => {
                    let data = r.into_result().map_err(|refusal| ClientError::Refused {
                        method: R::METHOD,
                        refusal,
                    })?;
                    return decode_response::<R>(data)
                        .map_err(|e| ClientError::Protocol(format!("{}: {e}", R::METHOD)));
                }
                Message::Response(r) => {
                    return Err(ClientError::Protocol(format!(
                        "a response to request {:?} while waiting for {id}",
                        r.id
                    )))
                }
            }
        }
    }

    /// The next notification: a queued one, or the next one read (responses read
    /// meanwhile are an error: nothing was asked).
    pub fn next_event(&mut self) -> Result<Notification, ClientError> {
        if let Some(n) = self.events.pop_front() {
            return Ok(n);
        }
        match self.read_message()? {
            Message::Notification(n) => Ok(n),
            Message::Response(r) => Err(ClientError::Protocol(format!(
                "an unexpected response to request {:?}",
                r.id
            ))),
        }
    }

    /// Takes the notifications queued so far.
    pub fn take_events(&mut self) -> Vec<Notification> {
        self.events.drain(..).collect()
    }
}
