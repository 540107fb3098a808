//! TLS: HTTPS (with WSS signaling and HTTP-FLV), RTMPS with ffmpeg, the
//! certificate reloaded (by `Server::reload_tls` and by a real SIGHUP)
//! without disturbing connections already made, and the web console in
//! Chromium over HTTPS trusting exactly the test's certificate.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use common::browser::run_node_script;
use common::*;
use costream::server::Server;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rcgen::PublicKeyData;
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const CONSOLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/browser/console.mjs"
);

/// The tests that rewrite certificate files or send SIGHUP (which reloads
/// every server in this process) take turns.
static RELOADS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// ffmpeg pushes and Chromium, one test at a time on a small machine.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A self-signed certificate for 127.0.0.1 and localhost.
struct Cert {
    pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
    /// base64(SHA-256(SubjectPublicKeyInfo)): what Chromium's
    /// --ignore-certificate-errors-spki-list takes.
    spki_sha256: String,
}

impl Cert {
    fn new() -> Cert {
        let made = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
        ])
        .expect("a self-signed certificate");
        let spki = made.signing_key.subject_public_key_info();
        Cert {
            pem: made.cert.pem(),
            key_pem: made.signing_key.serialize_pem(),
            der: made.cert.der().clone(),
            spki_sha256: base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&spki)),
        }
    }
}

/// A test's certificate and key files.
struct Files {
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    fn new(test: &str) -> Files {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-{test}"));
        std::fs::create_dir_all(&dir).unwrap();
        Files {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    fn write(&self, cert: &Cert) {
        std::fs::write(&self.cert, &cert.pem).unwrap();
        std::fs::write(&self.key, &cert.key_pem).unwrap();
    }
}

/// A server with TLS on free ports, serving `files`.
async fn tls_server(files: &Files, tweak: impl FnOnce(&mut costream::config::Config)) -> Server {
    let (cert, key) = (files.cert.clone(), files.key.clone());
    start_server(move |c| {
        c.tls.cert = Some(cert);
        c.tls.key = Some(key);
        c.tls.https_listen = "127.0.0.1:0".parse().unwrap();
        c.tls.rtmps_listen = "127.0.0.1:0".parse().unwrap();
        tweak(c);
    })
    .await
}

fn https_addr(server: &Server) -> SocketAddr {
    server.https_addr.expect("HTTPS is on")
}

fn rtmps_addr(server: &Server) -> SocketAddr {
    server.rtmps_addr.expect("RTMPS is on")
}

/// A client that trusts `trusted` only and asks for HTTP/1.1 by ALPN.
fn client_config(trusted: &[&Cert]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in trusted {
        roots.add(c.der.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A TLS connection to `addr` (as 127.0.0.1), the certificate verified.
async fn tls_connect(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connect = tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp);
    tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .expect("TLS handshake in time")
        .expect("TLS handshake")
}

/// The certificate the server presented.
fn peer_cert(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().expect("a certificate")[0].clone()
}

/// An HTTP/1.1 client (hyper) over one TLS connection.
type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn hyper_client(tls: TlsStream<TcpStream>) -> Sender {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP/1.1 over TLS");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

/// GET `path` on the client's connection: (status, body).
async fn get(sender: &mut Sender, path: &str) -> (u16, Bytes) {
    let req = hyper::Request::get(path)
        .header("host", "127.0.0.1")
        .body(Empty::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("an answer in time")
        .expect("an answer");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body)
}

/// How long until the server closes `socket` (reading and dropping
/// whatever it sends), and what it sent.
async fn closed_after(mut socket: TcpStream, limit: Duration) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 1024];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .expect("the server closed the connection");
    (started.elapsed(), got)
}

/// Over HTTPS: the API on a kept-alive HTTP/1.1 connection (ALPN
/// http/1.1), the HTTP-FLV fast path's own answer, and room signaling over
/// WSS. A client that speaks no TLS is cut off: at once when it sends
/// plain HTTP, at `http.head_timeout` when it sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_the_api_the_flv_path_and_wss_and_cuts_off_clients_without_tls() {
    let cert = Cert::new();
    let files = Files::new("https");
    files.write(&cert);
    let server = tls_server(&files, |c| {
        c.http.head_timeout = Duration::from_secs(1);
        c.auth.api_keys = vec![room_key()];
    })
    .await;
    let addr = https_addr(&server);
    let config = client_config(&[&cert]);

    let tls = tls_connect(addr, &config).await;
    assert_eq!(peer_cert(&tls), cert.der);
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut client = hyper_client(tls).await;
    let (status, body) = get(&mut client, "/healthz").await;
    assert_eq!((status, body.trim_ascii()), (200, &b"ok"[..]));
    // The same connection again: kept alive over TLS.
    let (status, body) = get(&mut client, "/api/v1/streams").await;
    assert_eq!(status, 200, "{body:?}");
    let list: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert!(list.is_object() || list.is_array(), "{list}");

    // The HTTP-FLV fast path answers a missing stream itself, over TLS.
    let mut tls = tls_connect(addr, &config).await;
    tls.write_all(b"GET /live/none.flv HTTP/1.0\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer))
        .await
        .expect("an answer in time")
        .expect("a clean close");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");

    // Room signaling over WSS: the upgrade works over TLS.
    let token = room_token("r1", "alice", costream::access::Role::Host);
    let tls = tls_connect(addr, &config).await;
    let url = format!("wss://127.0.0.1:{}/rtc?access_token={token}", addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("WebSocket upgrade over TLS");
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a message in time")
        .expect("a message")
        .expect("a WebSocket message");
    let first: serde_json::Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(first["type"], "joined", "{first}");

    // Plain HTTP to the HTTPS port: no HTTP answer, closed at once.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let (after, got) = closed_after(plain, Duration::from_secs(5)).await;
    assert!(after < Duration::from_millis(900), "closed after {after:?}");
    assert!(
        !got.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );

    // Silence (no ClientHello): the handshake is part of the head deadline.
    let silent = TcpStream::connect(addr).await.unwrap();
    let (after, got) = closed_after(silent, Duration::from_secs(5)).await;
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(3),
        "closed after {after:?}"
    );
    assert!(got.is_empty(), "{got:?}");

    // A ClientHello's first bytes, then nothing: the same deadline.
    let mut trickle = TcpStream::connect(addr).await.unwrap();
    trickle.write_all(&[0x16, 0x03, 0x01, 0x02]).await.unwrap();
    let (after, _) = closed_after(trickle, Duration::from_secs(5)).await;
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(3),
        "closed after {after:?}"
    );
    let (_, metrics) = admin_get(server.http_addr, "/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics);
    for reason in ["head_timeout", "tls_handshake"] {
        let label = format!("reason=\"{reason}\"");
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("costream_refused_total")
                    && l.contains("protocol=\"http\"")
                    && l.contains(&label)),
            "{reason}: {metrics}"
        );
    }
}

/// ffmpeg publishes over RTMPS (verifying the certificate against the
/// test's own, by name), and ffmpeg and ffprobe play it back over RTMPS:
/// the picture decodes at the size published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmps_publish_and_play_with_ffmpeg() {
    let _heavy = HEAVY.lock().await;
    let cert = Cert::new();
    let files = Files::new("rtmps");
    files.write(&cert);
    let server = tls_server(&files, |_| {}).await;
    let url = format!(
        "rtmps://127.0.0.1:{}/live/secure",
        rtmps_addr(&server).port()
    );
    let ca = files.cert.to_str().unwrap();
    let _push = ffmpeg_push(&url, &["-tls_verify", "1", "-ca_file", ca]);
    wait_for_stream(&server, "live/secure").await;

