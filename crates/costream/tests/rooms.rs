//! Link-mic rooms over the signaling WebSocket, with native clients
//! (`costream::room::client`) and str0m peers for the WebRTC offers.

mod common;

use std::time::{Duration, Instant};

use common::*;
use costream::access::{mint, sign, ApiKey, Claims, Role};
use costream::bench::rtc_client::{RtcClientFactory, RtcPeer};
use costream::room::client::{JoinError, RoomClient};
use costream::room::protocol::{
    ClientMessage, ErrorCode, KickTo, LeftReason, LinkMicAction, ServerMessage,
};
use costream::server::Server;
use str0m::media::Direction;

const SECRET: &str = "rooms-test-secret-0123456789";
const WAIT: Duration = Duration::from_secs(5);

fn key() -> ApiKey {
    ApiKey {
        key: "test".into(),
        secret: SECRET.into(),
    }
}

async fn server(tweak: impl FnOnce(&mut costream::config::Config)) -> Server {
    start_server(|c| {
        c.auth.api_keys = vec![key()];
        tweak(c);
    })
    .await
}

fn token(room: &str, identity: &str, role: Role) -> String {
    mint(&key(), room, identity, role, None, Duration::from_secs(600)).unwrap()
}

/// Subscriptions only on request (the tests say what they subscribe to).
fn ws_url(server: &Server, token: &str) -> String {
    format!(
        "ws://{}/rtc?access_token={token}&auto_subscribe=false",
        server.http_addr
    )
}

async fn join(server: &Server, room: &str, identity: &str, role: Role) -> RoomClient {
    let (client, joined) = RoomClient::join(&ws_url(server, &token(room, identity, role)))
        .await
        .unwrap_or_else(|e| panic!("{identity} joins: {e}"));
    assert!(matches!(joined, ServerMessage::Joined { .. }));
    client
}

/// A host whose token owns the live stream `live` (its room's mix may
/// replace it).
async fn join_owning(server: &Server, room: &str, identity: &str, live: &str) -> RoomClient {
    let token = costream::access::mint_owning(
        &key(),
        room,
        identity,
        Role::Host,
        None,
        Some(live.into()),
        Duration::from_secs(600),
    )
    .unwrap();
    let (client, _) = RoomClient::join(&ws_url(server, &token))
        .await
        .unwrap_or_else(|e| panic!("{identity} joins: {e}"));
    client
}

/// A str0m offer sending (publish) or receiving (subscribe) audio and video.
fn offer(direction: Direction) -> (RtcPeer, String) {
    let factory = RtcClientFactory::default();
    let mut peer = RtcPeer::new(&factory, "127.0.0.1".parse().unwrap(), direction).unwrap();
    let sdp = peer.take_offer().unwrap();
    (peer, sdp)
}

/// Runs a peer (ICE, DTLS, keep-alives) until dropped.
struct LivePeer(tokio::task::JoinHandle<()>);

impl Drop for LivePeer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn run_peer(mut peer: RtcPeer) -> LivePeer {
    LivePeer(tokio::spawn(async move {
        while peer.is_alive() {
            let wake = Instant::now() + Duration::from_millis(50);
            if peer.step(wake, &mut |_| {}).await.is_err() {
                return;
            }
        }
    }))
}

/// Publishes from a peer that keeps running.
async fn publish_live(client: &mut RoomClient) -> (ServerMessage, LivePeer) {
    let (mut peer, sdp) = offer(Direction::SendOnly);
    let answer = client
        .request(ClientMessage::Publish { sdp })
        .await
        .unwrap();
    if let ServerMessage::PublishAnswer { sdp, .. } = &answer {
        peer.accept_answer(sdp).unwrap();
    }
    (answer, run_peer(peer))
}

async fn publish(client: &mut RoomClient) -> ServerMessage {
    let (_peer, sdp) = offer(Direction::SendOnly);
    client
        .request(ClientMessage::Publish { sdp })
        .await
        .unwrap()
}

fn error_code(m: &ServerMessage) -> Option<ErrorCode> {
    match m {
        ServerMessage::Error { code, .. } => Some(*code),
        _ => None,
    }
}

fn is_link_mic(m: &ServerMessage, want: LinkMicAction, who: &str) -> bool {
    matches!(m, ServerMessage::LinkMic { action, identity, .. } if *action == want && identity == who)
}

fn role_update(m: &ServerMessage, who: &str, want: Role) -> bool {
    matches!(m, ServerMessage::ParticipantUpdated { participant } if participant.identity == who && participant.role == want)
}

