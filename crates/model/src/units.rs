//! tc-style quantities in Lab.toml: rates, sizes, times, loss.

/// Split `"1.5mbit"` into `(1.5, "mbit")`; the unit is lower-cased.
fn split(s: &str) -> Option<(f64, String)> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    let n: f64 = num.parse().ok()?;
    (n.is_finite() && n >= 0.0).then(|| (n, unit.trim().to_ascii_lowercase()))
}

fn scaled(n: f64, mult: f64) -> Option<u64> {
    let v = (n * mult).round();
    (v >= 1.0 && v <= u64::MAX as f64).then_some(v as u64)
}

/// A rate in bit/s: `bit`, `kbit`, `mbit`, `gbit` (powers of 1000, as tc), or bytes per second
/// `bps`, `kbps`, `mbps`, `gbps` (tc's meaning: bytes).
pub fn rate_bps(s: &str) -> Option<u64> {
    let (n, unit) = split(s)?;
    let mult = match unit.as_str() {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "bps" => 8.0,
        "kbps" => 8e3,
        "mbps" => 8e6,
        "gbps" => 8e9,
        _ => return None,
    };
    scaled(n, mult)
}

/// A size in bytes: plain bytes, `b`, `k`/`kb` (1024), `m`/`mb` (1024²), as tc reads a burst.
pub fn size_bytes(s: &str) -> Option<u64> {
    let (n, unit) = split(s)?;
    let mult = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1024.0,
        "m" | "mb" => 1024.0 * 1024.0,
        _ => return None,
    };
    scaled(n, mult).filter(|b| *b <= u64::from(u32::MAX))
}

/// A time in microseconds: `us`, `ms`, `s`.
pub fn time_us(s: &str) -> Option<u64> {
    let (n, unit) = split(s)?;
    let mult = match unit.as_str() {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        _ => return None,
    };
    scaled(n, mult).filter(|t| *t <= 60_000_000)
}

/// Loss as parts per million from a percentage (`"0.5%"` -> 5000).
pub fn loss_ppm(s: &str) -> Option<u64> {
    let (n, unit) = split(s)?;
    if unit != "%" || n > 100.0 {
        return None;
    }
    scaled(n, 10_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(rate_bps("50mbit"), Some(50_000_000));
        assert_eq!(rate_bps("1.5Gbit"), Some(1_500_000_000));
        assert_eq!(rate_bps("1kbps"), Some(8_000));
        assert_eq!(rate_bps("50"), None);
        assert_eq!(rate_bps("0mbit"), None);
        assert_eq!(rate_bps("-1mbit"), None);
        assert_eq!(rate_bps("mbit"), None);
    }

    #[test]
    fn sizes_times_loss() {
        assert_eq!(size_bytes("64kb"), Some(65_536));
        assert_eq!(size_bytes("1500"), Some(1500));
        assert_eq!(time_us("10ms"), Some(10_000));
        assert_eq!(time_us("1.5ms"), Some(1_500));
        assert_eq!(time_us("10"), None);
        assert_eq!(loss_ppm("0.5%"), Some(5_000));
        assert_eq!(loss_ppm("100%"), Some(1_000_000));
        assert_eq!(loss_ppm("101%"), None);
        assert_eq!(loss_ppm("1"), None);
    }
}
