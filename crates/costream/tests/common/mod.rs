//! Shared helpers for the integration tests: an in-process server on free
//! ports, ffmpeg/ffprobe as real clients, and a minimal HTTP-FLV reader.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use costream::config::Config;
use costream::server::Server;
use costream_flv::{FlvReader, FlvTag};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

pub mod avsync;
pub mod browser;

pub async fn start_server(tweak: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config::default();
    config.rtmp.listen = "127.0.0.1:0".parse().unwrap();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.rtc.udp_listen = "127.0.0.1:0".parse().unwrap();
    config.rtc.tcp_listen = Some("127.0.0.1:0".parse().unwrap());
    config.rtc.public_ips = vec!["127.0.0.1".parse().unwrap()];
    tweak(&mut config);
    // Besides the test's own keys (the first signs tokens and webhooks):
    // the one the tests call the control API with.
    config.auth.api_keys.push(admin_key());
    Server::start(config).await.expect("server starts")
}

/// The API key room tests sign their room tokens with (their servers are
/// configured with it).
pub fn room_key() -> costream::access::ApiKey {
    costream::access::ApiKey {
        key: "test".into(),
        secret: "test-secret-test-secret-0123456789".into(),
    }
}

/// A room token for 10 minutes, signed with [`room_key`].
pub fn room_token(room: &str, identity: &str, role: costream::access::Role) -> String {
    costream::access::mint(
        &room_key(),
        room,
        identity,
        role,
        None,
        Duration::from_secs(600),
    )
    .expect("mint a token")
}

/// An API key every test server knows: the tests' admin credentials for the
/// control API (`Authorization: Basic KEY:SECRET`).
pub fn admin_key() -> costream::access::ApiKey {
    costream::access::ApiKey {
        key: "test-admin".into(),
        secret: "test-admin-secret-0123456789".into(),
    }
}

/// The `Authorization` header line of the tests' admin credentials.
pub fn admin_header() -> String {
    use base64::Engine;
    let k = admin_key();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", k.key, k.secret));
    format!("Authorization: Basic {basic}\r\n")
}

/// A plain HTTP/1.0 request with the tests' admin credentials.
pub async fn admin_request(addr: SocketAddr, method: &str, path: &str) -> (u16, Vec<u8>) {
    http_request_with(addr, method, path, &admin_header()).await
}

pub async fn admin_get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    admin_request(addr, "GET", path).await
}

pub fn rtmp_url(server: &Server, key: &str) -> String {
    format!("rtmp://{}/{key}", server.rtmp_addr)
}

pub fn http_url(server: &Server, path: &str) -> String {
    format!("http://{}{path}", server.http_addr)
}

/// ffmpeg pushing a live test picture (testsrc2, x264) and a sine tone (AAC)
/// over RTMP in real time. Killed when dropped.
pub fn ffmpeg_push(url: &str, extra_video: &[&str]) -> Child {
    let mut video = vec!["-g", "50", "-b:v", "800k"];
    video.extend_from_slice(extra_video);
    ffmpeg_push_lavfi(
        url,
        "testsrc2=size=640x360:rate=25",
        "sine=frequency=440:sample_rate=44100",
        &video,
        "64k",
    )
}

/// ffmpeg pushing lavfi sources over RTMP in real time as x264 (ultrafast,
/// no B-frames) with `video_opts`, and AAC at `audio_rate`. Killed when
/// dropped.
pub fn ffmpeg_push_lavfi(
    url: &str,
    video: &str,
    audio: &str,
    video_opts: &[&str],
    audio_rate: &str,
) -> Child {
    let mut args = vec![
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        video,
        "-f",
        "lavfi",
        "-i",
        audio,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-pix_fmt",
        "yuv420p",
    ];
    args.extend_from_slice(video_opts);
    args.extend_from_slice(&["-c:a", "aac", "-b:a", audio_rate, "-f", "flv", url]);
    Command::new("ffmpeg")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg is installed (scripts/test installs it)")
}

