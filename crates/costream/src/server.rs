//! A running node: listeners, shared state, shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use costream_hub::Hub;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::hls::HlsService;
use crate::limits::Connections;
use crate::tls::Tls;

/// What every connection handler shares.
pub struct AppState {
    pub config: Config,
    pub hub: Hub,
    pub hls: HlsService,
    pub bridges: crate::bridge::Bridges,
    /// `None` when WebRTC is disabled.
    pub rtc: Option<crate::webrtc::RtcService>,
    pub rooms: crate::room::Rooms,
    pub mixes: crate::mix::Mixes,
    /// The RTMP port actually bound (the console shows it for OBS).
    pub rtmp_port: u16,
}

pub struct Server {
    pub rtmp_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// The WebRTC UDP address, when enabled.
    pub rtc_addr: Option<SocketAddr>,
    /// The WebRTC ICE-TCP address, when enabled.
    pub rtc_tcp_addr: Option<SocketAddr>,
    /// The HTTPS address, when TLS is on (`[tls]`).
    pub https_addr: Option<SocketAddr>,
    /// The RTMPS address, when TLS is on.
    pub rtmps_addr: Option<SocketAddr>,
    pub state: Arc<AppState>,
    tls: Option<Arc<Tls>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds the listeners (port 0 picks a free port) and starts serving.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        crate::metrics::handle();
        // The files are read first: a bad path or a key that does not match
        // stops the start, with the file named, before anything is bound.
        let tls = match config.tls.files() {
            Some((cert, key)) => Some(Arc::new(Tls::load(cert, key)?)),
            None => None,
        };
        let hub = Hub::new(config.hub_config());
        let bridges = crate::bridge::Bridges::new(hub.clone()).with_limits(&config.transcode);
        let hls = HlsService::start(hub.clone(), config.hls.clone(), bridges.clone());
        let rtmp = TcpListener::bind(config.rtmp.listen)
            .await
            .with_context(|| format!("binding RTMP to {}", config.rtmp.listen))?;
        let http = TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("binding HTTP to {}", config.http.listen))?;
        let rtmp_addr = rtmp.local_addr()?;
        let http_addr = http.local_addr()?;
        let tls_listeners = match &tls {
            Some(_) => {
                let https = TcpListener::bind(config.tls.https_listen)
                    .await
                    .with_context(|| format!("binding HTTPS to {}", config.tls.https_listen))?;
                let rtmps = TcpListener::bind(config.tls.rtmps_listen)
                    .await
                    .with_context(|| format!("binding RTMPS to {}", config.tls.rtmps_listen))?;
                Some((https, rtmps))
            }
            None => None,
        };
        let rtc = if config.rtc.enabled {
            Some(crate::webrtc::RtcService::start(&config.rtc, hub.clone(), bridges.clone()).await?)
        } else {
            None
        };
        let mixes = crate::mix::Mixes::new(hub.clone()).with_limit(config.transcode.max_mixes);
        let rooms = crate::room::Rooms::new(
            config.rooms.clone(),
            crate::room::api_keys(&config.auth.api_keys),
            hub.clone(),
            rtc.clone(),
        );
        // A room's mix may stop when its last host leaves.
        rooms.bind_mixes(&mixes);
        let state = Arc::new(AppState {
            config,
            hub,
            hls,
            bridges,
            rtc,
            rooms,
            mixes,
            rtmp_port: rtmp_addr.port(),
        });
        let app = crate::http::router(state.clone());
        // One set of caps per protocol, over its plain and its TLS listener.
        let (http_cfg, rtmp_cfg) = (&state.config.http, &state.config.rtmp);
        let http_conns =
            Connections::new(http_cfg.max_connections, http_cfg.max_connections_per_ip);
        let rtmp_conns =
            Connections::new(rtmp_cfg.max_connections, rtmp_cfg.max_connections_per_ip);
        let mut tasks = vec![tokio::spawn(crate::rtmp::accept_loop(
            rtmp,
            state.clone(),
            rtmp_conns.clone(),
            None,
        ))];
        tasks.push(tokio::spawn(crate::http::accept_loop(
            http,
            state.clone(),
            app.clone(),
            http_conns.clone(),
            None,
        )));
        let (mut https_addr, mut rtmps_addr) = (None, None);
        if let (Some(tls), Some((https, rtmps))) = (&tls, tls_listeners) {
            https_addr = Some(https.local_addr()?);
            rtmps_addr = Some(rtmps.local_addr()?);
            tasks.push(tokio::spawn(crate::http::accept_loop(
                https,
                state.clone(),
                app,
                http_conns,
                Some(tls.clone()),
            )));
            tasks.push(tokio::spawn(crate::rtmp::accept_loop(
                rtmps,
                state.clone(),
                rtmp_conns,
                Some(tls.clone()),
            )));
            tasks.push(tls.reload_on_sighup());
        }
        tracing::info!(
            "RTMP listening on rtmp://{rtmp_addr} (publish to rtmp://HOST:{}/APP/STREAM)",
            rtmp_addr.port()
        );
        if let Some(addr) = rtmps_addr {
            tracing::info!(
                "RTMPS listening on rtmps://{addr} (publish to rtmps://HOST:{}/APP/STREAM)",
                addr.port()
            );
        }
        tracing::info!(
            "HTTP listening on http://{http_addr} (HTTP-FLV /APP/STREAM.flv, HLS /APP/STREAM.m3u8, API /api/v1/streams, /metrics)"
        );
        if let (Some(addr), Some(tls)) = (https_addr, &tls) {
            tracing::info!(
                "HTTPS listening on https://{addr} (all of the above, and WSS signaling), certificate {} (SIGHUP reloads it)",
                tls.cert_path().display()
            );
        }
        if state.config.console.enabled {
            tracing::info!(
                "web console on http://{http_addr}/ (development tokens: {:?})",
                state.config.dev_tokens()
            );
            if let Some(addr) = https_addr {
                // Browsers give pages of other machines the camera only
                // over HTTPS.
                tracing::info!(
                    "web console on https://{addr}/ (browsers on other machines need it for the camera)"
                );
            }
        }
        if state.config.auth.play_secret.is_some() {
            tracing::info!(
                "playing live streams requires a token (costream token play --stream APP/STREAM)"
            );
        }
        if state.config.auth.publish_secret.is_some() {
            tracing::info!(
                "publishing requires a token (costream token publish --stream APP/STREAM)"
            );
        } else if state.config.auth.on_publish.is_none() {
            // The zero-config default; said once, plainly, where operators look.
            tracing::warn!(
                "anyone who reaches this server may publish: set [auth] publish_secret or on_publish \
                 before you expose it (README: Before you expose it)"
            );
        }
        Ok(Server {
            rtc_addr: state.rtc.as_ref().map(|r| r.udp_addr),
            rtc_tcp_addr: state.rtc.as_ref().and_then(|r| r.tcp_addr),
            rtmp_addr,
            http_addr,
            https_addr,
            rtmps_addr,
            state,
            tls,
            tasks,
        })
    }

    pub fn hub(&self) -> &Hub {
        &self.state.hub
    }

    /// Reads the TLS certificate and key again, as `SIGHUP` does: new
    /// connections get the new certificate, connections already made keep
    /// theirs. On error the certificate in use stays. An error too when
    /// TLS is off.
    pub fn reload_tls(&self) -> anyhow::Result<()> {
        match &self.tls {
            Some(tls) => tls.reload(),
            None => anyhow::bail!("TLS is off: no [tls] cert and key"),
        }
    }

    /// Stops accepting; live connections end with the runtime.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
