//! Server configuration: built-in defaults, overridden by an optional TOML
//! file, overridden by environment variables and flags (see `cli.rs`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub rtmp: RtmpConfig,
    pub http: HttpConfig,
    pub hls: HlsConfig,
    pub rtc: RtcConfig,
    pub hub: HubSection,
    pub auth: AuthConfig,
    pub rooms: RoomsConfig,
    pub console: ConsoleConfig,
    pub mix: MixConfig,
    pub transcode: TranscodeConfig,
    pub tls: TlsConfig,
    pub log: LogConfig,
}

/// HTTPS (with WSS signaling) and RTMPS beside the plain listeners, on when
/// a certificate and its key are given. `SIGHUP` reloads both files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM (the server's first, then intermediates).
    /// Empty: TLS off.
    #[serde(with = "empty_path_is_none")]
    pub cert: Option<PathBuf>,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    #[serde(with = "empty_path_is_none")]
    pub key: Option<PathBuf>,
    /// HTTPS: everything the HTTP listener serves, over TLS.
    pub https_listen: SocketAddr,
    /// RTMPS: publish and play as over RTMP, over TLS.
    pub rtmps_listen: SocketAddr,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            https_listen: ([0, 0, 0, 0], 8443).into(),
            rtmps_listen: ([0, 0, 0, 0], 1936).into(),
        }
    }
}

impl TlsConfig {
    /// The certificate and key files, when TLS is on.
    pub fn files(&self) -> Option<(&Path, &Path)> {
        Some((self.cert.as_deref()?, self.key.as_deref()?))
    }
}

/// Bounds on the work that costs a core each: bridges (audio transcoding,
/// video re-encoding for WebRTC) and mixes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranscodeConfig {
    /// Bridges running at once; a viewer that needs one more is refused.
    pub max_bridges: usize,
    /// Mixes running at once.
    pub max_mixes: usize,
    /// Streams are re-encoded only up to this resolution (the shorter
    /// side, in lines: 1080 means 1080p, landscape or portrait).
    pub max_reencode_resolution: u32,
}

impl Default for TranscodeConfig {
    fn default() -> Self {
        TranscodeConfig {
            max_bridges: 64,
            max_mixes: 16,
            max_reencode_resolution: 1080,
        }
    }
}

/// Server-side mixes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MixConfig {
    /// Hosts (`cdn.example`) a room's host may have its mix pushed to over
    /// RTMP (the `push` of the `mix` message or of the room's admin API with
    /// a host's token); none by default. Operators (API keys, `*` tokens)
    /// may push anywhere.
    pub push_allow: Vec<String>,
}

/// The web console at `/` (pages for hosts, guests, viewers and operators).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    pub enabled: bool,
    /// Who may mint tokens at `/api/v1/dev/token` for the pages to use:
    /// `loopback` (browsers on this machine, not through a proxy), `any`
    /// (`--dev`: everyone who reaches the server; a demo only), `off`, or
    /// `auto` (the default): `loopback` while the server signs with its
    /// development key (no `[[auth.api_keys]]`), `off` once keys are
    /// configured, as in production.
    pub dev_tokens: DevTokens,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DevTokens {
    Auto,
    Loopback,
    Any,
    Off,
}

