//! A running node: listeners, shared state, shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use costream_hub::Hub;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::hls::HlsService;

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
    pub state: Arc<AppState>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds the listeners (port 0 picks a free port) and starts serving.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        crate::metrics::handle();
        let hub = Hub::new(config.hub_config());
        let bridges = crate::bridge::Bridges::new(hub.clone());
        let hls = HlsService::start(hub.clone(), config.hls.clone(), bridges.clone());
        let rtmp = TcpListener::bind(config.rtmp.listen)
            .await
            .with_context(|| format!("binding RTMP to {}", config.rtmp.listen))?;
        let http = TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("binding HTTP to {}", config.http.listen))?;
        let rtmp_addr = rtmp.local_addr()?;
        let http_addr = http.local_addr()?;
        let rtc = if config.rtc.enabled {
            Some(crate::webrtc::RtcService::start(&config.rtc, hub.clone(), bridges.clone()).await?)
        } else {
            None
        };
        let mixes = crate::mix::Mixes::new(hub.clone());
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
        let mut tasks = vec![tokio::spawn(crate::rtmp::accept_loop(rtmp, state.clone()))];
        tasks.push(tokio::spawn(crate::http::accept_loop(
            http,
            state.clone(),
            app,
        )));
        tracing::info!(
            "RTMP listening on rtmp://{rtmp_addr} (publish to rtmp://HOST:{}/APP/STREAM)",
            rtmp_addr.port()
        );
        tracing::info!(
            "HTTP listening on http://{http_addr} (HTTP-FLV /APP/STREAM.flv, HLS /APP/STREAM.m3u8, API /api/v1/streams, /metrics)"
        );
        if state.config.console.enabled {
            tracing::info!(
                "web console on http://{http_addr}/ (development tokens: {:?})",
                state.config.dev_tokens()
            );
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
            state,
            tasks,
        })
    }

    pub fn hub(&self) -> &Hub {
        &self.state.hub
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
