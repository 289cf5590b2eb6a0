//! One read transfer as a state machine: packets and timer expiries in, packets to send and the
//! next deadline out. It never sees a socket or a file; the bytes of block `n` are named by
//! their offset, and the I/O layer fills them in.
//!
//! Rules it keeps (RFC 1350, 1123 §4.2.3.1, 2347, 7440; research/pxe.md §2.7):
//! - retransmit only when the timer expires, never because an ACK repeats (Sorcerer's
//!   Apprentice); a late or repeated ACK is ignored;
//! - before the client has acknowledged anything, at most one packet is out (the OACK, or
//!   DATA 1), so a forged request cannot make the server flood a victim;
//! - block numbers wrap from 65535 to 0 (what the 2025 Pi bootloaders and most servers do);
//! - a file whose size is a multiple of the block size ends with an empty block;
//! - an ERROR from the client ends the transfer quietly (the Pi's "Early terminate",
//!   pxelinux's close, EDK2's abort after reading tsize);
//! - after `retries` expiries without progress the client is given up on.

use super::options::{Limits, Negotiated};
use super::wire::Packet;
use std::time::{Duration, Instant};

/// What the I/O layer must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send the OACK with these options.
    SendOack(Vec<(String, String)>),
    /// Send DATA `block` (the wire number) holding `len` bytes of the content from `offset`.
    SendData { block: u16, offset: u64, len: usize },
}

/// How a transfer ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The client acknowledged the last block.
    Complete,
    /// The client sent ERROR: normal for probes and aborts.
    ClientError { code: u16, message: String },
    /// The client stopped answering.
    TimedOut,
}

#[derive(Debug)]
pub struct Transfer {
    len: u64,
    blksize: u64,
    windowsize: u64,
    /// Blocks in the file: the last one is shorter than `blksize`, possibly empty.
    total: u64,
    oack: Option<Vec<(String, String)>>,
    /// Waiting for ACK 0 to the OACK.
    awaiting_oack_ack: bool,
    /// Highest block (absolute, 1-based) the client acknowledged; 0 = none.
    acked: u64,
    /// Highest block sent so far.
    sent: u64,
    retries_left: u32,
    /// Fixed when the client set one (RFC 2349), else doubling from `limits.timeout`.
    client_timeout: Option<Duration>,
    base_rto: Duration,
    rto: Duration,
    max_rto: Duration,
    max_retries: u32,
    deadline: Instant,
    outcome: Option<Outcome>,
    retransmitted: u64,
}

impl Transfer {
    /// Start sending `len` bytes with the negotiated options; returns the first packet to send.
    pub fn start(len: u64, negotiated: &Negotiated, limits: &Limits, now: Instant) -> (Self, Vec<Action>) {
        let blksize = u64::from(negotiated.blksize.max(1));
        let rto = negotiated.timeout.unwrap_or(limits.timeout);
        let mut t = Transfer {
            len,
            blksize,
            windowsize: u64::from(negotiated.windowsize.max(1)),
            total: len / blksize + 1,
            oack: (!negotiated.oack.is_empty()).then(|| negotiated.oack.clone()),
            awaiting_oack_ack: !negotiated.oack.is_empty(),
            acked: 0,
            sent: 0,
            retries_left: limits.retries,
            client_timeout: negotiated.timeout,
            base_rto: rto,
            rto,
            max_rto: limits.max_timeout.max(rto),
            max_retries: limits.retries,
            deadline: now + rto,
            outcome: None,
            retransmitted: 0,
        };
        let actions = match &t.oack {
            Some(options) => vec![Action::SendOack(options.clone())],
            // Unverified peer: one block, whatever the window.
            None => t.send_range(1, 1),
        };
        (t, actions)
    }