/// Waits until the hub has `key` with a parsed video config.
pub async fn wait_for_stream(server: &Server, key: &str) {
    let key = costream_hub::StreamKey::parse(key).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = server.hub().stream(&key) {
            let info = s.info();
            if info.video.is_some() && info.audio.is_some() && s.stats.frames_in() > 30 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "stream {key} did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// ffprobe's JSON for a URL (streams, and packets when asked).
pub async fn ffprobe(url: &str, extra: &[&str]) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json", "-rw_timeout", "10000000"])
        .args(extra)
        .arg(url)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("ffprobe finishes")
        .expect("ffprobe is installed");
    assert!(
        out.status.success(),
        "ffprobe {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

/// A plain HTTP/1.0 GET: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    http_request(addr, "GET", path).await
}

pub async fn http_request(addr: SocketAddr, method: &str, path: &str) -> (u16, Vec<u8>) {
    http_request_with(addr, method, path, "").await
}

/// Same, with `headers` (whole lines, each ending in CRLF) in the request.
pub async fn http_request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{method} {path} HTTP/1.0\r\nHost: test\r\n{headers}\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .unwrap();
    let text_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers");
    let head = String::from_utf8_lossy(&buf[..text_end]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, buf[text_end + 4..].to_vec())
}

/// A streaming HTTP-FLV viewer over HTTP/1.0 (close-delimited body), over
/// TCP or any other stream (TLS).
pub struct FlvViewer<S = TcpStream> {
    pub socket: S,
    buf: BytesMut,
    reader: FlvReader,
}

impl FlvViewer {
    pub async fn connect(addr: SocketAddr, path: &str) -> FlvViewer {
        Self::connect_with(TcpStream::connect(addr).await.unwrap(), path).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> FlvViewer<S> {
    pub async fn connect_with(mut socket: S, path: &str) -> FlvViewer<S> {
        socket
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                assert!(
                    head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
                    "{head}"
                );
                let _ = buf.split_to(end + 4);
                break;
            }
            let n = socket.read_buf(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed before the headers");
        }
        FlvViewer {
            socket,
            buf,
            reader: FlvReader::new(16 << 20),
        }
    }

    /// The next tag, or None at end of stream.
    pub async fn next_tag(&mut self) -> Option<FlvTag> {
        loop {
            if let Some(tag) = self.reader.next_tag(&mut self.buf).expect("valid FLV") {
                return Some(tag);
            }
            let n = self.socket.read_buf(&mut self.buf).await.ok()?;
            if n == 0 {
                return None;
            }
        }
    }

    /// The next video tag that is not a sequence header: (timestamp, keyframe).
    pub async fn next_picture(&mut self) -> Option<(u32, bool)> {
        loop {
            let tag = self.next_tag().await?;
            if tag.tag_type == costream_flv::TAG_VIDEO && tag.body.len() > 1 && tag.body[1] == 1 {
                return Some((tag.timestamp, tag.body[0] >> 4 == 1));
            }
        }
    }
}

/// Resident memory of this process, in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// A sans-IO RTMP client session driven over a socket, for tests that need
/// to see exactly what the server answers.
pub struct RtmpClient {
    pub socket: TcpStream,
    pub session: costream_rtmp::ClientSession,
    buf: BytesMut,
}

impl RtmpClient {
    pub async fn connect(addr: SocketAddr, app: &str) -> RtmpClient {
        let socket = TcpStream::connect(addr).await.unwrap();
        socket.set_nodelay(true).unwrap();
        let session = costream_rtmp::ClientSession::new(costream_rtmp::ClientConfig {
            app: app.into(),
            tc_url: format!("rtmp://{addr}/{app}"),
            chunk_size: 4096,
        });
        RtmpClient {
            socket,
            session,
            buf: BytesMut::with_capacity(64 * 1024),
        }
    }

    pub async fn flush(&mut self) {
        let out = self.session.take_output();
        if !out.is_empty() {
            self.socket.write_all(&out).await.unwrap();
        }
    }

    /// The next event, or None when the server closed the connection.
    pub async fn next_event(&mut self) -> Option<costream_rtmp::ClientEvent> {
        loop {
            if let Some(ev) = self.session.poll_event() {
                return Some(ev);
            }
            self.flush().await;
            let n = self.socket.read_buf(&mut self.buf).await.ok()?;
            if n == 0 {
                return None;
            }
            self.session.feed(&mut self.buf).ok()?;
        }
    }

    /// Events until one matches `pred` (returned), or the connection ends.
    pub async fn wait_for(
        &mut self,
        mut pred: impl FnMut(&costream_rtmp::ClientEvent) -> bool,
    ) -> Option<costream_rtmp::ClientEvent> {
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(ev) = self.next_event().await {
                if pred(&ev) {
                    return Some(ev);
                }
            }
            None
        })
        .await
        .expect("RTMP server answered in time")
    }
}

