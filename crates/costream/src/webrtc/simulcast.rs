//! Simulcast publishers send several encodings of their video (RTP stream
//! ids, "rids"): one hub stream carries one of them, the largest picture
//! seen so far, so that its viewers get one consistent video.

use std::collections::HashMap;

use costream_hub::{avc, vp8, Hub, Protocol, Publisher, StreamKey};
use costream_rtc::{Codec, MediaFrame, MediaKind, SessionId};

use super::convert::IngestClock;

#[derive(Default)]
pub struct LayerPick {
    /// The encoding the hub stream carries.
    pub primary: Option<String>,
    /// Picture width per encoding, from its last keyframe.
    widths: HashMap<String, u32>,
    /// Encodings seen, in order.
    seen: Vec<String>,
    /// When the carried encoding last had a frame.
    primary_at: Option<std::time::Instant>,
}

/// A carried encoding silent this long (the browser stopped sending it, for
/// want of bandwidth) gives way to the next keyframe of another.
const STALE: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Drop,
    /// The hub stream moves to this frame's encoding (a keyframe).
    Switched,
}

/// Encodings kept track of; a client cannot grow the map beyond this.
const MAX_RIDS: usize = 8;

impl LayerPick {
    pub fn admit(&mut self, frame: &MediaFrame) -> Verdict {
        let Some(rid) = frame.rid.as_deref() else {
            return Verdict::Pass;
        };
        if frame.kind != MediaKind::Video {
            return Verdict::Pass;
        }
        if self.seen.len() < MAX_RIDS && !self.seen.iter().any(|r| r == rid) {
            self.seen.push(rid.to_owned());
        }
        if frame.keyframe {
            if let Some(w) = picture_width(frame) {
                if self.widths.len() < MAX_RIDS || self.widths.contains_key(rid) {
                    self.widths.insert(rid.to_owned(), w);
                }
                let best = self
                    .primary
                    .as_ref()
                    .and_then(|p| self.widths.get(p))
                    .copied()
                    .unwrap_or(0);
                let stale = self
                    .primary_at
                    .is_some_and(|t| frame.network_time.saturating_duration_since(t) > STALE);
                if self.primary.as_deref() != Some(rid) && (w > best || stale) {
                    self.primary = Some(rid.to_owned());
                    self.primary_at = Some(frame.network_time);
                    return Verdict::Switched;
                }
            }
        }
        if self.primary.as_deref() == Some(rid) {
            self.primary_at = Some(frame.network_time);
            Verdict::Pass
        } else {
            Verdict::Drop
        }
    }
}

impl LayerPick {
    /// Whom to ask for a keyframe: the carried encoding; before there is
    /// one, every encoding seen; for a publisher without simulcast, the
    /// one stream (`None`).
    pub fn targets(&self) -> Vec<Option<String>> {
        match (&self.primary, self.seen.is_empty()) {
            (Some(p), _) => vec![Some(p.clone())],
            (None, true) => vec![None],
            (None, false) => self.seen.iter().cloned().map(Some).collect(),
        }
    }
}

/// Feeds a simulcast publisher's layer streams: each encoding's video to
/// its own hub stream (created on its first frame), the audio to all.
pub fn feed_layers(
    hub: &Hub,
    layer_keys: &mut HashMap<StreamKey, (SessionId, String)>,
    session: SessionId,
    key: &StreamKey,
    streams: &mut HashMap<String, (Publisher, IngestClock)>,
    frame: &MediaFrame,
) {
    match (frame.kind, frame.rid.as_deref()) {
        (MediaKind::Video, Some(rid)) => {
            if !streams.contains_key(rid) {
                if streams.len() >= MAX_RIDS {
                    return;
                }
                let layer = layer_key(key, rid);
                match hub.publish(layer.clone(), Protocol::WebRtc) {
                    Ok(p) => {
                        tracing::info!(%session, stream = %layer, "simulcast encoding published");
                        layer_keys.insert(layer, (session, rid.to_owned()));
                        streams.insert(rid.to_owned(), (p, IngestClock::default()));
                    }
                    Err(e) => {
                        tracing::debug!(%session, "simulcast layer {rid}: {e}");
                        return;
                    }
                }
            }
            if let Some((p, clock)) = streams.get_mut(rid) {
                for f in clock.convert(frame) {
                    let _ = p.push(f);
                }
            }
        }
        (MediaKind::Audio, _) => {
            for (p, clock) in streams.values_mut() {
                for f in clock.convert(frame) {
                    let _ = p.push(f);
                }
            }
        }
        _ => {}
    }
}

/// The hub stream of one encoding of a simulcast publisher.
pub fn layer_key(key: &StreamKey, rid: &str) -> StreamKey {
    key.bridged(&format!("sim-{rid}"))
}