    /// When the timer should fire, unless the transfer has ended.
    pub fn deadline(&self) -> Option<Instant> {
        self.outcome.is_none().then_some(self.deadline)
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// Bytes the client has acknowledged.
    pub fn bytes_acked(&self) -> u64 {
        (self.acked * self.blksize).min(self.len)
    }

    /// Blocks (or OACKs) sent again after a timeout.
    pub fn retransmitted(&self) -> u64 {
        self.retransmitted
    }

    fn send_range(&mut self, first: u64, last: u64) -> Vec<Action> {
        let last = last.min(self.total);
        let actions = (first..=last)
            .map(|abs| {
                let offset = (abs - 1) * self.blksize;
                let len = self.blksize.min(self.len - offset) as usize;
                Action::SendData { block: (abs % 65536) as u16, offset, len }
            })
            .collect();
        self.sent = self.sent.max(last);
        actions
    }

    fn window_after_ack(&mut self) -> Vec<Action> {
        self.send_range(self.acked + 1, self.acked + self.windowsize)
    }

    fn progress(&mut self, now: Instant) {
        self.retries_left = self.max_retries;
        self.rto = self.base_rto;
        self.deadline = now + self.rto;
    }

    /// A packet from the client's transfer ID.
    pub fn on_packet(&mut self, packet: &Packet, now: Instant) -> Vec<Action> {
        if self.outcome.is_some() {
            return Vec::new();
        }
        match *packet {
            Packet::Error { code, ref message } => {
                self.outcome = Some(Outcome::ClientError { code, message: message.to_string() });
                Vec::new()
            }
            Packet::Ack { block: 0 } if self.awaiting_oack_ack => {
                self.awaiting_oack_ack = false;
                self.progress(now);
                self.window_after_ack()
            }
            Packet::Ack { block } if !self.awaiting_oack_ack => {
                // The ACK names a block between the last acknowledged and the last sent; only
                // the low 16 bits are on the wire.
                let ahead = u64::from(block.wrapping_sub((self.acked % 65536) as u16));
                let abs = self.acked + ahead;
                if ahead == 0 || abs > self.sent {
                    return Vec::new();
                }
                self.acked = abs;
                if abs == self.total {
                    self.outcome = Some(Outcome::Complete);
                    return Vec::new();
                }
                self.progress(now);
                self.window_after_ack()
            }
            // Anything else from the client (a stray DATA, OACK or request) changes nothing.
            _ => Vec::new(),
        }
    }

    /// The deadline passed with no progress: resend from the first unacknowledged block, or
    /// give up.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<Action> {
        if self.outcome.is_some() || now < self.deadline {
            return Vec::new();
        }
        if self.retries_left == 0 {
            self.outcome = Some(Outcome::TimedOut);
            return Vec::new();
        }
        self.retries_left -= 1;
        if self.client_timeout.is_none() {
            self.rto = (self.rto * 2).min(self.max_rto);
        }
        self.deadline = now + self.rto;
        let actions = match (&self.oack, self.awaiting_oack_ack) {
            (Some(options), true) => vec![Action::SendOack(options.clone())],
            // Before any ACK only DATA 1 is out; after, the window from the first gap.
            _ if self.acked == 0 => self.send_range(1, 1),
            _ => self.window_after_ack(),
        };
        self.retransmitted += actions.len() as u64;
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::super::options::{Mode, negotiate};
    use super::*;

    fn start(len: u64, options: &[(&str, &str)]) -> (Transfer, Vec<Action>, Instant) {
        let now = Instant::now();
        let limits = Limits::default();
        let n = negotiate(options, Mode::Octet, len, &limits);
        let (t, a) = Transfer::start(len, &n, &limits, now);
        (t, a, now)
    }

    fn ack(block: u16) -> Packet<'static> {
        Packet::Ack { block }
    }

    fn data(block: u16, offset: u64, len: usize) -> Action {
        Action::SendData { block, offset, len }
    }

    /// Ack every block as a lock-step client would; return the wire block numbers sent.
    fn run_lockstep(t: &mut Transfer, first: Vec<Action>, now: Instant) -> Vec<u16> {
        let mut sent = Vec::new();
        let mut pending = first;
        while let Some(Action::SendData { block, .. }) = pending.pop() {
            sent.push(block);
            pending = t.on_packet(&ack(block), now);
        }
        sent
    }

    #[test]
    fn no_options_sends_data_1_at_once() {
        let (t, a, _) = start(1000, &[]);
        assert_eq!(a, vec![data(1, 0, 512)]);
        assert_eq!(t.total, 2);
    }

