//! Webhooks: room events POSTed as JSON to the configured URLs, signed
//! with an API key's secret, retried with backoff. Each URL has its own
//! bounded queue and task, so a slow receiver delays only its own events
//! and never a room.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::mpsc;

use super::protocol::{LinkMicAction, ServerMessage};
use crate::access::ApiKey;
use crate::bench::http_request::request;
use crate::bench::probe::resolve;
use crate::bench::url::BenchUrl;

/// Events waiting per URL; when full, new events are dropped (and logged).
const QUEUE: usize = 1024;
/// Attempts per event and URL.
const ATTEMPTS: u32 = 4;
const FIRST_RETRY: Duration = Duration::from_millis(500);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Default)]
pub struct Webhooks {
    queues: Arc<Vec<mpsc::Sender<Arc<Vec<u8>>>>>,
}

/// Checks a URL is one webhooks can POST to.
pub fn check_url(url: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        url.starts_with("http://"),
        "webhook URL {url:?}: only http:// is supported"
    );
    BenchUrl::parse(url).map(|_| ())
}

impl Webhooks {
    /// Starts one sender task per URL. Bodies are signed with `key`.
    pub fn start(urls: &[String], key: Option<ApiKey>) -> Webhooks {
        let queues = urls
            .iter()
            .filter_map(|u| match BenchUrl::parse(u) {
                Ok(url) => {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    tokio::spawn(deliver(url, key.clone(), rx));
                    tracing::info!("webhooks go to {u}");
                    Some(tx)
                }
                Err(e) => {
                    tracing::warn!("webhook URL {u:?} ignored: {e}");
                    None
                }
            })
            .collect();
        Webhooks {
            queues: Arc::new(queues),
        }
    }

    /// Sends `event` about `room` with its fields.
    pub fn send(&self, event: &str, room: &str, mut fields: Value) {
        if self.queues.is_empty() {
            return;
        }
        fields["event"] = json!(event);
        fields["room"] = json!(room);
        fields["created_at"] = json!(crate::access::now_secs());
        let body = Arc::new(fields.to_string().into_bytes());
        for q in self.queues.iter() {
            if q.try_send(body.clone()).is_err() {
                tracing::warn!(event, room, "webhook queue full: event dropped");
            }
        }
    }

    /// The room's mix `mix` stopped by itself (`reason`: `host_left`);
    /// `replace` is the live stream given back to its publisher.
    pub fn mix_stopped(&self, room: &str, mix: &str, replace: &str, reason: &str) {
        self.send(
            "mix_stopped",
            room,
            json!({ "mix": mix, "replace": replace, "reason": reason }),
        )
    }

    /// The webhook, if any, for a message a room broadcasts.
    pub fn on_broadcast(&self, room: &str, msg: &ServerMessage) {
        if self.queues.is_empty() {
            return;
        }
        match msg {
            ServerMessage::ParticipantJoined { participant } => self.send(
                "participant_joined",
                room,
                json!({ "participant": participant }),
            ),
            ServerMessage::ParticipantLeft { identity, reason } => self.send(
                "participant_left",
                room,
                json!({ "identity": identity, "reason": reason }),
            ),
            ServerMessage::TrackPublished { identity, tracks } => self.send(
                "track_published",
                room,
                json!({ "identity": identity, "tracks": tracks }),
            ),
            ServerMessage::TrackUnpublished { identity } => {
                self.send("track_unpublished", room, json!({ "identity": identity }))
            }
            ServerMessage::LinkMic {
                action: action @ (LinkMicAction::Accepted | LinkMicAction::Kicked),
                identity,
                by,
            } => {
                let event = if *action == LinkMicAction::Accepted {
                    "link_mic_accepted"
                } else {
                    "link_mic_ended"
                };
                self.send(event, room, json!({ "identity": identity, "by": by }))
            }
            _ => {}
        }
    }
}

/// `Authorization` for a body: the key's name and the hex HMAC-SHA256 of
/// the body under its secret.
pub fn signature(key: &ApiKey, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key.secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(), // HMAC takes keys of any length
    };
    mac.update(body);
    format!(
        "costream-hmac-sha256 key={}, signature={}",
        key.key,
        hex::encode(mac.finalize().into_bytes())
    )
}

async fn deliver(url: BenchUrl, key: Option<ApiKey>, mut rx: mpsc::Receiver<Arc<Vec<u8>>>) {
    let target = url.request_target();
    let host = url.authority();
    while let Some(body) = rx.recv().await {
        let auth = key.as_ref().map(|k| signature(k, &body));
        let mut wait = FIRST_RETRY;
        for attempt in 1..=ATTEMPTS {
            let sent = async {
                let addr = resolve(&url).await?;
                let call = request(
                    addr,
                    &host,
                    "POST",
                    &target,
                    Some("application/json"),
                    auth.as_deref(),
                    &body,
                );
                tokio::time::timeout(REQUEST_TIMEOUT, call)
                    .await
                    .map_err(|_| anyhow::anyhow!("no answer in {REQUEST_TIMEOUT:?}"))?
            }
            .await;
            match sent {
                Ok(r) if (200..300).contains(&r.status) => break,
                Ok(r) => tracing::info!(attempt, "webhook {host}{target}: {}", r.describe()),
                Err(e) => tracing::info!(attempt, "webhook {host}{target}: {e}"),
            }
            if attempt == ATTEMPTS {
                tracing::warn!("webhook {host}{target}: event dropped after {ATTEMPTS} attempts");
            } else {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
}
