//! Text → typed value parsers used by CSV, JSON lines and COPY. Strict and
//! predictable: a value either has exactly one meaning or is an error that says
//! what was expected.
//!
//! | type | accepted text |
//! |---|---|
//! | bigint, integer | optional sign and digits |
//! | numeric(18,2) | `123`, `-4.5`, `0.25`; at most 2 decimals (trailing zeros beyond are fine), at most 16 integer digits |
//! | double precision | any finite decimal or exponent number |
//! | boolean | true/false, t/f, yes/no, y/n, 1/0 (any case) |
//! | date | `YYYY-MM-DD` |
//! | timestamptz | RFC 3339 (`2025-03-01T14:05:09Z`, `…+08:00`), or `YYYY-MM-DD[ T]HH:MM[:SS[.ffffff]]` read as UTC, or a bare date (midnight UTC) |

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};

const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Parse a signed 64-bit integer.
pub fn parse_i64(s: &str) -> Result<i64, String> {
    let t = s.trim();
    t.parse::<i64>().map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
            "out of range for bigint".to_string()
        }
        _ => "expected an integer (bigint)".to_string(),
    })
}

/// Parse a signed 32-bit integer.
pub fn parse_i32(s: &str) -> Result<i32, String> {
    let t = s.trim();
    t.parse::<i32>().map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
            "out of range for integer".to_string()
        }
        _ => "expected an integer".to_string(),
    })
}

/// Parse money into hundredths (DECIMAL(18,2) unscaled value).
pub fn parse_money(s: &str) -> Result<i128, String> {
    const EXPECTED: &str = "expected a number with at most 2 decimals (numeric(18,2))";
    let t = s.trim();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int_part, frac_part) = match digits.split_once('.') {
        Some((i, f)) => (i, f),
        None => (digits, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(EXPECTED.into());
    }
    let int_trimmed = int_part.trim_start_matches('0');
    if int_trimmed.len() > 16 {
        return Err(
            "out of range for numeric(18,2) (more than 16 digits before the decimal point)".into(),
        );
    }
    let (kept, extra) = frac_part.split_at(frac_part.len().min(2));
    if extra.bytes().any(|b| b != b'0') {
        return Err("more than 2 decimal places for numeric(18,2)".into());
    }
    let mut value: i128 = 0;
    for b in int_trimmed.bytes() {
        value = value * 10 + i128::from(b - b'0');
    }
    let mut frac: i128 = 0;
    for (i, b) in kept.bytes().enumerate() {
        frac += i128::from(b - b'0') * if i == 0 { 10 } else { 1 };
    }
    let v = value * 100 + frac;
    Ok(if neg { -v } else { v })
}

/// Parse a finite 64-bit float.
pub fn parse_f64(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err("expected a finite number (NaN and infinity are not allowed)".into()),
        Err(_) => Err("expected a number (double precision)".into()),
    }
}

/// Parse a boolean.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Ok(true),
        "false" | "f" | "no" | "n" | "0" => Ok(false),
        _ => Err("expected a boolean (true/false)".into()),
    }
}

/// Parse a date into days since 1970-01-01.
pub fn parse_date(s: &str) -> Result<i32, String> {
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|e| format!("expected a date YYYY-MM-DD ({e})"))?;
    Ok(days_since_epoch(d))
}

fn days_since_epoch(d: NaiveDate) -> i32 {
    use chrono::Datelike;
    d.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE
}

/// Parse a timestamp into microseconds since the Unix epoch, UTC.
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let micros = if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        Some(dt.timestamp_micros())
    } else {
        let normalized = t.replacen('T', " ", 1);
        let naive = NaiveDateTime::parse_from_str(&normalized, "%Y-%m-%d %H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(&normalized, "%Y-%m-%d %H:%M"))
            .ok()
            .or_else(|| {
                NaiveDate::parse_from_str(t, "%Y-%m-%d")
                    .ok()
                    .map(|d| d.and_time(NaiveTime::MIN))
            });
        naive.map(|n| n.and_utc().timestamp_micros())
    };
    micros.ok_or_else(|| {
        "expected a timestamp (RFC 3339 like 2025-03-01T14:05:09Z, or YYYY-MM-DD HH:MM:SS in UTC)".to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money() {
        assert_eq!(parse_money("12.34"), Ok(1234));
        assert_eq!(parse_money("12.3"), Ok(1230));
        assert_eq!(parse_money("12"), Ok(1200));
        assert_eq!(parse_money("-0.05"), Ok(-5));
        assert_eq!(parse_money("+7."), Ok(700));
        assert_eq!(parse_money(".5"), Ok(50));
        assert_eq!(parse_money(" 1.500 "), Ok(150));
        assert_eq!(
            parse_money("9999999999999999.99"),
            Ok(999_999_999_999_999_999)
        );
        assert!(parse_money("12.345").unwrap_err().contains("2 decimal"));
        assert!(
            parse_money("12.x4")
                .unwrap_err()
                .contains("expected a number")
        );
        assert!(parse_money("1e5").is_err());
        assert!(parse_money("").is_err());
        assert!(parse_money(".").is_err());
        assert!(parse_money("-").is_err());
        assert!(parse_money("1,000.00").is_err());
        assert!(
            parse_money("12345678901234567")
                .unwrap_err()
                .contains("out of range")
        );
    }

    #[test]
    fn integers() {
        assert_eq!(parse_i64(" 42 "), Ok(42));
        assert_eq!(parse_i64("-9223372036854775808"), Ok(i64::MIN));
        assert!(
            parse_i64("9223372036854775808")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(parse_i64("4.0").unwrap_err().contains("integer"));
        assert!(
            parse_i32("3000000000")
                .unwrap_err()
                .contains("out of range")
        );
    }

    #[test]
    fn floats_and_bools() {
        assert_eq!(parse_f64("9"), Ok(9.0));
        assert_eq!(parse_f64("1e-3"), Ok(0.001));
        assert!(parse_f64("NaN").is_err());
        assert!(parse_f64("inf").is_err());
        assert_eq!(parse_bool("TRUE"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(parse_date("1970-01-02"), Ok(1));
        assert_eq!(parse_date("2024-02-29"), Ok(19782));
        assert!(parse_date("2023-02-29").is_err());
        assert!(parse_date("2023-13-01").is_err());
        assert_eq!(parse_timestamp("1970-01-01T00:00:01Z"), Ok(1_000_000));
        assert_eq!(parse_timestamp("1970-01-01T08:00:01+08:00"), Ok(1_000_000));
        assert_eq!(parse_timestamp("1970-01-01 00:00:01.5"), Ok(1_500_000));
        assert_eq!(parse_timestamp("1970-01-01T00:01"), Ok(60_000_000));
        assert_eq!(parse_timestamp("1970-01-02"), Ok(86_400_000_000));
        assert!(parse_timestamp("2025-02-30 10:00:00").is_err());
        assert!(parse_timestamp("yesterday").is_err());
    }
}
