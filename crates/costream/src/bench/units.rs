//! Command-line quantities with k/M suffixes (decimal: 1k = 1000), for
//! bitrates (`1500k`, `1.5M`) and buffer sizes (`4M`).

/// `s` as a number with an optional k/K (×1000) or m/M (×1 000 000)
/// suffix, rounded, within `min..=max`.
fn parse_scaled(s: &str, what: &str, min: f64, max: f64) -> Result<u64, String> {
    let s = s.trim();
    let (number, scale) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1e3),
        Some((i, 'm' | 'M')) => (&s[..i], 1e6),
        _ => (s, 1.0),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a {what} (e.g. 1500k, 2M)"))?;
    let scaled = value * scale;
    if !(min..=max).contains(&scaled) {
        return Err(format!("{what} {s} out of range ({min} to {max})"));
    }
    Ok(scaled.round() as u64)
}

/// Bits per second: `1500k`, `1.5M`, `800000`.
pub fn parse_bitrate(s: &str) -> Result<u64, String> {
    parse_scaled(s, "bitrate", 1e3, 1e9)
}

/// Bytes: `4M`, `212992`.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    parse_scaled(s, "size", 1.0, 1e9).map(|b| b as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrates() {
        assert_eq!(parse_bitrate("1500k"), Ok(1_500_000));
        assert_eq!(parse_bitrate("1.5M"), Ok(1_500_000));
        assert_eq!(parse_bitrate("800000"), Ok(800_000));
        for bad in ["", "k", "fast", "-5k", "0", "5G"] {
            assert!(parse_bitrate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("4M"), Ok(4_000_000));
        assert_eq!(parse_bytes("212992"), Ok(212_992));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("2000M").is_err());
    }
}
