//! The harness's core has a fixed seed, so fuzz inputs can name what it picked: no
//! placeholders. Protects the `Op::Srtp` path against a core that draws from OS entropy
//! again (its inputs would then name unknown SSRCs and explore only drops).

use super::*;

#[test]
fn every_session_picks_the_same_consumer_ssrcs() {
    let picked = consumer_ssrcs();
    assert_eq!(Session::new().consumer_ssrcs, picked);
    assert_ne!(picked[0], picked[1]);
}

#[test]
fn plaintext_rtcp_naming_a_consumer_reaches_it() {
    let mut s = Session::new();
    let mut pli = Vec::new();
    rtcp::write_pli(&mut pli, 0x5eed_0001, consumer_ssrcs()[0]);
    s.apply(Op::Srtp {
        peer: 1,
        rtcp: true,
        plain: pli,
    });
    s.deliver(None);
    let plis: u64 = s
        .core
        .consumers
        .iter()
        .map(|(_, c)| c.plis_received())
        .sum();
    assert_eq!(plis, 1, "{}", s.core.drops().to_json());
}
