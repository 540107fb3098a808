use bytes::{BufMut, BytesMut};

use super::*;
use crate::chunk::encode_message;

fn basic(fmt: u8, csid: u32) -> Vec<u8> {
    match csid {
        2..=63 => vec![(fmt << 6) | csid as u8],
        64..=319 => vec![fmt << 6, (csid - 64) as u8],
        _ => {
            let id = csid - 64;
            vec![(fmt << 6) | 1, id as u8, (id >> 8) as u8]
        }
    }
}

fn be24(v: u32) -> [u8; 3] {
    let b = v.to_be_bytes();
    [b[1], b[2], b[3]]
}

fn fmt0(csid: u32, ts: u32, len: u32, type_id: u8, stream_id: u32) -> Vec<u8> {
    let mut v = basic(0, csid);
    v.extend_from_slice(&be24(ts.min(0xFF_FFFF)));
    v.extend_from_slice(&be24(len));
    v.push(type_id);
    v.extend_from_slice(&stream_id.to_le_bytes());
    if ts >= 0xFF_FFFF {
        v.extend_from_slice(&ts.to_be_bytes());
    }
    v
}

fn fmt1(csid: u32, delta: u32, len: u32, type_id: u8) -> Vec<u8> {
    let mut v = basic(1, csid);
    v.extend_from_slice(&be24(delta.min(0xFF_FFFF)));
    v.extend_from_slice(&be24(len));
    v.push(type_id);
    if delta >= 0xFF_FFFF {
        v.extend_from_slice(&delta.to_be_bytes());
    }
    v
}

fn fmt2(csid: u32, delta: u32) -> Vec<u8> {
    let mut v = basic(2, csid);
    v.extend_from_slice(&be24(delta));
    v
}

fn decode_all(dec: &mut ChunkDecoder, bytes: &[u8]) -> Result<Vec<RawMessage>, ChunkError> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(msg) = dec.push(&mut buf)? {
        out.push(msg);
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    Ok(out)
}

fn summary(msgs: &[RawMessage]) -> Vec<(u32, u32, u8, u32, Vec<u8>)> {
    msgs.iter()
        .map(|m| {
            (
                m.csid,
                m.timestamp,
                m.type_id,
                m.stream_id,
                m.payload.to_vec(),
            )
        })
        .collect()
}

#[test]
fn basic_header_forms() {
    for csid in [2, 3, 63, 64, 65, 319, 320, 1000, 65_599] {
        let mut bytes = fmt0(csid, 10, 2, 8, 1);
        bytes.extend_from_slice(b"hi");
        let msgs = decode_all(&mut ChunkDecoder::default(), &bytes).unwrap();
        assert_eq!(
            summary(&msgs),
            vec![(csid, 10, 8, 1, b"hi".to_vec())],
            "csid {csid}"
        );
    }
}

#[test]
fn all_header_types() {
    let mut bytes = fmt0(4, 1000, 3, 8, 1);
    bytes.extend_from_slice(b"abc");
    // Type 1: new length and type, delta 20.
    bytes.extend(fmt1(4, 20, 2, 9));
    bytes.extend_from_slice(b"de");
    // Type 2: same length/type, delta 33.
    bytes.extend(fmt2(4, 33));
    bytes.extend_from_slice(b"fg");
    // Type 3 starting a message: everything repeats, including delta 33.
    bytes.extend(basic(3, 4));
    bytes.extend_from_slice(b"hi");
    let msgs = decode_all(&mut ChunkDecoder::default(), &bytes).unwrap();
    assert_eq!(
        summary(&msgs),
        vec![
            (4, 1000, 8, 1, b"abc".to_vec()),
            (4, 1020, 9, 1, b"de".to_vec()),
            (4, 1053, 9, 1, b"fg".to_vec()),
            (4, 1086, 9, 1, b"hi".to_vec()),
        ]
    );
}