/// The picture width a keyframe announces (H.264: its in-band SPS).
fn picture_width(frame: &MediaFrame) -> Option<u32> {
    match frame.codec {
        Codec::H264 => avc::annexb_nalus(&frame.data)
            .find(|nal| nal.first().map(|h| h & 0x1f) == Some(7))
            .and_then(|sps| avc::sps_info(sps).ok())
            .map(|i| i.width),
        Codec::Vp8 => vp8::keyframe_size(&frame.data).map(|(w, _)| u32::from(w)),
        Codec::Opus => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Instant;

    fn frame(rid: &str, keyframe: bool, width_mbs: u8) -> MediaFrame {
        // An Annex B access unit: SPS (Baseline, pic_width_in_mbs_minus1 from
        // `width_mbs`), then an IDR or non-IDR slice header byte.
        let sps = sps(width_mbs);
        let mut data = vec![0, 0, 0, 1];
        data.extend_from_slice(&sps);
        data.extend_from_slice(&[0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }, 0x88]);
        MediaFrame {
            kind: MediaKind::Video,
            codec: Codec::H264,
            rtp_time: 0,
            clock_rate: 90_000,
            network_time: Instant::now(),
            keyframe,
            contiguous: true,
            audio_level: None,
            rid: Some(rid.into()),
            sender_clock: None,
            data: Bytes::from(data),
        }
    }

    /// A Baseline SPS for a picture `(mbs + 1) * 16` wide and 240 high.
    pub(super) fn sps(mbs: u8) -> Vec<u8> {
        // Bit writer for the few Exp-Golomb fields an SPS needs.
        let mut bits: Vec<bool> = Vec::new();
        let ue = |bits: &mut Vec<bool>, v: u32| {
            let n = 32 - (v + 1).leading_zeros();
            for _ in 1..n {
                bits.push(false);
            }
            for i in (0..n).rev() {
                bits.push((v + 1) >> i & 1 == 1);
            }
        };
        for b in [0x67u8, 66, 0, 30] {
            for i in (0..8).rev() {
                bits.push(b >> i & 1 == 1);
            }
        }
        ue(&mut bits, 0); // seq_parameter_set_id
        ue(&mut bits, 0); // log2_max_frame_num_minus4
        ue(&mut bits, 2); // pic_order_cnt_type
        ue(&mut bits, 1); // max_num_ref_frames
        bits.push(false); // gaps_in_frame_num_value_allowed_flag
        ue(&mut bits, u32::from(mbs)); // pic_width_in_mbs_minus1
        ue(&mut bits, 14); // pic_height_in_map_units_minus1
        bits.extend([true, true, false, false]); // frame_mbs_only, direct_8x8, cropping, vui
        bits.push(true); // rbsp stop bit
        while !bits.len().is_multiple_of(8) {
            bits.push(false);
        }
        bits.chunks(8)
            .map(|c| c.iter().fold(0u8, |acc, &b| acc << 1 | u8::from(b)))
            .collect()
    }

    #[test]
    fn the_largest_encoding_is_carried_from_its_keyframe_on() {
        let mut pick = LayerPick::default();
        assert_eq!(pick.targets(), vec![None]);
        // Nothing passes before a keyframe says how large an encoding is.
        assert_eq!(pick.admit(&frame("q", false, 9)), Verdict::Drop);
        assert_eq!(pick.targets(), vec![Some("q".to_string())]);
        assert_eq!(pick.admit(&frame("q", true, 9)), Verdict::Switched);
        assert_eq!(pick.admit(&frame("q", false, 9)), Verdict::Pass);
        assert_eq!(pick.admit(&frame("h", false, 19)), Verdict::Drop);
        // A larger encoding takes over at its keyframe; a smaller one never.
        assert_eq!(pick.admit(&frame("h", true, 19)), Verdict::Switched);
        assert_eq!(pick.admit(&frame("q", true, 9)), Verdict::Drop);
        assert_eq!(pick.admit(&frame("h", false, 19)), Verdict::Pass);
        assert_eq!(pick.targets(), vec![Some("h".to_string())]);
        // The carried encoding goes quiet: a smaller one takes over.
        let mut q = frame("q", true, 9);
        q.network_time += std::time::Duration::from_secs(2);
        assert_eq!(pick.admit(&q), Verdict::Switched);
        assert_eq!(pick.targets(), vec![Some("q".to_string())]);
        // Audio and frames without a rid are not simulcast.
        let mut audio = frame("h", false, 19);
        audio.kind = MediaKind::Audio;
        assert_eq!(pick.admit(&audio), Verdict::Pass);
        let mut plain = frame("x", false, 19);
        plain.rid = None;
        assert_eq!(pick.admit(&plain), Verdict::Pass);
    }
}
