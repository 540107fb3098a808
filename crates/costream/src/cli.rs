//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;

/// costream: interactive live streaming. RTMP and WHIP in; RTMP, HTTP-FLV, HLS and WHEP out.
#[derive(Debug, Parser)]
#[command(name = "costream", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a server node (RTMP on :1935, HTTP on :8080, WebRTC on UDP :8000 unless configured).
    Serve(ServeArgs),
    /// Load-test a server: many simulated viewers (and optionally a publisher).
    Bench(crate::bench::BenchArgs),
    /// Mint access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print the built-in default configuration as TOML.
    DefaultConfig,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file; every setting has a built-in default.
    #[arg(short, long, env = "COSTREAM_CONFIG")]
    pub config: Option<PathBuf>,
    /// RTMP listen address [default: 0.0.0.0:1935].
    #[arg(long, env = "COSTREAM_RTMP_LISTEN")]
    pub rtmp_listen: Option<SocketAddr>,
    /// HTTP listen address for HTTP-FLV, HLS, the API and metrics [default: 0.0.0.0:8080].
    #[arg(long, env = "COSTREAM_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// WebRTC UDP address shared by all WHIP/WHEP sessions [default: 0.0.0.0:8000].
    #[arg(long, env = "COSTREAM_RTC_LISTEN")]
    pub rtc_listen: Option<SocketAddr>,
    /// WebRTC ICE-TCP address for clients that cannot use UDP [default: 0.0.0.0:8000; "off" disables].
    #[arg(long, env = "COSTREAM_RTC_TCP_LISTEN", value_parser = parse_optional_addr)]
    pub rtc_tcp_listen: Option<AddrOrOff>,
    /// An IP announced to WebRTC clients (repeat for several; the public IP behind NAT).
    #[arg(
        long = "rtc-public-ip",
        env = "COSTREAM_RTC_PUBLIC_IP",
        value_delimiter = ','
    )]
    pub rtc_public_ips: Vec<std::net::IpAddr>,
    /// TLS certificate chain (PEM): with --tls-key, HTTPS and RTMPS are served too (SIGHUP reloads both files).
    #[arg(long, env = "COSTREAM_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS certificate's private key (PEM).
    #[arg(long, env = "COSTREAM_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// HTTPS listen address, when TLS is on [default: 0.0.0.0:8443].
    #[arg(long, env = "COSTREAM_HTTPS_LISTEN")]
    pub https_listen: Option<SocketAddr>,
    /// RTMPS listen address, when TLS is on [default: 0.0.0.0:1936].
    #[arg(long, env = "COSTREAM_RTMPS_LISTEN")]
    pub rtmps_listen: Option<SocketAddr>,
    /// Require publishers to present a token signed with this secret.
    #[arg(long, env = "COSTREAM_PUBLISH_SECRET", hide_env_values = true)]
    pub publish_secret: Option<String>,
    /// Require players of live streams to present a token signed with this secret.
    #[arg(long, env = "COSTREAM_PLAY_SECRET", hide_env_values = true)]
    pub play_secret: Option<String>,
    /// HLS target segment duration, e.g. 2s.
    #[arg(long, env = "COSTREAM_HLS_SEGMENT", value_parser = humantime::parse_duration)]
    pub hls_segment_duration: Option<Duration>,
    /// How long a dropped publisher may take to come back, e.g. 5s.
    #[arg(long, env = "COSTREAM_RECONNECT_GRACE", value_parser = humantime::parse_duration)]
    pub reconnect_grace: Option<Duration>,
    /// Batch each viewer's writes over this long, e.g. 50ms (0 = lowest latency).
    #[arg(long, env = "COSTREAM_WRITE_COALESCE", value_parser = humantime::parse_duration)]
    pub write_coalesce: Option<Duration>,
    /// Log filter, e.g. info or costream=debug (RUST_LOG also works).
    #[arg(long, env = "COSTREAM_LOG")]
    pub log: Option<String>,
    /// Development mode: the web console's pages may mint tokens for anyone
    /// who reaches the server, not only browsers on this machine.
    #[arg(long)]
    pub dev: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// A publish token for a stream key: append `?token=...` to the stream name.
    Publish {
        /// The stream key, `app/stream`.
        #[arg(long)]
        stream: String,
        /// How long the token is valid, e.g. 6h.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// The server's publish secret.
        #[arg(long, env = "COSTREAM_PUBLISH_SECRET", hide_env_values = true)]
        secret: String,
    },
    /// A play token for a stream key (`[auth] play_secret`): append
    /// `?token=...` to the player's URL (RTMP, HTTP-FLV, HLS, WHEP).
    Play {
        /// The stream key, `app/stream`.
        #[arg(long)]
        stream: String,
        /// How long the token is valid, e.g. 6h.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// The server's play secret.
        #[arg(long, env = "COSTREAM_PLAY_SECRET", hide_env_values = true)]
        secret: String,
    },
    /// A room access token (JWT, HS256) for a link-mic room participant.
    Create {
        #[arg(long)]
        room: String,
        /// The participant's identity, unique in the room.
        #[arg(long)]
        identity: String,
        #[arg(long, value_enum, default_value = "audience")]
        role: crate::access::Role,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// The live stream (app/stream) this participant owns: a host's
        /// room mix may replace only that one.
        #[arg(long)]
        live: Option<String>,
        /// How long the token is valid, e.g. 6h.
        #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// The API key that signs the token.
        #[arg(long, env = "COSTREAM_API_KEY")]
        api_key: String,
        /// That key's secret.
        #[arg(long, env = "COSTREAM_API_SECRET", hide_env_values = true)]
        api_secret: String,
    },
}