    #[test]
    fn options_send_oack_then_data_after_ack_0() {
        let (mut t, a, now) = start(3000, &[("tsize", "0"), ("blksize", "1024")]);
        assert_eq!(a, vec![Action::SendOack(vec![("tsize".into(), "3000".into()), ("blksize".into(), "1024".into())])]);
        // Nothing but ACK 0 (or ERROR) moves it on.
        assert!(t.on_packet(&ack(1), now).is_empty());
        assert_eq!(t.on_packet(&ack(0), now), vec![data(1, 0, 1024)]);
        assert_eq!(t.on_packet(&ack(1), now), vec![data(2, 1024, 1024)]);
        assert_eq!(t.on_packet(&ack(2), now), vec![data(3, 2048, 952)]);
        assert!(t.on_packet(&ack(3), now).is_empty());
        assert_eq!(t.outcome(), Some(&Outcome::Complete));
        assert_eq!(t.bytes_acked(), 3000);
        assert_eq!(t.deadline(), None);
    }

    #[test]
    fn empty_file_is_one_empty_block_and_exact_multiples_end_with_one() {
        let (mut t, a, now) = start(0, &[]);
        assert_eq!(a, vec![data(1, 0, 0)]);
        assert!(t.on_packet(&ack(1), now).is_empty());
        assert_eq!(t.outcome(), Some(&Outcome::Complete));

        let (mut t, a, now) = start(1024, &[]);
        assert_eq!(run_lockstep(&mut t, a, now), vec![1, 2, 3]);
        assert_eq!(t.outcome(), Some(&Outcome::Complete));

        let (mut t, a, now) = start(1, &[]);
        assert_eq!(a, vec![data(1, 0, 1)]);
        assert!(t.on_packet(&ack(1), now).is_empty());
        assert_eq!(t.outcome(), Some(&Outcome::Complete));
    }

    #[test]
    fn block_numbers_wrap_to_zero_after_65535() {
        let blocks = 65536 + 10;
        let (mut t, a, now) = start(512 * blocks, &[]);
        let sent = run_lockstep(&mut t, a, now);
        assert_eq!(sent.len() as u64, blocks + 1);
        assert_eq!(&sent[65533..65538], &[65534, 65535, 0, 1, 2]);
        assert_eq!(t.outcome(), Some(&Outcome::Complete));
        assert_eq!(t.bytes_acked(), 512 * blocks);
    }

    #[test]
    fn duplicate_ack_never_retransmits() {
        let (mut t, a, now) = start(5000, &[]);
        assert_eq!(a.len(), 1);
        assert_eq!(t.on_packet(&ack(1), now), vec![data(2, 512, 512)]);
        // The Sorcerer's Apprentice: the same ACK again must not send DATA 2 twice.
        assert!(t.on_packet(&ack(1), now).is_empty());
        assert!(t.on_packet(&ack(0), now).is_empty());
        // An ACK for a block never sent is ignored too.
        assert!(t.on_packet(&ack(9), now).is_empty());
        assert_eq!(t.on_packet(&ack(2), now), vec![data(3, 1024, 512)]);
    }

    #[test]
    fn timeout_retransmits_with_backoff_then_gives_up() {
        let (mut t, a, start_at) = start(5000, &[]);
        assert_eq!(a.len(), 1);
        let mut now = start_at;
        // Early timer wake-ups do nothing.
        assert!(t.on_timeout(now).is_empty());
        let mut gaps = Vec::new();
        for _ in 0..6 {
            let due = t.deadline().unwrap();
            gaps.push(due - now);
            now = due;
            assert_eq!(t.on_timeout(now), vec![data(1, 0, 512)]);
        }
        assert_eq!(gaps.iter().map(|d| d.as_secs()).collect::<Vec<_>>(), vec![1, 2, 4, 5, 5, 5]);
        now = t.deadline().unwrap();
        assert!(t.on_timeout(now).is_empty());
        assert_eq!(t.outcome(), Some(&Outcome::TimedOut));
        assert_eq!(t.retransmitted(), 6);
    }

    #[test]
    fn client_timeout_option_is_used_unchanged() {
        let (mut t, a, now) = start(5000, &[("timeout", "3")]);
        assert!(matches!(a[0], Action::SendOack(_)));
        let due = t.deadline().unwrap();
        assert_eq!(due - now, Duration::from_secs(3));
        assert!(matches!(t.on_timeout(due)[0], Action::SendOack(_)));
        assert_eq!(t.deadline().unwrap() - due, Duration::from_secs(3));
    }

