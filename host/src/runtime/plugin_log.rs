//! What a plugin writes to the server's log: at most so many lines per second per rule
//! (a token bucket; the lines over it are dropped and counted in
//! `faultline_plugin_log_dropped_total`), each on one line, with control characters escaped
//! so that a plugin cannot forge a line that reads like the host's own.

use std::time::Instant;

/// The rate of a rule's plugin log lines (`plugin_log_rate`, `plugin_log_burst`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogRate {
    /// Lines per second, on average.
    pub per_second: f64,
    /// Lines that may come at once.
    pub burst: u32,
}

impl Default for LogRate {
    fn default() -> Self {
        LogRate {
            per_second: 100.0,
            burst: 200,
        }
    }
}

/// One rule's token bucket.
#[derive(Debug)]
pub struct LogBucket {
    rate: LogRate,
    tokens: f64,
    at: Instant,
}

impl LogBucket {
    pub fn new(rate: LogRate) -> LogBucket {
        LogBucket {
            rate,
            tokens: rate.burst.into(),
            at: Instant::now(),
        }
    }

    /// Whether one more line may be written now.
    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.rate.per_second;
        self.tokens = (self.tokens + refill).min(self.rate.burst.into());
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// `message` on one line: newlines, tabs and other control characters escaped as in Rust
/// strings (`\n`, `\u{1b}`), a backslash doubled so an escape cannot be faked either.
pub fn escape(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for c in message.chars() {
        if c == '\\' || c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_onto_one_line() {
        let forged = "ok\nERROR faultline::service: rule quarantined\r\x1b[31m\\n é";
        assert_eq!(
            escape(forged),
            "ok\\nERROR faultline::service: rule quarantined\\r\\u{1b}[31m\\\\n é"
        );
    }

    #[test]
    fn the_bucket_allows_its_burst_then_refuses() {
        let mut b = LogBucket::new(LogRate {
            per_second: 0.001,
            burst: 3,
        });
        assert_eq!((0..10).filter(|_| b.take()).count(), 3);
    }
}
