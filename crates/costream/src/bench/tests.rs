//! Tests of the shared buffer policy.

use bytes::{Buf, BytesMut};

use super::{reserve_read_buffer, READ_BUFFER};

#[test]
fn read_buffer_is_reused_in_place() {
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let base = buf.as_ptr() as usize;
    for round in 0..100 {
        reserve_read_buffer(&mut buf);
        assert!(buf.capacity() - buf.len() >= 8 * 1024);
        let addr = buf.as_ptr() as usize;
        assert!(
            addr >= base && addr < base + READ_BUFFER,
            "round {round}: reallocated"
        );
        // Fill the buffer, hand out whole "tags" and drop them, keep a
        // small partial one.
        let room = buf.capacity() - buf.len();
        buf.extend(std::iter::repeat_n(0u8, room));
        let whole = buf.len() - 1000;
        let tag = buf.split_to(whole).freeze();
        drop(tag);
        buf.advance(10);
    }
}

mod end_to_end {
    use std::time::Duration;

    use bytes::BytesMut;
    use costream_flv::FLV_HEADER;
    use costream_rtmp::{amf0, Amf0Value, ServerConfig, ServerEvent, ServerSession};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::{oneshot, watch};

    use crate::bench::media::{classify_video, VideoTag};
    use crate::bench::{probe_first_frame, publish_flv_file};

    fn tag(kind: u8, ts: u32, body: &[u8]) -> Vec<u8> {
        let mut t = vec![kind];
        t.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        t.extend_from_slice(&ts.to_be_bytes()[1..]);
        t.push((ts >> 24) as u8);
        t.extend_from_slice(&[0, 0, 0]);
        t.extend_from_slice(body);
        t.extend_from_slice(&((11 + body.len()) as u32).to_be_bytes());
        t
    }

    fn metadata() -> Vec<u8> {
        let mut body = BytesMut::new();
        amf0::encode(
            &[
                Amf0Value::from("onMetaData"),
                Amf0Value::ecma_array([("framerate", Amf0Value::from(25.0))]),
            ],
            &mut body,
        );
        body.to_vec()
    }