impl ServeArgs {
    /// Defaults, then the file, then environment variables and flags.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(a) = self.rtmp_listen {
            config.rtmp.listen = a;
        }
        if let Some(a) = self.http_listen {
            config.http.listen = a;
        }
        if let Some(a) = self.rtc_listen {
            config.rtc.udp_listen = a;
        }
        if let Some(a) = self.rtc_tcp_listen {
            config.rtc.tcp_listen = a;
        }
        if !self.rtc_public_ips.is_empty() {
            config.rtc.public_ips = self.rtc_public_ips.clone();
        }
        if let Some(p) = &self.tls_cert {
            config.tls.cert = Some(p.clone());
        }
        if let Some(p) = &self.tls_key {
            config.tls.key = Some(p.clone());
        }
        if let Some(a) = self.https_listen {
            config.tls.https_listen = a;
        }
        if let Some(a) = self.rtmps_listen {
            config.tls.rtmps_listen = a;
        }
        if let Some(s) = &self.publish_secret {
            config.auth.publish_secret = Some(s.clone()).filter(|s| !s.is_empty());
        }
        if let Some(s) = &self.play_secret {
            config.auth.play_secret = Some(s.clone()).filter(|s| !s.is_empty());
        }
        if let Some(d) = self.hls_segment_duration {
            config.hls.segment_duration = d;
        }
        if let Some(d) = self.reconnect_grace {
            config.hub.reconnect_grace = d;
        }
        if self.dev {
            config.console.dev_tokens = crate::config::DevTokens::Any;
        }
        if let Some(d) = self.write_coalesce {
            config.hub.write_coalesce = d;
        }
        if let Some(l) = &self.log {
            config.log.level = l.clone();
        }
        config.validate()?;
        Ok(config)
    }
}

fn init_logging(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Bench(args) => {
            init_logging("warn");
            runtime().and_then(|rt| rt.block_on(crate::bench::run(args)))
        }
        // Play tokens are the publish token's scheme, signed with the play
        // secret.
        Command::Token(
            TokenCommand::Publish {
                stream,
                ttl,
                secret,
            }
            | TokenCommand::Play {
                stream,
                ttl,
                secret,
            },
        ) => costream_hub::StreamKey::parse(&stream)
            .map_err(anyhow::Error::from)
            .map(|key| println!("{}", crate::auth::sign_publish(&secret, &key, ttl))),
        Command::Token(TokenCommand::Create {
            room,
            identity,
            role,
            name,
            live,
            ttl,
            api_key,
            api_secret,
        }) => {
            let key = crate::access::ApiKey {
                key: api_key,
                secret: api_secret,
            };
            crate::access::mint_owning(&key, &room, &identity, role, name, live, ttl)
                .map_err(anyhow::Error::from)
                .map(|token| println!("{token}"))
        }
        Command::DefaultConfig => {
            print!("{}", Config::default().to_toml());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("costream: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    init_logging(&config.log.level);
    raise_open_files();
    runtime()?.block_on(async move {
        let server = crate::server::Server::start(config).await?;
        tokio::signal::ctrl_c().await?;
        tracing::info!("shutting down");
        server.shutdown().await;
        Ok(())
    })
}

/// Every viewer is a socket: the soft open-files limit (often 1024) is
/// raised to the hard one, and the log says what it is.
fn raise_open_files() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) if n < 4096 => tracing::warn!(
            "open files limited to {n}: at most about that many viewers and publishers (raise the hard limit, ulimit -Hn)"
        ),
        Ok(n) => tracing::info!("open files limit: {n}"),
        Err(e) => tracing::warn!("could not raise the open files limit: {e}"),
    }
}

/// An address, or `off`. (An alias: clap gives `Option<Option<_>>` itself
/// a different meaning, an optional value.)
type AddrOrOff = Option<SocketAddr>;

fn parse_optional_addr(s: &str) -> Result<AddrOrOff, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|e| format!("{e}: expected HOST:PORT or \"off\""))
}
