//! Just enough of FLV/RTMP audio and video tag bodies to tell configuration
//! from frames: the first one or two bytes, never the payload.

/// What a video tag body carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoTag {
    /// Decoder configuration (AVC/HEVC sequence header, E-RTMP
    /// SequenceStart).
    SequenceHeader,
    /// A coded picture; `keyframe` when the frame type is 1.
    Frame { keyframe: bool },
    /// Empty, end of sequence, command frames, metadata.
    Other,
}

/// Legacy FLV codec ids whose second byte is a packet type (AVC; 12 is the
/// common non-standard HEVC id).
const CODEC_AVC: u8 = 7;
const CODEC_HEVC_LEGACY: u8 = 12;
/// Frame type 5: video info / command frame.
const FRAME_COMMAND: u8 = 5;

pub fn classify_video(body: &[u8]) -> VideoTag {
    let Some(&b0) = body.first() else {
        return VideoTag::Other;
    };
    if b0 & 0x80 != 0 {
        // Enhanced RTMP: [IsExHeader | FrameType:3 | PacketType:4] FourCC...
        let frame_type = (b0 >> 4) & 0x07;
        if frame_type == FRAME_COMMAND {
            return VideoTag::Other;
        }
        return match b0 & 0x0f {
            // SequenceStart, MPEG2TSSequenceStart.
            0 | 5 => VideoTag::SequenceHeader,
            // CodedFrames, CodedFramesX, Multitrack.
            1 | 3 | 6 => VideoTag::Frame {
                keyframe: frame_type == 1,
            },
            _ => VideoTag::Other,
        };
    }
    let frame_type = b0 >> 4;
    if frame_type == FRAME_COMMAND || frame_type == 0 {
        return VideoTag::Other;
    }
    let frame = VideoTag::Frame {
        keyframe: frame_type == 1,
    };
    match b0 & 0x0f {
        CODEC_AVC | CODEC_HEVC_LEGACY => match body.get(1) {
            Some(0) => VideoTag::SequenceHeader,
            Some(1) => frame,
            _ => VideoTag::Other,
        },
        _ => frame,
    }
}

/// True for an AAC AudioSpecificConfig or an E-RTMP audio SequenceStart.
pub fn is_audio_config(body: &[u8]) -> bool {
    match body {
        [b0, 0, ..] if b0 >> 4 == 10 => true,
        [b0, ..] if b0 >> 4 == 9 => b0 & 0x0f == 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video() {
        assert_eq!(
            classify_video(&[0x17, 0, 0, 0, 0]),
            VideoTag::SequenceHeader
        );
        assert_eq!(
            classify_video(&[0x17, 1, 0, 0, 0]),
            VideoTag::Frame { keyframe: true }
        );
        assert_eq!(
            classify_video(&[0x27, 1, 0, 0, 0]),
            VideoTag::Frame { keyframe: false }
        );
        assert_eq!(classify_video(&[0x17, 2]), VideoTag::Other);
        assert_eq!(classify_video(&[0x17]), VideoTag::Other);
        assert_eq!(classify_video(&[]), VideoTag::Other);
        assert_eq!(classify_video(&[0x57, 0]), VideoTag::Other);
        // VP6 has no packet type.
        assert_eq!(classify_video(&[0x14]), VideoTag::Frame { keyframe: true });
        // Enhanced RTMP, hvc1.
        assert_eq!(classify_video(b"\x90hvc1"), VideoTag::SequenceHeader);
        assert_eq!(
            classify_video(b"\x91hvc1"),
            VideoTag::Frame { keyframe: true }
        );
        assert_eq!(
            classify_video(b"\xa3hvc1"),
            VideoTag::Frame { keyframe: false }
        );
        assert_eq!(classify_video(b"\x92hvc1"), VideoTag::Other);
    }

    #[test]
    fn audio() {
        assert!(is_audio_config(&[0xaf, 0, 0x12, 0x10]));
        assert!(!is_audio_config(&[0xaf, 1, 0x21]));
        assert!(!is_audio_config(&[0xaf]));
        assert!(!is_audio_config(&[0x2f, 0]));
        assert!(is_audio_config(b"\x90mp4a"));
        assert!(!is_audio_config(b"\x91mp4a"));
    }
}
