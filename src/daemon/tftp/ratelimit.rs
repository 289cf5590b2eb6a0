//! How many ERROR replies each source address may have: a token bucket per address, in a map
//! of bounded size. Any packet can be forged, so unlimited ERRORs make the server a reflector
//! (issue 12: every 2-byte malformed packet got a 54-byte ERROR). Pure: time is an argument.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// A burst no boot loader's search reaches (a Pi asks for a few files that do not exist in its
/// first seconds; pxelinux and GRUB try a dozen or so config names), then a steady rate.
pub const BURST: u32 = 50;
pub const PER_SECOND: u32 = 10;
/// Addresses tracked at once; beyond it, new addresses get no ERROR until room is made.
pub const MAX_SOURCES: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
pub struct ErrorLimiter {
    burst: f64,
    per_second: f64,
    max_sources: usize,
    buckets: HashMap<IpAddr, Bucket>,
}

impl Default for ErrorLimiter {
    fn default() -> Self {
        ErrorLimiter::new(BURST, PER_SECOND, MAX_SOURCES)
    }
}

impl ErrorLimiter {
    pub fn new(burst: u32, per_second: u32, max_sources: usize) -> Self {
        ErrorLimiter {
            burst: f64::from(burst.max(1)),
            per_second: f64::from(per_second),
            max_sources: max_sources.max(1),
            buckets: HashMap::new(),
        }
    }

    fn refill(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }

    /// Whether `source` may be sent an ERROR now (and if so, the ERROR is counted).
    pub fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        if !self.buckets.contains_key(&source) && self.buckets.len() >= self.max_sources {
            // A full bucket is the same as none: forget those to make room.
            let burst = self.burst;
            let refilled: Vec<IpAddr> =
                self.buckets.iter().filter(|(_, b)| self.refill(b, now) >= burst).map(|(ip, _)| *ip).collect();
            for ip in refilled {
                self.buckets.remove(&ip);
            }
            if self.buckets.len() >= self.max_sources {
                return false;
            }
        }
        let fresh = Bucket { tokens: self.burst, at: now };
        let bucket = *self.buckets.get(&source).unwrap_or(&fresh);
        let tokens = self.refill(&bucket, now);
        let allowed = tokens >= 1.0;
        let tokens = if allowed { tokens - 1.0 } else { tokens };
        self.buckets.insert(source, Bucket { tokens, at: now.max(bucket.at) });
        allowed
    }

    /// Addresses tracked.
    pub fn sources(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_burst_then_the_steady_rate() {
        let mut l = ErrorLimiter::new(5, 10, 100);
        let t0 = Instant::now();
        let first: usize = (0..1000).filter(|_| l.allow(ip(1), t0)).count();
        assert_eq!(first, 5);
        // One second later: ten more, not a thousand.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..1000).filter(|_| l.allow(ip(1), t1)).count(), 5, "refill is capped at the burst");
        let t2 = t1 + Duration::from_millis(300);
        assert_eq!((0..1000).filter(|_| l.allow(ip(1), t2)).count(), 3);
        // Another source is not affected.
        assert!(l.allow(ip(2), t2));
    }

    #[test]
    fn the_map_is_bounded_and_quiet_sources_make_room() {
        let mut l = ErrorLimiter::new(2, 1, 3);
        let t0 = Instant::now();
        for i in 1..=3 {
            assert!(l.allow(ip(i), t0));
        }
        // Full, and every bucket is in use: a fourth address gets nothing.
        assert!(!l.allow(ip(4), t0));
        assert_eq!(l.sources(), 3);
        // Once the others have refilled, they are forgotten and the new one is served.
        let later = t0 + Duration::from_secs(5);
        assert!(l.allow(ip(4), later));
        assert!(l.sources() <= 3);
    }

    #[test]
    fn time_going_backwards_does_not_mint_tokens() {
        let mut l = ErrorLimiter::new(1, 1, 10);
        let t0 = Instant::now() + Duration::from_secs(10);
        assert!(l.allow(ip(1), t0));
        assert!(!l.allow(ip(1), t0 - Duration::from_secs(5)));
        assert!(!l.allow(ip(1), t0));
    }
}
