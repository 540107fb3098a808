//! Test harness: an `RtcHost` on a real UDP socket, str0m clients on their own
//! sockets (full ICE, like a browser), and a loop that shuttles datagrams and
//! timeouts between them. All on 127.0.0.1, single-threaded.

use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec as S0Codec;
use str0m::media::{
    Direction as S0Direction, Frequency, MediaData, MediaKind as S0Kind, MediaTime, Mid,
};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

use crate::{HostOutput, RtcHost, RtcHostConfig, SessionEvent, SessionId};

pub fn bind() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    socket.set_nonblocking(true).expect("nonblocking");
    let addr = socket.local_addr().expect("local addr");
    (socket, addr)
}

/// The server side: a host behind one UDP socket, recording its events.
pub struct HostSide {
    pub host: RtcHost,
    pub socket: UdpSocket,
    pub addr: SocketAddr,
    pub events: Vec<(SessionId, SessionEvent)>,
    /// Ordinals (0-based) of outgoing RTP datagrams to drop, to simulate loss.
    pub drop_rtp: Vec<usize>,
    /// RTP datagrams the host transmitted (dropped ones included).
    pub rtp_sent: usize,
}

impl HostSide {
    pub fn new() -> Self {
        let (socket, addr) = bind();
        HostSide {
            host: RtcHost::new(RtcHostConfig::new(vec![addr])),
            socket,
            addr,
            events: Vec::new(),
            drop_rtp: Vec::new(),
            rtp_sent: 0,
        }
    }

    /// Reads every waiting datagram, then drains the host. True if anything happened.
    pub fn pump(&mut self) -> bool {
        let mut busy = false;
        let mut buf = [0u8; 2048];
        while let Ok((n, source)) = self.socket.recv_from(&mut buf) {
            self.host
                .handle_datagram(Instant::now(), source, self.addr, &buf[..n]);
            busy = true;
        }
        busy | self.drain()
    }

    pub fn drain(&mut self) -> bool {
        let mut busy = false;
        loop {
            match self.host.poll(Instant::now()) {
                HostOutput::Transmit {
                    destination, data, ..
                } => {
                    busy = true;
                    // RTP, not RTCP (RFC 5761 §4: RTCP packet types 192..=223).
                    let is_rtp = matches!(data.first(), Some(128..=191))
                        && !matches!(data.get(1), Some(192..=223));
                    if is_rtp {
                        self.rtp_sent += 1;
                        if self.drop_rtp.contains(&(self.rtp_sent - 1)) {
                            continue;
                        }
                    }
                    let _ = self.socket.send_to(&data, destination);
                }
                HostOutput::Event { session, event } => {
                    self.events.push((session, event));
                    busy = true;
                }
                HostOutput::Timeout(_) => return busy,
            }
        }
    }

    pub fn is_connected(&self, id: SessionId) -> bool {
        self.events
            .iter()
            .any(|(s, e)| *s == id && matches!(e, SessionEvent::Connected))
    }

    pub fn media_in(&self, id: SessionId) -> Vec<&crate::MediaFrame> {
        self.events
            .iter()
            .filter_map(|(s, e)| match e {
                SessionEvent::MediaIn(f) if *s == id => Some(f),
                _ => None,
            })
            .collect()
    }
}

/// A str0m client: what a browser or OBS would be.
pub struct Peer {
    pub rtc: Rtc,
    pub socket: UdpSocket,
    pub addr: SocketAddr,
    pub video: Mid,
    pub audio: Mid,
    pub connected: bool,
    pub media: Vec<MediaData>,
    pub keyframe_requests: usize,
    timeout: Instant,
    pending: Option<SdpPendingOffer>,
}

impl Peer {
    /// A client that sends (WHIP) with `dir = SendOnly` or receives (WHEP)
    /// with `RecvOnly`, offering str0m's default codecs (H.264 in several
    /// profiles and packetization modes, VP8, VP9, AV1, Opus), as browsers do.
    pub fn new(dir: S0Direction) -> (Peer, String) {
        Self::with_config(RtcConfig::new(), dir)
    }

    pub fn with_config(config: RtcConfig, dir: S0Direction) -> (Peer, String) {
        let (socket, addr) = bind();
        let now = Instant::now();
        let mut rtc = config.build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        let mut api = rtc.sdp_api();
        let video = api.add_media(S0Kind::Video, dir, None, None, None);
        let audio = api.add_media(S0Kind::Audio, dir, None, None, None);
        let (offer, pending) = api.apply().expect("an offer");
        let peer = Peer {
            rtc,
            socket,
            addr,
            video,
            audio,
            connected: false,
            media: Vec::new(),
            keyframe_requests: 0,
            timeout: now,
            pending: Some(pending),
        };
        (peer, offer.to_sdp_string())
    }

    pub fn accept_answer(&mut self, answer: &str) {
        let answer = SdpAnswer::from_sdp_string(answer).expect("answer parses");
        let pending = self.pending.take().expect("an offer is pending");
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("answer accepted");
        self.drain();
    }

