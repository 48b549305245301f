//! Requests are built with the stun crate the way browsers build them, and responses are
//! verified with it too, so these tests do not only agree with our own parser.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stun::agent::TransactionId;
use stun::attributes::{
    AttrType, ATTR_ICE_CONTROLLED, ATTR_ICE_CONTROLLING, ATTR_PRIORITY, ATTR_SOFTWARE,
    ATTR_USERNAME, ATTR_USE_CANDIDATE,
};
use stun::error_code::{ErrorCodeAttribute, CODE_ROLE_CONFLICT};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{
    Getter, Message, MessageType, Setter, BINDING_ERROR, BINDING_REQUEST, BINDING_SUCCESS,
    CLASS_INDICATION, CLASS_REQUEST, METHOD_ALLOCATE, METHOD_BINDING,
};
use stun::textattrs::TextAttribute;
use stun::xoraddr::XorMappedAddress;

use super::*;

/// libwebrtc's GOOG-NETWORK-INFO: comprehension-optional, must be ignored.
const ATTR_GOOG_NETWORK_INFO: AttrType = AttrType(0xC057);
const REMOTE_UFRAG: &str = "rEmO";
const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)), 50_000);
const CLIENT2: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)), 61_000);

fn creds() -> IceCredentials {
    IceCredentials::generate(&mut StdRng::seed_from_u64(7))
}

/// Knobs for a browser-style Binding request.
#[derive(Clone)]
struct Req {
    username: Option<String>,
    pwd: Option<String>,
    fingerprint: bool,
    use_candidate: bool,
    controlled: bool,
    typ: MessageType,
    tid: TransactionId,
}

impl Req {
    /// What Chrome sends as controlling agent (without nomination).
    fn browser(local: &IceCredentials) -> Self {
        Self {
            username: Some(format!("{}:{REMOTE_UFRAG}", local.ufrag)),
            pwd: Some(local.pwd.clone()),
            fingerprint: true,
            use_candidate: false,
            controlled: false,
            typ: BINDING_REQUEST,
            tid: TransactionId::new(),
        }
    }

    fn nominate(mut self) -> Self {
        self.use_candidate = true;
        self
    }

    /// Encodes without MESSAGE-INTEGRITY / FINGERPRINT so tests can append after them.
    fn body(&self) -> Message {
        let mut m = Message::new();
        m.typ = self.typ;
        m.transaction_id = self.tid;
        m.write_header();
        if let Some(username) = &self.username {
            TextAttribute::new(ATTR_USERNAME, username.clone())
                .add_to(&mut m)
                .unwrap();
        }
        m.add(ATTR_GOOG_NETWORK_INFO, &[0, 1, 0, 10]);
        if self.controlled {
            m.add(
                ATTR_ICE_CONTROLLED,
                &0x1122_3344_5566_7788_u64.to_be_bytes(),
            );
        } else {
            m.add(
                ATTR_ICE_CONTROLLING,
                &0x1122_3344_5566_7788_u64.to_be_bytes(),
            );
        }
        if self.use_candidate {
            m.add(ATTR_USE_CANDIDATE, &[]);
        }
        m.add(ATTR_PRIORITY, &0x6e7f_1eff_u32.to_be_bytes());
        m
    }

    fn build(&self) -> Vec<u8> {
        let mut m = self.body();
        if let Some(pwd) = &self.pwd {
            MessageIntegrity::new_short_term_integrity(pwd.clone())
                .add_to(&mut m)
                .unwrap();
        }
        if self.fingerprint {
            FINGERPRINT.add_to(&mut m).unwrap();
        }
        m.raw
    }
}

/// Decodes and independently verifies a response with the stun crate.
fn verify_response(out: &[u8], pwd: &str, tid: TransactionId) -> Message {
    let mut m = Message::new();
    m.unmarshal_binary(out).unwrap();
    assert_eq!(m.transaction_id, tid);
    MessageIntegrity::new_short_term_integrity(pwd.to_owned())
        .check(&mut m)
        .unwrap();
    FINGERPRINT.check(&m).unwrap();
    m
}

fn xor_mapped(m: &Message) -> SocketAddr {
    let mut xma = XorMappedAddress::default();
    xma.get_from(m).unwrap();
    SocketAddr::new(xma.ip, xma.port)
}

