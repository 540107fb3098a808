//! VP8 (RFC 6386) as far as the hub cares: which frames are key frames and
//! the picture size they declare. VP8 has no separate decoder configuration;
//! the hub's VP8 "config" frame is just the size, so that stream info and
//! the API can show it like any other codec.

/// A VP8 frame starts with a 3-byte tag whose lowest bit is 0 on key frames
/// (RFC 6386 section 9.1).
pub fn is_keyframe(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 1 == 0)
}

/// Width and height from a key frame: after the tag, the start code
/// 9d 01 2a and two little-endian 14-bit sizes (the top 2 bits of each are a
/// scaling mode). `None` for inter frames and anything malformed.
pub fn keyframe_size(frame: &[u8]) -> Option<(u16, u16)> {
    if !is_keyframe(frame) {
        return None;
    }
    let header = frame.get(3..10)?;
    if header[..3] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([header[3], header[4]]) & 0x3fff;
    let height = u16::from_le_bytes([header[5], header[6]]) & 0x3fff;
    (width > 0 && height > 0).then_some((width, height))
}

/// The hub's VP8 config payload: width and height, big-endian.
pub fn config_record(width: u16, height: u16) -> [u8; 4] {
    let [w0, w1] = width.to_be_bytes();
    let [h0, h1] = height.to_be_bytes();
    [w0, w1, h0, h1]
}

/// The inverse of [`config_record`].
pub fn parse_config_record(data: &[u8]) -> Option<(u16, u16)> {
    let d: [u8; 4] = data.get(..4)?.try_into().ok()?;
    Some((
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_frame_size_and_config_round_trip() {
        // Tag (key frame, shown), start code, 640 x 480.
        let key = [
            0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01, 0x00,
        ];
        assert!(is_keyframe(&key));
        assert_eq!(keyframe_size(&key), Some((640, 480)));
        let inter = [0x31, 0x02, 0x00, 0x00];
        assert!(!is_keyframe(&inter));
        assert_eq!(keyframe_size(&inter), None);
        assert_eq!(keyframe_size(&key[..8]), None, "truncated");
        let mut bad = key;
        bad[4] = 0;
        assert_eq!(keyframe_size(&bad), None, "no start code");
        assert_eq!(
            parse_config_record(&config_record(640, 480)),
            Some((640, 480))
        );
        assert_eq!(parse_config_record(&[1, 2]), None);
    }
}