    let probe = ffprobe(&url, &["-show_streams"]).await;
    let streams = probe["streams"].as_array().expect("streams");
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("a video stream");
    assert_eq!(video["codec_name"], "h264", "{probe}");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert!(
        streams
            .iter()
            .any(|s| s["codec_type"] == "audio" && s["codec_name"] == "aac"),
        "{probe}"
    );
    // A whole 640x360 picture decoded from what came over RTMPS (the
    // helper asserts its size).
    let picture = grab_picture(&url, 5).await;
    assert!(picture.iter().any(|&b| b > 32), "a picture, not black");
}

/// A reload (the code SIGHUP runs) gives new connections the new
/// certificate, on HTTPS and RTMPS; a reload that fails (a key that does
/// not match) keeps the certificate in use; and connections made before
/// (an RTMPS publisher, an HTTP-FLV viewer over HTTPS) go on throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_serves_the_new_certificate_to_new_connections_and_keeps_the_old_ones() {
    let _reloads = RELOADS.lock().await;
    let _heavy = HEAVY.lock().await;
    let (a, b) = (Cert::new(), Cert::new());
    let files = Files::new("reload");
    files.write(&a);
    let server = tls_server(&files, |_| {}).await;
    let config = client_config(&[&a, &b]);
    let url = format!(
        "rtmps://127.0.0.1:{}/live/reload",
        rtmps_addr(&server).port()
    );
    let mut push = ffmpeg_push(&url, &[]);
    wait_for_stream(&server, "live/reload").await;

    let tls = tls_connect(https_addr(&server), &config).await;
    assert_eq!(peer_cert(&tls), a.der);
    let mut viewer = FlvViewer::connect_with(tls, "/live/reload.flv").await;
    let (before, _) = viewer
        .next_picture()
        .await
        .expect("a picture before the reload");

    // New files alone change nothing until a reload.
    files.write(&b);
    let new = tls_connect(https_addr(&server), &config).await;
    assert_eq!(peer_cert(&new), a.der, "served before any reload");

    // B's certificate with A's key: refused, A stays.
    std::fs::write(&files.key, &a.key_pem).unwrap();
    let err = server
        .reload_tls()
        .expect_err("a certificate and a key that do not match");
    let message = format!("{err:#}");
    assert!(
        message.contains("cert.pem") && message.contains("key.pem"),
        "{message}"
    );
    let new = tls_connect(https_addr(&server), &config).await;
    assert_eq!(peer_cert(&new), a.der, "the failed reload kept A");

    // B whole: new connections get it, on both listeners.
    files.write(&b);
    server.reload_tls().expect("reload");
    let new = tls_connect(https_addr(&server), &config).await;
    assert_eq!(peer_cert(&new), b.der, "HTTPS after the reload");
    let new = tls_connect(rtmps_addr(&server), &config).await;
    assert_eq!(peer_cert(&new), b.der, "RTMPS after the reload");

    // The viewer made under A keeps receiving the publisher made under A:
    // two more seconds of pictures.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = before;
    while last < before + 2000 {
        assert!(
            Instant::now() < deadline,
            "the viewer stalled at {last} ms (from {before} ms)"
        );
        let next = tokio::time::timeout(Duration::from_secs(5), viewer.next_picture()).await;
        last = next
            .expect("a picture in time")
            .expect("the viewer is still served")
            .0;
    }
    assert!(
        push.try_wait().unwrap().is_none(),
        "the RTMPS publisher is still on"
    );
}