fn events(ice: &mut IceLite) -> Vec<IceEvent> {
    std::iter::from_fn(|| ice.poll_event()).collect()
}

/// Runs a request that must be answered with a success response.
fn ok_check(ice: &mut IceLite, now: Instant, from: SocketAddr, req: &Req) {
    let mut out = Vec::new();
    assert_eq!(ice.handle_stun(now, from, &req.build(), &mut out), Ok(true));
    let pwd = ice.local_credentials().pwd.clone();
    let m = verify_response(&out, &pwd, req.tid);
    assert_eq!(m.typ, BINDING_SUCCESS);
    assert_eq!(xor_mapped(&m), from);
}

#[test]
fn generated_credentials_are_ice_chars() {
    let mut rng = StdRng::seed_from_u64(1);
    let a = IceCredentials::generate(&mut rng);
    let b = IceCredentials::generate(&mut rng);
    assert_eq!(a.ufrag.len(), UFRAG_LEN);
    assert_eq!(a.pwd.len(), PWD_LEN);
    assert_ne!(a, b);
    for c in a.ufrag.bytes().chain(a.pwd.bytes()) {
        assert!(c.is_ascii_alphanumeric() || c == b'+' || c == b'/', "{c}");
    }
    assert!(
        !format!("{a:?}").contains(&a.pwd),
        "Debug leaks the password"
    );
}

#[test]
fn valid_check_gets_verifiable_response() {
    let local = creds();
    let mut ice = IceLite::new(local.clone());
    let req = Req::browser(&local);
    let mut out = vec![0xAA; 7]; // stale content must be cleared
    let now = Instant::now();
    assert_eq!(
        ice.handle_stun(now, CLIENT, &req.build(), &mut out),
        Ok(true)
    );
    let m = verify_response(&out, &local.pwd, req.tid);
    assert_eq!(m.typ, BINDING_SUCCESS);
    assert_eq!(xor_mapped(&m), CLIENT);
    // Our own parser agrees (FINGERPRINT last, layout sound).
    assert!(wire::Frame::parse(&out).is_some());
    // A check without USE-CANDIDATE nominates nothing.
    assert_eq!(ice.state(), IceState::New);
    assert_eq!(ice.selected(), None);
    assert_eq!(events(&mut ice), []);
    assert_eq!(ice.poll_timeout(), None);
}

#[test]
fn ipv6_and_v4_mapped_sources() {
    let local = creds();
    let mut ice = IceLite::new(local.clone());
    let now = Instant::now();
    let v6: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
    ok_check(&mut ice, now, v6, &Req::browser(&local));

    // A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d; the peer must learn its
    // IPv4 address.
    let mapped = SocketAddr::new(
        IpAddr::V6(Ipv4Addr::new(203, 0, 113, 7).to_ipv6_mapped()),
        50_000,
    );
    let req = Req::browser(&local).nominate();
    let mut out = Vec::new();
    assert_eq!(
        ice.handle_stun(now, mapped, &req.build(), &mut out),
        Ok(true)
    );
    let m = verify_response(&out, &local.pwd, req.tid);
    assert_eq!(xor_mapped(&m), CLIENT);
    // The selected tuple stays in the caller's socket addressing.
    assert_eq!(ice.selected(), Some(mapped));
    assert!(matches!(mapped.ip(), IpAddr::V6(ip) if ip != Ipv6Addr::UNSPECIFIED));
}

fn expect_err(ice: &mut IceLite, datagram: &[u8], err: StunError) {
    let mut out = vec![1, 2, 3];
    assert_eq!(
        ice.handle_stun(Instant::now(), CLIENT, datagram, &mut out),
        Err(err)
    );
    assert!(out.is_empty(), "{err:?} must not produce a response");
    assert_eq!(events(ice), []);
    assert_eq!(ice.state(), IceState::New);
    assert_eq!(ice.selected(), None);
}

