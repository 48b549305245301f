//! The clients against a scripted worker on the other end of a socket pair: ids
//! correlate, notifications are delivered, refusals come back typed.

use std::os::unix::net::UnixStream;

use serde_json::json;
use sfu_control::client::Client;
use sfu_control::framing::{encode, Frame, FrameDecoder};
use sfu_control::requests::{ProducerPause, RouterCreate, WorkerLoad};
use sfu_control::{ClientError, ErrorKind, Event, RequestFrame};

/// The scripted worker's reading side.
#[derive(Default)]
struct Reader {
    decoder: FrameDecoder,
    frames: std::collections::VecDeque<Frame>,
}

/// Reads one request frame from the scripted worker's side.
fn read_request(stream: &mut UnixStream, r: &mut Reader) -> RequestFrame {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    while r.frames.is_empty() {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "client closed");
        let mut out = Vec::new();
        r.decoder.push(&buf[..n], &mut out);
        r.frames.extend(out);
    }
    let Some(Frame::Body(body)) = r.frames.pop_front() else {
        panic!("not a frame")
    };
    RequestFrame::parse(&body).unwrap()
}

fn send(stream: &mut UnixStream, v: serde_json::Value) {
    use std::io::Write;
    stream
        .write_all(&encode(&serde_json::to_vec(&v).unwrap()))
        .unwrap();
}

#[test]
fn blocking_client_correlates_responses_and_queues_notifications() {
    let (a, mut worker) = UnixStream::pair().unwrap();
    let mut client = Client::new(a);
    let script = std::thread::spawn(move || {
        let mut d = Reader::default();
        let r = read_request(&mut worker, &mut d);
        assert_eq!(
            (r.method.as_str(), r.target.as_deref()),
            ("router.create", None)
        );
        assert_eq!(r.data, json!({"appData": {"room": "x"}}));
        // A notification before the response is queued, not mistaken for it.
        send(
            &mut worker,
            json!({"target": "t1", "event": "icestatechange", "data": {"iceState": "connected"}}),
        );
        send(
            &mut worker,
            json!({"id": r.id, "accepted": true, "data": {"routerId": "9f1c2e0a4b7d3e61"}}),
        );
        let r = read_request(&mut worker, &mut d);
        assert_eq!(
            (r.method.as_str(), r.target.as_deref()),
            ("producer.pause", Some("p1"))
        );
        assert_eq!(
            r.data,
            serde_json::Value::Null,
            "a method without data sends none"
        );
        send(
            &mut worker,
            json!({"id": r.id, "error": "NotFound", "reason": "no producer with id \"p1\""}),
        );
        let r = read_request(&mut worker, &mut d);
        assert_eq!(r.method, "worker.load");
        send(
            &mut worker,
            json!({"id": r.id, "accepted": true, "data": {"worker": 1, "workers": 2, "routers": 0,
            "transports": 0, "producers": 0, "consumers": 0, "load": 0}}),
        );
    });
    let created = client
        .request(&RouterCreate {
            app_data: json!({"room": "x"}),
        })
        .unwrap();
    assert_eq!(created.router_id.0, "9f1c2e0a4b7d3e61");
    let err = client.request(&ProducerPause::new("p1")).unwrap_err();
    assert_eq!(err.refusal_kind(), Some(ErrorKind::NotFound));
    assert!(matches!(err, ClientError::Refused { .. }));
    assert_eq!(client.request(&WorkerLoad::default()).unwrap().worker, 1);
    let n = client.next_event().unwrap();
    assert_eq!(n.target, "t1");
    assert!(matches!(n.event, Event::IceStateChange { .. }));
    script.join().unwrap();
    drop(worker_gone(client));
}

/// After the worker's end closes, a request fails with `Closed`.
fn worker_gone(mut client: Client) -> ClientError {
    let err = client.next_event().unwrap_err();
    assert!(matches!(err, ClientError::Closed), "{err}");
    err
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn async_client_correlates_concurrent_requests_and_delivers_events() {
    use sfu_control::client::AsyncClient;
    use sfu_control::requests::ConsumerResume;
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let (client, mut events) = AsyncClient::new(tokio::net::UnixStream::from_std(a).unwrap());
    let script = std::thread::spawn(move || {
        let mut worker = b;
        let mut d = Reader::default();
        let first = read_request(&mut worker, &mut d);
        let second = read_request(&mut worker, &mut d);
        // Answered in reverse order: only the ids tell them apart.
        for r in [&second, &first] {
            let v = match r.method.as_str() {
                "worker.load" => {
                    json!({"id": r.id, "accepted": true, "data": {"worker": 0, "workers": 1,
                    "routers": 0, "transports": 0, "producers": 0, "consumers": 0, "load": 7}})
                }
                _ => json!({"id": r.id, "error": "InvalidState", "reason": "no"}),
            };
            send(&mut worker, v);
        }
        send(
            &mut worker,
            json!({"target": "c1", "event": "producerclose"}),
        );
    });
    let (load_req, resume_req) = (WorkerLoad::default(), ConsumerResume::new("c1"));
    let (load, resumed) = tokio::join!(client.request(&load_req), client.request(&resume_req));
    assert_eq!(load.unwrap().load, 7);
    assert_eq!(
        resumed.unwrap_err().refusal_kind(),
        Some(ErrorKind::InvalidState)
    );
    let n = events.recv().await.unwrap();
    assert_eq!((n.target.as_str(), n.event), ("c1", Event::ProducerClose));
    script.join().unwrap();
    // The worker's end is closed: the events end and requests fail.
    assert!(events.recv().await.is_none());
    assert!(matches!(
        client.request(&WorkerLoad::default()).await,
        Err(ClientError::Closed)
    ));
}
