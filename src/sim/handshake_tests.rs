//! Connection setup on bad paths: ICE and DTLS have to finish whichever of their
//! datagrams are lost.

use std::time::Duration;

use super::*;

/// Connects one peer on `seed` with the core's DTLS datagrams `lost` (by index) dropped
/// and `link` both ways; the virtual time it took, or None if not within `limit`.
fn connect_losing_dtls(
    seed: u64,
    lost: std::ops::Range<u32>,
    link: Link,
    limit: Duration,
) -> Option<Duration> {
    let mut sim = Sim::new(seed);
    let peer = sim.add_peer("client", |c| c);
    sim.set_uplink(peer, link);
    sim.set_downlink(peer, link);
    sim.lose_dtls_down(peer, lost);
    let router = sim.create_router();
    sim.connect(peer, &router);
    let start = sim.elapsed();
    let deadline = sim.now() + limit;
    while !sim.peer(peer).connected && sim.now() < deadline {
        sim.run_for(Duration::from_millis(50));
    }
    sim.peer(peer).connected.then(|| sim.elapsed() - start)
}

/// The core's DTLS flight 4 (ServerHello .. ServerHelloDone, its second DTLS datagram
/// after the HelloVerifyRequest) lost three times: the client repeats its ClientHello,
/// which stops rtc-dtls's retransmission timer without an answer. That used to hang the
/// handshake until ICE gave up; now the repeat is answered with the flight again.
#[test]
fn a_lost_server_flight_is_sent_again_when_the_client_repeats_its_hello() {
    let link = Link {
        delay: Duration::from_millis(50),
        ..Link::default()
    };
    for seed in 0..10 {
        let took = connect_losing_dtls(seed, 1..4, link, Duration::from_secs(20));
        assert!(
            took.is_some(),
            "seed {seed}: not connected within 20 s after flight 4 was lost three times"
        );
    }
}

/// 10 % loss each way with 50 ms delay over many seeds: every order of lost ICE and DTLS
/// datagrams the seeds give must still connect, well within the client's own handshake
/// timeout.
#[test]
fn the_handshake_finishes_through_loss_each_way() {
    let lossy = Link {
        delay: Duration::from_millis(50),
        loss: 0.10,
        ..Link::default()
    };
    for seed in 1000..1040 {
        let took = connect_losing_dtls(seed, 0..0, lossy, Duration::from_secs(30));
        assert!(
            took.is_some(),
            "seed {seed}: not connected after 30 s at 10 % loss"
        );
    }
}