#[test]
fn rejects_bad_credentials() {
    let local = creds();
    let mut ice = IceLite::new(local.clone());
    let good = Req::browser(&local).nominate();

    let mut r = good.clone();
    r.username = Some(format!("someoneElse:{REMOTE_UFRAG}"));
    expect_err(&mut ice, &r.build(), StunError::WrongUfrag);
    r.username = Some(format!("{}x:{REMOTE_UFRAG}", local.ufrag));
    expect_err(&mut ice, &r.build(), StunError::WrongUfrag);
    r.username = Some(local.ufrag.clone()); // no ':'
    expect_err(&mut ice, &r.build(), StunError::WrongUfrag);
    r.username = Some(format!("{}:", local.ufrag)); // empty remote ufrag
    expect_err(&mut ice, &r.build(), StunError::WrongUfrag);
    r.username = Some(format!(":{}", local.ufrag));
    expect_err(&mut ice, &r.build(), StunError::WrongUfrag);

    let mut r = good.clone();
    r.username = None;
    expect_err(&mut ice, &r.build(), StunError::MissingUsername);

    let mut r = good.clone();
    r.pwd = Some("wrongwrongwrongwrongwrong".into());
    expect_err(&mut ice, &r.build(), StunError::BadIntegrity);

    let mut r = good.clone();
    r.pwd = None;
    expect_err(&mut ice, &r.build(), StunError::MissingIntegrity);

    let mut r = good.clone();
    r.fingerprint = false;
    expect_err(&mut ice, &r.build(), StunError::MissingFingerprint);

    // Nothing above disturbed the agent: the good request still works.
    ok_check(&mut ice, Instant::now(), CLIENT, &good);
}

#[test]
fn rejects_tampering_and_truncation() {
    let local = creds();
    let mut ice = IceLite::new(local.clone());
    let good = Req::browser(&local).nominate().build();

    // Flipped FINGERPRINT value.
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 1;
    expect_err(&mut ice, &bad, StunError::BadFingerprint);

    // Flipped PRIORITY byte: FINGERPRINT (covering everything) catches it first.
    let mut bad = good.clone();
    let prio = bad.len() - 8 - 24 - 1;
    bad[prio] ^= 0x40;
    expect_err(&mut ice, &bad, StunError::BadFingerprint);

    // Same tampering with FINGERPRINT recomputed: MESSAGE-INTEGRITY catches it.
    let mut m = Message::new();
    m.unmarshal_binary(&bad).unwrap();
    let fp_at = m.raw.len() - 8;
    m.raw.truncate(fp_at);
    m.length -= 8;
    m.attributes.0.pop();
    m.write_length();
    FINGERPRINT.add_to(&mut m).unwrap();
    expect_err(&mut ice, &m.raw, StunError::BadIntegrity);

    // Every truncation is structurally broken (length field disagrees with size).
    for len in 0..good.len() {
        expect_err(&mut ice, &good[..len], StunError::Malformed);
    }
    // So are trailing bytes.
    let mut long = good.clone();
    long.extend_from_slice(&[0; 4]);
    expect_err(&mut ice, &long, StunError::Malformed);

    // An attribute after FINGERPRINT.
    let mut m = Req::browser(&local).body();
    MessageIntegrity::new_short_term_integrity(local.pwd.clone())
        .add_to(&mut m)
        .unwrap();
    FINGERPRINT.add_to(&mut m).unwrap();
    m.add(ATTR_SOFTWARE, b"x");
    expect_err(&mut ice, &m.raw, StunError::Malformed);

    // Wrong-size USE-CANDIDATE, properly signed.
    let mut m = Req::browser(&local).body();
    m.add(ATTR_USE_CANDIDATE, &[1]);
    MessageIntegrity::new_short_term_integrity(local.pwd.clone())
        .add_to(&mut m)
        .unwrap();
    FINGERPRINT.add_to(&mut m).unwrap();
    expect_err(&mut ice, &m.raw, StunError::Malformed);
}

#[test]
fn other_message_types() {
    let local = creds();
    let mut ice = IceLite::new(local.clone());

    let mut r = Req::browser(&local);
    r.typ = MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST);
    expect_err(&mut ice, &r.build(), StunError::NotBindingRequest);

    // Indications and responses are dropped quietly, whatever their content.
    for typ in [
        MessageType::new(METHOD_BINDING, CLASS_INDICATION),
        BINDING_SUCCESS,
        BINDING_ERROR,
    ] {
        let mut r = Req::browser(&local).nominate();
        r.typ = typ;
        r.pwd = None;
        let mut out = vec![9];
        assert_eq!(
            ice.handle_stun(Instant::now(), CLIENT, &r.build(), &mut out),
            Ok(false)
        );
        assert!(out.is_empty());
    }
    assert_eq!(events(&mut ice), []);
    assert_eq!(ice.state(), IceState::New);
}