impl Config {
    /// `console.dev_tokens` with `auto` resolved.
    pub fn dev_tokens(&self) -> DevTokens {
        match self.console.dev_tokens {
            DevTokens::Auto if self.auth.api_keys.is_empty() => DevTokens::Loopback,
            DevTokens::Auto => DevTokens::Off,
            mode => mode,
        }
    }
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            dev_tokens: DevTokens::Auto,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtmpConfig {
    pub listen: SocketAddr,
    /// Chunk size announced to clients; larger means fewer chunk headers.
    pub chunk_size: usize,
    /// Largest RTMP message accepted from a client.
    pub max_message_size: usize,
    /// A viewer whose socket accepts nothing for this long is disconnected.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// A client that sends nothing during the handshake/connect phase for
    /// this long is disconnected.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Handshake, connect and publish/play must all be done this long
    /// after the connection was accepted, however steadily bytes trickle.
    #[serde(with = "humantime_serde")]
    pub setup_timeout: Duration,
    /// RTMP connections at once, in all and from one client address.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// `Access-Control-Allow-Origin` for players' media: HTTP-FLV, HLS,
    /// WHIP/WHEP and the SDK.
    pub cors_origin: String,
    /// Other sites (exact origins, `https://app.example`) whose pages may
    /// call the control API and the console's token endpoint; none by
    /// default: same-origin only.
    pub api_cors_origins: Vec<String>,
    /// `/metrics` answers anybody; otherwise only admins (a bearer admin
    /// token for every room, or Basic with an API key and its secret).
    pub public_metrics: bool,
    /// `GET /api/v1/streams` (and one stream's details) answers anybody,
    /// room feeds left out; otherwise only admins.
    pub public_stream_list: bool,
    /// A request head (the first, and each one on a kept-alive
    /// connection) must be complete this long after it was awaited,
    /// however steadily its bytes trickle in.
    #[serde(with = "humantime_serde")]
    pub head_timeout: Duration,
    /// HTTP connections at once (viewers, API calls, WebSockets), in all
    /// and from one client address.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HlsConfig {
    pub enabled: bool,
    /// Segments are cut on the first keyframe after this long.
    #[serde(with = "humantime_serde")]
    pub segment_duration: Duration,
    /// Segments listed in the playlist.
    pub window: usize,
    /// How long an ended stream's playlist (with ENDLIST) stays readable.
    #[serde(with = "humantime_serde")]
    pub keep_after_end: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtcConfig {
    pub enabled: bool,
    /// The one UDP port every WebRTC session (WHIP, WHEP) shares.
    pub udp_listen: SocketAddr,
    /// ICE-TCP (passive candidates) for clients whose network blocks UDP.
    /// Announced after UDP, which clients prefer when it works. Unset: off.
    pub tcp_listen: Option<SocketAddr>,
    /// Addresses announced to clients as ICE candidates. Empty: the bound
    /// address, or when bound to 0.0.0.0 this host's primary address and
    /// 127.0.0.1. Set the public IP when the server is behind NAT.
    pub public_ips: Vec<std::net::IpAddr>,
    /// A session that receives nothing for this long is closed.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// A session whose client has not connected (ICE and DTLS) this long
    /// after its offer is closed, checks or no checks.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// WHIP and WHEP sessions one client address may hold at once (a
    /// household or office behind one NAT counts as one).
    pub max_sessions_per_ip: usize,
    /// ICE-TCP connections at once, in all and from one client address.
    pub tcp_max_connections: usize,
    pub tcp_max_connections_per_ip: usize,
    /// Bytes per second one ICE-TCP connection may send; past it the
    /// server reads more slowly (TCP flow control paces the client).
    pub tcp_max_bytes_per_sec: usize,
    /// STUN/TURN servers offered to WHIP/WHEP clients in `Link` headers
    /// (RFC 9725 section 4.6). Empty: costream itself as STUN server.
    pub ice_servers: Vec<IceServer>,
}

/// A STUN or TURN server for clients, e.g. `stun:stun.example.net:3478` or
/// `turn:turn.example.net?transport=udp` with a username and credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    pub url: String,
    pub username: Option<String>,
    pub credential: Option<String>,
}

impl Default for RtcConfig {
    fn default() -> Self {
        RtcConfig {
            enabled: true,
            udp_listen: ([0, 0, 0, 0], 8000).into(),
            tcp_listen: Some(([0, 0, 0, 0], 8000).into()),
            public_ips: Vec::new(),
            session_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(10),
            max_sessions_per_ip: 50,
            tcp_max_connections: 4096,
            tcp_max_connections_per_ip: 50,
            // 32 Mbit/s: several times a 1080p publisher with simulcast.
            tcp_max_bytes_per_sec: 4 << 20,
            ice_servers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubSection {
    /// Kernel send buffer per viewer socket, bytes. Small enough that a
    /// viewer that cannot keep up shows as lagging in the hub (and skips to
    /// a keyframe) instead of hiding seconds of media in the kernel.
    pub viewer_send_buffer: usize,
    /// Hold a viewer's frames this long after they are ready and write them
    /// together: fewer system calls per viewer for that much more latency.
    /// 0 writes every picture at once (lowest latency).
    #[serde(with = "humantime_serde")]
    pub write_coalesce: Duration,
    /// A publisher that drops may come back this long after and keep its viewers.
    #[serde(with = "humantime_serde")]
    pub reconnect_grace: Duration,
    /// Frames buffered per stream for all its viewers.
    pub ring_frames: usize,
    /// A viewer this far behind the live edge skips to the next keyframe.
    #[serde(with = "humantime_serde")]
    pub max_viewer_lag: Duration,
    /// Largest frame a publisher may send, bytes (a 1080p keyframe is well
    /// under 2 MiB). A larger one cuts the publisher off.
    pub max_frame_bytes: usize,
    /// A GOP holding more than this is not cached for new viewers (they
    /// wait for the next keyframe instead).
    pub max_gop_bytes: usize,
    /// Bytes a new viewer gets of the cached GOP at once; the rest goes at
    /// four times real time.
    pub gop_burst_bytes: usize,
    /// Bytes one stream's frames may hold (ring, GOP cache, muxed copies);
    /// its HLS segments get as much again. A publisher past it is cut off.
    pub max_stream_bytes: usize,
    /// Bytes all streams' frames may hold together; 0 means half of this
    /// machine's memory. A publisher whose frame would pass it is cut off.
    pub max_memory_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// When set, publishers must present `?token=` signed with this secret
    /// (`costream token publish`).
    pub publish_secret: Option<String>,
    /// When set, players of live streams must present `?token=` signed
    /// with this secret (`costream token play`), over every protocol.
    /// Empty: off. Room feeds always need a room token instead.
    #[serde(with = "empty_is_none")]
    pub play_secret: Option<String>,
    /// An http:// URL asked before each play of a live stream (POST JSON
    /// `{action, stream, app, name, protocol, client_ip, query}`): a 2xx
    /// answer allows, anything else or no answer in `callback_timeout`
    /// refuses. Empty: off.
    #[serde(with = "empty_is_none")]
    pub on_play: Option<String>,
    /// The same for each publish (RTMP and WHIP). Empty: off.
    #[serde(with = "empty_is_none")]
    pub on_publish: Option<String>,
    /// How long `on_play` and `on_publish` may take to answer.
    #[serde(with = "humantime_serde")]
    pub callback_timeout: Duration,
    /// How long after its expiry a room access token is still taken, for
    /// clocks a little apart (whole seconds; 0: none).
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// Keys that sign room access tokens (`[[auth.api_keys]]`). When none
    /// is set, the server makes a development key at start and prints it.
    pub api_keys: Vec<crate::access::ApiKey>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            publish_secret: None,
            play_secret: None,
            on_play: None,
            on_publish: None,
            callback_timeout: crate::play_auth::DEFAULT_CALLBACK_TIMEOUT,
            leeway: crate::access::DEFAULT_LEEWAY,
            api_keys: Vec::new(),
        }
    }
}

/// An optional string written as `""` when unset, so that the setting
/// shows in `costream default-config` (TOML has no null).
mod empty_is_none {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.as_deref().unwrap_or(""))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let v = String::deserialize(d)?;
        Ok(Some(v).filter(|v| !v.is_empty()))
    }
}

