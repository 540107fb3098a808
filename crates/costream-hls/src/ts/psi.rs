//! Program-specific information: the PAT and the PMT of our single program
//! (ISO 13818-1 §2.4.4), each one section in one packet.

use bytes::{BufMut, BytesMut};

use super::packet::write_section;
use super::{PID_PAT, PID_PMT};
use crate::crc::crc32_mpeg2;

const PROGRAM_NUMBER: u16 = 1;
const TABLE_PAT: u8 = 0x00;
const TABLE_PMT: u8 = 0x02;

/// One elementary stream of the PMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Es {
    pub stream_type: u8,
    pub pid: u16,
}

pub(super) fn write_pat(out: &mut BytesMut, cc: &mut u8) {
    write_section(out, PID_PAT, cc, |out| {
        long_section(out, TABLE_PAT, 1, 0, 4, |out| {
            out.put_u16(PROGRAM_NUMBER);
            out.put_u16(0xe000 | PID_PMT);
        })
    });
}

/// `version` (5 bits) must change whenever the streams do.
pub(super) fn write_pmt(
    out: &mut BytesMut,
    cc: &mut u8,
    version: u8,
    pcr_pid: u16,
    streams: &[Es],
) {
    write_section(out, PID_PMT, cc, |out| {
        long_section(
            out,
            TABLE_PMT,
            PROGRAM_NUMBER,
            version,
            4 + 5 * streams.len(),
            |out| {
                out.put_u16(0xe000 | pcr_pid);
                out.put_u16(0xf000); // no program descriptors
                for es in streams {
                    out.put_u8(es.stream_type);
                    out.put_u16(0xe000 | es.pid);
                    out.put_u16(0xf000); // no ES descriptors
                }
            },
        )
    });
}

/// A section with the long header (syntax indicator set) around `body` of
/// `body_len` bytes, then its CRC.
fn long_section(
    out: &mut BytesMut,
    table_id: u8,
    id: u16,
    version: u8,
    body_len: usize,
    body: impl FnOnce(&mut BytesMut),
) {
    let start = out.len();
    // Everything after section_length: id, version, section numbers, body, CRC.
    let section_len = 5 + body_len + 4;
    out.put_u8(table_id);
    out.put_u16(0xb000 | (section_len as u16 & 0x03ff));
    out.put_u16(id);
    out.put_u8(0xc1 | ((version & 0x1f) << 1)); // current_next_indicator = 1
    out.put_slice(&[0, 0]); // section_number, last_section_number
    body(out);
    let crc = crc32_mpeg2(out.get(start..).unwrap_or_default());
    out.put_u32(crc);
    debug_assert_eq!(out.len() - start, 3 + section_len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::{PACKET_LEN, PID_AUDIO, PID_VIDEO};

    #[test]
    fn pat_bytes() {
        let mut out = BytesMut::new();
        let mut cc = 0;
        write_pat(&mut out, &mut cc);
        assert_eq!(out.len(), PACKET_LEN);
        // The well-known PAT of a single program at PMT PID 0x1000.
        assert_eq!(
            &out[..21],
            &[
                0x47, 0x40, 0x00, 0x10, 0x00, 0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00,
                0x01, 0xf0, 0x00, 0x2a, 0xb1, 0x04, 0xb2
            ]
        );
        assert_eq!(crc32_mpeg2(&out[5..21]), 0);
    }

    #[test]
    fn pmt_bytes() {
        let mut out = BytesMut::new();
        let mut cc = 3;
        let streams = [
            Es {
                stream_type: 0x1b,
                pid: PID_VIDEO,
            },
            Es {
                stream_type: 0x0f,
                pid: PID_AUDIO,
            },
        ];
        write_pmt(&mut out, &mut cc, 0, PID_VIDEO, &streams);
        assert_eq!(out.len(), PACKET_LEN);
        assert_eq!(&out[..4], &[0x47, 0x50, 0x00, 0x13]);
        assert_eq!(
            &out[5..27],
            &[
                0x02, 0xb0, 0x17, 0x00, 0x01, 0xc1, 0x00, 0x00, 0xe1, 0x00, 0xf0, 0x00, 0x1b, 0xe1,
                0x00, 0xf0, 0x00, 0x0f, 0xe1, 0x01, 0xf0, 0x00
            ]
        );
        assert_eq!(crc32_mpeg2(&out[5..31]), 0, "CRC covers the section");
        assert!(out[31..].iter().all(|b| *b == 0xff));

        let mut v1 = BytesMut::new();
        write_pmt(&mut v1, &mut cc, 1, PID_AUDIO, &streams[1..]);
        assert_eq!(v1[10], 0xc3, "version 1");
        assert_eq!(crc32_mpeg2(&v1[5..5 + 3 + 18]), 0);
    }
}
