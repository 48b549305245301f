//! The worker core's randomness is injected: two cores given the same seed make the same
//! choices (ids, ICE credentials, SSRCs), so a fuzz input or a simulation replays
//! exactly; another seed gives other choices. Protects the injection of `rand` into
//! `WorkerCore::new` against a call site that draws from OS entropy again.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;
use sfu::channel::parse_request;
use sfu::dtls::DtlsIdentity;
use sfu::worker::core::{CoreConfig, WorkerCore};
use sfu_control::requests::{RouterCreate, TransportCreate};
use sfu_control::responses::{RouterCreated, TransportCreated};
use sfu_control::{decode_response, request_frame, Request};

/// What a core chose while setting up a router and a transport.
fn choices(identity: &DtlsIdentity, seed: u64) -> (RouterCreated, TransportCreated) {
    let local: SocketAddr = "127.0.0.1:40000".parse().expect("address");
    let cfg = CoreConfig {
        index: 0,
        workers: 1,
        local,
        announced: local,
        also_announced: Vec::new(),
        tcp_port: None,
    };
    let now = Instant::now();
    let rng = StdRng::seed_from_u64(seed);
    let mut core = WorkerCore::new(cfg, identity.clone(), rng, now, SystemTime::now());
    let router = call(&mut core, now, &RouterCreate::default());
    let transport = call(
        &mut core,
        now,
        &TransportCreate {
            router_id: router.router_id.clone(),
            app_data: Value::Null,
        },
    );
    (router, transport)
}

/// One request through the control socket's parsing and the core's dispatch; it must
/// be accepted.
fn call<R: Request>(core: &mut WorkerCore, now: Instant, request: &R) -> R::Response {
    let frame = request_frame(1, request).expect("a typed request serializes");
    let body = serde_json::to_vec(&frame).expect("a frame serializes");
    let req = parse_request(&body).expect("the daemon parses its own protocol");
    let data = core
        .handle_request(now, 1, req)
        .into_result()
        .unwrap_or_else(|e| panic!("{}: {e}", R::METHOD));
    decode_response::<R>(data).expect("the response has the method's type")
}

#[test]
fn the_same_seed_makes_the_same_choices() {
    let identity = DtlsIdentity::generate().expect("certificate");
    let (router, transport) = choices(&identity, 7);
    let (same_router, same_transport) = choices(&identity, 7);
    assert_eq!(router, same_router);
    assert_eq!(transport, same_transport);
    let (other_router, other_transport) = choices(&identity, 8);
    assert_ne!(router.router_id, other_router.router_id);
    assert_ne!(transport.transport_id, other_transport.transport_id);
    assert_ne!(
        transport.ice_parameters.username_fragment,
        other_transport.ice_parameters.username_fragment
    );
}
