//! Numbers as Go and Prometheus print them: Go's `%v`/`%g` and the `humanize` family of
//! Prometheus's template functions.

/// Prometheus's `humanize`: SI prefixes, 4 significant digits.
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format_g(v, Some(4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        (v, prefix) = scale_up(v);
    }
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// A value below 1 scaled by thousands until it is at least 1 (or out of prefixes), and the
/// SI prefix that says by how much.
pub fn scale_up(mut v: f64) -> (f64, &'static str) {
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    (v, prefix)
}

/// Prometheus's `humanize1024`: binary prefixes, 4 significant digits.
pub fn humanize_1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return format_g(v, Some(4));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// Prometheus's `humanizeDuration`: seconds as `1d 2h 3m 4s`, or `1.234s`, `12.5ms`.
pub fn humanize_duration(mut v: f64) -> String {
    if !v.is_finite() {
        return format_g(v, Some(4));
    }
    if v == 0.0 {
        return format!("{}s", format_g(v, Some(4)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        // Go truncates toward zero; `as` does too (and saturates where Go's is undefined).
        let whole = v as i64;
        let (seconds, minutes) = (whole % 60, whole / 60 % 60);
        let (hours, days) = (whole / 3600 % 24, whole / 86_400);
        return if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            format!("{sign}{}s", format_g(v, Some(4)))
        };
    }
    let (v, prefix) = scale_up(v);
    format!("{}{prefix}s", format_g(v, Some(4)))
}

/// Go's `strconv.FormatFloat(v, 'g', precision, 64)`; `None` is the shortest exact form
/// (precision -1), which is also how Go's `%v` and text/template print a float64.
pub fn format_g(v: f64, precision: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's exact formatting rounds ties to even, like Go's; it supplies the digits.
    let sci = match precision {
        None => format!("{:e}", v.abs()),
        Some(p) => format!("{:.*e}", p.max(1) - 1, v.abs()),
    };
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let mut digits: Vec<u8> = mantissa.bytes().filter(|b| b.is_ascii_digit()).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    let nd = digits.len() as i64;
    let dp = exponent.parse::<i64>().unwrap_or(0) + 1;
    let digit = |i: i64| {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i))
            .map_or('0', |d| char::from(*d))
    };

    let mut prec = precision.map_or(nd, |p| p.max(1) as i64);
    let eprec = match precision {
        None => 6,
        Some(_) if prec > nd && nd >= dp => nd,
        Some(_) => prec,
    };
    let mut out = String::new();
    if v < 0.0 {
        out.push('-');
    }
    let exp = dp - 1;
    if exp < -4 || exp >= eprec {
        prec = prec.min(nd);
        out.push(digit(0));
        if prec > 1 {
            out.push('.');
            (1..prec).for_each(|i| out.push(digit(i)));
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
    } else {
        if prec > dp {
            prec = nd;
        }
        if dp > 0 {
            (0..dp).for_each(|i| out.push(digit(i)));
        } else {
            out.push('0');
        }
        let fraction = (prec - dp).max(0);
        if fraction > 0 {
            out.push('.');
            (0..fraction).for_each(|i| out.push(digit(dp + i)));
        }
    }
    out
}
