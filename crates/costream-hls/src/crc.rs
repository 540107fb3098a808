//! CRC-32/MPEG-2, the CRC of PSI sections (ISO 13818-1 annex A): polynomial
//! 0x04C11DB7, MSB first, initial value 0xFFFFFFFF, no final XOR.

const POLY: u32 = 0x04c1_1db7;

/// One entry per byte value, computed at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ POLY
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xffff_ffff, |crc, &b| {
        (crc << 8) ^ TABLE[usize::from((crc >> 24) as u8 ^ b)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_e6e7);
        assert_eq!(crc32_mpeg2(b""), 0xffff_ffff);
    }

    #[test]
    fn a_section_with_its_crc_checks_to_zero() {
        let mut data = b"any section body".to_vec();
        data.extend_from_slice(&crc32_mpeg2(&data).to_be_bytes());
        assert_eq!(crc32_mpeg2(&data), 0);
    }
}