    /// Metadata, both configs, then key 0, audio 20, inter 40, audio 60,
    /// inter 80 and an AVC end of sequence.
    fn flv_file() -> Vec<u8> {
        let mut f = FLV_HEADER.to_vec();
        f.extend(tag(18, 0, &metadata()));
        f.extend(tag(9, 0, &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f]));
        f.extend(tag(8, 0, &[0xaf, 0, 0x12, 0x10]));
        f.extend(tag(9, 0, &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]));
        f.extend(tag(8, 20, &[0xaf, 1, 0x21]));
        f.extend(tag(9, 40, &[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]));
        f.extend(tag(8, 60, &[0xaf, 1, 0x21]));
        f.extend(tag(9, 80, &[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]));
        f.extend(tag(9, 80, &[0x17, 2, 0, 0, 0]));
        f
    }

    #[tokio::test]
    async fn probe_http_flv_with_awkward_chunks() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for status in ["200 OK", "404 Not Found"] {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut req = [0u8; 1024];
                let _ = sock.read(&mut req).await.unwrap();
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: video/x-flv\r\ntransfer-encoding: chunked\r\n\r\n"
                );
                let mut out = head.into_bytes();
                // Chunks of 1 to 9 bytes, some with extensions, written in
                // pieces that split the chunk framing.
                let file = flv_file();
                let mut rest = &file[..];
                let mut i = 0;
                while !rest.is_empty() {
                    let (piece, tail) = rest.split_at((1 + i % 9).min(rest.len()));
                    rest = tail;
                    let ext = if i % 3 == 0 { ";x=y" } else { "" };
                    out.extend(format!("{:X}{ext}\r\n", piece.len()).bytes());
                    out.extend_from_slice(piece);
                    out.extend_from_slice(b"\r\n");
                    i += 1;
                }
                for piece in out.chunks(5) {
                    sock.write_all(piece).await.unwrap();
                    sock.flush().await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        let url = format!("http://127.0.0.1:{port}/live/s.flv");
        let first = probe_first_frame(&url, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(first.first_video_is_keyframe);
        assert!(first.got_video_sequence_header_first);
        assert_eq!(first.video_timestamp_ms, 0);
        assert!(first.connect_to_first_video < Duration::from_secs(5));
        let err = probe_first_frame(&url, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("404 Not Found"), "{err:#}");
    }

    #[tokio::test]
    async fn probe_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _server = tokio::spawn(async move {
            let (_sock, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let url = format!("rtmp://127.0.0.1:{port}/live/s");
        let err = probe_first_frame(&url, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no video frame"), "{err:#}");
    }

    #[derive(Debug, Default)]
    struct Seen {
        video: Vec<(u32, bool)>,
        audio: Vec<u32>,
        video_configs: usize,
        other_video: usize,
        metadata: usize,
    }

    #[tokio::test]
    async fn publish_loops_with_monotonic_timestamps() {
        let path = std::env::temp_dir().join(format!(
            "costream-bench-test-{}-{:?}.flv",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, flv_file()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (seen_tx, seen_rx) = oneshot::channel();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut s = ServerSession::new(ServerConfig {
                chunk_size: 4096,
                window_ack_size: 2_500_000,
                max_message_size: 1 << 20,
            });
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let mut seen = Seen::default();
            let mut seen_tx = Some(seen_tx);
            while sock.read_buf(&mut buf).await.unwrap() > 0 {
                s.feed(&mut buf).unwrap();
                while let Some(event) = s.poll_event() {
                    match event {
                        ServerEvent::Connect { app, .. } => {
                            assert_eq!(app, "live");
                            s.accept_connect().unwrap()
                        }
                        ServerEvent::Publish {
                            stream_id, name, ..
                        } => {
                            assert_eq!(name, "s");
                            s.accept_publish(stream_id).unwrap()
                        }
                        ServerEvent::Video {
                            timestamp, payload, ..
                        } => match classify_video(&payload) {
                            VideoTag::SequenceHeader => seen.video_configs += 1,
                            VideoTag::Frame { keyframe } => seen.video.push((timestamp, keyframe)),
                            VideoTag::Other => seen.other_video += 1,
                        },
                        ServerEvent::Audio { timestamp, .. } => seen.audio.push(timestamp),
                        ServerEvent::Data { .. } => seen.metadata += 1,
                        _ => {}
                    }
                }
                sock.write_all(&s.take_output()).await.unwrap();
                if seen.video.len() >= 7 {
                    if let Some(tx) = seen_tx.take() {
                        let _ = tx.send(std::mem::take(&mut seen));
                    }
                }
            }
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let url = format!("rtmp://127.0.0.1:{port}/live/s");
        let publisher = tokio::spawn({
            let path = path.clone();
            async move { publish_flv_file(&url, &path, stop_rx, true).await }
        });
        let started = std::time::Instant::now();
        let seen = tokio::time::timeout(Duration::from_secs(10), seen_rx)
            .await
            .unwrap()
            .unwrap();
        // Real time: the 7th frame is due 240 ms in.
        assert!(started.elapsed() >= Duration::from_millis(200));
        stop_tx.send(true).unwrap();
        let stats = publisher.await.unwrap().unwrap();
        let _ = std::fs::remove_file(&path);

        let ts: Vec<u32> = seen.video.iter().map(|(t, _)| *t).collect();
        // Passes of 80 ms + one 40 ms frame interval.
        assert_eq!(&ts[..7], &[0, 40, 80, 120, 160, 200, 240]);
        let keys: Vec<bool> = seen.video.iter().map(|(_, k)| *k).take(7).collect();
        assert_eq!(keys, [true, false, false, true, false, false, true]);
        assert!(
            seen.audio.starts_with(&[0, 20, 60, 140, 180]),
            "{:?}",
            seen.audio
        );
        assert_eq!(seen.video_configs, 1);
        assert_eq!(seen.other_video, 0, "end of sequence is not sent");
        assert_eq!(seen.metadata, 1);
        assert!(stats.loops_completed >= 2, "{stats:?}");
        assert!(stats.video_frames >= 7);
        assert!(stats.first_keyframe_after.is_some());
    }
}
