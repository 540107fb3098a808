//! The FLV file header (FLV spec E.2) and PreviousTagSize0.

/// Header flag: the file has audio tags.
const HAS_AUDIO: u8 = 0x04;
/// Header flag: the file has video tags.
const HAS_VIDEO: u8 = 0x01;

/// 'FLV', version 1, audio+video flags, DataOffset 9, then PreviousTagSize0 = 0:
/// everything an HTTP-FLV response sends before the first tag.
pub const FLV_HEADER: [u8; 13] = flv_header(true, true);

/// The 13 bytes that start an FLV stream with the given tracks announced.
pub const fn flv_header(has_audio: bool, has_video: bool) -> [u8; 13] {
    let mut flags = 0;
    if has_audio {
        flags |= HAS_AUDIO;
    }
    if has_video {
        flags |= HAS_VIDEO;
    }
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        assert_eq!(
            FLV_HEADER,
            [0x46, 0x4c, 0x56, 0x01, 0x05, 0, 0, 0, 9, 0, 0, 0, 0]
        );
        assert_eq!(flv_header(true, false)[4], 0x04);
        assert_eq!(flv_header(false, true)[4], 0x01);
        assert_eq!(flv_header(false, false)[4], 0x00);
    }
}
