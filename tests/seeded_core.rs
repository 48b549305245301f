//! The worker core's randomness is injected: two cores given the same seed make the same
//! choices (ids, ICE credentials, SSRCs), so a fuzz input or a simulation replays
//! exactly; another seed gives other choices. Protects the injection of `rand` into
//! `WorkerCore::new` against a call site that draws from OS entropy again.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};
use sfu::channel::RequestFrame;
use sfu::dtls::DtlsIdentity;
use sfu::worker::core::{CoreConfig, WorkerCore};

/// What a core chose while setting up a router and a transport.
fn choices(identity: &DtlsIdentity, seed: u64) -> Value {
    let local: SocketAddr = "127.0.0.1:40000".parse().expect("address");
    let cfg = CoreConfig {
        index: 0,
        workers: 1,
        local,
        announced: local,
    };
    let now = Instant::now();
    let rng = StdRng::seed_from_u64(seed);
    let mut core = WorkerCore::new(cfg, identity.clone(), rng, now, SystemTime::now());
    let mut call = |method: &str, target: Option<String>, data: Value| {
        let req = RequestFrame {
            id: 1,
            method: method.into(),
            target,
            data,
        };
        let resp = core.handle_request(now, 1, req);
        assert_eq!(resp.accepted, Some(true), "{method}: {:?}", resp.reason);
        resp.data.unwrap_or_default()
    };
    let router = call("router.create", None, Value::Null);
    let router_id = router["routerId"].as_str().map(str::to_owned);
    let transport = call("transport.create", router_id, json!({}));
    json!({ "router": router, "transport": transport })
}

#[test]
fn the_same_seed_makes_the_same_choices() {
    let identity = DtlsIdentity::generate().expect("certificate");
    let a = choices(&identity, 7);
    assert_eq!(a, choices(&identity, 7));
    let other = choices(&identity, 8);
    for key in ["/router/routerId", "/transport/transportId"] {
        assert_ne!(a.pointer(key), other.pointer(key), "{key}");
    }
    let ufrag = "/transport/iceParameters/usernameFragment";
    assert!(
        a.pointer(ufrag).is_some(),
        "the transport reports its ufrag"
    );
    assert_ne!(a.pointer(ufrag), other.pointer(ufrag));
}