#[test]
fn use_candidate_after_integrity_is_ignored() {
    // An on-path attacker can append attributes after MESSAGE-INTEGRITY without the key;
    // RFC 5389 section 15.4 says to ignore them, so this must not nominate.
    let local = creds();
    let mut ice = IceLite::new(local.clone());
    let req = Req::browser(&local);
    let mut m = req.body();
    MessageIntegrity::new_short_term_integrity(local.pwd.clone())
        .add_to(&mut m)
        .unwrap();
    m.add(ATTR_USE_CANDIDATE, &[]);
    FINGERPRINT.add_to(&mut m).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        ice.handle_stun(Instant::now(), CLIENT, &m.raw, &mut out),
        Ok(true)
    );
    verify_response(&out, &local.pwd, req.tid);
    assert_eq!(ice.selected(), None);
    assert_eq!(events(&mut ice), []);
}

#[test]
fn nomination_connects_once() {
    let local = creds();
    let mut ice = IceLite::new(local.clone());
    let t0 = Instant::now();

    ok_check(&mut ice, t0, CLIENT, &Req::browser(&local));
    assert_eq!(events(&mut ice), []);

    ok_check(&mut ice, t0, CLIENT, &Req::browser(&local).nominate());
    assert_eq!(ice.state(), IceState::Connected);
    assert_eq!(ice.selected(), Some(CLIENT));
    assert_eq!(
        events(&mut ice),
        [
            IceEvent::StateChanged(IceState::Connected),
            IceEvent::SelectedTupleChanged(CLIENT)
        ]
    );
    assert_eq!(ice.poll_timeout(), Some(t0 + CONSENT_TIMEOUT));

    // Renomination of the same tuple is not news.
    let t1 = t0 + Duration::from_secs(2);
    ok_check(&mut ice, t1, CLIENT, &Req::browser(&local).nominate());
    assert_eq!(events(&mut ice), []);
    assert_eq!(ice.poll_timeout(), Some(t1 + CONSENT_TIMEOUT));
}

#[test]
fn client_migration() {
    let local = creds();
    let mut ice = IceLite::new(local.clone());
    let t0 = Instant::now();
    ok_check(&mut ice, t0, CLIENT, &Req::browser(&local).nominate());
    events(&mut ice);

    // A plain check from elsewhere is answered but changes nothing.
    let t1 = t0 + Duration::from_secs(5);
    ok_check(&mut ice, t1, CLIENT2, &Req::browser(&local));
    assert_eq!(ice.selected(), Some(CLIENT));
    assert_eq!(events(&mut ice), []);
    assert_eq!(ice.poll_timeout(), Some(t0 + CONSENT_TIMEOUT));

    // Nominated from the new address: switch, still Connected.
    let t2 = t0 + Duration::from_secs(6);
    ok_check(&mut ice, t2, CLIENT2, &Req::browser(&local).nominate());
    assert_eq!(ice.selected(), Some(CLIENT2));
    assert_eq!(ice.state(), IceState::Connected);
    assert_eq!(events(&mut ice), [IceEvent::SelectedTupleChanged(CLIENT2)]);
    assert_eq!(ice.poll_timeout(), Some(t2 + CONSENT_TIMEOUT));

    // Checks on the old tuple no longer refresh consent.
    ok_check(
        &mut ice,
        t2 + Duration::from_secs(10),
        CLIENT,
        &Req::browser(&local),
    );
    assert_eq!(ice.poll_timeout(), Some(t2 + CONSENT_TIMEOUT));
}