    pub fn pump(&mut self) -> bool {
        let mut busy = false;
        let mut buf = [0u8; 2048];
        while let Ok((n, source)) = self.socket.recv_from(&mut buf) {
            busy = true;
            let Ok(r) = Receive::new(Protocol::Udp, source, self.addr, &buf[..n]) else {
                continue;
            };
            self.rtc
                .handle_input(Input::Receive(Instant::now(), r))
                .expect("client input");
            self.drain();
        }
        let now = Instant::now();
        if now >= self.timeout {
            self.rtc
                .handle_input(Input::Timeout(now))
                .expect("client timeout");
            self.drain();
        }
        busy
    }

    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output().expect("client output") {
                Output::Timeout(t) => {
                    self.timeout = t;
                    return;
                }
                Output::Transmit(t) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaData(d)) => self.media.push(d),
                Output::Event(Event::KeyframeRequest(_)) => self.keyframe_requests += 1,
                Output::Event(_) => {}
            }
        }
    }

    /// Sends one frame on our video (H.264, packetization-mode=1) or audio (Opus) track.
    pub fn write(&mut self, codec: S0Codec, rtp_time: u64, data: &[u8]) {
        let (mid, hz) = match codec {
            S0Codec::Opus => (self.audio, Frequency::FORTY_EIGHT_KHZ),
            _ => (self.video, Frequency::NINETY_KHZ),
        };
        let writer = self.rtc.writer(mid).expect("a writer");
        let pt = writer
            .payload_params()
            .find(|p| {
                p.spec().codec == codec
                    && (codec != S0Codec::H264 || p.spec().format.packetization_mode == Some(1))
            })
            .expect("codec negotiated")
            .pt();
        let time = MediaTime::new(rtp_time, hz);
        writer
            .write(pt, Instant::now(), time, data.to_vec())
            .expect("client write");
        self.drain();
    }

    /// Asks the server for a keyframe on our (receiving) video track.
    pub fn request_keyframe(&mut self) {
        let mut writer = self.rtc.writer(self.video).expect("a writer");
        writer
            .request_keyframe(None, str0m::media::KeyframeRequestKind::Pli)
            .expect("keyframe request");
        self.drain();
    }
}

/// Pumps the host and the peers until `done` or `limit`; true if `done`.
pub fn run_until(
    host: &mut HostSide,
    peers: &mut [&mut Peer],
    limit: Duration,
    mut done: impl FnMut(&HostSide, &[&mut Peer]) -> bool,
) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        let mut busy = host.pump();
        for p in peers.iter_mut() {
            busy |= p.pump();
        }
        if done(host, peers) {
            return true;
        }
        if !busy {
            thread::sleep(Duration::from_millis(1));
        }
    }
    false
}

/// Offers, answers and connects `peer` to a new session of `direction`.
pub fn connect(
    host: &mut HostSide,
    peer: &mut Peer,
    offer: &str,
    direction: crate::Direction,
) -> (SessionId, String) {
    let (id, answer) = host
        .host
        .accept_offer(direction, offer, Instant::now())
        .expect("offer accepted");
    peer.accept_answer(&answer);
    let up = run_until(host, &mut [peer], Duration::from_secs(10), |h, p| {
        h.is_connected(id) && p.iter().all(|p| p.connected)
    });
    assert!(up, "session {id} did not connect");
    (id, answer)
}

/// Our ICE ufrag, from an answer.
pub fn answer_ufrag(answer: &str) -> String {
    answer
        .lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        .expect("a=ice-ufrag in the answer")
        .to_string()
}

/// Splits Annex B into NAL units (start codes removed). Test payloads contain
/// no zero bytes, so a plain scan is exact.
pub fn nalus(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut zeros = 0;
    let mut current: Option<Vec<u8>> = None;
    for &b in data {
        if b == 0 {
            zeros += 1;
            continue;
        }
        if b == 1 && zeros >= 2 {
            if let Some(n) = current.take() {
                out.push(n);
            }
            current = Some(Vec::new());
        } else if let Some(n) = current.as_mut() {
            n.extend(std::iter::repeat_n(0, zeros));
            n.push(b);
        }
        zeros = 0;
    }
    out.extend(current);
    out
}

/// Bytes with no zeros (so no start-code emulation), distinct per `seed`.
pub fn payload(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32 * 7 + seed as u32) % 251 + 1) as u8)
        .collect()
}

/// An access unit in Annex B: the NAL units behind 4-byte start codes.
pub fn annexb(nals: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in nals {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(n);
    }
    out
}

/// A synthetic IDR access unit: SPS, PPS, and a 3000-byte IDR slice (which
/// needs FU-A fragmentation).
pub fn idr_nals(seed: u8) -> Vec<Vec<u8>> {
    let mut sps = vec![0x67, 0x42, 0xc0, 0x1f];
    sps.extend(payload(seed, 8));
    let mut pps = vec![0x68, 0xce, 0x3c, 0x80];
    pps.extend(payload(seed, 2));
    let mut idr = vec![0x65];
    idr.extend(payload(seed, 3000));
    vec![sps, pps, idr]
}

/// A synthetic non-IDR access unit: one 1500-byte slice.
pub fn p_nals(seed: u8) -> Vec<Vec<u8>> {
    let mut slice = vec![0x41];
    slice.extend(payload(seed, 1500));
    vec![slice]
}