/// An HTTP/1.0 request with a body: (status, head, body).
pub async fn http_send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: test\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    http_raw(addr, head.as_bytes(), body).await
}

/// Sends `head` (the request line and headers, ending in an empty line)
/// and `body`; returns (status, the response head, its body).
pub async fn http_raw(addr: SocketAddr, head: &[u8], body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .unwrap();
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers");
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, buf[end + 4..].to_vec())
}

/// A response header's value.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A JSON API call, with `Authorization: Bearer token` when given:
/// (status, the body as JSON, `Null` when it is not).
pub async fn api_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: test\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// What ffmpeg decoded from `url` to stdout, `output` giving what and how.
async fn ffmpeg_read(url: &str, output: &[&str]) -> std::process::Output {
    let mut args = vec!["-hide_banner", "-loglevel", "error", "-i", url];
    args.extend_from_slice(output);
    args.push("-");
    let out = Command::new("ffmpeg")
        .args(&args)
        .stdin(Stdio::null())
        .output();
    tokio::time::timeout(Duration::from_secs(20), out)
        .await
        .expect("ffmpeg read the stream in time")
        .unwrap()
}

/// One decoded picture of the stream (RGB24, 640x360), skipping the first
/// `skip` frames.
pub async fn grab_picture(url: &str, skip: u32) -> Vec<u8> {
    let select = format!("select=gte(n\\,{skip})");
    let out = ffmpeg_read(
        url,
        &[
            "-vf",
            &select,
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
        ],
    )
    .await;
    assert_eq!(
        out.stdout.len(),
        640 * 360 * 3,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn rgb(pic: &[u8], x: usize, y: usize) -> (u8, u8, u8) {
    let i = (y * 640 + x) * 3;
    (pic[i], pic[i + 1], pic[i + 2])
}

pub fn is_red((r, g, b): (u8, u8, u8)) -> bool {
    r > 180 && g < 70 && b < 70
}

pub fn is_blue((r, g, b): (u8, u8, u8)) -> bool {
    b > 180 && r < 70 && g < 70
}

/// Power at `freq` in mono f32 samples at 48 kHz (Goertzel), per sample.
pub fn power(pcm: &[f32], freq: f32) -> f32 {
    let coeff = 2.0 * (2.0 * std::f32::consts::PI * freq / 48_000.0).cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for s in pcm {
        let s0 = s + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / pcm.len().max(1) as f32
}

/// `seconds` of a stream's audio decoded by ffmpeg: mono f32 at 48 kHz.
pub async fn grab_audio(url: &str, seconds: u32) -> Vec<f32> {
    let t = seconds.to_string();
    let out = ffmpeg_read(
        url,
        &["-t", &t, "-vn", "-ac", "1", "-ar", "48000", "-f", "f32le"],
    )
    .await;
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// A 640x360 mix of a red input and a blue one, the red one first: red
/// left and blue right in a grid, and both tones (440 Hz and 1000 Hz, each
/// more than 100 times the power at 700 Hz) in its sound.
pub async fn assert_red_left_blue_right_and_both_tones(url: &str) {
    // A viewer starts at the mix's last keyframe, which may be older than
    // its inputs' first pictures (or a layout change); 31 frames on (past its
    // 2 s GOP) cannot be.
    let pic = grab_picture(url, 31).await;
    let (left, right) = (rgb(&pic, 160, 180), rgb(&pic, 480, 180));
    assert!(is_red(left), "left: {left:?}");
    assert!(is_blue(right), "right: {right:?}");
    // The first half second may still be the jitter buffer filling.
    let pcm: Vec<f32> = grab_audio(url, 3)
        .await
        .into_iter()
        .skip(48_000 / 2)
        .collect();
    assert!(pcm.len() > 48_000, "{} samples", pcm.len());
    let (a, b, off) = (power(&pcm, 440.0), power(&pcm, 1000.0), power(&pcm, 700.0));
    eprintln!("mix audio power: 440 Hz {a:.3}, 1000 Hz {b:.3}, 700 Hz {off:.5}");
    assert!(
        a > 100.0 * off && b > 100.0 * off,
        "440: {a}, 1000: {b}, 700: {off}"
    );
}