#[test]
fn type3_after_type0_reuses_its_timestamp_as_delta() {
    // ffmpeg/librtmp convention.
    let mut bytes = fmt0(5, 40, 1, 18, 1);
    bytes.push(b'x');
    bytes.extend(basic(3, 5));
    bytes.push(b'y');
    let msgs = decode_all(&mut ChunkDecoder::default(), &bytes).unwrap();
    assert_eq!(msgs[1].timestamp, 80);
}

#[test]
fn type1_without_previous_header_is_accepted() {
    let mut bytes = fmt1(2, 0, 4, 5);
    bytes.extend_from_slice(&2_500_000u32.to_be_bytes());
    let msgs = decode_all(&mut ChunkDecoder::default(), &bytes).unwrap();
    assert_eq!(msgs[0].stream_id, 0);
    assert_eq!(msgs[0].type_id, 5);
}

#[test]
fn type2_or_3_without_previous_header_is_rejected() {
    for fmt in [2u8, 3] {
        let mut bytes = basic(fmt, 7);
        bytes.extend_from_slice(&[0; 8]);
        assert_eq!(
            decode_all(&mut ChunkDecoder::default(), &bytes),
            Err(ChunkError::MissingPreviousHeader(7))
        );
    }
}

#[test]
fn interleaved_multi_chunk_messages() {
    // Chunk size 128: a 300-byte video on csid 6 interleaved with a
    // 200-byte audio on csid 4.
    let video: Vec<u8> = (0..300).map(|i| i as u8).collect();
    let audio: Vec<u8> = (0..200).map(|i| (i * 3) as u8).collect();
    let mut bytes = fmt0(6, 0, 300, 9, 1);
    bytes.extend_from_slice(&video[..128]);
    bytes.extend(fmt0(4, 5, 200, 8, 1));
    bytes.extend_from_slice(&audio[..128]);
    bytes.extend(basic(3, 6));
    bytes.extend_from_slice(&video[128..256]);
    bytes.extend(basic(3, 4));
    bytes.extend_from_slice(&audio[128..]);
    bytes.extend(basic(3, 6));
    bytes.extend_from_slice(&video[256..]);
    let msgs = decode_all(&mut ChunkDecoder::default(), &bytes).unwrap();
    assert_eq!(
        summary(&msgs),
        vec![(4, 5, 8, 1, audio), (6, 0, 9, 1, video)]
    );
}

#[test]
fn extended_timestamp_repeated_on_continuations() {
    let payload = vec![0xAB; 300];
    let bytes = encode_message(128, 6, 0x0123_4567, 9, 1, &payload);
    let mut dec = ChunkDecoder::default();
    let msgs = decode_all(&mut dec, &bytes).unwrap();
    assert_eq!(summary(&msgs), vec![(6, 0x0123_4567, 9, 1, payload)]);
    assert_eq!(dec.repeats_extended, Some(true));
}

#[test]
fn extended_timestamp_not_repeated_on_continuations() {
    let payload: Vec<u8> = (0..300).map(|i| i as u8).collect();
    let mut bytes = fmt0(6, 0x0123_4567, 300, 9, 1);
    bytes.extend_from_slice(&payload[..128]);
    bytes.extend(basic(3, 6));
    bytes.extend_from_slice(&payload[128..256]);
    bytes.extend(basic(3, 6));
    bytes.extend_from_slice(&payload[256..]);
    let mut dec = ChunkDecoder::default();
    let msgs = decode_all(&mut dec, &bytes).unwrap();
    assert_eq!(summary(&msgs), vec![(6, 0x0123_4567, 9, 1, payload)]);
    assert_eq!(dec.repeats_extended, Some(false));
}

