//! One mixer input: a hub stream read by its own task, its video decoded to
//! the latest picture and its audio to 48 kHz stereo PCM waiting to be
//! mixed.

use std::collections::VecDeque;
use std::sync::Arc;

use costream_audio::PcmDecoder;
use costream_hub::avc::{self, AvcConfig};
use costream_hub::{Codec, FrameKind, Hub, Protocol, StreamKey};
use costream_mixer::Picture;
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use openh264::OpenH264API;
use parking_lot::Mutex;

/// Most PCM kept per input (stereo samples): a second. More means the input
/// runs ahead of the mix; the oldest is dropped.
const MAX_PCM: usize = 48_000 * 2;

/// What the mixer reads from an input.
#[derive(Default)]
pub struct InputState {
    /// The latest decoded picture; kept when the input stalls.
    pub picture: Option<Arc<Picture>>,
    /// Decoded audio not mixed yet, interleaved stereo at 48 kHz.
    pub pcm: VecDeque<f32>,
    /// Audio is being taken (enough was buffered once).
    pub audio_started: bool,
    pub live: bool,
    pub frames_in: u64,
    pub decode_errors: u64,
}

pub type SharedInput = Arc<Mutex<InputState>>;

/// Reads `key` until it ends or the task is aborted.
pub async fn run(hub: Hub, key: StreamKey, state: SharedInput) {
    loop {
        match hub.subscribe(&key, Protocol::Internal) {
            Ok(mut sub) => {
                state.lock().live = true;
                let mut decoder = InputDecoder::default();
                while let Some(frame) = sub.recv().await {
                    let frame = frame.clone();
                    // Decoding is CPU work; keep it off the other tasks' way.
                    let out = super::heavy(|| decoder.push(&frame));
                    let mut st = state.lock();
                    st.frames_in += 1;
                    match out {
                        Ok(Decoded::Picture(p)) => st.picture = Some(Arc::new(p)),
                        Ok(Decoded::Pcm) => {
                            st.pcm.extend(decoder.pcm.iter().copied());
                            let over = st.pcm.len().saturating_sub(MAX_PCM);
                            st.pcm.drain(..over);
                        }
                        Ok(Decoded::Nothing) => {}
                        Err(()) => st.decode_errors += 1,
                    }
                }
                state.lock().live = false;
            }
            Err(_) => state.lock().live = false,
        }
        // Not live (yet, or any more): look again soon; the mix goes on.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

enum Decoded {
    Picture(Picture),
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
                match d.decode(&self.annexb) {
                    Ok(Some(yuv)) => {
                        let (w, h) = yuv.dimensions();
                        let (ys, us, vs) = yuv.strides();
                        Picture::from_planes(w, h, (yuv.y(), yuv.u(), yuv.v()), (ys, us, vs))
                            .map(Decoded::Picture)
                            .ok_or(())
                    }
                    Ok(None) => Ok(Decoded::Nothing),
                    Err(_) => Err(()),
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