    #[test]
    fn progress_resets_the_retry_budget() {
        let (mut t, _, _) = start(512 * 20, &[]);
        for block in 1..=10u16 {
            let now = t.deadline().unwrap();
            assert_eq!(t.on_timeout(now).len(), 1);
            assert_eq!(t.on_packet(&ack(block), now).len(), 1);
        }
        assert_eq!(t.outcome(), None);
    }

    #[test]
    fn client_error_ends_quietly_even_mid_oack() {
        // EDK2 reads tsize from the OACK and aborts; the Pi probes and sends "Early terminate".
        let (mut t, _, now) = start(5000, &[("tsize", "0")]);
        assert!(t.on_packet(&Packet::Error { code: 8, message: "User aborted the transfer".into() }, now).is_empty());
        assert_eq!(t.outcome(), Some(&Outcome::ClientError { code: 8, message: "User aborted the transfer".into() }));
        assert!(t.on_timeout(now + Duration::from_secs(60)).is_empty());
        assert!(t.on_packet(&ack(0), now).is_empty());

        let (mut t, _, now) = start(5000, &[("tsize", "0"), ("blksize", "1024")]);
        t.on_packet(&ack(0), now);
        t.on_packet(&Packet::Error { code: 0, message: "Early terminate".into() }, now);
        assert_eq!(t.outcome(), Some(&Outcome::ClientError { code: 0, message: "Early terminate".into() }));
    }

    #[test]
    fn window_sends_blocks_and_recovers_from_a_gap() {
        let (mut t, a, now) = start(512 * 10, &[("windowsize", "4")]);
        assert!(matches!(a[0], Action::SendOack(_)));
        let w = t.on_packet(&ack(0), now);
        assert_eq!(
            w.iter().map(|a| if let Action::SendData { block, .. } = a { *block } else { 0 }).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        // Block 3 was lost: the client acks 2; the next window starts at 3.
        let w = t.on_packet(&ack(2), now);
        assert_eq!(w.first(), Some(&data(3, 1024, 512)));
        assert_eq!(w.len(), 4);
        // The timer resends the window from the first unacknowledged block.
        let due = t.deadline().unwrap();
        let w = t.on_timeout(due);
        assert_eq!(w.len(), 4);
        assert_eq!(w[0], data(3, 1024, 512));
        let w = t.on_packet(&ack(6), due);
        assert_eq!(w.len(), 4);
        assert_eq!(w.last(), Some(&data(10, 512 * 9, 512)));
        // Final window: block 11, the empty one.
        assert_eq!(t.on_packet(&ack(10), due), vec![data(11, 512 * 10, 0)]);
        t.on_packet(&ack(11), due);
        assert_eq!(t.outcome(), Some(&Outcome::Complete));
    }

    #[test]
    fn window_wraps_block_numbers_too() {
        let blocks = 70_000u64;
        let (mut t, _, now) = start(512 * blocks - 1, &[("windowsize", "16")]);
        let mut window = t.on_packet(&ack(0), now);
        let mut last = 0u16;
        let mut count = 0u64;
        while let Some(Action::SendData { block, .. }) = window.last().cloned() {
            count += window.len() as u64;
            last = block;
            window = t.on_packet(&ack(block), now);
        }
        assert_eq!(count, blocks);
        assert_eq!(last, (blocks % 65536) as u16);
        assert_eq!(t.outcome(), Some(&Outcome::Complete));
    }

    #[test]
    fn no_amplification_before_the_first_ack() {
        // Without options the window is one block; with a window asked for, only the OACK
        // goes out until ACK 0 proves the client is real.
        let (mut t, a, now) = start(512 * 100, &[]);
        assert_eq!(a.len(), 1);
        let due = t.deadline().unwrap();
        assert_eq!(t.on_timeout(due).len(), 1);
        let (t, a, _) = start(512 * 100, &[("windowsize", "64")]);
        assert_eq!(a.len(), 1);
        assert!(matches!(a[0], Action::SendOack(_)));
        drop((t, now));
    }
}