#[test]
fn extended_delta_on_type1_and_type3() {
    let mut bytes = fmt0(4, 100, 1, 8, 1);
    bytes.push(1);
    bytes.extend(fmt1(4, 0x0100_0000, 1, 8));
    bytes.push(2);
    // Type 3 new message: extended delta present again.
    bytes.extend(basic(3, 4));
    bytes.extend_from_slice(&0x0100_0000u32.to_be_bytes());
    bytes.push(3);
    let msgs = decode_all(&mut ChunkDecoder::default(), &bytes).unwrap();
    let ts: Vec<u32> = msgs.iter().map(|m| m.timestamp).collect();
    assert_eq!(ts, vec![100, 0x0100_0064, 0x0200_0064]);
}

#[test]
fn set_chunk_size_applies_to_following_chunks() {
    let payload = vec![9u8; 1000];
    let mut bytes = fmt0(2, 0, 4, 1, 0);
    bytes.extend_from_slice(&1000u32.to_be_bytes());
    bytes.extend_from_slice(&encode_message(1000, 6, 7, 9, 1, &payload));
    let mut dec = ChunkDecoder::default();
    let msgs = decode_all(&mut dec, &bytes).unwrap();
    assert_eq!(dec.chunk_size(), 1000);
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].payload.len(), 1000);
}

#[test]
fn chunk_size_limits() {
    let set = |size: u32| {
        let mut bytes = fmt0(2, 0, 4, 1, 0);
        bytes.extend_from_slice(&size.to_be_bytes());
        decode_all(&mut ChunkDecoder::default(), &bytes).map(|_| ())
    };
    assert_eq!(set(16 << 20), Ok(()));
    assert_eq!(
        set((16 << 20) + 1),
        Err(ChunkError::ChunkSizeTooLarge((16 << 20) + 1))
    );
    assert_eq!(
        set(0x8000_0000),
        Err(ChunkError::ChunkSizeTooLarge(0x8000_0000))
    );
    assert_eq!(set(0), Err(ChunkError::InvalidChunkSize(0)));
    let mut short = fmt0(2, 0, 2, 1, 0);
    short.extend_from_slice(&[0, 1]);
    assert_eq!(
        decode_all(&mut ChunkDecoder::default(), &short),
        Err(ChunkError::MalformedControl("Set Chunk Size"))
    );
}

#[test]
fn abort_discards_partial_message() {
    let mut bytes = fmt0(6, 0, 300, 9, 1);
    bytes.extend_from_slice(&[1; 128]);
    bytes.extend(fmt0(2, 0, 4, 2, 0));
    bytes.extend_from_slice(&6u32.to_be_bytes());
    bytes.extend(fmt0(6, 50, 2, 9, 1));
    bytes.extend_from_slice(b"ok");
    let mut dec = ChunkDecoder::default();
    let msgs = decode_all(&mut dec, &bytes).unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].type_id, 2);
    assert_eq!(&msgs[1].payload[..], b"ok");
    assert_eq!((dec.in_flight, dec.buffered), (0, 0));
}

#[test]
fn message_size_limit() {
    let bytes = fmt0(6, 0, 1001, 9, 1);
    assert_eq!(
        decode_all(&mut ChunkDecoder::new(1000), &bytes),
        Err(ChunkError::MessageTooLarge {
            size: 1001,
            max: 1000
        })
    );
}

#[test]
fn in_flight_limit() {
    let mut bytes = Vec::new();
    for csid in 0..=MAX_IN_FLIGHT_CHUNK_STREAMS as u32 {
        bytes.extend(fmt0(csid + 3, 0, 200, 9, 1));
        bytes.extend_from_slice(&[0; 128]);
    }
    assert_eq!(
        decode_all(&mut ChunkDecoder::default(), &bytes),
        Err(ChunkError::TooManyChunkStreams)
    );
}

#[test]
fn tracked_stream_limit() {
    let mut bytes = Vec::new();
    for csid in 0..=MAX_TRACKED_CHUNK_STREAMS as u32 {
        bytes.extend(fmt0(csid + 3, 0, 0, 9, 1));
    }
    assert_eq!(
        decode_all(&mut ChunkDecoder::default(), &bytes),
        Err(ChunkError::TooManyChunkStreams)
    );
}

