//! The minimal SDP the generator needs for Janus: a publisher's offer (Opus + VP8,
//! BUNDLE, rtcp-mux, sendonly) and a subscriber's answer to Janus's offer, plus reading
//! what matters back (ICE credentials, candidate, DTLS setup role, m-lines).

use std::net::SocketAddr;

use crate::media::{AUDIO_PT, VIDEO_PT};

/// What we read from the other side's SDP.
#[derive(Debug, Default, Clone)]
pub(crate) struct Parsed {
    pub(crate) ufrag: String,
    pub(crate) pwd: String,
    /// `a=setup:` value (of the first m-line that has one).
    pub(crate) setup: String,
    /// First UDP host candidate.
    pub(crate) candidate: Option<SocketAddr>,
    pub(crate) media: Vec<MLine>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct MLine {
    pub(crate) kind: String,
    pub(crate) port: u16,
    pub(crate) proto: String,
    pub(crate) mid: String,
    /// (payload type, encoding name) from `a=rtpmap`.
    pub(crate) rtpmap: Vec<(u8, String)>,
}

pub(crate) fn parse(sdp: &str) -> Parsed {
    let mut p = Parsed::default();
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            let f: Vec<&str> = m.split_whitespace().collect();
            p.media.push(MLine {
                kind: f.first().copied().unwrap_or_default().to_owned(),
                port: f.get(1).and_then(|x| x.parse().ok()).unwrap_or(0),
                proto: f.get(2).copied().unwrap_or_default().to_owned(),
                ..MLine::default()
            });
        } else if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
            if p.ufrag.is_empty() {
                p.ufrag = v.to_owned();
            }
        } else if let Some(v) = line.strip_prefix("a=ice-pwd:") {
            if p.pwd.is_empty() {
                p.pwd = v.to_owned();
            }
        } else if let Some(v) = line.strip_prefix("a=setup:") {
            if p.setup.is_empty() {
                p.setup = v.to_owned();
            }
        } else if let Some(v) = line.strip_prefix("a=mid:") {
            if let Some(m) = p.media.last_mut() {
                m.mid = v.to_owned();
            }
        } else if let Some(v) = line.strip_prefix("a=rtpmap:") {
            let mut it = v.split_whitespace();
            if let (Some(pt), Some(enc), Some(m)) = (it.next(), it.next(), p.media.last_mut()) {
                if let Ok(pt) = pt.parse() {
                    let name = enc
                        .split('/')
                        .next()
                        .unwrap_or_default()
                        .to_ascii_uppercase();
                    m.rtpmap.push((pt, name));
                }
            }
        } else if let Some(v) = line.strip_prefix("a=candidate:") {
            // foundation component transport priority ip port typ host
            let f: Vec<&str> = v.split_whitespace().collect();
            if p.candidate.is_none()
                && f.len() >= 8
                && f[2].eq_ignore_ascii_case("udp")
                && f[7] == "host"
            {
                p.candidate = format!("{}:{}", f[4], f[5]).parse().ok();
            }
        }
    }
    p
}

/// Credentials and certificate for our side of an SDP.
pub(crate) struct Local<'a> {
    pub(crate) addr: SocketAddr,
    pub(crate) ufrag: &'a str,
    pub(crate) pwd: &'a str,
    pub(crate) fingerprint: &'a str,
}

fn transport_lines(l: &Local<'_>, setup: &str) -> String {
    format!(
        "c=IN IP4 {ip}\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:{u}\r\na=ice-pwd:{p}\r\n\
         a=fingerprint:sha-256 {fp}\r\na=setup:{setup}\r\na=rtcp-mux\r\n\
         a=candidate:1 1 udp 2130706431 {ip} {port} typ host\r\na=end-of-candidates\r\n",
        ip = l.addr.ip(),
        port = l.addr.port(),
        u = l.ufrag,
        p = l.pwd,
        fp = l.fingerprint,
    )
}

fn header(mids: &[String]) -> String {
    format!(
        "v=0\r\no=- {} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {}\r\na=msid-semantic: WMS *\r\n",
        rand::random::<u32>(),
        mids.join(" ")
    )
}

