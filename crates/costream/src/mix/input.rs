//! One mixer input: a hub stream read by its own task, its video decoded to
//! pictures and its audio to 48 kHz stereo PCM, both waiting to be mixed
//! on their timestamps (see `sync.rs`).

use std::collections::VecDeque;
use std::sync::Arc;

use super::sync::AvSync;
use costream_audio::PcmDecoder;
use costream_hub::avc::{self, AvcConfig};
use costream_hub::{own_feed, Codec, FrameKind, Hub, HubEvent, Protocol, StreamKey};
use costream_mixer::Picture;
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use openh264::OpenH264API;
use parking_lot::Mutex;
use tokio::sync::broadcast;

/// Pictures decoded but not out of the decoder yet (reordering): their
/// pts, at most this many.
const MAX_PENDING: usize = 16;

/// A decoded picture and when its frame reached this input (the mix's
/// added latency is measured from there).
pub type Shown = (Arc<Picture>, std::time::Instant);

/// What the mixer reads from an input.
#[derive(Default)]
pub struct InputState {
    /// Its decoded sound and pictures, kept together on its timestamps.
    pub sync: AvSync<Shown>,
    /// It carries video (a picture is worth waiting for).
    pub video: bool,
    /// Its sound level in the mix; `None` is 1.
    pub gain: Option<f32>,
    pub live: bool,
    pub frames_in: u64,
    pub decode_errors: u64,
}

pub type SharedInput = Arc<Mutex<InputState>>;

/// Reads `key` until the task is aborted. While `key` is taken over by a
/// mix (its own feed is `key~src`), reads the publisher's own feed instead:
/// a mix never shows a mix, and two hosts can each replace their stream
/// with a mix of both.
pub async fn run(hub: Hub, key: StreamKey, state: SharedInput) {
    let own = own_feed(&key);
    let mut events = hub.events();
    loop {
        let reading = if hub.stream(&own).is_some() {
            &own
        } else {
            &key
        };
        match hub.subscribe(reading, Protocol::Internal) {
            Ok(mut sub) => {
                state.lock().live = true;
                let mut decoder = InputDecoder::default();
                loop {
                    let frame = tokio::select! {
                        f = sub.recv() => match f {
                            Some(f) => f,
                            None => break,
                        },
                        ev = events.recv() => match ev {
                            Ok(HubEvent::StreamStarted(k)) if k == own && reading == &key => break,
                            Err(broadcast::error::RecvError::Lagged(_)) if reading == &key && hub.stream(&own).is_some() => break,
                            _ => continue,
                        },
                    };
                    let arrived = std::time::Instant::now();
                    // Decoding is CPU work; keep it off the other tasks' way.
                    let out = super::heavy(|| decoder.push(&frame));
                    let mut st = state.lock();
                    st.frames_in += 1;
                    if frame.kind.is_video() {
                        st.video = true;
                    }
                    match out {
                        Ok(Decoded::Picture(p, pts)) => {
                            st.sync.push_picture(pts, (Arc::new(p), arrived));
                        }
                        Ok(Decoded::Pcm) => st.sync.push_audio(frame.pts, &decoder.pcm),
                        Ok(Decoded::Nothing) => {}
                        Err(()) => st.decode_errors += 1,
                    }
                }
                state.lock().live = false;
                if hub.stream(reading).is_some() || hub.stream(&key).is_some() {
                    // Switched between the stream and its own feed: at once.
                    continue;
                }
            }
            Err(_) => state.lock().live = false,
        }
        // Not live (yet, or any more): look again soon; the mix goes on.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

enum Decoded {
    /// A picture and its pts.
    Picture(Picture, i64),
    /// New samples in `InputDecoder::pcm`.
    Pcm,
    Nothing,
}

#[derive(Default)]
struct InputDecoder {
    video: Option<Decoder>,
    param_sets: Vec<u8>,
    audio: Option<PcmDecoder>,
    annexb: bytes::BytesMut,
    /// The last audio frame's samples (reused).
    pcm: Vec<f32>,
    /// The pts of the pictures fed to the decoder and not out yet, in
    /// presentation order (the order the decoder gives them out).
    pending: VecDeque<i64>,
}

impl InputDecoder {
    fn push(&mut self, frame: &costream_hub::Frame) -> Result<Decoded, ()> {
        match (frame.kind, frame.codec) {
            (FrameKind::VideoConfig, Codec::H264) => {
                let cfg = AvcConfig::parse(&frame.data).map_err(drop)?;
                let sets = cfg.parameter_sets_annexb().to_vec();
                if sets != self.param_sets {
                    let mut d = Decoder::with_api_config(
                        OpenH264API::from_source(),
                        openh264::decoder::DecoderConfig::new(),
                    )
                    .map_err(drop)?;
                    let _ = d.decode(&sets);
                    self.video = Some(d);
                    self.pending.clear();
                    self.param_sets = sets;
                }
                Ok(Decoded::Nothing)
            }
            (FrameKind::Video, Codec::H264) => {
                let Some(d) = self.video.as_mut() else {
                    return Ok(Decoded::Nothing);
                };
                self.annexb.clear();
                avc::avcc_to_annexb(&frame.data, &mut self.annexb);
                let at = self.pending.partition_point(|p| *p <= frame.pts);
                self.pending.insert(at, frame.pts);
                if self.pending.len() > MAX_PENDING {
                    self.pending.pop_front();
                }
                match d.decode(&self.annexb) {
                    Ok(Some(yuv)) => {
                        let (w, h) = yuv.dimensions();
                        let (ys, us, vs) = yuv.strides();
                        let pts = self.pending.pop_front().unwrap_or(frame.pts);
                        Picture::from_planes(w, h, (yuv.y(), yuv.u(), yuv.v()), (ys, us, vs))
                            .map(|p| Decoded::Picture(p, pts))
                            .ok_or(())
                    }
                    Ok(None) => Ok(Decoded::Nothing),
                    Err(_) => {
                        // No picture will come out for it.
                        if let Some(i) = self.pending.iter().position(|p| *p == frame.pts) {
                            self.pending.remove(i);
                        }
                        Err(())
                    }
                }
            }
            (FrameKind::AudioConfig, Codec::Aac) => {
                self.audio = Some(PcmDecoder::aac(&frame.data).map_err(drop)?);
                Ok(Decoded::Nothing)
            }
            (FrameKind::AudioConfig, Codec::Opus) => {
                self.audio = Some(PcmDecoder::opus().map_err(drop)?);
                Ok(Decoded::Nothing)
            }
            (FrameKind::Audio, _) => {
                let Some(a) = self.audio.as_mut() else {
                    return Ok(Decoded::Nothing);
                };
                let pcm = a.decode(&frame.data).map_err(drop)?;
                self.pcm.clear();
                self.pcm.extend_from_slice(pcm);
                Ok(Decoded::Pcm)
            }
            // VP8 and anything else: shown as a plain tile.
            _ => Ok(Decoded::Nothing),
        }
    }
}