#[tokio::test]
async fn token_errors_each_give_their_reason() {
    let server = server(|_| {}).await;
    let refused = |r: Result<(RoomClient, ServerMessage), JoinError>| match r {
        Err(JoinError::Refused { code, message }) => (code, message),
        Err(e) => panic!("not refused by the server: {e}"),
        Ok((_, joined)) => panic!("joined: {joined:?}"),
    };

    let forged = mint(
        &ApiKey {
            key: "test".into(),
            secret: "another-secret-another-secret".into(),
        },
        "r1",
        "eve",
        Role::Host,
        None,
        Duration::from_secs(60),
    )
    .unwrap();
    let (code, why) = refused(RoomClient::join(&ws_url(&server, &forged)).await);
    assert_eq!(code, ErrorCode::Unauthorized);
    assert!(why.contains("signature"), "{why}");

    let mut claims: Claims = costream::access::verify_token(
        &[key()],
        &token("r1", "old", Role::Host),
        costream::access::DEFAULT_LEEWAY,
    )
    .unwrap();
    claims.exp = costream::access::now_secs() - 3600;
    let expired = sign(&key(), &claims).unwrap();
    let (code, why) = refused(RoomClient::join(&ws_url(&server, &expired)).await);
    assert_eq!(code, ErrorCode::Unauthorized);
    assert!(why.contains("expired"), "{why}");
    // Within `auth.leeway` (5 s) of its expiry a token still joins; not after.
    claims.exp = costream::access::now_secs() - 3;
    let (late, _) = RoomClient::join(&ws_url(&server, &sign(&key(), &claims).unwrap()))
        .await
        .unwrap_or_else(|e| panic!("3 s past its expiry: {e}"));
    late.leave().await.unwrap();
    claims.exp = costream::access::now_secs() - 10;
    let (code, why) =
        refused(RoomClient::join(&ws_url(&server, &sign(&key(), &claims).unwrap())).await);
    assert_eq!(code, ErrorCode::Unauthorized);
    assert!(why.contains("expired"), "{why}");

    let url = format!(
        "{}&room=r2",
        ws_url(&server, &token("r1", "bob", Role::Host))
    );
    let (code, why) = refused(RoomClient::join(&url).await);
    assert_eq!(code, ErrorCode::Unauthorized);
    assert!(why.contains("room \"r1\", not \"r2\""), "{why}");

    let (code, why) = refused(RoomClient::join(&ws_url(&server, "")).await);
    assert_eq!(code, ErrorCode::Unauthorized);
    assert!(why.contains("access_token"), "{why}");

    // Valid, but without the publish grant.
    let mut viewer = join(&server, "r1", "carol", Role::Audience).await;
    let answer = publish(&mut viewer).await;
    assert_eq!(
        error_code(&answer),
        Some(ErrorCode::NotGranted),
        "{answer:?}"
    );
    let ServerMessage::Error {
        message, request, ..
    } = answer
    else {
        unreachable!()
    };
    assert!(message.contains("accepted on stage"), "{message}");
    assert_eq!(request.as_deref(), Some("publish"));

    // Malformed messages are answered and the connection stays.
    let answer = viewer
        .request(ClientMessage::Invite {
            identity: "carol".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        error_code(&answer),
        Some(ErrorCode::NotGranted),
        "{answer:?}"
    );
    let pong = viewer.request(ClientMessage::Ping).await.unwrap();
    assert!(matches!(pong, ServerMessage::Pong { .. }), "{pong:?}");

    // A room's streams cannot be taken over by WHIP (nor RTMP).
    let (status, _, body) = http_send(
        server.http_addr,
        "POST",
        "/whip/room.r1/carol",
        "application/sdp",
        b"v=0\r\n",
    )
    .await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn invite_accept_request_reject_and_kick() {
    let server = server(|_| {}).await;
    let mut alice = join(&server, "show", "alice", Role::Host).await;
    let mut carol = join(&server, "show", "carol", Role::Audience).await;
    let mut dave = join(&server, "show", "dave", Role::Audience).await;
    for c in [&mut alice, &mut carol] {
        c.wait_for(WAIT, |m| matches!(m, ServerMessage::ParticipantJoined { participant } if participant.identity == "dave"))
            .await
            .unwrap();
    }

    // The audience cannot publish before being accepted.
    assert_eq!(
        error_code(&publish(&mut carol).await),
        Some(ErrorCode::NotGranted)
    );

    // Invite → accept: every participant sees both steps and the new role.
    alice
        .send(ClientMessage::Invite {
            identity: "carol".into(),
        })
        .await
        .unwrap();
    for c in [&mut alice, &mut carol, &mut dave] {
        c.wait_for(WAIT, |m| is_link_mic(m, LinkMicAction::Invited, "carol"))
            .await
            .unwrap();
    }
    // Only the invited may accept an invitation.
    let answer = dave
        .request(ClientMessage::Accept {
            identity: "alice".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        error_code(&answer),
        Some(ErrorCode::UnknownParticipant),
        "{answer:?}"
    );
    carol
        .send(ClientMessage::Accept {
            identity: "alice".into(),
        })
        .await
        .unwrap();
    for c in [&mut alice, &mut carol, &mut dave] {
        let m = c
            .wait_for(WAIT, |m| is_link_mic(m, LinkMicAction::Accepted, "carol"))
            .await
            .unwrap();
        assert!(
            matches!(&m, ServerMessage::LinkMic { by, .. } if by == "carol"),
            "{m:?}"
        );
        let m = c
            .wait_for(WAIT, |m| role_update(m, "carol", Role::Guest))
            .await
            .unwrap();
        let ServerMessage::ParticipantUpdated { participant } = m else {
            unreachable!()
        };
        assert!(participant.grants.publish);
    }
    // Now carol publishes, and everybody sees her tracks.
    let answer = publish(&mut carol).await;
    assert!(
        matches!(answer, ServerMessage::PublishAnswer { .. }),
        "{answer:?}"
    );
    for c in [&mut alice, &mut dave] {
        let m = c
            .wait_for(WAIT, |m| matches!(m, ServerMessage::TrackPublished { identity, .. } if identity == "carol"))
            .await
            .unwrap();
        let ServerMessage::TrackPublished { tracks, .. } = m else {
            unreachable!()
        };
        assert_eq!(tracks.len(), 2, "audio and video: {tracks:?}");
    }

    // Request → reject.
    dave.send(ClientMessage::Request).await.unwrap();
    alice
        .wait_for(WAIT, |m| is_link_mic(m, LinkMicAction::Requested, "dave"))
        .await
        .unwrap();
    alice
        .send(ClientMessage::Reject {
            identity: "dave".into(),
        })
        .await
        .unwrap();
    for c in [&mut alice, &mut carol, &mut dave] {
        c.wait_for(WAIT, |m| is_link_mic(m, LinkMicAction::Rejected, "dave"))
            .await
            .unwrap();
    }
    assert_eq!(
        error_code(&publish(&mut dave).await),
        Some(ErrorCode::NotGranted)
    );
    // A request can only be answered by the host.
    dave.send(ClientMessage::Request).await.unwrap();
    alice
        .wait_for(WAIT, |m| is_link_mic(m, LinkMicAction::Requested, "dave"))
        .await
        .unwrap();
    let answer = carol
        .request(ClientMessage::Accept {
            identity: "dave".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        error_code(&answer),
        Some(ErrorCode::NotGranted),
        "{answer:?}"
    );

    // Kick carol back to the audience: her publication ends.
    alice
        .send(ClientMessage::Kick {
            identity: "carol".into(),
            to: KickTo::Audience,
        })
        .await
        .unwrap();
    for c in [&mut alice, &mut dave] {
        c.wait_for(WAIT, |m| is_link_mic(m, LinkMicAction::Kicked, "carol"))
            .await
            .unwrap();
        c.wait_for(
            WAIT,
            |m| matches!(m, ServerMessage::TrackUnpublished { identity } if identity == "carol"),
        )
        .await
        .unwrap();
        c.wait_for(WAIT, |m| role_update(m, "carol", Role::Audience))
            .await
            .unwrap();
    }
    carol
        .wait_for(WAIT, |m| role_update(m, "carol", Role::Audience))
        .await
        .unwrap();
    assert_eq!(
        error_code(&publish(&mut carol).await),
        Some(ErrorCode::NotGranted)
    );

    // Kick dave out of the room: his socket is closed, the others see him leave.
    alice
        .send(ClientMessage::Kick {
            identity: "dave".into(),
            to: KickTo::Out,
        })
        .await
        .unwrap();
    assert_eq!(dave.wait_closed(WAIT).await, Some(4403));
    for c in [&mut alice, &mut carol] {
        c.wait_for(WAIT, |m| matches!(m, ServerMessage::ParticipantLeft { identity, reason } if identity == "dave" && *reason == LeftReason::Kicked))
            .await
            .unwrap();
    }
    carol.leave().await.unwrap();
    alice
        .wait_for(WAIT, |m| matches!(m, ServerMessage::ParticipantLeft { identity, reason } if identity == "carol" && *reason == LeftReason::Left))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_ninth_publisher_is_refused() {
    let server = server(|_| {}).await;
    let mut clients = Vec::new();
    for i in 0..9 {
        let mut c = join(&server, "big", &format!("p{i}"), Role::Guest).await;
        let answer = publish(&mut c).await;
        clients.push((c, answer));
    }
    for (i, (_, answer)) in clients.iter().enumerate().take(8) {
        assert!(
            matches!(answer, ServerMessage::PublishAnswer { .. }),
            "publisher {i}: {answer:?}"
        );
    }
    let ServerMessage::Error { code, message, .. } = &clients[8].1 else {
        panic!("9th publisher: {:?}", clients[8].1)
    };
    assert_eq!(*code, ErrorCode::RoomFull);
    assert!(message.contains("8 publishers"), "{message}");
    // One leaves: the ninth may publish now.
    let (first, _) = clients.remove(0);
    first.leave().await.unwrap();
    let ninth = &mut clients.last_mut().unwrap().0;
    ninth
        .wait_for(
            WAIT,
            |m| matches!(m, ServerMessage::ParticipantLeft { identity, .. } if identity == "p0"),
        )
        .await
        .unwrap();
    let answer = publish(ninth).await;
    assert!(
        matches!(answer, ServerMessage::PublishAnswer { .. }),
        "{answer:?}"
    );
}

/// With the default 10 s grace: a participant whose connection drops is
/// announced as left within 20 s; one that comes back within the grace
/// period is resumed with its tracks and never announced as left.
#[tokio::test]
async fn dropped_participants_leave_and_returning_ones_resume() {
    let server = server(|_| {}).await;
    let mut alice = join(&server, "r", "alice", Role::Host).await;
    let mut bob = join(&server, "r", "bob", Role::Guest).await;
    let mut carol = join(&server, "r", "carol", Role::Guest).await;
    let mut peers = Vec::new();
    for c in [&mut bob, &mut carol] {
        let (answer, peer) = publish_live(c).await;
        assert!(matches!(answer, ServerMessage::PublishAnswer { .. }));
        peers.push(peer);
    }
    alice
        .wait_for(
            WAIT,
            |m| matches!(m, ServerMessage::TrackPublished { identity, .. } if identity == "carol"),
        )
        .await
        .unwrap();

    let dropped_at = Instant::now();
    bob.drop_connection();
    carol.drop_connection();
    alice
        .wait_for(WAIT, |m| matches!(m, ServerMessage::ParticipantUpdated { participant } if participant.identity == "carol" && !participant.connected))
        .await
        .unwrap();

    // carol comes back (say, after a network switch).
    let (mut carol, joined) = RoomClient::join(&ws_url(&server, &token("r", "carol", Role::Guest)))
        .await
        .unwrap();
    let ServerMessage::Joined {
        resumed,
        you,
        participants,
        ..
    } = joined
    else {
        unreachable!()
    };
    assert!(resumed);
    assert_eq!(you.role, Role::Guest, "carol keeps her place: {you:?}");
    assert!(
        you.tracks.is_empty(),
        "her old connection's publication ended: {you:?}"
    );
    assert!(participants
        .iter()
        .any(|p| p.identity == "bob" && !p.connected));

    let left = alice
        .wait_for(
            Duration::from_secs(20),
            |m| matches!(m, ServerMessage::ParticipantLeft { identity, .. } if identity == "bob"),
        )
        .await
        .unwrap();
    let after = dropped_at.elapsed();
    assert!(
        matches!(
            left,
            ServerMessage::ParticipantLeft {
                reason: LeftReason::Dropped,
                ..
            }
        ),
        "{left:?}"
    );
    assert!(after < Duration::from_secs(20), "announced after {after:?}");
    assert!(
        after >= Duration::from_secs(9),
        "before the grace period: {after:?}"
    );
    eprintln!("dropped participant announced as left after {after:?}");
    // bob's publication ended with him; carol's with her old connection.
    alice
        .wait_for(
            WAIT,
            |m| matches!(m, ServerMessage::TrackUnpublished { identity } if identity == "bob"),
        )
        .await
        .unwrap();
    assert!(!alice.log.iter().any(
        |m| matches!(m, ServerMessage::ParticipantLeft { identity, .. } if identity == "carol")
    ));
    assert!(alice
        .log
        .iter()
        .any(|m| matches!(m, ServerMessage::TrackUnpublished { identity } if identity == "bob")));
    assert!(alice
        .log
        .iter()
        .any(|m| matches!(m, ServerMessage::TrackUnpublished { identity } if identity == "carol")));
    // carol publishes again from her new connection: alice can subscribe.
    let (answer, _carol_peer) = publish_live(&mut carol).await;
    assert!(
        matches!(answer, ServerMessage::PublishAnswer { .. }),
        "{answer:?}"
    );
    let (_peer, sdp) = offer(Direction::RecvOnly);
    let answer = alice
        .request(ClientMessage::Subscribe {
            identity: "carol".into(),
            sdp: Some(sdp),
        })
        .await
        .unwrap();
    assert!(
        matches!(answer, ServerMessage::SubscribeAnswer { .. }),
        "{answer:?}"
    );
    let (_peer, sdp) = offer(Direction::RecvOnly);
    let answer = alice
        .request(ClientMessage::Subscribe {
            identity: "bob".into(),
            sdp: Some(sdp),
        })
        .await
        .unwrap();
    assert_eq!(
        error_code(&answer),
        Some(ErrorCode::UnknownParticipant),
        "{answer:?}"
    );
    // A second connection as carol replaces the first.
    let (_carol2, joined) = RoomClient::join(&ws_url(&server, &token("r", "carol", Role::Guest)))
        .await
        .unwrap();
    assert!(matches!(
        joined,
        ServerMessage::Joined { resumed: true, .. }
    ));
    assert_eq!(carol.wait_closed(WAIT).await, Some(4409), "{:?}", carol.log);
    assert!(
        carol
            .log
            .iter()
            .any(|m| error_code(m) == Some(ErrorCode::Replaced)),
        "{:?}",
        carol.log
    );
}

/// An admin API call with `Authorization: Bearer token`: (status, JSON body).
async fn admin(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    api_call(server.http_addr, method, path, token, body).await
}

#[tokio::test]
async fn admin_api_creates_lists_updates_mutes_and_removes() {
    let server = server(|_| {}).await;
    let ops = token("*", "ops", Role::Host);

    // Refusals say why.
    let (status, body) = admin(&server, "GET", "/api/v1/rooms", None, "").await;
    assert_eq!(status, 401, "{body}");
    let viewer = token("show", "v", Role::Audience);
    let (status, body) = admin(&server, "GET", "/api/v1/rooms/show", Some(&viewer), "").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("admin"), "{body}");
    let other = token("other", "o", Role::Host);
    let (status, body) = admin(&server, "GET", "/api/v1/rooms/show", Some(&other), "").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("not \\\"show\\\""), "{body}");

    let (status, _) = admin(
        &server,
        "POST",
        "/api/v1/rooms",
        Some(&ops),
        r#"{"room":"show"}"#,
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = admin(
        &server,
        "POST",
        "/api/v1/rooms",
        Some(&ops),
        r#"{"room":"show"}"#,
    )
    .await;
    assert_eq!(status, 409);
    let (_, list) = admin(&server, "GET", "/api/v1/rooms", Some(&ops), "").await;
    assert_eq!(list["rooms"][0]["room"], "show", "{list}");

    let mut alice = join(&server, "show", "alice", Role::Host).await;
    let mut bob = join(&server, "show", "bob", Role::Audience).await;
    // The room's own host token administers it too.
    let host = token("show", "alice", Role::Host);
    let (status, room) = admin(&server, "GET", "/api/v1/rooms/show", Some(&host), "").await;
    assert_eq!(status, 200, "{room}");
    assert_eq!(room["participants"], 2, "{room}");
    let (_, metrics) = admin_get(server.http_addr, "/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(metrics.contains("costream_rooms 1"), "{metrics}");
    assert!(
        metrics.contains("costream_room_participants 2"),
        "{metrics}"
    );

    // Role change: bob may publish now.
    let (status, p) = admin(
        &server,
        "PATCH",
        "/api/v1/rooms/show/participants/bob",
        Some(&ops),
        r#"{"role":"guest","name":"Bob B."}"#,
    )
    .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        (p["role"].as_str(), p["grants"]["publish"].as_bool()),
        (Some("guest"), Some(true))
    );
    bob.wait_for(WAIT, |m| role_update(m, "bob", Role::Guest))
        .await
        .unwrap();
    let (answer, _peer) = publish_live(&mut bob).await;
    assert!(
        matches!(answer, ServerMessage::PublishAnswer { .. }),
        "{answer:?}"
    );

    // Server-side mute: everybody is told.
    let (status, body) = admin(
        &server,
        "POST",
        "/api/v1/rooms/show/participants/bob/mute",
        Some(&ops),
        r#"{"kind":"video"}"#,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    alice
        .wait_for(WAIT, |m| matches!(m, ServerMessage::TrackMuted { identity, muted: true, .. } if identity == "bob"))
        .await
        .unwrap();
    let (status, _) = admin(
        &server,
        "POST",
        "/api/v1/rooms/show/participants/alice/mute",
        Some(&ops),
        r#"{"kind":"audio"}"#,
    )
    .await;
    assert_eq!(status, 409, "alice publishes nothing");

    // Remove bob, then close the room.
    let (status, _) = admin(
        &server,
        "DELETE",
        "/api/v1/rooms/show/participants/bob",
        Some(&ops),
        "",
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(bob.wait_closed(WAIT).await, Some(4403));
    alice
        .wait_for(WAIT, |m| matches!(m, ServerMessage::ParticipantLeft { identity, reason: LeftReason::Removed } if identity == "bob"))
        .await
        .unwrap();
    let (status, _) = admin(
        &server,
        "DELETE",
        "/api/v1/rooms/show/participants/bob",
        Some(&ops),
        "",
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = admin(&server, "DELETE", "/api/v1/rooms/show", Some(&ops), "").await;
    assert_eq!(status, 204);
    assert_eq!(alice.wait_closed(WAIT).await, Some(4403));
    let (_, list) = admin(&server, "GET", "/api/v1/rooms", Some(&ops), "").await;
    assert_eq!(list["rooms"], serde_json::json!([]), "{list}");
}

/// A webhook receiver: records each POST's `Authorization` and JSON body;
/// answers 500 to the first request (to make the server retry), then 200.
async fn webhook_receiver() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let n = s.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break (String::new(), Vec::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len: usize = header(&head, "content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break (head, buf[end + 4..end + 4 + len].to_vec());
                }
            };
            let status = if first { "500 Oops" } else { "200 OK" };
            let _ = s
                .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                .await;
            if !first {
                let auth = header(&head, "authorization").unwrap_or("").to_owned();
                let _ = tx.send((auth, body));
            }
            first = false;
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn webhooks_are_signed_retried_and_in_order() {
    use hmac::Mac;
    let (hook, mut events) = webhook_receiver().await;
    let server = server(|c| c.rooms.webhooks = vec![format!("http://{hook}/hooks")]).await;
    let mut alice = join(&server, "w", "alice", Role::Host).await;
    let mut bob = join(&server, "w", "bob", Role::Audience).await;
    alice
        .send(ClientMessage::Invite {
            identity: "bob".into(),
        })
        .await
        .unwrap();
    bob.wait_for(WAIT, |m| is_link_mic(m, LinkMicAction::Invited, "bob"))
        .await
        .unwrap();
    bob.send(ClientMessage::Accept {
        identity: "alice".into(),
    })
    .await
    .unwrap();
    bob.wait_for(WAIT, |m| role_update(m, "bob", Role::Guest))
        .await
        .unwrap();
    let (answer, _peer) = publish_live(&mut bob).await;
    assert!(matches!(answer, ServerMessage::PublishAnswer { .. }));
    bob.leave().await.unwrap();

    let want = [
        "room_started",
        "participant_joined",
        "participant_joined",
        "link_mic_accepted",
        "track_published",
        "track_unpublished",
        "participant_left",
    ];
    let mut got = Vec::new();
    while got.len() < want.len() {
        let (auth, body) = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .unwrap_or_else(|_| panic!("webhooks so far: {got:?}"))
            .unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(&body);
        let expected = format!(
            "costream-hmac-sha256 key=test, signature={}",
            hex::encode(mac.finalize().into_bytes())
        );
        assert_eq!(auth, expected);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["room"], "w", "{v}");
        got.push(v["event"].as_str().unwrap_or("").to_owned());
        if got.len() == 2 {
            assert_eq!(v["participant"]["identity"], "alice", "{v}");
        }
    }
    assert_eq!(got, want);
}

/// Publishes synthetic H.264 (and Opus) at `bps` from a peer until dropped.
async fn publish_media(client: &mut RoomClient, bps: u64) -> LivePeer {
    publish_media_at(client, bps, None).await
}

/// Same, with an audio level on every Opus packet.
async fn publish_media_at(client: &mut RoomClient, bps: u64, audio_level: Option<i8>) -> LivePeer {
    use costream::bench::whip_publisher::{send_media, PublishOptions, PublisherReport};
    let (mut peer, sdp) = offer(Direction::SendOnly);
    let answer = client
        .request(ClientMessage::Publish { sdp })
        .await
        .unwrap();
    let ServerMessage::PublishAnswer { sdp, .. } = answer else {
        panic!("publish: {answer:?}")
    };
    peer.accept_answer(&sdp).unwrap();
    LivePeer(tokio::spawn(async move {
        let options = PublishOptions {
            bitrate_bps: bps,
            fps: 25.0,
            keyframe_interval: Duration::from_secs(2),
            token: None,
            stop: Default::default(),
            audio_level,
            stamp_audio: false,
        };
        let mut report = PublisherReport::default();
        let started = Instant::now();
        let _ = send_media(
            &mut peer,
            &mut report,
            &options,
            started,
            started + Duration::from_secs(600),
        )
        .await;
    }))
}

/// Subscribes to `identity`; the counter gets the UDP bytes received.
async fn subscribe_counting(
    client: &mut RoomClient,
    identity: &str,
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> LivePeer {
    let (mut peer, sdp) = offer(Direction::RecvOnly);
    let answer = client
        .request(ClientMessage::Subscribe {
            identity: identity.into(),
            sdp: Some(sdp),
        })
        .await
        .unwrap();
    let ServerMessage::SubscribeAnswer { sdp, .. } = answer else {
        panic!("subscribe: {answer:?}")
    };
    peer.accept_answer(&sdp).unwrap();
    LivePeer(tokio::spawn(async move {
        let mut last = 0;
        while peer.is_alive() {
            let wake = Instant::now() + Duration::from_millis(50);
            if peer.step(wake, &mut |_| {}).await.is_err() {
                return;
            }
            bytes.fetch_add(
                peer.udp_bytes_in - last,
                std::sync::atomic::Ordering::Relaxed,
            );
            last = peer.udp_bytes_in;
        }
    }))
}

/// Four ~1 Mbps publishers: a subscriber with the default 2 Mbps budget
/// gets the video of the most important one only (the host), the others'
/// audio, and ≤ 2 Mbps in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bandwidth_budget_caps_what_a_subscriber_receives() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let server = server(|_| {}).await;
    let mut viewer = join(&server, "b", "viewer", Role::Audience).await;
    let mut publishers = Vec::new();
    let mut peers = Vec::new();
    for (i, role) in [Role::Guest, Role::Host, Role::Guest, Role::Guest]
        .into_iter()
        .enumerate()
    {
        let mut c = join(&server, "b", &format!("p{i}"), role).await;
        peers.push(publish_media(&mut c, 1_000_000).await);
        publishers.push(c);
    }
    let bytes = Arc::new(AtomicU64::new(0));
    for i in 0..4 {
        let p = format!("p{i}");
        viewer
            .wait_for(
                WAIT,
                |m| matches!(m, ServerMessage::TrackPublished { identity, .. } if *identity == p),
            )
            .await
            .unwrap();
        peers.push(subscribe_counting(&mut viewer, &p, bytes.clone()).await);
    }
    // 1 Mbps each with 8 % packet overhead: only one video fits in 2 Mbps
    // beside the others' audio. The host's is kept.
    let paused = paused_videos(&mut viewer, 3).await;
    assert_eq!(paused, ["p0", "p2", "p3"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start = bytes.load(Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let bps = (bytes.load(Ordering::Relaxed) - start) as f64 * 8.0 / t0.elapsed().as_secs_f64();
    eprintln!(
        "subscriber received {:.2} Mbit/s from 4 publishers of 1 Mbit/s",
        bps / 1e6
    );
    assert!(bps <= 2_000_000.0, "{bps} bit/s over the 2 Mbit/s budget");
    assert!(
        bps >= 800_000.0,
        "{bps} bit/s: the host's video is not flowing"
    );
    assert!(!viewer
        .log
        .iter()
        .any(|m| matches!(m, ServerMessage::VideoPaused { paused: false, .. })));
}

/// Active speakers come from the audio levels publishers send; connection
/// quality from their sessions' RTCP figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speakers_and_connection_quality_are_announced() {
    let server = server(|_| {}).await;
    let mut alice = join(&server, "s", "alice", Role::Host).await;
    let mut bob = join(&server, "s", "bob", Role::Guest).await;
    let _loud = publish_media_at(&mut alice, 200_000, Some(-20)).await;
    let _quiet = publish_media_at(&mut bob, 200_000, Some(-127)).await;
    let m = bob
        .wait_for(
            WAIT,
            |m| matches!(m, ServerMessage::Speakers { speakers } if !speakers.is_empty()),
        )
        .await
        .unwrap();
    let ServerMessage::Speakers { speakers } = m else {
        unreachable!()
    };
    assert_eq!(speakers.len(), 1, "{speakers:?}");
    assert_eq!(speakers[0].identity, "alice");
    assert!(
        (speakers[0].level - 0.1).abs() < 0.01,
        "-20 dBov is 0.1: {speakers:?}"
    );
    let mut quality = std::collections::HashMap::new();
    while quality.len() < 2 {
        let m = bob
            .wait_for(WAIT, |m| {
                matches!(m, ServerMessage::ConnectionQuality { .. })
            })
            .await
            .unwrap();
        let ServerMessage::ConnectionQuality { updates } = m else {
            unreachable!()
        };
        for u in updates {
            quality.insert(u.identity, u.quality);
        }
    }
    for who in ["alice", "bob"] {
        assert_eq!(
            quality[who],
            costream::room::protocol::Quality::Excellent,
            "{quality:?}"
        );
    }
    // alice mutes: she is no longer a speaker.
    alice
        .send(ClientMessage::Mute {
            kind: costream::room::protocol::TrackKind::Audio,
            muted: true,
        })
        .await
        .unwrap();
    bob.wait_for(
        WAIT,
        |m| matches!(m, ServerMessage::Speakers { speakers } if speakers.is_empty()),
    )
    .await
    .unwrap();
}

/// A subscriber connection answered by a str0m peer: offers go in, answers
/// come out, and video frames are counted per mid.
struct Answerer {
    offers: tokio::sync::mpsc::Sender<(String, tokio::sync::oneshot::Sender<String>)>,
    frames: std::sync::Arc<parking_lot::Mutex<std::collections::HashMap<String, u64>>>,
    _task: LivePeer,
}

impl Answerer {
    fn start() -> Answerer {
        let factory = RtcClientFactory::default();
        let mut peer = RtcPeer::answering(&factory, "127.0.0.1".parse().unwrap()).unwrap();
        let (offers, mut rx) =
            tokio::sync::mpsc::channel::<(String, tokio::sync::oneshot::Sender<String>)>(4);
        let frames = std::sync::Arc::new(parking_lot::Mutex::new(std::collections::HashMap::new()));
        let counts = frames.clone();
        let task = tokio::spawn(async move {
            loop {
                while let Ok((offer, reply)) = rx.try_recv() {
                    let answer = peer.answer(&offer).unwrap();
                    let _ = reply.send(answer);
                }
                let wake = Instant::now() + Duration::from_millis(20);
                let stepped = peer
                    .step(wake, &mut |e| {
                        if let str0m::Event::MediaData(d) = e {
                            if d.params.spec().codec == str0m::format::Codec::H264 {
                                *counts.lock().entry(d.mid.to_string()).or_insert(0) += 1;
                            }
                        }
                    })
                    .await;
                if stepped.is_err() {
                    return;
                }
            }
        });
        Answerer {
            offers,
            frames,
            _task: LivePeer(task),
        }
    }

    /// Answers the next `offer` the client gets; returns its tracks.
    async fn answer_next(
        &self,
        client: &mut RoomClient,
    ) -> Vec<costream::room::protocol::OfferTrack> {
        let m = client
            .wait_for(WAIT, |m| matches!(m, ServerMessage::Offer { .. }))
            .await
            .unwrap();
        let ServerMessage::Offer { sdp, tracks, .. } = m else {
            unreachable!()
        };
        self.answer(client, sdp).await;
        tracks
    }

    /// Answers `offer` (which the client got) on the client's behalf.
    async fn answer(&self, client: &mut RoomClient, offer: String) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.offers.send((offer, tx)).await.unwrap();
        let answer = rx.await.unwrap();
        client
            .send(ClientMessage::Answer { sdp: answer })
            .await
            .unwrap();
    }

    fn frames(&self, mid: &str) -> u64 {
        self.frames.lock().get(mid).copied().unwrap_or(0)
    }
}

fn video_mid(tracks: &[costream::room::protocol::OfferTrack], who: &str) -> String {
    tracks
        .iter()
        .find(|t| t.identity == who && t.kind == costream::room::protocol::TrackKind::Video)
        .map(|t| t.mid.clone())
        .unwrap_or_else(|| panic!("no video track of {who} in {tracks:?}"))
}

/// The subscriber connection: one server-offered peer connection carries
/// every subscription and is renegotiated when publications come and go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscriber_connection_is_renegotiated_as_publications_come_and_go() {
    let server = server(|_| {}).await;
    let mut viewer = join(&server, "re", "viewer", Role::Audience).await;
    let mut bob = join(&server, "re", "bob", Role::Guest).await;
    let mut carol = join(&server, "re", "carol", Role::Guest).await;
    let _bob_media = publish_media(&mut bob, 300_000).await;
    let _carol_media = publish_media(&mut carol, 300_000).await;
    let peer = Answerer::start();

    viewer
        .send(ClientMessage::Subscribe {
            identity: "bob".into(),
            sdp: None,
        })
        .await
        .unwrap();
    let tracks = peer.answer_next(&mut viewer).await;
    assert_eq!(tracks.len(), 2, "{tracks:?}");
    let bob_mid = video_mid(&tracks, "bob");
    viewer
        .send(ClientMessage::Subscribe {
            identity: "carol".into(),
            sdp: None,
        })
        .await
        .unwrap();
    let tracks = peer.answer_next(&mut viewer).await;
    let carol_mid = video_mid(&tracks, "carol");
    assert_ne!(bob_mid, carol_mid);

    // Both flow on their own m-lines of the one connection.
    let deadline = Instant::now() + Duration::from_secs(5);
    while peer.frames(&bob_mid) < 25 || peer.frames(&carol_mid) < 25 {
        assert!(
            Instant::now() < deadline,
            "frames: {:?}",
            peer.frames.lock()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // bob stops: the server renegotiates his tracks away; carol goes on.
    bob.send(ClientMessage::Unpublish).await.unwrap();
    let tracks = peer.answer_next(&mut viewer).await;
    assert!(tracks.is_empty(), "a removal adds no tracks: {tracks:?}");
    let (bob_then, carol_then) = (peer.frames(&bob_mid), peer.frames(&carol_mid));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        peer.frames(&bob_mid) <= bob_then + 1,
        "bob's track still flows"
    );
    assert!(
        peer.frames(&carol_mid) >= carol_then + 15,
        "carol's track stopped"
    );

    // bob is back: a new subscription gets new m-lines.
    let _bob_media = publish_media(&mut bob, 300_000).await;
    viewer
        .wait_for(
            WAIT,
            |m| matches!(m, ServerMessage::TrackPublished { identity, .. } if identity == "bob"),
        )
        .await
        .unwrap();
    viewer
        .send(ClientMessage::Subscribe {
            identity: "bob".into(),
            sdp: None,
        })
        .await
        .unwrap();
    let tracks = peer.answer_next(&mut viewer).await;
    let bob_again = video_mid(&tracks, "bob");
    assert_ne!(bob_again, bob_mid);
    let deadline = Instant::now() + Duration::from_secs(5);
    while peer.frames(&bob_again) < 25 {
        assert!(
            Instant::now() < deadline,
            "frames: {:?}",
            peer.frames.lock()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One connection the whole time: the API shows one subscriber session.
    let (_, sessions) = admin_get(server.http_addr, "/api/v1/webrtc/sessions").await;
    let sessions: serde_json::Value = serde_json::from_slice(&sessions).unwrap();
    let shared = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["direction"] == "room-subscriber")
        .count();
    assert_eq!(shared, 1, "{sessions}");
}

/// The budget on the subscriber connection: four 1 Mbps publications, only
/// the host's video keeps flowing on its m-line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bandwidth_budget_applies_on_the_subscriber_connection() {
    let server = server(|_| {}).await;
    let mut viewer = join(&server, "bs", "viewer", Role::Audience).await;
    let mut publishers = Vec::new();
    let mut media = Vec::new();
    for (i, role) in [Role::Guest, Role::Host, Role::Guest, Role::Guest]
        .into_iter()
        .enumerate()
    {
        let mut c = join(&server, "bs", &format!("p{i}"), role).await;
        media.push(publish_media(&mut c, 1_000_000).await);
        publishers.push(c);
    }
    let peer = Answerer::start();
    let mut mids = std::collections::HashMap::new();
    for i in 0..4 {
        let p = format!("p{i}");
        viewer
            .send(ClientMessage::Subscribe {
                identity: p.clone(),
                sdp: None,
            })
            .await
            .unwrap();
        let tracks = peer.answer_next(&mut viewer).await;
        mids.insert(p.clone(), video_mid(&tracks, &p));
    }
    let paused = paused_videos(&mut viewer, 3).await;
    assert_eq!(paused, ["p0", "p2", "p3"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: std::collections::HashMap<_, _> = mids
        .iter()
        .map(|(p, mid)| (p.clone(), peer.frames(mid)))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (p, mid) in &mids {
        let n = peer.frames(mid) - before[p];
        if p == "p1" {
            assert!(n >= 40, "the host's video: {n} frames in 2 s");
        } else {
            assert!(n <= 1, "{p}'s paused video: {n} frames in 2 s");
        }
    }
}

/// By default a participant is subscribed to every publication on its
/// subscriber connection, those live when it joins and those that start
/// later, without asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_are_auto_subscribed_by_default() {
    let server = server(|_| {}).await;
    let url = |identity: &str, role| {
        format!(
            "ws://{}/rtc?access_token={}",
            server.http_addr,
            token("auto", identity, role)
        )
    };
    let (mut early, _) = RoomClient::join(&url("early", Role::Audience))
        .await
        .unwrap();
    let (mut bob, _) = RoomClient::join(&url("bob", Role::Guest)).await.unwrap();
    let _bob_media = publish_media(&mut bob, 300_000).await;
    let peer = Answerer::start();
    let tracks = peer.answer_next(&mut early).await;
    let mid = video_mid(&tracks, "bob");
    let (mut late, _) = RoomClient::join(&url("late", Role::Audience))
        .await
        .unwrap();
    let late_peer = Answerer::start();
    let late_tracks = late_peer.answer_next(&mut late).await;
    let late_mid = video_mid(&late_tracks, "bob");
    let deadline = Instant::now() + Duration::from_secs(5);
    while peer.frames(&mid) < 25 || late_peer.frames(&late_mid) < 25 {
        assert!(
            Instant::now() < deadline,
            "{:?} {:?}",
            peer.frames.lock(),
            late_peer.frames.lock()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Neither asked: no subscribe was sent. bob, auto-subscribed too, is
    // not subscribed to himself: nobody else publishes, so he has no offer.
    bob.pump(Duration::from_millis(300)).await.unwrap();
    assert!(!bob
        .log
        .iter()
        .any(|m| matches!(m, ServerMessage::Offer { .. })));
}

/// An empty room stays for `rooms.empty_timeout`, then closes.
#[tokio::test]
async fn an_empty_room_closes_after_the_timeout() {
    let server = server(|c| c.rooms.empty_timeout = Duration::from_secs(1)).await;
    let ops = token("*", "ops", Role::Host);
    let alice = join(&server, "brief", "alice", Role::Host).await;
    alice.leave().await.unwrap();
    let left = Instant::now();
    let (_, list) = admin(&server, "GET", "/api/v1/rooms", Some(&ops), "").await;
    assert_eq!(list["rooms"][0]["room"], "brief", "{list}");
    assert_eq!(list["rooms"][0]["participants"], 0, "{list}");
    loop {
        let (_, list) = admin(&server, "GET", "/api/v1/rooms", Some(&ops), "").await;
        if list["rooms"] == serde_json::json!([]) {
            break;
        }
        assert!(
            left.elapsed() < Duration::from_secs(3),
            "still open: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        left.elapsed() >= Duration::from_millis(900),
        "closed before the timeout"
    );
}

/// A room's mix follows its publications: hosts first, then in the order
/// they started publishing; a publication that ends leaves the mix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_mix_follows_its_publications() {
    let server = server(|_| {}).await;
    let ops = token("*", "ops", Role::Host);
    let (status, body) = admin(
        &server,
        "POST",
        "/api/v1/rooms/f/mix",
        Some(&ops),
        r#"{"width":480,"height":360,"fps":10}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    async fn streams(server: &Server, ops: &str, id: &str) -> Vec<String> {
        let (_, m) = admin(server, "GET", &format!("/api/v1/mixes/{id}"), Some(ops), "").await;
        m["inputs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["stream"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
    async fn until(server: &Server, ops: &str, id: &str, want: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = streams(server, ops, id).await;
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mix inputs {got:?}, want {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    until(&server, &ops, &id, &[]).await;
    let mut guest = join(&server, "f", "guest", Role::Guest).await;
    let (_, _guest_peer) = publish_live(&mut guest).await;
    until(&server, &ops, &id, &["room.f/guest"]).await;
    let mut host = join(&server, "f", "host", Role::Host).await;
    let (_, _host_peer) = publish_live(&mut host).await;
    until(&server, &ops, &id, &["room.f/host", "room.f/guest"]).await;
    guest.send(ClientMessage::Unpublish).await.unwrap();
    until(&server, &ops, &id, &["room.f/host"]).await;
}

/// The picture width of the live stream `key`, as the hub has it.
fn stream_width(server: &Server, key: &str) -> Option<u32> {
    let key = costream_hub::StreamKey::parse(key).ok()?;
    server.hub().stream(&key)?.info().video.map(|v| v.width)
}

/// Polls `ok` until it holds; fails after `limit`.
async fn poll_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The link-mic switch driven by the host: it is live on `live/host1`
/// over RTMP; its `mix` action with `replace` makes that stream the mix of
/// the host and the room's guests while a guest publishes, and the host's
/// own picture again once the last guest stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_mix_switches_its_live_stream_while_guests_publish() {
    let server = server(|_| {}).await;
    let _push = ffmpeg_push(&rtmp_url(&server, "live/host1"), &[]);
    wait_for_stream(&server, "live/host1").await;
    let width = || stream_width(&server, "live/host1");
    let spec = |v: serde_json::Value| ClientMessage::Mix {
        spec: v.as_object().unwrap().clone(),
    };
    let mut host = join_owning(&server, "h", "host", "live/host1").await;
    let mut viewer = join(&server, "h", "viewer", Role::Audience).await;
    // A host touches only what its room owns: not another's live stream,
    // not an output named after another room, not an unlisted push target
    // (the server would connect there); one whose token names no live
    // stream replaces none.
    let mut stranger = join(&server, "h2", "host", Role::Host).await;
    for (stranger_asks, bad) in [
        (false, serde_json::json!({"replace": "live/someone"})),
        (false, serde_json::json!({"output": "live/elsewhere"})),
        (
            false,
            serde_json::json!({"push": ["rtmp://127.0.0.1:1/app/key"]}),
        ),
        (true, serde_json::json!({"replace": "live/host1"})),
    ] {
        let who = if stranger_asks {
            &mut stranger
        } else {
            &mut host
        };
        let answer = who.request(spec(bad.clone())).await.unwrap();
        assert_eq!(
            error_code(&answer),
            Some(ErrorCode::NotGranted),
            "{bad}: {answer:?}"
        );
    }
    // The room's admin API holds a host's token to the same rule.
    let (status, body) = admin(
        &server,
        "POST",
        "/api/v1/rooms/h2/mix",
        Some(&token("h2", "host", Role::Host)),
        r#"{"replace":"live/host1"}"#,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let answer = viewer
        .request(spec(serde_json::json!({"replace": "live/host1"})))
        .await
        .unwrap();
    assert!(
        matches!(
            answer,
            ServerMessage::Error {
                code: ErrorCode::NotGranted,
                ..
            }
        ),
        "{answer:?}"
    );
    let answer = host
        .request(spec(serde_json::json!({
            "replace": "live/host1", "width": 480, "height": 360, "fps": 10, "layout": "pip"
        })))
        .await
        .unwrap();
    let ServerMessage::Mix { mix: Some(id), .. } = answer else {
        panic!("{answer:?}")
    };
    let ops = token("*", "ops", Role::Host);
    let show = |id: String| {
        let (server, ops) = (&server, &ops);
        async move {
            admin(server, "GET", &format!("/api/v1/mixes/{id}"), Some(ops), "")
                .await
                .1
        }
    };
    // No guest yet: viewers see the host's own stream.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(width(), Some(640));
    assert_eq!(show(id.clone()).await["mixing"], false);

    // A guest publishes: the stream becomes the mix.
    let mut guest = join(&server, "h", "guest", Role::Guest).await;
    let (_, _guest_peer) = publish_live(&mut guest).await;
    poll_until("the mix to take live/host1 over", WAIT * 2, || {
        width() == Some(480)
    })
    .await;
    let m = show(id.clone()).await;
    assert_eq!(m["mixing"], true, "{m}");
    let inputs: Vec<&str> = m["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["stream"].as_str())
        .collect();
    assert_eq!(inputs, ["live/host1", "room.h/guest"]);
    // The host changes the layout of the running mix.
    let answer = host
        .request(spec(serde_json::json!({"layout": "grid"})))
        .await
        .unwrap();
    assert!(
        matches!(answer, ServerMessage::Mix { mix: Some(_), .. }),
        "{answer:?}"
    );
    assert_eq!(show(id.clone()).await["layout"], "grid");

    // The last guest stops: back to the host's own picture.
    guest.send(ClientMessage::Unpublish).await.unwrap();
    poll_until("live/host1 to be given back", WAIT * 2, || {
        width() == Some(640)
    })
    .await;
    assert_eq!(show(id.clone()).await["mixing"], false);
    let answer = host.request(ClientMessage::MixStop).await.unwrap();
    assert!(
        matches!(answer, ServerMessage::Mix { mix: None, .. }),
        "{answer:?}"
    );
    let (_, list) = admin(&server, "GET", "/api/v1/mixes", Some(&ops), "").await;
    assert_eq!(list["mixes"], serde_json::json!([]));
    assert!(
        stream_width(&server, "live/host1").is_some(),
        "the host is still live"
    );
}

/// The identities of the first `n` videos the server pauses for `viewer`
/// (its bandwidth budget), sorted.
async fn paused_videos(viewer: &mut RoomClient, n: usize) -> Vec<String> {
    let mut paused = Vec::new();
    while paused.len() < n {
        let m = viewer
            .wait_for(Duration::from_secs(10), |m| {
                matches!(m, ServerMessage::VideoPaused { paused: true, .. })
            })
            .await
            .unwrap();
        if let ServerMessage::VideoPaused { identity, .. } = m {
            paused.push(identity);
        }
    }
    paused.sort();
    paused
}

/// A guest comes back on a new connection (a reloaded page) within the
/// grace: what its old connection published ends at once (the others are
/// told, its hub stream ends, their subscriber connections drop it), well
/// before the grace would have; it keeps its place, and its new connection
/// publishes and is seen. First with the old socket dropped without a
/// close, then with it still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_who_rejoins_ends_its_old_publication_at_once() {
    let server = server(|_| {}).await; // the default grace, 10 s
    let guest_feed = costream_hub::StreamKey::parse("room.g/guest").unwrap();
    let feed_live = || server.hub().stream(&guest_feed).is_some();
    let mut host = join(&server, "g", "host", Role::Host).await;
    let peer = Answerer::start();
    let mut guest = join(&server, "g", "guest", Role::Guest).await;
    let mut media = publish_media(&mut guest, 300_000).await;

    /// The host sees the guest's publication: subscribed on its subscriber
    /// connection, the guest's video frames arrive.
    async fn seen(host: &mut RoomClient, peer: &Answerer) {
        host.wait_for(
            WAIT,
            |m| matches!(m, ServerMessage::TrackPublished { identity, .. } if identity == "guest"),
        )
        .await
        .unwrap();
        host.send(ClientMessage::Subscribe {
            identity: "guest".into(),
            sdp: None,
        })
        .await
        .unwrap();
        let tracks = peer.answer_next(host).await;
        let mid = video_mid(&tracks, "guest");
        let deadline = Instant::now() + WAIT;
        while peer.frames(&mid) < 10 {
            assert!(
                Instant::now() < deadline,
                "frames: {:?}",
                peer.frames.lock()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    seen(&mut host, &peer).await;

    for still_open in [false, true] {
        let rejoined_at = Instant::now();
        let url = ws_url(&server, &token("g", "guest", Role::Guest));
        let (new, joined, old) = if still_open {
            let (new, joined) = RoomClient::join(&url).await.unwrap();
            (new, joined, Some(guest))
        } else {
            guest.drop_connection();
            let (new, joined) = RoomClient::join(&url).await.unwrap();
            (new, joined, None)
        };
        let ServerMessage::Joined { resumed, you, .. } = joined else {
            panic!("{joined:?}")
        };
        assert!(resumed, "still_open {still_open}");
        assert_eq!(you.role, Role::Guest);
        assert!(you.tracks.is_empty(), "{you:?}");
        // Told, and the feed gone, within 2 s (the grace is 10 s).
        host.wait_for(
            Duration::from_secs(2),
            |m| matches!(m, ServerMessage::TrackUnpublished { identity } if identity == "guest"),
        )
        .await
        .unwrap();
        let deadline = rejoined_at + Duration::from_secs(2);
        while feed_live() {
            assert!(
                Instant::now() < deadline,
                "room.g/guest still live {:?} after the rejoin",
                rejoined_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "rejoin (old socket {}): old publication gone after {:?}",
            if still_open { "open" } else { "dropped" },
            rejoined_at.elapsed()
        );
        // The host's subscriber connection drops its m-lines.
        let tracks = peer.answer_next(&mut host).await;
        assert!(tracks.is_empty(), "{tracks:?}");
        assert!(!host.log.iter().any(
            |m| matches!(m, ServerMessage::ParticipantLeft { identity, .. } if identity == "guest")
        ));
        if let Some(mut old) = old {
            assert_eq!(old.wait_closed(WAIT).await, Some(4409), "{:?}", old.log);
        }
        // The new page publishes and is seen.
        guest = new;
        drop(media);
        media = publish_media(&mut guest, 300_000).await;
        seen(&mut host, &peer).await;
    }
    drop(media);
}

/// The host of a room whose mix replaces her live stream drops, and is
/// removed after the grace: with `rooms.mix_on_host_leave = "stop"` (the
/// default) the mix stops, her stream is her own again, the room is told
/// and the webhook `mix_stopped` goes out; with `"keep"` the mix goes on.
async fn the_last_host_leaving(keep: bool) {
    use costream::config::MixOnHostLeave;
    let (hook, mut events) = webhook_receiver().await;
    let server = server(|c| {
        c.rooms.reconnect_grace = Duration::from_secs(1);
        c.rooms.webhooks = vec![format!("http://{hook}/hooks")];
        if keep {
            c.rooms.mix_on_host_leave = MixOnHostLeave::Keep;
        }
    })
    .await;
    let _push = ffmpeg_push(&rtmp_url(&server, "live/host1"), &[]);
    wait_for_stream(&server, "live/host1").await;
    let width = || stream_width(&server, "live/host1");
    let ops = token("*", "ops", Role::Host);
    let mixes = || {
        let (server, ops) = (&server, &ops);
        async move {
            admin(server, "GET", "/api/v1/mixes", Some(ops), "").await.1["mixes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        }
    };
    let mut host = join_owning(&server, "hl", "host", "live/host1").await;
    let mut guest = join(&server, "hl", "guest", Role::Guest).await;
    let answer = host
        .request(ClientMessage::Mix {
            spec: serde_json::json!({
                "replace": "live/host1", "width": 480, "height": 360, "fps": 10, "layout": "pip"
            })
            .as_object()
            .unwrap()
            .clone(),
        })
        .await
        .unwrap();
    let ServerMessage::Mix { mix: Some(id), .. } = answer else {
        panic!("{answer:?}")
    };
    let (_, _guest_peer) = publish_live(&mut guest).await;
    poll_until("the mix to take live/host1 over", WAIT * 2, || {
        width() == Some(480)
    })
    .await;

    // Her page closes without a word.
    host.drop_connection();
    guest
        .wait_for(WAIT, |m| {
            matches!(m, ServerMessage::ParticipantLeft { identity, reason: LeftReason::Dropped } if identity == "host")
        })
        .await
        .unwrap();
    let left_at = Instant::now();
    if keep {
        // It goes on mixing: still listed, still the stream, for 2 s.
        while left_at.elapsed() < Duration::from_secs(2) {
            let list = mixes().await;
            assert_eq!(list.len(), 1, "{list:?}");
            assert_eq!(list[0]["mixing"], true, "{list:?}");
            assert_eq!(width(), Some(480));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(!guest
            .log
            .iter()
            .any(|m| matches!(m, ServerMessage::Mix { .. })));
        return;
    }
    let stopped = guest
        .wait_for(WAIT, |m| matches!(m, ServerMessage::Mix { .. }))
        .await
        .unwrap();
    assert!(
        matches!(&stopped, ServerMessage::Mix { id: None, mix: None, reason: Some(r) } if r == "host_left"),
        "{stopped:?}"
    );
    poll_until("live/host1 to be the host's own again", WAIT * 2, || {
        width() == Some(640)
    })
    .await;
    eprintln!(
        "the mix stopped and live/host1 was given back {:?} after the host was dropped",
        left_at.elapsed()
    );
    assert_eq!(mixes().await, Vec::<serde_json::Value>::new());
    assert!(
        stream_width(&server, "live/host1").is_some(),
        "the host is still live"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            events.recv(),
        )
        .await
        .expect("no mix_stopped webhook")
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if v["event"] == "mix_stopped" {
            assert_eq!(v["mix"], id.as_str(), "{v}");
            assert_eq!(v["replace"], "live/host1", "{v}");
            assert_eq!(v["reason"], "host_left", "{v}");
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mix_stops_when_the_last_host_leaves() {
    the_last_host_leaving(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mix_keeps_running_when_configured_to() {
    the_last_host_leaving(true).await;
}

/// A guest going on and off stage all evening: every unpublish leaves two
/// inactive m-lines on the others' subscriber connections. Past 32 of them
/// the server offers a new connection (a new session) instead of an ever
/// longer offer, and the guest is received on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_connection_full_of_retired_lines_is_renewed() {
    let server = server(|_| {}).await;
    // Auto-subscribed: each publication of bob's is offered as it starts.
    let url = format!(
        "ws://{}/rtc?access_token={}",
        server.http_addr,
        token("renew", "viewer", Role::Audience)
    );
    let (mut viewer, _) = RoomClient::join(&url).await.unwrap();
    let mut bob = join(&server, "renew", "bob", Role::Guest).await;
    let mut peer = Answerer::start();
    let mut sessions = Vec::new();
    let mut m_lines = Vec::new();
    for cycle in 0..20 {
        // bob reads what came meanwhile (and answers the server's pings).
        bob.pump(Duration::from_millis(5))
            .await
            .unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        let media = publish_media(&mut bob, 200_000).await;
        // The offer adding bob (on the current connection, or a new one).
        let m = viewer
            .wait_for(
                WAIT,
                |m| matches!(m, ServerMessage::Offer { tracks, .. } if !tracks.is_empty()),
            )
            .await
            .unwrap_or_else(|e| panic!("cycle {cycle}: no offer adding bob: {e}"));
        let ServerMessage::Offer {
            session,
            sdp,
            tracks,
        } = m
        else {
            unreachable!()
        };
        if sessions.last() != Some(&session) {
            if !sessions.is_empty() {
                peer = Answerer::start(); // a new connection: a new peer
            }
            sessions.push(session.clone());
        }
        m_lines.push(sdp.lines().filter(|l| l.starts_with("m=")).count());
        peer.answer(&mut viewer, sdp).await;
        let mid = video_mid(&tracks, "bob");
        let deadline = Instant::now() + Duration::from_secs(5);
        while peer.frames(&mid) < 5 {
            assert!(
                Instant::now() < deadline,
                "cycle {cycle}: no frames on {mid} of session {session}: {:?}",
                peer.frames.lock()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bob.send(ClientMessage::Unpublish).await.unwrap();
        drop(media);
        // The offer retiring bob's lines; but the 17th removal would make
        // 34 retired lines: the connection is renewed instead, and bob's
        // next publication comes on a new session.
        let renewed = cycle == 16;
        let m = viewer
            .wait_for(
                if renewed {
                    Duration::from_secs(2)
                } else {
                    WAIT
                },
                |m| matches!(m, ServerMessage::Offer { .. }),
            )
            .await;
        assert_eq!(m.is_err(), renewed, "cycle {cycle}: {m:?}");
        if let Ok(ServerMessage::Offer {
            session: s, sdp, ..
        }) = m
        {
            assert_eq!(s, session, "cycle {cycle}");
            peer.answer(&mut viewer, sdp).await;
        }
    }
    assert_eq!(sessions.len(), 2, "one renewal in 20 cycles: {sessions:?}");
    assert!(
        m_lines.iter().all(|&n| n <= 2 + 32),
        "m-lines per offer stay bounded: {m_lines:?}"
    );
    assert_eq!(
        m_lines[17], 2,
        "the new connection starts afresh: {m_lines:?}"
    );
}

/// The stream list is public (players pick from it) but never shows a
/// room's feeds to strangers; with `[http] public_stream_list = false` it
/// answers admins only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_feeds_are_not_listed_to_strangers() {
    let open = server(|_| {}).await;
    let addr = open.http_addr;
    let mut guest = join(&open, "priv", "guest", Role::Guest).await;
    let _media = publish_media(&mut guest, 300_000).await;
    let feed = costream_hub::StreamKey::parse("room.priv/guest").unwrap();
    poll_until("the guest's feed", WAIT, || {
        open.hub().stream(&feed).is_some()
    })
    .await;
    let (status, body) = http_get(addr, "/api/v1/streams").await;
    assert_eq!(status, 200);
    let body = String::from_utf8_lossy(&body).to_string();
    assert!(!body.contains("room.priv"), "{body}");
    let (status, _) = http_get(addr, "/api/v1/streams/room.priv/guest").await;
    assert_eq!(status, 404, "as if it were not there");
    let (_, body) = admin_get(addr, "/api/v1/streams").await;
    assert!(String::from_utf8_lossy(&body).contains("room.priv/guest"));
    let (status, _) = admin_get(addr, "/api/v1/streams/room.priv/guest").await;
    assert_eq!(status, 200);

    let closed = server(|c| c.http.public_stream_list = false).await;
    let (status, _) = http_get(closed.http_addr, "/api/v1/streams").await;
    assert_eq!(status, 401);
    let (status, _) = admin_get(closed.http_addr, "/api/v1/streams").await;
    assert_eq!(status, 200);
}

/// A participant flooding the room with control messages is refused with
/// `rate_limited` beyond 10 a second (bursts of 30) and, if it keeps on,
/// disconnected (4429); the others are answered at once throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_signaling_messages_is_refused_then_closed() {
    let server = server(|_| {}).await;
    let mut flooder = join(&server, "fl", "flooder", Role::Guest).await;
    let mut calm = join(&server, "fl", "calm", Role::Guest).await;
    for i in 0..200 {
        let sent = flooder
            .send(ClientMessage::Update {
                name: Some(format!("n{i}")),
                metadata: None,
            })
            .await;
        if sent.is_err() {
            break; // closed under us
        }
    }
    let refused = flooder
        .wait_for(WAIT, |m| error_code(m) == Some(ErrorCode::RateLimited))
        .await;
    assert!(refused.is_ok(), "no rate_limited error");
    assert_eq!(flooder.wait_closed(WAIT).await, Some(4429));
    // The calm participant is answered at once.
    let t = Instant::now();
    let pong = calm.request(ClientMessage::Ping).await.unwrap();
    assert!(matches!(pong, ServerMessage::Pong { .. }), "{pong:?}");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
}