/// The same for a file path.
mod empty_path_is_none {
    use std::path::PathBuf;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(p) => s.serialize_str(&p.to_string_lossy()),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        let v = String::deserialize(d)?;
        Ok(Some(v).filter(|v| !v.is_empty()).map(PathBuf::from))
    }
}

/// Link-mic rooms (see docs/signaling.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsConfig {
    /// Publishers allowed at once in one room; the next one is refused.
    pub max_publishers: usize,
    /// Participants allowed at once in one room (publishers or not).
    pub max_participants: usize,
    /// A room closes after being empty this long.
    #[serde(with = "humantime_serde")]
    pub empty_timeout: Duration,
    /// A participant whose connection drops stays (with its tracks) this
    /// long, so that it can come back after a network switch.
    #[serde(with = "humantime_serde")]
    pub reconnect_grace: Duration,
    /// URLs (http://) that get room events as signed JSON POSTs.
    pub webhooks: Vec<String>,
    /// What each participant may receive in total, kbit/s: beyond it the
    /// video of the least important publications is paused. 0: no limit.
    pub subscriber_budget_kbps: u64,
    /// When the last host leaves for good (left, dropped after the grace,
    /// kicked or removed), the room's mix that replaces a live stream
    /// `stop`s (the stream is its publisher's own again) or `keep`s running.
    pub mix_on_host_leave: MixOnHostLeave,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MixOnHostLeave {
    Stop,
    Keep,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        RoomsConfig {
            max_publishers: 8,
            max_participants: 1000,
            empty_timeout: Duration::from_secs(300),
            reconnect_grace: Duration::from_secs(10),
            webhooks: Vec::new(),
            subscriber_budget_kbps: 2000,
            mix_on_host_leave: MixOnHostLeave::Stop,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `costream=debug`. `RUST_LOG` wins.
    pub level: String,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        RtmpConfig {
            listen: ([0, 0, 0, 0], 1935).into(),
            chunk_size: 4096,
            // An RTMP video message is a frame and 5 bytes of FLV header.
            max_message_size: costream_hub::Budget::default().max_frame + 64,
            write_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(20),
            setup_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_ip: 200,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: ([0, 0, 0, 0], 8080).into(),
            cors_origin: "*".into(),
            api_cors_origins: Vec::new(),
            // It names every stream and room: not for strangers by default.
            public_metrics: false,
            // What players pick from; room feeds are never in it for them.
            public_stream_list: true,
            head_timeout: Duration::from_secs(10),
            max_connections: 20_000,
            max_connections_per_ip: 200,
        }
    }
}

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            enabled: true,
            segment_duration: Duration::from_secs(2),
            window: 6,
            keep_after_end: Duration::from_secs(60),
        }
    }
}

