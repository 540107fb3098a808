//! TS packets: PSI sections in one packet each, and PES packets split over as
//! many packets as needed, with the adaptation field carrying PCR, the random
//! access flag and the stuffing that fills the last packet.

use bytes::{BufMut, BytesMut};

use super::PACKET_LEN;

const SYNC: u8 = 0x47;
const HEADER_LEN: usize = 4;
const PAYLOAD_MAX: usize = PACKET_LEN - HEADER_LEN;
/// Adaptation field length byte, flags byte, 6-byte PCR.
const AF_WITH_PCR: usize = 8;
/// Adaptation field length byte and flags byte.
const AF_FLAGS_ONLY: usize = 2;

fn put_header(out: &mut BytesMut, pid: u16, cc: &mut u8, unit_start: bool, adaptation: bool) {
    let [pid_hi, pid_lo] = pid.to_be_bytes();
    let control = if adaptation { 0x30 } else { 0x10 };
    out.put_slice(&[
        SYNC,
        (u8::from(unit_start) << 6) | (pid_hi & 0x1f),
        pid_lo,
        control | (*cc & 0x0f),
    ]);
    *cc = (*cc + 1) & 0x0f;
}

/// One packet holding a whole PSI section, written by `section` (at most
/// 183 bytes: PAT and PMT here are far smaller) and padded with 0xFF.
pub(super) fn write_section(
    out: &mut BytesMut,
    pid: u16,
    cc: &mut u8,
    section: impl FnOnce(&mut BytesMut),
) {
    let start = out.len();
    put_header(out, pid, cc, true, false);
    out.put_u8(0); // pointer_field: the section starts right away
    section(out);
    let used = out.len() - start;
    debug_assert!(used <= PACKET_LEN);
    out.put_bytes(0xff, PACKET_LEN.saturating_sub(used));
}

/// Streams one PES packet of known total length into TS packets, so the
/// caller can hand over its pieces (header, start codes, NAL units) without
/// first copying them together.
pub(super) struct PesWriter<'a> {
    out: &'a mut BytesMut,
    pid: u16,
    cc: &'a mut u8,
    /// PES bytes not yet written.
    remaining: usize,
    /// Payload bytes left in the current TS packet.
    room: usize,
    first: bool,
    pcr: Option<u64>,
    random_access: bool,
}

impl<'a> PesWriter<'a> {
    /// `pcr` (90 kHz) and `random_access` go in the first packet.
    pub(super) fn new(
        out: &'a mut BytesMut,
        pid: u16,
        cc: &'a mut u8,
        pes_len: usize,
        pcr: Option<u64>,
        random_access: bool,
    ) -> Self {
        // The adaptation fields cost at most one packet more than the payload needs.
        out.reserve((pes_len / PAYLOAD_MAX + 2) * PACKET_LEN);
        PesWriter {
            out,
            pid,
            cc,
            remaining: pes_len,
            room: 0,
            first: true,
            pcr,
            random_access,
        }
    }

    pub(super) fn put(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.room == 0 {
                if self.remaining == 0 {
                    debug_assert!(false, "PES longer than announced");
                    return;
                }
                self.start_packet();
            }
            let (now, later) = data.split_at(self.room.min(data.len()));
            self.out.put_slice(now);
            self.room -= now.len();
            self.remaining -= now.len();
            data = later;
        }
    }

    pub(super) fn finish(self) {
        debug_assert_eq!(
            (self.remaining, self.room),
            (0, 0),
            "PES shorter than announced"
        );
    }

    fn start_packet(&mut self) {
        let first = std::mem::take(&mut self.first);
        let pcr = self.pcr.filter(|_| first);
        let random_access = first && self.random_access;
        let min_af = if pcr.is_some() {
            AF_WITH_PCR
        } else if random_access {
            AF_FLAGS_ONLY
        } else {
            0
        };
        let payload = self.remaining.min(PAYLOAD_MAX - min_af);
        // Whatever the payload leaves free is adaptation field: flags and
        // PCR when wanted, stuffing after them.
        let af_len = PAYLOAD_MAX - payload;
        put_header(self.out, self.pid, self.cc, first, af_len > 0);
        if af_len == 1 {
            self.out.put_u8(0); // a zero-length adaptation field: one byte of stuffing
        } else if af_len > 1 {
            self.out.put_u8((af_len - 1) as u8);
            let flags = (u8::from(random_access) << 6) | (u8::from(pcr.is_some()) << 4);
            self.out.put_u8(flags);
            let mut used = AF_FLAGS_ONLY;
            if let Some(base) = pcr {
                // 33-bit base, 6 reserved bits, 9-bit extension (0).
                self.out.put_slice(&[
                    (base >> 25) as u8,
                    (base >> 17) as u8,
                    (base >> 9) as u8,
                    (base >> 1) as u8,
                    (((base & 1) as u8) << 7) | 0x7e,
                    0,
                ]);
                used = AF_WITH_PCR;
            }
            self.out.put_bytes(0xff, af_len - used);
        }
        self.room = payload;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packets(out: &[u8]) -> Vec<&[u8]> {
        assert_eq!(out.len() % PACKET_LEN, 0);
        out.chunks(PACKET_LEN).collect()
    }

    #[test]
    fn payload_sizes_around_packet_boundaries() {
        // Every length that puts the end of the PES at a different place
        // in the last packet, including exact fits and one-byte stuffing.
        for len in [1, 2, 182, 183, 184, 185, 366, 367, 368, 369, 1000] {
            for (pcr, rap) in [(None, false), (Some(0x1_2345_6789), true), (None, true)] {
                let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut out = BytesMut::new();
                let mut cc = 15;
                let mut w = PesWriter::new(&mut out, 0x100, &mut cc, len, pcr, rap);
                // Uneven pieces.
                for piece in data.chunks(7) {
                    w.put(piece);
                }
                w.finish();
                let pkts = packets(&out);
                let mut payload = Vec::new();
                for (i, p) in pkts.iter().enumerate() {
                    assert_eq!(p[0], SYNC);
                    assert_eq!(p[1] & 0x40 != 0, i == 0, "unit start only first");
                    assert_eq!(p[3] & 0x0f, ((15 + i) % 16) as u8, "continuity");
                    let mut at = 4;
                    if p[3] & 0x20 != 0 {
                        let af = p[4] as usize;
                        if i == 0 && af > 0 {
                            assert_eq!(p[5] & 0x40 != 0, rap);
                            assert_eq!(p[5] & 0x10 != 0, pcr.is_some());
                            if let Some(base) = pcr {
                                let got = (u64::from(p[6]) << 25)
                                    | (u64::from(p[7]) << 17)
                                    | (u64::from(p[8]) << 9)
                                    | (u64::from(p[9]) << 1)
                                    | u64::from(p[10] >> 7);
                                assert_eq!(got, base);
                            }
                        }
                        at += 1 + af;
                    }
                    payload.extend_from_slice(&p[at..]);
                }
                assert_eq!(payload, data, "len {len}");
                assert_eq!(cc, ((15 + pkts.len()) % 16) as u8);
            }
        }
    }

    #[test]
    fn section_packet() {
        let mut out = BytesMut::new();
        let mut cc = 0;
        write_section(&mut out, 0x1000, &mut cc, |o| o.put_slice(&[1, 2, 3]));
        assert_eq!(out.len(), PACKET_LEN);
        assert_eq!(&out[..8], &[0x47, 0x50, 0x00, 0x10, 0, 1, 2, 3]);
        assert!(out[8..].iter().all(|b| *b == 0xff));
        assert_eq!(cc, 1);
    }
}
