//! Golden test: every JSON example of docs/PROTOCOL.md's control-channel section
//! round-trips through its sfu-control type (deserialize, serialize, compare as JSON
//! values). An example that fails is a doc bug or a type bug.

#[path = "support/doc_examples.rs"]
mod doc_examples;

use doc_examples::json_examples;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use sfu_control::requests::MethodVisitor;
use sfu_control::{
    decode_request, decode_response, request_frame, Method, Notification, Request, RequestFrame,
    Response,
};

/// The examples of the control-channel section.
fn control_examples() -> Vec<Value> {
    json_examples("## Control channel", Some("## WebSocket protocol"))
}

fn round_trip<T: Serialize + DeserializeOwned>(v: &Value) -> Value {
    let t: T = serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("{} does not read {v}: {e}", std::any::type_name::<T>()));
    serde_json::to_value(&t).expect("serializes")
}

fn request<R: Request>(frame: RequestFrame) -> Value {
    let r: R = decode_request(frame.target, frame.data)
        .unwrap_or_else(|e| panic!("{} data: {e}", R::METHOD));
    serde_json::to_value(request_frame(frame.id, &r).expect("serializes")).expect("serializes")
}

fn response<R: Request>(data: Value) -> Value {
    let r = decode_response::<R>(data.clone())
        .unwrap_or_else(|e| panic!("{} response {data}: {e}", R::METHOD));
    serde_json::to_value(&r).expect("serializes")
}

/// Round-trips a request frame through the type of its method.
struct RequestRoundTrip(RequestFrame);

impl MethodVisitor for RequestRoundTrip {
    type Output = Value;
    fn visit<R: Request>(self) -> Value {
        request::<R>(self.0)
    }
}

/// Round-trips an accepted response's data through the response type of its method.
struct ResponseRoundTrip(Value);

impl MethodVisitor for ResponseRoundTrip {
    type Output = Value;
    fn visit<R: Request>(self) -> Value {
        response::<R>(self.0)
    }
}

#[test]
fn every_control_example_round_trips_through_its_type() {
    let examples = control_examples();
    // The method of the last request with each id: a response follows its request.
    let mut methods: std::collections::HashMap<u64, Method> = Default::default();
    let (mut requests, mut responses, mut refusals, mut notifications) = (0, 0, 0, 0);
    let mut seen_methods = std::collections::HashSet::new();
    let mut seen_events = std::collections::HashSet::new();
    for v in &examples {
        let back = if v.get("event").is_some() {
            notifications += 1;
            let n: Notification = serde_json::from_value(v.clone())
                .unwrap_or_else(|e| panic!("notification {v}: {e}"));
            seen_events.insert(n.event.name());
            round_trip::<Notification>(v)
        } else if v.get("method").is_some() {
            requests += 1;
            let frame: RequestFrame =
                serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("request {v}: {e}"));
            let method = Method::parse(&frame.method).expect("a documented method");
            methods.insert(frame.id, method);
            seen_methods.insert(method);
            method.visit(RequestRoundTrip(frame))
        } else {
            let mut r: Response =
                serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("response {v}: {e}"));
            if r.error.is_some() {
                refusals += 1;
            } else {
                responses += 1;
                let id = r.id.expect("an accepted response has an id");
                let method = *methods
                    .get(&id)
                    .unwrap_or_else(|| panic!("response {v} follows no request with its id"));
                let data = r.data.take().unwrap_or(Value::Null);
                let data = method.visit(ResponseRoundTrip(data));
                r.data = (!data.is_null()).then_some(data);
            }
            serde_json::to_value(&r).expect("serializes")
        };
        assert_eq!(&back, v, "does not round-trip");
    }
    assert!(requests >= 16 && responses >= 16 && refusals >= 1 && notifications >= 4);
    // Every method and every event has an example.
    for (name, m) in Method::ALL {
        assert!(seen_methods.contains(&m), "no example of {name}");
    }
    for name in [
        "ready",
        "icestatechange",
        "iceselectedtuplechange",
        "dtlsstatechange",
        "routerclose",
        "transportclose",
        "producerclose",
        "producerpause",
        "producerresume",
        "score",
        "layerschange",
        "producerchange",
        "workerclose",
        "dominantspeaker",
    ] {
        assert!(seen_events.contains(name), "no example of the {name} event");
    }
}