impl Default for HubSection {
    fn default() -> Self {
        let hub = costream_hub::HubConfig::default();
        HubSection {
            viewer_send_buffer: 256 * 1024,
            write_coalesce: Duration::ZERO,
            reconnect_grace: hub.reconnect_grace,
            ring_frames: hub.ring_frames,
            max_viewer_lag: hub.max_viewer_lag,
            max_frame_bytes: hub.budget.max_frame,
            max_gop_bytes: hub.max_gop_bytes,
            gop_burst_bytes: hub.gop_burst_bytes,
            max_stream_bytes: hub.budget.max_stream,
            max_memory_bytes: 0,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let config: Config =
            toml::from_str(&text).with_context(|| format!("in config file {}", path.display()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (128..=65536).contains(&self.rtmp.chunk_size),
            "rtmp.chunk_size must be between 128 and 65536"
        );
        anyhow::ensure!(
            self.rtmp.max_message_size >= 64 << 10,
            "rtmp.max_message_size must be at least 64 KiB"
        );
        anyhow::ensure!(self.hls.window >= 2, "hls.window must be at least 2");
        anyhow::ensure!(
            self.hls.segment_duration >= Duration::from_millis(500),
            "hls.segment_duration must be at least 500ms"
        );
        anyhow::ensure!(
            self.hub.write_coalesce <= Duration::from_secs(1),
            "hub.write_coalesce must be at most 1s"
        );
        anyhow::ensure!(
            self.hub.ring_frames >= 16,
            "hub.ring_frames must be at least 16"
        );
        let hub = &self.hub;
        anyhow::ensure!(
            hub.max_frame_bytes >= 64 << 10,
            "hub.max_frame_bytes must be at least 64 KiB"
        );
        anyhow::ensure!(
            hub.max_stream_bytes >= 4 * hub.max_frame_bytes,
            "hub.max_stream_bytes must be at least 4 times hub.max_frame_bytes"
        );
        anyhow::ensure!(
            hub.max_gop_bytes <= hub.max_stream_bytes,
            "hub.max_gop_bytes must be at most hub.max_stream_bytes"
        );
        anyhow::ensure!(
            hub.max_memory_bytes == 0 || hub.max_memory_bytes >= hub.max_stream_bytes,
            "hub.max_memory_bytes must be 0 (half of memory) or at least hub.max_stream_bytes"
        );
        if let Some(s) = &self.auth.publish_secret {
            anyhow::ensure!(
                s.len() >= 8,
                "auth.publish_secret must be at least 8 characters"
            );
        }
        if let Some(s) = &self.auth.play_secret {
            anyhow::ensure!(
                s.len() >= 8,
                "auth.play_secret must be at least 8 characters"
            );
            // The schemes are the same: a play URL must not let its holder publish.
            anyhow::ensure!(
                self.auth.publish_secret.as_ref() != Some(s),
                "auth.play_secret must differ from auth.publish_secret"
            );
        }
        for (name, url) in [
            ("on_play", &self.auth.on_play),
            ("on_publish", &self.auth.on_publish),
        ] {
            if let Some(url) = url {
                crate::room::webhooks::check_url(url).with_context(|| format!("auth.{name}"))?;
            }
        }
        anyhow::ensure!(
            self.auth.callback_timeout >= Duration::from_millis(100)
                && self.auth.callback_timeout <= Duration::from_secs(30),
            "auth.callback_timeout must be between 100ms and 30s"
        );
        for k in &self.auth.api_keys {
            anyhow::ensure!(
                !k.key.is_empty() && k.secret.len() >= 16,
                "auth.api_keys: each key needs a name and a secret of at least 16 characters"
            );
        }
        anyhow::ensure!(
            self.auth.leeway <= Duration::from_secs(300),
            "auth.leeway must be at most 5m"
        );
        for url in &self.rooms.webhooks {
            crate::room::webhooks::check_url(url)?;
        }
        anyhow::ensure!(
            self.rooms.max_publishers >= 1 && self.rooms.max_participants >= 1,
            "rooms.max_publishers and rooms.max_participants must be at least 1"
        );
        // The files themselves are read at start (Server::start), which
        // names the one that fails.
        anyhow::ensure!(
            self.tls.cert.is_some() == self.tls.key.is_some(),
            "tls.cert and tls.key go together: set both (PEM files) or neither"
        );
        Ok(())
    }

    pub fn hub_config(&self) -> costream_hub::HubConfig {
        costream_hub::HubConfig {
            ring_frames: self.hub.ring_frames,
            max_viewer_lag: self.hub.max_viewer_lag,
            reconnect_grace: self.hub.reconnect_grace,
            max_gop_bytes: self.hub.max_gop_bytes,
            gop_burst_bytes: self.hub.gop_burst_bytes,
            budget: costream_hub::Budget {
                max_frame: self.hub.max_frame_bytes,
                max_stream: self.hub.max_stream_bytes,
                max_total: match self.hub.max_memory_bytes {
                    0 => half_of_memory(),
                    n => n,
                },
            },
            ..Default::default()
        }
    }

    /// The defaults as a commented-out-free TOML file, for `costream config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// Half of the machine's memory (`MemTotal` in /proc/meminfo), or 4 GiB
/// where that cannot be read.
fn half_of_memory() -> usize {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib.saturating_mul(1024) / 2)
        })
        .unwrap_or(4 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_partial_files() {
        let text = Config::default().to_toml();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back.rtmp.listen.port(), 1935);
        let partial: Config =
            toml::from_str("[http]\nlisten = \"127.0.0.1:9000\"\n[hls]\nsegment_duration = \"4s\"")
                .unwrap();
        assert_eq!(partial.http.listen.port(), 9000);
        assert_eq!(partial.hls.segment_duration, Duration::from_secs(4));
        assert_eq!(partial.rtmp.chunk_size, 4096);
        assert!(toml::from_str::<Config>("[rtmp]\nlisten_port = 1").is_err());
    }

