//! Pushing a hub stream (a mix) to an external RTMP server, such as a CDN's
//! ingest: reconnecting with backoff whenever the connection fails.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::BytesMut;
use costream_hub::{Hub, Protocol, StreamKey};
use costream_rtmp::{ClientEvent, ClientSession};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::bench::url::{BenchUrl, Scheme};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A push that lasted this long was healthy: the backoff starts over.
const HEALTHY: Duration = Duration::from_secs(10);
/// Most bytes waiting in the read buffer (acks and pings are small).
const MAX_READ: usize = 1 << 20;

/// A push as the API shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PushStatus {
    pub url: String,
    pub publishing: bool,
    pub connects: u64,
    pub last_error: Option<String>,
}

/// Checks a push URL (`rtmp://host[:port]/app/stream`).
pub fn check_url(url: &str) -> Result<(), String> {
    let u = BenchUrl::parse(url).map_err(|e| e.to_string())?;
    if u.scheme != Scheme::Rtmp {
        return Err(format!("{url}: pushes go to rtmp:// URLs"));
    }
    u.rtmp_target().map(drop).map_err(|e| e.to_string())
}

/// Pushes `key` to `url` until aborted.
pub async fn run(hub: Hub, key: StreamKey, url: String, status: Arc<Mutex<PushStatus>>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = tokio::time::Instant::now();
        status.lock().connects += 1;
        let result = push_once(&hub, &key, &url, &status).await;
        status.lock().publishing = false;
        if let Err(e) = &result {
            tracing::info!(stream = %key, %url, "push: {e:#}; reconnecting in {backoff:?}");
            status.lock().last_error = Some(format!("{e:#}"));
        }
        if started.elapsed() >= HEALTHY {
            backoff = FIRST_BACKOFF;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn push_once(
    hub: &Hub,
    key: &StreamKey,
    url: &str,
    status: &Mutex<PushStatus>,
) -> anyhow::Result<()> {
    let u = BenchUrl::parse(url)?;
    let target = u.rtmp_target()?;
    let mut sock = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((u.host.as_str(), u.port)),
    )
    .await
    .map_err(|_| anyhow!("no connection within {CONNECT_TIMEOUT:?}"))?
    .with_context(|| format!("connect to {}", u.authority()))?;
    sock.set_nodelay(true)?;
    let mut session = target.publish_session();
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    tokio::time::timeout(PUBLISH_TIMEOUT, async {
        while !session.is_publishing() {
            sock.write_all(&session.take_output()).await?;
            read_some(&mut sock, &mut rbuf, &mut session).await?;
        }
        anyhow::Ok(())
    })
    .await
    .map_err(|_| anyhow!("publish not accepted within {PUBLISH_TIMEOUT:?}"))??;
    sock.write_all(&session.take_output()).await?;
    tracing::info!(stream = %key, %url, "pushing");
    status.lock().publishing = true;

    let mut sub = hub
        .subscribe(key, Protocol::Internal)
        .map_err(|e| anyhow!("{key}: {e}"))?;
    session.send_metadata(&crate::mux::on_metadata(&sub.stream().info()))?;
    loop {
        tokio::select! {
            frame = sub.recv() => {
                let Some(frame) = frame else {
                    bail!("the stream ended");
                };
                if !crate::mux::flv_carries(&frame) {
                    continue;
                }
                let body = crate::mux::flv_body(&frame);
                let ts = crate::mux::rtmp_timestamp(frame.dts);
                if frame.kind.is_video() {
                    session.send_video(ts, &body)?;
                } else {
                    session.send_audio(ts, &body)?;
                }
                sock.write_all(&session.take_output()).await?;
            }
            r = read_some(&mut sock, &mut rbuf, &mut session) => r?,
        }
    }
}

/// Reads what the server sent and handles it (acks, pings, errors).
async fn read_some(
    sock: &mut TcpStream,
    rbuf: &mut BytesMut,
    session: &mut ClientSession,
) -> anyhow::Result<()> {
    if rbuf.len() > MAX_READ {
        bail!("the server sent more than we can take");
    }
    rbuf.reserve(16 * 1024);
    if sock.read_buf(rbuf).await? == 0 {
        bail!("the server closed the connection");
    }
    session.feed(rbuf).map_err(|e| anyhow!("RTMP: {e}"))?;
    while let Some(event) = session.poll_event() {
        if let ClientEvent::Error { code, description } = event {
            bail!("refused: {code} {description}");
        }
    }
    if session.has_output() {
        sock.write_all(&session.take_output()).await?;
    }
    Ok(())
}