/// A publisher's offer: audio (mid 0) and video (mid 1), sendonly, with our SSRCs.
pub(crate) fn publisher_offer(l: &Local<'_>, audio_ssrc: u32, video_ssrc: u32) -> String {
    let t = transport_lines(l, "actpass");
    let mut s = header(&["0".into(), "1".into()]);
    s += &format!(
        "m=audio 9 UDP/TLS/RTP/SAVPF {AUDIO_PT}\r\n{t}a=mid:0\r\na=sendonly\r\na=msid:lg a0\r\n\
         a=rtpmap:{AUDIO_PT} opus/48000/2\r\na=ssrc:{audio_ssrc} cname:loadgen\r\na=ssrc:{audio_ssrc} msid:lg a0\r\n"
    );
    s += &format!(
        "m=video 9 UDP/TLS/RTP/SAVPF {VIDEO_PT}\r\n{t}a=mid:1\r\na=sendonly\r\na=msid:lg v0\r\n\
         a=rtpmap:{VIDEO_PT} VP8/90000\r\na=rtcp-fb:{VIDEO_PT} nack pli\r\na=rtcp-fb:{VIDEO_PT} ccm fir\r\n\
         a=ssrc:{video_ssrc} cname:loadgen\r\na=ssrc:{video_ssrc} msid:lg v0\r\n"
    );
    s
}

/// A subscriber's answer to `offer`: every audio/video m-line accepted recvonly with its
/// Opus / VP8 payload type, anything else rejected. We take the DTLS client role.
pub(crate) fn subscriber_answer(l: &Local<'_>, offer: &Parsed) -> String {
    let t = transport_lines(l, "active");
    let accepted: Vec<String> = offer
        .media
        .iter()
        .filter(|m| pick_pt(m).is_some())
        .map(|m| m.mid.clone())
        .collect();
    let mut s = header(&accepted);
    for m in &offer.media {
        match pick_pt(m) {
            Some((pt, enc)) => {
                let rate = if enc == "OPUS" {
                    "opus/48000/2"
                } else {
                    "VP8/90000"
                };
                s += &format!(
                    "m={} 9 UDP/TLS/RTP/SAVPF {pt}\r\n{t}a=mid:{}\r\na=recvonly\r\na=rtpmap:{pt} {rate}\r\n",
                    m.kind, m.mid
                );
                if enc == "VP8" {
                    s += &format!("a=rtcp-fb:{pt} nack pli\r\n");
                }
            }
            None => {
                s += &format!(
                    "m={} 0 {} 0\r\nc=IN IP4 0.0.0.0\r\na=mid:{}\r\na=inactive\r\n",
                    m.kind, m.proto, m.mid
                );
            }
        }
    }
    s
}

fn pick_pt(m: &MLine) -> Option<(u8, &'static str)> {
    if m.port == 0 {
        return None;
    }
    let want = match m.kind.as_str() {
        "audio" => "OPUS",
        "video" => "VP8",
        _ => return None,
    };
    m.rtpmap
        .iter()
        .find(|(_, e)| e == want)
        .map(|(pt, _)| (*pt, want))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_mirrors_offer() {
        let l = Local {
            addr: "10.99.0.2:4000".parse().unwrap(),
            ufrag: "uf",
            pwd: "pw",
            fingerprint: "AA:BB",
        };
        let offer = publisher_offer(&l, 1, 2);
        let p = parse(&offer);
        assert_eq!(p.ufrag, "uf");
        assert_eq!(p.setup, "actpass");
        assert_eq!(p.candidate, Some(l.addr));
        assert_eq!(p.media.len(), 2);
        assert_eq!(p.media[1].rtpmap, vec![(VIDEO_PT, "VP8".to_owned())]);
        let ans = parse(&subscriber_answer(&l, &p));
        assert_eq!(ans.setup, "active");
        assert_eq!(ans.media.len(), 2);
        assert_eq!(ans.media[0].mid, "0");
    }
}