/// A real SIGHUP to this process: the server's signal task reloads the
/// files; a connection made before keeps working; a SIGHUP with a broken
/// certificate file keeps the one in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate() {
    let _reloads = RELOADS.lock().await;
    let (a, b) = (Cert::new(), Cert::new());
    let files = Files::new("sighup");
    files.write(&a);
    let server = tls_server(&files, |_| {}).await;
    let addr = https_addr(&server);
    let config = client_config(&[&a, &b]);
    let before = tls_connect(addr, &config).await;
    assert_eq!(peer_cert(&before), a.der);
    let mut before = hyper_client(before).await;
    assert_eq!(get(&mut before, "/healthz").await.0, 200);

    files.write(&b);
    hangup();
    let served = served_within(addr, &config, &b, Duration::from_secs(10)).await;
    assert!(served, "B not served within 10 s of SIGHUP");
    assert_eq!(
        get(&mut before, "/healthz").await.0,
        200,
        "the connection made before the reload"
    );

    // A broken file: the reload fails (logged), B stays.
    std::fs::write(&files.cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    hangup();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..3 {
        let tls = tls_connect(addr, &config).await;
        assert_eq!(peer_cert(&tls), b.der, "B after a failed reload");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends SIGHUP to this process (its servers' signal tasks take it).
fn hangup() {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Whether new connections to `addr` get `cert` before `limit` passes.
async fn served_within(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    cert: &Cert,
    limit: Duration,
) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if peer_cert(&tls_connect(addr, config).await) == cert.der {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The web console in Chromium over HTTPS, the test's certificate trusted
/// by its public key (no blanket --ignore-certificate-errors): the host
/// page publishes its fake camera by WHIP, viewers play it over WebRTC,
/// HTTP-FLV and HLS, a viewer joins the stage by WSS signaling, all from
/// https:// pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_console_over_https() {
    let _heavy = HEAVY.lock().await;
    let cert = Cert::new();
    let files = Files::new("chromium");
    files.write(&cert);
    let server = tls_server(&files, |c| {
        c.auth.api_keys = vec![room_key()];
        c.console.dev_tokens = costream::config::DevTokens::Loopback;
    })
    .await;
    let shots = concat!(env!("CARGO_TARGET_TMPDIR"), "/console-https-screenshots");
    let args: Vec<String> = vec![
        "--http".into(),
        format!("https://127.0.0.1:{}", https_addr(&server).port()),
        "--shots".into(),
        shots.into(),
        "--timeout".into(),
        "120".into(),
        format!(
            "--chromium-arg=--ignore-certificate-errors-spki-list={}",
            cert.spki_sha256
        ),
    ];
    let out = run_node_script(CONSOLE, &args, Duration::from_secs(150)).await;
    assert_eq!(out["ok"], true, "{out}");
    let frames = |v: &serde_json::Value| v["frames"].as_u64().unwrap_or(0);
    let size = |v: &serde_json::Value| (v["width"].as_u64(), v["height"].as_u64());
    // The camera published over WHIP from an https:// page, played back
    // over WebRTC and HTTP-FLV (mpegts.js over HTTPS).
    for who in ["viewer", "flv_viewer"] {
        assert!(frames(&out[who]) >= 20, "{who}: {out}");
        assert_eq!(size(&out[who]), (Some(640), Some(480)), "{who}: {out}");
    }
    // Link-mic by WSS signaling: the guest on stage, the composite shown.
    assert!(frames(&out["guest"]) >= 20, "{out}");
    assert_eq!(size(&out["composite"]), (Some(640), Some(360)), "{out}");
    assert!(frames(&out["hls_viewer"]) >= 15, "{out}");
}