#[test]
fn consent_expires_after_30s_and_recovers_on_nomination() {
    let local = creds();
    let mut ice = IceLite::new(local.clone());
    let t0 = Instant::now();
    let secs = |s: u64| t0 + Duration::from_secs(s);

    ok_check(&mut ice, t0, CLIENT, &Req::browser(&local).nominate());
    events(&mut ice);
    ice.handle_timeout(t0 + CONSENT_TIMEOUT - Duration::from_millis(1));
    assert_eq!(ice.state(), IceState::Connected);

    // A plain check on the selected tuple refreshes; one from elsewhere does not.
    ok_check(&mut ice, secs(20), CLIENT, &Req::browser(&local));
    ok_check(&mut ice, secs(40), CLIENT2, &Req::browser(&local));
    assert_eq!(ice.poll_timeout(), Some(secs(50)));
    ice.handle_timeout(secs(49));
    assert_eq!(events(&mut ice), []);

    ice.handle_timeout(secs(50));
    assert_eq!(ice.state(), IceState::Disconnected);
    assert_eq!(
        events(&mut ice),
        [IceEvent::StateChanged(IceState::Disconnected)]
    );
    assert_eq!(ice.poll_timeout(), None);
    assert_eq!(ice.selected(), Some(CLIENT));
    ice.handle_timeout(secs(500));
    assert_eq!(events(&mut ice), []);

    // A plain check is still answered but does not revive consent.
    ok_check(&mut ice, secs(55), CLIENT, &Req::browser(&local));
    assert_eq!(ice.state(), IceState::Disconnected);
    assert_eq!(events(&mut ice), []);

    // A nominated one does; same tuple, so no tuple event.
    ok_check(&mut ice, secs(60), CLIENT, &Req::browser(&local).nominate());
    assert_eq!(ice.state(), IceState::Connected);
    assert_eq!(
        events(&mut ice),
        [IceEvent::StateChanged(IceState::Connected)]
    );
    assert_eq!(ice.poll_timeout(), Some(secs(90)));
}

#[test]
fn late_check_does_not_extend_lapsed_consent() {
    // The caller may not have called handle_timeout yet; consent is still gone.
    let local = creds();
    let mut ice = IceLite::new(local.clone());
    let t0 = Instant::now();
    ok_check(&mut ice, t0, CLIENT, &Req::browser(&local).nominate());
    events(&mut ice);
    ok_check(
        &mut ice,
        t0 + Duration::from_secs(31),
        CLIENT,
        &Req::browser(&local),
    );
    assert_eq!(ice.state(), IceState::Disconnected);
    assert_eq!(
        events(&mut ice),
        [IceEvent::StateChanged(IceState::Disconnected)]
    );
}

#[test]
fn nomination_from_new_address_after_disconnect() {
    let local = creds();
    let mut ice = IceLite::new(local.clone());
    let t0 = Instant::now();
    ok_check(&mut ice, t0, CLIENT, &Req::browser(&local).nominate());
    ice.handle_timeout(t0 + CONSENT_TIMEOUT);
    events(&mut ice);
    ok_check(
        &mut ice,
        t0 + Duration::from_secs(45),
        CLIENT2,
        &Req::browser(&local).nominate(),
    );
    assert_eq!(
        events(&mut ice),
        [
            IceEvent::StateChanged(IceState::Connected),
            IceEvent::SelectedTupleChanged(CLIENT2)
        ]
    );
}

fn check_role_conflict(out: &[u8], pwd: &str, tid: TransactionId) {
    let m = verify_response(out, pwd, tid);
    assert_eq!(m.typ, BINDING_ERROR);
    let mut code = ErrorCodeAttribute::default();
    code.get_from(&m).unwrap();
    assert!(code.code == CODE_ROLE_CONFLICT, "code {}", code.code.0);
}

#[test]
fn controlled_peer_gets_487() {
    let local = creds();
    let mut ice = IceLite::new(local.clone());
    let mut req = Req::browser(&local).nominate();
    req.controlled = true;
    let mut out = Vec::new();
    assert_eq!(
        ice.handle_stun(Instant::now(), CLIENT, &req.build(), &mut out),
        Ok(true)
    );
    check_role_conflict(&out, &local.pwd, req.tid);
    // The request is not processed further: no nomination.
    assert_eq!(ice.selected(), None);
    assert_eq!(ice.state(), IceState::New);
    assert_eq!(events(&mut ice), []);
}

/// RFC 5769 section 2.1 sample request.
const RFC5769_REQUEST: [u8; 108] = [
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
    0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
];
const RFC5769_PWD: &str = "VOkJxbRl1RmTxUk/WvJxBt";

