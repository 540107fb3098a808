//! The bench's WebRTC peer: one str0m `Rtc` on its own UDP socket, with
//! the WHIP/WHEP offer/answer exchange over HTTP and a step function that
//! feeds str0m datagrams and timeouts.
//!
//! One socket per peer keeps ICE trivial (the server routes by source
//! address, and each peer announces just its socket as a host candidate)
//! and lets thousands of peers run as plain tokio tasks: a peer costs a
//! socket, its `Rtc`, one 2 KiB receive buffer and one timer.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::time::Sleep;

use super::http_request::{request, HttpResponse};
use super::probe::resolve;
use super::url::BenchUrl;

/// Receive buffer per peer. str0m keeps datagrams under ~1200 bytes; a
/// larger one would be truncated by the kernel and then fail to decrypt,
/// which counts as loss, as it should.
const RECV_BUFFER: usize = 2048;
/// Datagrams handled per wake-up before yielding to other peers.
const MAX_BATCH: usize = 64;
/// How often str0m emits statistics events (ingress NACK counts).
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// What every peer of a run shares: the crypto provider and one DTLS
/// certificate, because generating a key pair per peer would cost more
/// than the rest of its setup; and the socket settings.
pub struct RtcClientFactory {
    crypto: Arc<CryptoProvider>,
    cert: Option<DtlsCert>,
    /// SO_RCVBUF for each peer's socket; `None` keeps the system default.
    recv_buffer: Option<usize>,
}

impl Default for RtcClientFactory {
    fn default() -> Self {
        Self::new(None)
    }
}

impl RtcClientFactory {
    pub fn new(recv_buffer: Option<usize>) -> Self {
        let crypto = Arc::new(str0m::crypto::from_feature_flags());
        let cert = crypto.dtls_provider.generate_certificate();
        RtcClientFactory {
            crypto,
            cert,
            recv_buffer,
        }
    }

    /// A non-blocking UDP socket on `ip`, any port.
    fn bind(&self, ip: IpAddr) -> anyhow::Result<UdpSocket> {
        let addr = SocketAddr::new(ip, 0);
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        if let Some(size) = self.recv_buffer {
            // The kernel caps this at net.core.rmem_max.
            socket
                .set_recv_buffer_size(size)
                .context("set the UDP receive buffer size")?;
        }
        socket
            .bind(&addr.into())
            .with_context(|| format!("bind a UDP socket on {ip}"))?;
        socket.set_nonblocking(true)?;
        Ok(UdpSocket::from_std(socket.into())?)
    }

    /// H.264 and Opus only: what costream carries, and a smaller offer.
    fn config(&self) -> RtcConfig {
        let mut config = RtcConfig::new()
            .set_crypto_provider(self.crypto.clone())
            .set_stats_interval(Some(STATS_INTERVAL))
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false);
        if let Some(cert) = &self.cert {
            config = config.set_dtls_cert(cert.clone());
        }
        config
    }
}

/// Where the signalling requests go.
#[derive(Debug, Clone)]
pub struct HttpEndpoint {
    pub url: BenchUrl,
    pub addr: SocketAddr,
    /// The address peers bind to and announce: the one the route to the
    /// server leaves from (127.0.0.1 for a server on loopback).
    pub local_ip: IpAddr,
}

impl HttpEndpoint {
    pub async fn resolve(url: &str) -> anyhow::Result<Self> {
        let url = BenchUrl::parse(url)?;
        let addr = resolve(&url).await?;
        Ok(HttpEndpoint {
            local_ip: local_ip_towards(addr)?,
            url,
            addr,
        })
    }

    /// POST/DELETE `target` (path and query) on this server.
    async fn send(
        &self,
        method: &str,
        target: &str,
        content_type: Option<&str>,
        authorization: Option<&str>,
        body: &[u8],
    ) -> anyhow::Result<HttpResponse> {
        let host = self.url.authority();
        request(
            self.addr,
            &host,
            method,
            target,
            content_type,
            authorization,
            body,
        )
        .await
    }

