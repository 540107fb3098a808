//! A room participant's signaling side, for the tests and `costream bench
//! room`: a WebSocket that sends client messages and keeps every server
//! message it receives, so that a caller can wait for one and still look
//! at the others.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::protocol::{ClientEnvelope, ClientMessage, ErrorCode, ServerMessage};

pub struct RoomClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every message received, in order.
    pub log: Vec<ServerMessage>,
    /// Messages no [`RoomClient::wait_for`] has taken yet.
    unclaimed: VecDeque<ServerMessage>,
    next_id: u64,
    /// The close frame's code, once the server closed.
    pub closed: Option<u16>,
}

/// Why joining failed: the server's `error` or a transport problem.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("refused ({code:?}): {message}")]
    Refused { code: ErrorCode, message: String },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl RoomClient {
    /// Connects to `ws://HOST:PORT/rtc?access_token=...` and waits for
    /// `joined` (returned, and first in `log`).
    pub async fn join(url: &str) -> Result<(RoomClient, ServerMessage), JoinError> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .with_context(|| format!("WebSocket to {}", url.split('?').next().unwrap_or(url)))?;
        let mut client = RoomClient {
            ws,
            log: Vec::new(),
            unclaimed: VecDeque::new(),
            next_id: 1,
            closed: None,
        };
        let first = client
            .next(Duration::from_secs(10))
            .await?
            .ok_or_else(|| anyhow!("closed before joining"))?;
        client.unclaimed.clear();
        match first {
            ServerMessage::Error { code, message, .. } => Err(JoinError::Refused { code, message }),
            joined @ ServerMessage::Joined { .. } => Ok((client, joined)),
            other => Err(anyhow!("expected joined, got {other:?}").into()),
        }
    }

    pub async fn send(&mut self, message: ClientMessage) -> anyhow::Result<()> {
        self.send_with_id(None, message).await
    }

    async fn send_with_id(
        &mut self,
        id: Option<String>,
        message: ClientMessage,
    ) -> anyhow::Result<()> {
        let text = serde_json::to_string(&ClientEnvelope { id, message })?;
        self.ws.send(Message::text(text)).await.context("send")
    }

    /// Sends `message` with a fresh id and waits for the answer or error
    /// carrying it.
    pub async fn request(&mut self, message: ClientMessage) -> anyhow::Result<ServerMessage> {
        let id = self.next_id.to_string();
        self.next_id += 1;
        self.send_with_id(Some(id.clone()), message).await?;
        let want = Some(id);
        self.wait_for(Duration::from_secs(10), |m| match m {
            ServerMessage::PublishAnswer { id, .. }
            | ServerMessage::SubscribeAnswer { id, .. }
            | ServerMessage::Pong { id }
            | ServerMessage::Mix { id, .. }
            | ServerMessage::Error { id, .. } => *id == want,
            _ => false,
        })
        .await
    }

    /// The first message that matches and that no earlier call took,
    /// waiting up to `limit` for it. Other messages stay for later calls.
    pub async fn wait_for(
        &mut self,
        limit: Duration,
        mut pred: impl FnMut(&ServerMessage) -> bool,
    ) -> anyhow::Result<ServerMessage> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut looked = 0;
        loop {
            while looked < self.unclaimed.len() {
                if pred(&self.unclaimed[looked]) {
                    if let Some(m) = self.unclaimed.remove(looked) {
                        return Ok(m);
                    }
                }
                looked += 1;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                bail!("no such message within {limit:?}; received {:?}", self.log);
            }
            if self.next(left).await?.is_none() && self.closed.is_some() {
                bail!(
                    "the server closed ({:?}); received {:?}",
                    self.closed,
                    self.log
                );
            }
        }
    }

    /// Receives one message into `log` (None at close or when `limit`
    /// passes first).
    async fn next(&mut self, limit: Duration) -> anyhow::Result<Option<ServerMessage>> {
        loop {
            let msg = match tokio::time::timeout(limit, self.ws.next()).await {
                Err(_) => return Ok(None),
                Ok(None) => return Ok(None),
                Ok(Some(m)) => match m {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::debug!("room client WebSocket: {e}");
                        self.closed.get_or_insert(1006);
                        return Ok(None);
                    }
                },
            };
            match msg {
                Message::Text(t) => {
                    let m: ServerMessage = serde_json::from_str(t.as_str())
                        .with_context(|| format!("unreadable server message {t}"))?;
                    self.log.push(m.clone());
                    self.unclaimed.push_back(m.clone());
                    return Ok(Some(m));
                }
                Message::Close(frame) => {
                    self.closed = Some(frame.map_or(1005, |f| f.code.into()));
                    return Ok(None);
                }
                _ => {} // pings are answered by tungstenite
            }
        }
    }

    /// Reads what has arrived within `limit` (for a caller that only wants
    /// the log up to date).
    pub async fn pump(&mut self, limit: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || self.next(left).await?.is_none() {
                return Ok(());
            }
        }
    }

    /// Waits for the server to close the socket; returns the close code.
    pub async fn wait_closed(&mut self, limit: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + limit;
        while self.closed.is_none() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            if let Ok(None) | Err(_) = self.next(left).await {
                if self.closed.is_none() {
                    break;
                }
            }
        }
        self.closed
    }

    /// Says `leave` and closes.
    pub async fn leave(mut self) -> anyhow::Result<()> {
        self.send(ClientMessage::Leave).await?;
        let _ = self.wait_closed(Duration::from_secs(5)).await;
        Ok(())
    }

    /// Drops the connection without a word, as a lost network would.
    pub fn drop_connection(self) {
        drop(self.ws.into_inner());
    }
}