#[test]
fn buffered_bytes_limit() {
    // Three 1000-byte messages assembled at once with a 1000-byte message
    // limit: more than 2000 bytes buffered in total is refused.
    let mut bytes = Vec::new();
    for csid in 3..6 {
        bytes.extend(fmt0(csid, 0, 1000, 9, 1));
        bytes.extend_from_slice(&[0; 128]);
    }
    for _ in 0..6 {
        for csid in 3..6 {
            bytes.extend(basic(3, csid));
            bytes.extend_from_slice(&[0; 128]);
        }
    }
    assert_eq!(
        decode_all(&mut ChunkDecoder::new(1000), &bytes),
        Err(ChunkError::TooMuchBuffered)
    );
}

#[test]
fn zero_length_message() {
    let bytes = fmt0(3, 1, 0, 20, 0);
    let msgs = decode_all(&mut ChunkDecoder::default(), &bytes).unwrap();
    assert_eq!(summary(&msgs), vec![(3, 1, 20, 0, vec![])]);
}

#[test]
fn new_header_mid_message_replaces_it() {
    let mut bytes = fmt0(6, 0, 300, 9, 1);
    bytes.extend_from_slice(&[1; 128]);
    bytes.extend(fmt0(6, 10, 1, 9, 1));
    bytes.push(7);
    let mut dec = ChunkDecoder::default();
    let msgs = decode_all(&mut dec, &bytes).unwrap();
    assert_eq!(summary(&msgs), vec![(6, 10, 9, 1, vec![7])]);
    assert_eq!((dec.in_flight, dec.buffered), (0, 0));
}

#[test]
fn byte_by_byte_matches_bulk() {
    let mut bytes = BytesMut::new();
    for (i, csid) in [3u32, 4, 6, 64, 400].into_iter().enumerate() {
        let payload: Vec<u8> = (0..(i * 150 + 7)).map(|b| b as u8).collect();
        bytes.put(encode_message(128, csid, (i as u32) << 23, 9, 1, &payload));
    }
    let bulk = decode_all(&mut ChunkDecoder::default(), &bytes).unwrap();
    assert_eq!(bulk.len(), 5);

    let mut dec = ChunkDecoder::default();
    let mut buf = BytesMut::new();
    let mut one_by_one = Vec::new();
    for &b in bytes.iter() {
        buf.put_u8(b);
        while let Some(msg) = dec.push(&mut buf).unwrap() {
            one_by_one.push(msg);
        }
    }
    assert_eq!(bulk, one_by_one);
}

#[test]
fn encoder_roundtrip() {
    for chunk_size in [1, 2, 127, 128, 4096, 70_000] {
        let mut bytes = BytesMut::new();
        let mut expected = Vec::new();
        if chunk_size != 128 {
            let size = (chunk_size as u32).to_be_bytes();
            bytes.put(encode_message(128, 2, 0, 1, 0, &size));
            expected.push((2, 0, 1, 0, size.to_vec()));
        }
        for (i, ts) in [0u32, 1, 0xFF_FFFE, 0xFF_FFFF, 0x0100_0000, u32::MAX]
            .into_iter()
            .enumerate()
        {
            let payload: Vec<u8> = (0..(i * 3000)).map(|b| (b * 7) as u8).collect();
            bytes.put(encode_message(chunk_size, 6, ts, 9, 1, &payload));
            expected.push((6, ts, 9, 1, payload));
        }
        let msgs = decode_all(&mut ChunkDecoder::default(), &bytes).unwrap();
        assert_eq!(summary(&msgs), expected, "chunk size {chunk_size}");
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2_000 {
        let len = (next() % 2048) as usize;
        let mut buf: BytesMut = (0..len).map(|_| next() as u8).collect();
        let mut dec = ChunkDecoder::new(64 << 10);
        while let Ok(Some(_)) = dec.push(&mut buf) {}
    }
}