#[test]
fn rfc5769_sample_request() {
    assert_eq!(local_ufrag_of(&RFC5769_REQUEST), Some("evtj"));

    // The vector itself is right (checked with the stun crate alone).
    let mut m = Message::new();
    m.unmarshal_binary(&RFC5769_REQUEST).unwrap();
    MessageIntegrity::new_short_term_integrity(RFC5769_PWD.into())
        .check(&mut m)
        .unwrap();
    FINGERPRINT.check(&m).unwrap();

    // The sample's sender is ICE-CONTROLLED, so a verified request earns a 487; anything
    // that failed to parse or verify would be an Err instead.
    let local = IceCredentials {
        ufrag: "evtj".into(),
        pwd: RFC5769_PWD.into(),
    };
    let mut ice = IceLite::new(local.clone());
    let mut out = Vec::new();
    assert_eq!(
        ice.handle_stun(Instant::now(), CLIENT, &RFC5769_REQUEST, &mut out),
        Ok(true)
    );
    check_role_conflict(&out, RFC5769_PWD, m.transaction_id);

    let mut ice = IceLite::new(IceCredentials {
        pwd: "VOkJxbRl1RmTxUk/WvJxBT".into(),
        ..local.clone()
    });
    assert_eq!(
        ice.handle_stun(Instant::now(), CLIENT, &RFC5769_REQUEST, &mut out),
        Err(StunError::BadIntegrity)
    );
    let mut ice = IceLite::new(IceCredentials {
        ufrag: "evtJ".into(),
        ..local
    });
    assert_eq!(
        ice.handle_stun(Instant::now(), CLIENT, &RFC5769_REQUEST, &mut out),
        Err(StunError::WrongUfrag)
    );
}

/// Hand-assembles a message: header with the given type and length field, then `body`.
fn raw(typ: u16, length: u16, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&typ.to_be_bytes());
    v.extend_from_slice(&length.to_be_bytes());
    v.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    v.extend_from_slice(&[7; 12]);
    v.extend_from_slice(body);
    v
}

/// A message whose length field matches `body`.
fn msg(body: &[u8]) -> Vec<u8> {
    raw(0x0001, u16::try_from(body.len()).unwrap(), body)
}

fn attr(typ: u16, value: &[u8], padding: usize) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&typ.to_be_bytes());
    v.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
    v.extend_from_slice(value);
    v.extend(std::iter::repeat_n(0, padding));
    v
}

#[test]
fn local_ufrag_of_good_inputs() {
    let local = creds();
    let req = Req::browser(&local).build();
    assert_eq!(local_ufrag_of(&req), Some(local.ufrag.as_str()));

    // Odd lengths with proper padding; USERNAME not first.
    let mut body = attr(0x8022, b"abcde", 3);
    body.extend(attr(0x0006, b"ab:c", 0));
    assert_eq!(local_ufrag_of(&msg(&body)), Some("ab"));
    let body = attr(0x0006, b"abc:defgh", 3);
    assert_eq!(local_ufrag_of(&msg(&body)), Some("abc"));
    // Only the first ':' splits.
    let body = attr(0x0006, b"x:y:z", 3);
    assert_eq!(local_ufrag_of(&msg(&body)), Some("x"));
    // Not restricted to requests: routing only needs the ufrag.
    let body = attr(0x0006, b"ab:cd", 3);
    assert_eq!(local_ufrag_of(&raw(0x0011, 12, &body)), Some("ab"));
}