    /// Ends a session: DELETE its `Location` (a path on this server or an
    /// absolute http:// URL).
    pub async fn delete(&self, location: &str) -> anyhow::Result<()> {
        let response = if location.starts_with('/') {
            self.send("DELETE", location, None, None, b"").await?
        } else {
            let url = BenchUrl::parse(location)
                .with_context(|| format!("unusable Location {location:?}"))?;
            let other = HttpEndpoint {
                addr: resolve(&url).await?,
                local_ip: self.local_ip,
                url,
            };
            other
                .send("DELETE", &other.url.request_target(), None, None, b"")
                .await?
        };
        if !(200..300).contains(&response.status) {
            bail!("DELETE {location}: {}", response.describe());
        }
        Ok(())
    }
}

/// The local address a datagram to `server` would leave from. A UDP
/// `connect` only selects the route; nothing is sent.
fn local_ip_towards(server: SocketAddr) -> anyhow::Result<IpAddr> {
    let any: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let probe = std::net::UdpSocket::bind(any)?;
    probe
        .connect(server)
        .with_context(|| format!("no route to {server}"))?;
    Ok(probe.local_addr()?.ip())
}

/// One WebRTC client.
pub struct RtcPeer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    pub video: Mid,
    pub audio: Mid,
    /// The offer until it is sent, and the state to accept its answer.
    offer: Option<(String, SdpPendingOffer)>,
    /// An offer sent and not yet answered.
    pending: Option<SdpPendingOffer>,
    /// When str0m next wants a timeout input.
    rtc_timeout: Instant,
    /// One timer, moved rather than recreated at every step.
    sleep: Pin<Box<Sleep>>,
    sleep_at: Instant,
    buf: Box<[u8]>,
    pub udp_bytes_in: u64,
    pub udp_bytes_out: u64,
    /// Datagrams the kernel would not take (send buffer full).
    pub dropped_sends: u64,
}

impl RtcPeer {
    /// A peer with one video and one audio m-line flowing `direction`
    /// (`RecvOnly` for WHEP, `SendOnly` for WHIP), its offer ready.
    pub fn new(
        factory: &RtcClientFactory,
        local_ip: IpAddr,
        direction: Direction,
    ) -> anyhow::Result<Self> {
        let mut peer = Self::answering(factory, local_ip)?;
        let mut sdp = peer.rtc.sdp_api();
        peer.video = sdp.add_media(MediaKind::Video, direction, None, None, None);
        peer.audio = sdp.add_media(MediaKind::Audio, direction, None, None, None);
        let (offer, pending) = sdp.apply().context("str0m made no offer")?;
        peer.offer = Some((offer.to_sdp_string(), pending));
        Ok(peer)
    }

    /// A peer that answers offers (a room's subscriber connection, which
    /// the server offers): no media of its own. `video` and `audio` name no
    /// m-line; the offers' tracks do.
    pub fn answering(factory: &RtcClientFactory, local_ip: IpAddr) -> anyhow::Result<Self> {
        let socket = factory.bind(local_ip)?;
        let local = socket.local_addr()?;
        let now = Instant::now();
        let mut rtc = factory.config().build(now);
        let candidate = Candidate::host(local, "udp").map_err(|e| anyhow!("ICE candidate: {e}"))?;
        rtc.add_local_candidate(candidate);
        Ok(RtcPeer {
            rtc,
            socket,
            local,
            video: Mid::from("-"),
            audio: Mid::from("-"),
            offer: None,
            pending: None,
            rtc_timeout: now,
            sleep: Box::pin(tokio::time::sleep_until(now.into())),
            sleep_at: now,
            buf: vec![0; RECV_BUFFER].into_boxed_slice(),
            udp_bytes_in: 0,
            udp_bytes_out: 0,
            dropped_sends: 0,
        })
    }