    #[test]
    fn play_protection_settings_show_off_and_parse() {
        let text = Config::default().to_toml();
        for line in [
            "play_secret = \"\"",
            "on_play = \"\"",
            "on_publish = \"\"",
            "callback_timeout = \"2s\"",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back.auth.play_secret, None);
        assert_eq!(back.auth.on_play, None);
        let c: Config = toml::from_str(
            "[auth]\nplay_secret = \"play-secret\"\non_play = \"http://127.0.0.1:9/auth\"",
        )
        .unwrap();
        assert_eq!(c.auth.play_secret.as_deref(), Some("play-secret"));
        assert!(c.validate().is_ok());
        let mut same = c.clone();
        same.auth.publish_secret = same.auth.play_secret.clone();
        assert!(same.validate().is_err(), "a play secret that publishes");
        let mut https = c;
        https.auth.on_play = Some("https://auth.example/play".into());
        assert!(https.validate().is_err());
    }

    #[test]
    fn auth_leeway_and_mix_on_host_leave_are_settings() {
        let text = Config::default().to_toml();
        assert!(text.contains("leeway = \"5s\""), "{text}");
        assert!(text.contains("mix_on_host_leave = \"stop\""), "{text}");
        let c: Config =
            toml::from_str("[auth]\nleeway = \"0s\"\n[rooms]\nmix_on_host_leave = \"keep\"")
                .unwrap();
        assert_eq!(c.auth.leeway, Duration::ZERO);
        assert_eq!(c.rooms.mix_on_host_leave, MixOnHostLeave::Keep);
        assert!(toml::from_str::<Config>("[rooms]\nmix_on_host_leave = \"pause\"").is_err());
        let mut c = Config::default();
        c.auth.leeway = Duration::from_secs(3600);
        assert!(c.validate().is_err());
    }

    #[test]
    fn tls_is_off_by_default_and_takes_a_cert_with_its_key() {
        let text = Config::default().to_toml();
        for line in [
            "[tls]",
            "cert = \"\"",
            "key = \"\"",
            "https_listen = \"0.0.0.0:8443\"",
            "rtmps_listen = \"0.0.0.0:1936\"",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        let back: Config = toml::from_str(&text).unwrap();
        assert!(back.tls.files().is_none());
        let c: Config = toml::from_str(
            "[tls]\ncert = \"/etc/costream/cert.pem\"\nkey = \"/etc/costream/key.pem\"",
        )
        .unwrap();
        assert!(c.validate().is_ok());
        assert_eq!(
            c.tls.files(),
            Some((
                Path::new("/etc/costream/cert.pem"),
                Path::new("/etc/costream/key.pem")
            ))
        );
        let half: Config = toml::from_str("[tls]\ncert = \"/etc/costream/cert.pem\"").unwrap();
        assert!(half.validate().is_err(), "a certificate without its key");
        assert!(toml::from_str::<Config>("[tls]\ncertificate = \"x\"").is_err());
    }
}