#[test]
fn local_ufrag_of_hostile_inputs() {
    let user = attr(0x0006, b"ab:cd", 3); // 12 bytes
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("short header", msg(&user)[..19].to_vec()),
        ("header only", msg(&[])),
        ("bad cookie", {
            let mut v = msg(&user);
            v[4] = 0;
            v
        }),
        ("top bits set", raw(0xC001, 12, &user)),
        ("length past end", raw(0x0001, 16, &user)),
        ("length short of end", raw(0x0001, 8, &user)),
        ("length not multiple of 4", raw(0x0001, 10, &user[..10])),
        ("trailing bytes", {
            let mut v = msg(&user);
            v.push(0);
            v
        }),
        (
            "truncated attribute header",
            raw(0x0001, 4, &[0x00, 0x06, 0x00, 0x09]),
        ),
        (
            "value past end",
            msg(&[0x00, 0x06, 0x00, 0x09, b'a', b':', b'b', b'c']),
        ),
        (
            "odd length, padding missing",
            raw(0x0001, 12, &attr(0x0006, b"abc:defgh", 0)),
        ),
        (
            "u16::MAX length",
            msg(&[0x00, 0x06, 0xFF, 0xFF, b'a', b':', b'b', 0]),
        ),
        ("attr past end after username", {
            let mut b = user.clone();
            b.extend_from_slice(&[0x80, 0x22, 0x00, 0x08, 1, 2, 3, 4]);
            msg(&b)
        }),
        ("no colon", msg(&attr(0x0006, b"abcd", 0))),
        ("empty local", msg(&attr(0x0006, b":abc", 0))),
        ("empty username", msg(&attr(0x0006, b"", 0))),
        (
            "not utf-8",
            msg(&attr(0x0006, &[0xFF, 0xFE, b':', b'a'], 0)),
        ),
        ("no username", msg(&attr(0x8022, b"abcd", 0))),
        ("username after integrity", {
            let mut b = attr(0x0008, &[0; 20], 0);
            b.extend(attr(0x0006, b"ab:cd", 3));
            msg(&b)
        }),
        (
            "rtp-looking",
            vec![0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
    ];
    for (name, input) in cases {
        assert_eq!(local_ufrag_of(&input), None, "{name}");
        // The full path rejects them too, without a response.
        let mut ice = IceLite::new(creds());
        let mut out = Vec::new();
        let result = ice.handle_stun(Instant::now(), CLIENT, &input, &mut out);
        assert!(matches!(result, Err(_) | Ok(false)), "{name}: {result:?}");
        assert!(out.is_empty(), "{name}");
    }
}

#[test]
fn random_garbage_never_panics() {
    let local = creds();
    let mut ice = IceLite::new(local.clone());
    let mut rng = StdRng::seed_from_u64(0x5EED_01CE);
    let valid: Vec<Vec<u8>> = vec![
        Req::browser(&local).build(),
        Req::browser(&local).nominate().build(),
        {
            let mut r = Req::browser(&local);
            r.controlled = true;
            r.build()
        },
        RFC5769_REQUEST.to_vec(),
    ];
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut answered = 0;
    for i in 0..20_000_u64 {
        let mut input = match rng.gen_range(0..4) {
            // Pure noise, sometimes with a STUN-looking header.
            0 => {
                let len = rng.gen_range(0..160);
                let mut v: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                if v.len() >= 20 && rng.gen_bool(0.7) {
                    v[0] &= 0x3F;
                    v[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
                    if rng.gen_bool(0.7) {
                        let body = u16::try_from(v.len() - 20).unwrap() & !3;
                        v[2..4].copy_from_slice(&body.to_be_bytes());
                        v.truncate(20 + usize::from(body));
                    }
                }
                v
            }
            // Byte flips in a valid request.
            1 => {
                let mut v = valid[rng.gen_range(0..valid.len())].clone();
                for _ in 0..rng.gen_range(1..4) {
                    let at = rng.gen_range(0..v.len());
                    v[at] = rng.gen();
                }
                v
            }
            // Truncated or extended valid request, length field patched to match.
            2 => {
                let mut v = valid[rng.gen_range(0..valid.len())].clone();
                let new_len = rng.gen_range(20..v.len() + 16);
                v.resize(new_len, rng.gen());
                if rng.gen_bool(0.8) {
                    let body = u16::try_from(new_len - 20).unwrap();
                    v[2..4].copy_from_slice(&body.to_be_bytes());
                }
                v
            }
            // Attribute length fields corrupted.
            _ => {
                let mut v = valid[rng.gen_range(0..valid.len())].clone();
                let at = 20 + 4 * rng.gen_range(0..(v.len() - 20) / 4) + 2;
                v[at..at + 2].copy_from_slice(&rng.gen::<u16>().to_be_bytes());
                v
            }
        };
        if rng.gen_bool(0.01) {
            input.clear();
        }
        let _ = local_ufrag_of(&input);
        let now = t0 + Duration::from_millis(i * 10);
        match ice.handle_stun(now, CLIENT, &input, &mut out) {
            Ok(true) => {
                answered += 1;
                assert!(wire::Frame::parse(&out).is_some());
            }
            Ok(false) | Err(_) => assert!(out.is_empty()),
        }
        ice.handle_timeout(now);
        while ice.poll_event().is_some() {}
    }
    // Sanity: the corpus is not all rejected, so the deep paths ran.
    assert!(answered > 0);
}