    /// Accepts an offer; returns the answer.
    pub fn answer(&mut self, offer: &str) -> anyhow::Result<String> {
        let offer = str0m::change::SdpOffer::from_sdp_string(offer)
            .map_err(|e| anyhow!("unparsable SDP offer: {e}"))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| anyhow!("SDP offer not accepted: {e}"))?;
        Ok(answer.to_sdp_string())
    }

    /// POSTs the offer to `target` on `endpoint` (WHIP or WHEP), accepts the
    /// SDP answer of a `201 Created` and returns the session's `Location`.
    pub async fn negotiate(
        &mut self,
        endpoint: &HttpEndpoint,
        target: &str,
        token: Option<&str>,
    ) -> anyhow::Result<Option<String>> {
        let offer = self.take_offer()?;
        let authorization = token.map(|t| format!("Bearer {t}"));
        let response = endpoint
            .send(
                "POST",
                target,
                Some("application/sdp"),
                authorization.as_deref(),
                offer.as_bytes(),
            )
            .await?;
        if response.status != 201 {
            bail!("offer refused: {}", response.describe());
        }
        let text =
            std::str::from_utf8(&response.body).map_err(|_| anyhow!("SDP answer is not UTF-8"))?;
        self.accept_answer(text)?;
        Ok(response.location)
    }

    /// The offer, for a signaling channel other than WHIP/WHEP (rooms).
    pub fn take_offer(&mut self) -> anyhow::Result<String> {
        let (offer, pending) = self.offer.take().context("the offer was already sent")?;
        self.pending = Some(pending);
        Ok(offer)
    }

    /// Applies the answer to the offer taken with [`RtcPeer::take_offer`].
    pub fn accept_answer(&mut self, sdp: &str) -> anyhow::Result<()> {
        let pending = self
            .pending
            .take()
            .context("no offer is waiting for an answer")?;
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| anyhow!("unparsable SDP answer: {e}"))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| anyhow!("SDP answer not accepted: {e}"))
    }

    /// str0m, for writing media.
    pub fn rtc(&mut self) -> &mut Rtc {
        &mut self.rtc
    }

    pub fn is_alive(&self) -> bool {
        self.rtc.is_alive()
    }

    /// Sends what str0m has to send and hands its events to `on_event`,
    /// until str0m asks for a timeout. Call after writing media.
    pub fn drain(&mut self, on_event: &mut impl FnMut(Event)) -> anyhow::Result<()> {
        loop {
            match self.rtc.poll_output().map_err(|e| anyhow!("WebRTC: {e}"))? {
                Output::Timeout(t) => {
                    self.rtc_timeout = t;
                    return Ok(());
                }
                Output::Transmit(t) => match self.socket.try_send_to(&t.contents, t.destination) {
                    Ok(n) => self.udp_bytes_out += n as u64,
                    // UDP: a datagram the kernel cannot queue is lost, like
                    // one dropped on the network.
                    Err(_) => self.dropped_sends += 1,
                },
                Output::Event(e) => on_event(e),
            }
        }
    }

    /// Waits for datagrams or a timer (str0m's, or `wake_at` for the
    /// caller's own schedule), feeds str0m and drains it.
    pub async fn step(
        &mut self,
        wake_at: Instant,
        on_event: &mut impl FnMut(Event),
    ) -> anyhow::Result<()> {
        self.drain(on_event)?;
        let until = wake_at.min(self.rtc_timeout);
        if until != self.sleep_at {
            self.sleep.as_mut().reset(until.into());
            self.sleep_at = until;
        }
        let readable = tokio::select! {
            r = self.socket.readable() => {
                r.map_err(|e| anyhow!("UDP socket: {e}"))?;
                true
            }
            () = &mut self.sleep => false,
        };
        if readable {
            self.receive_queued(on_event)?;
        }
        let now = Instant::now();
        if now >= self.rtc_timeout {
            self.rtc
                .handle_input(Input::Timeout(now))
                .map_err(|e| anyhow!("WebRTC: {e}"))?;
            self.drain(on_event)?;
        }
        Ok(())
    }

    /// Feeds str0m the datagrams already queued on the socket (up to a
    /// batch): one wake-up per burst rather than one per datagram.
    fn receive_queued(&mut self, on_event: &mut impl FnMut(Event)) -> anyhow::Result<()> {
        for _ in 0..MAX_BATCH {
            let (n, source) = match self.socket.try_recv_from(&mut self.buf) {
                Ok(got) => got,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                // ICMP errors from an earlier send surface here; the socket
                // itself is fine.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    continue
                }
                Err(e) => bail!("UDP receive: {e}"),
            };
            self.udp_bytes_in += n as u64;
            // Not STUN, DTLS, RTP or RTCP: dropped, as a browser would.
            let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, &self.buf[..n])
            else {
                continue;
            };
            self.rtc
                .handle_input(Input::Receive(Instant::now(), receive))
                .map_err(|e| anyhow!("WebRTC: {e}"))?;
            self.drain(on_event)?;
        }
        Ok(())
    }
}
