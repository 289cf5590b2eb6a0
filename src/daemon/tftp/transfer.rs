//! One read transfer as a state machine: packets and timer expiries in, packets to send and the
//! next deadline out. It never sees a socket or a file; the bytes of block `n` are named by
//! their offset, and the I/O layer fills them in.
//!
//! Rules it keeps (RFC 1350, 1123 §4.2.3.1, 2347, 7440; research/pxe.md §2.7):
//! - retransmit only when the timer expires, never because an ACK repeats (Sorcerer's
//!   Apprentice); a late or repeated ACK is ignored;
//! - an ACK inside the window slides it: only blocks never sent go out, so a client that
//!   acknowledges every block of a window costs one packet per block, not a window per ACK;
//!   an ACK that skips blocks (an RFC 7440 receiver reporting a gap) restarts the window from
//!   the gap, at most once per retransmission timeout; other losses wait for the timer;
//! - before the client has acknowledged anything, at most one packet is out (the OACK, or
//!   DATA 1), so a forged request cannot make the server flood a victim;
//! - a transfer that makes no progress for [`Limits::give_up_after`] ends, whatever `timeout`
//!   the client asked for, and no retransmission waits longer than `limits.max_timeout`: a
//!   request cannot hold its place for longer than the server's own schedule (dnsmasq frees a
//!   silent transfer after about half a minute too);
//! - block numbers wrap from 65535 to 0 (what the 2025 Pi bootloaders and most servers do);
//! - a file whose size is a multiple of the block size ends with an empty block;
//! - a length not known in advance (netascii, converted as it goes) is learned when the I/O
//!   layer finds a block short, which it reports with [`Transfer::ends_at`];
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
    /// Send DATA `block` (the wire number) holding `len` bytes of the content from `offset`;
    /// while the length is unknown, up to `len` bytes (fewer means this block is the last).
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
    /// Bytes to send; `None` until a short block shows where the content ends.
    len: Option<u64>,
    blksize: u64,
    windowsize: u64,
    /// Blocks in the content, once its length is known: the last one is shorter than
    /// `blksize`, possibly empty.
    total: Option<u64>,
    oack: Option<Vec<(String, String)>>,
    /// Waiting for ACK 0 to the OACK.
    awaiting_oack_ack: bool,
    /// Highest block (absolute, 1-based) the client acknowledged; 0 = none.
    acked: u64,
    /// Highest block sent so far.
    sent: u64,
    retries_left: u32,
    base_rto: Duration,
    rto: Duration,
    /// Whether `rto` doubles per retry (not when the client fixed its timeout).
    backoff: bool,
    max_rto: Duration,
    max_retries: u32,
    /// How long the transfer may go without progress, and when that runs out.
    give_up_after: Duration,
    give_up_at: Instant,
    /// When an ACK last restarted the window from a gap.
    last_restart: Option<Instant>,
    deadline: Instant,
    outcome: Option<Outcome>,
    retransmitted: u64,
}

impl Transfer {
    /// Start sending `len` bytes with the negotiated options; returns the first packet to send.
    pub fn start(len: u64, negotiated: &Negotiated, limits: &Limits, now: Instant) -> (Self, Vec<Action>) {
        Self::begin(Some(len), negotiated, limits, now)
    }

    /// Start sending content whose length shows only at its end (one block in flight: the
    /// window is 1 whatever was negotiated).
    pub fn start_unsized(negotiated: &Negotiated, limits: &Limits, now: Instant) -> (Self, Vec<Action>) {
        Self::begin(None, negotiated, limits, now)
    }

    fn begin(len: Option<u64>, negotiated: &Negotiated, limits: &Limits, now: Instant) -> (Self, Vec<Action>) {
        let blksize = u64::from(negotiated.blksize.max(1));
        // A client's own timeout is kept (RFC 2349) up to the longest wait the server allows.
        let rto = negotiated.timeout.map_or(limits.timeout, |t| t.min(limits.max_timeout.max(limits.timeout)));
        let give_up_after = limits.give_up_after();
        let mut t = Transfer {
            len,
            blksize,
            windowsize: if len.is_some() { u64::from(negotiated.windowsize.max(1)) } else { 1 },
            total: len.map(|len| len / blksize + 1),
            oack: (!negotiated.oack.is_empty()).then(|| negotiated.oack.clone()),
            awaiting_oack_ack: !negotiated.oack.is_empty(),
            acked: 0,
            sent: 0,
            retries_left: limits.retries,
            base_rto: rto,
            rto,
            backoff: negotiated.timeout.is_none(),
            max_rto: limits.max_timeout.max(rto),
            max_retries: limits.retries,
            give_up_after,
            give_up_at: now + give_up_after,
            last_restart: None,
            deadline: (now + rto).min(now + give_up_after),
            outcome: None,
            retransmitted: 0,
        };
        let actions = t.first_packet();
        (t, actions)
    }

    /// The OACK, or (unverified peer: one block, whatever the window) DATA 1.
    fn first_packet(&mut self) -> Vec<Action> {
        match &self.oack {
            Some(options) => vec![Action::SendOack(options.clone())],
            None => self.send_range(1, 1),
        }
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
        let bytes = self.acked * self.blksize;
        self.len.map_or(bytes, |len| bytes.min(len))
    }

    /// Blocks (or OACKs) sent again after a timeout or a repeated request.
    pub fn retransmitted(&self) -> u64 {
        self.retransmitted
    }

    /// Whether the client has answered the first packet (ACK 0 to the OACK, or ACK 1): until
    /// then, an identical request from the same port is the client repeating itself.
    pub fn progressed(&self) -> bool {
        self.acked > 0 || (self.oack.is_some() && !self.awaiting_oack_ack)
    }

    /// The client sent its request again before answering the first packet (our reply was
    /// slow or lost): send that packet again, from this transfer's port, which the client may
    /// already have latched on to. Nothing once the transfer has moved on or ended.
    pub fn on_repeated_request(&mut self) -> Vec<Action> {
        if self.outcome.is_some() || self.progressed() {
            return Vec::new();
        }
        let actions = self.first_packet();
        self.retransmitted += actions.len() as u64;
        actions
    }

    /// The I/O layer found the content ends at `len` bytes (a block came out short).
    pub fn ends_at(&mut self, len: u64) {
        if self.len.is_none() {
            self.len = Some(len);
            let total = len / self.blksize + 1;
            self.total = Some(total);
            self.sent = self.sent.min(total);
        }
    }

    fn send_range(&mut self, first: u64, last: u64) -> Vec<Action> {
        let last = self.total.map_or(last, |total| last.min(total));
        let actions = (first..=last)
            .map(|abs| {
                let offset = (abs - 1) * self.blksize;
                let len = self.len.map_or(self.blksize, |len| self.blksize.min(len - offset)) as usize;
                Action::SendData { block: (abs % 65536) as u16, offset, len }
            })
            .collect();
        self.sent = self.sent.max(last);
        actions
    }

    /// After progress: the blocks of the window that have not been sent yet.
    fn slide_window(&mut self) -> Vec<Action> {
        self.send_range((self.sent + 1).max(self.acked + 1), self.acked + self.windowsize)
    }

    fn progress(&mut self, now: Instant) {
        self.retries_left = self.max_retries;
        self.rto = self.base_rto;
        self.give_up_at = now + self.give_up_after;
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
                self.slide_window()
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
                if Some(abs) == self.total {
                    self.outcome = Some(Outcome::Complete);
                    return Vec::new();
                }
                self.progress(now);
                // An ACK that skips blocks and stops short of what was sent is how an RFC 7440
                // receiver reports a gap: the window restarts there, as the timer would restart
                // it, and no more often than the timer (so no pattern of ACKs gets more resent
                // than silence). An ACK one block on is a client acknowledging every block.
                let gap = ahead > 1 && abs < self.sent;
                if gap && self.last_restart.is_none_or(|at| now.saturating_duration_since(at) >= self.base_rto) {
                    self.last_restart = Some(now);
                    let resent = self.sent - abs;
                    let actions = self.send_range(abs + 1, abs + self.windowsize);
                    self.retransmitted += resent.min(actions.len() as u64);
                    return actions;
                }
                self.slide_window()
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
        if self.retries_left == 0 || now >= self.give_up_at {
            self.outcome = Some(Outcome::TimedOut);
            return Vec::new();
        }
        self.retries_left -= 1;
        if self.backoff {
            self.rto = (self.rto * 2).min(self.max_rto);
        }
        self.deadline = (now + self.rto).min(self.give_up_at);
        let actions = match (&self.oack, self.awaiting_oack_ack) {
            (Some(options), true) => vec![Action::SendOack(options.clone())],
            // Before any ACK only DATA 1 is out; after, the window from the first gap.
            _ if self.acked == 0 => self.send_range(1, 1),
            _ => self.send_range(self.acked + 1, self.acked + self.windowsize),
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
        assert_eq!(t.total, Some(2));
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
        // Block 3 was lost: the client acks 2, skipping a block short of the window's end. The
        // window restarts at 3.
        let w = t.on_packet(&ack(2), now);
        assert_eq!(blocks(&w), [3, 4, 5, 6]);
        assert_eq!(t.retransmitted(), 2);
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

    fn blocks(actions: &[Action]) -> Vec<u16> {
        actions
            .iter()
            .filter_map(|a| if let Action::SendData { block, .. } = a { Some(*block) } else { None })
            .collect()
    }

    #[test]
    fn acking_every_block_of_a_window_sends_each_block_once() {
        // Issue 12: 347,441 packets for 16,384 blocks at windowsize 64 when every in-window ACK
        // restarted the window.
        let total = 16_384u64;
        let (mut t, _, now) = start(512 * total - 1, &[("windowsize", "64")]);
        let mut in_flight: std::collections::VecDeque<u16> = blocks(&t.on_packet(&ack(0), now)).into();
        let mut packets = in_flight.len() as u64;
        while let Some(block) = in_flight.pop_front() {
            let more = blocks(&t.on_packet(&ack(block), now));
            packets += more.len() as u64;
            in_flight.extend(more);
        }
        assert_eq!(t.outcome(), Some(&Outcome::Complete));
        assert_eq!(packets, total);
        assert_eq!(t.retransmitted(), 0);
    }

    #[test]
    fn acks_that_skip_blocks_restart_the_window_no_more_often_than_the_timer() {
        // A client acknowledging every other block looks like one reporting a gap each time:
        // the window restarts once per retransmission timeout, not per ACK.
        let total = 4096u64;
        let (mut t, _, t0) = start(512 * total - 1, &[("windowsize", "64")]);
        let mut sent = blocks(&t.on_packet(&ack(0), t0)).len() as u64;
        let mut next = 2u64;
        let mut now = t0;
        while t.outcome().is_none() && next <= total {
            now += Duration::from_millis(10);
            sent += blocks(&t.on_packet(&ack((next % 65536) as u16), now)).len() as u64;
            next = (next + 2).min(total).max(next + 1);
        }
        let elapsed_rtos = (now - t0).as_millis() as u64 / 1000 + 1;
        assert_eq!(t.outcome(), Some(&Outcome::Complete));
        assert!(sent <= total + 64 * elapsed_rtos, "{sent} packets for {total} blocks over {elapsed_rtos} s");
    }

    #[test]
    fn an_in_window_ack_sends_only_what_is_new() {
        let (mut t, _, now) = start(512 * 100, &[("windowsize", "8")]);
        assert_eq!(blocks(&t.on_packet(&ack(0), now)), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(blocks(&t.on_packet(&ack(1), now)), [9]);
        assert_eq!(blocks(&t.on_packet(&ack(2), now)), [10]);
        // One that skips blocks restarts the window (5 to 10 again, then the new 11 and 12);
        // the next one within the same timeout only slides it.
        assert_eq!(blocks(&t.on_packet(&ack(4), now)), [5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(blocks(&t.on_packet(&ack(6), now)), [13, 14]);
        assert_eq!(t.retransmitted(), 6);
        // Late or repeated ACKs inside the window are not news.
        assert!(t.on_packet(&ack(3), now).is_empty());
        assert!(t.on_packet(&ack(4), now).is_empty());
        // The window end: the blocks up to a full new window.
        assert_eq!(blocks(&t.on_packet(&ack(14), now)), [15, 16, 17, 18, 19, 20, 21, 22]);
    }

    #[test]
    fn a_huge_client_timeout_cannot_hold_the_transfer_longer_than_the_servers_schedule() {
        // Issue 12: timeout=255 held a slot for 7 × 255 s.
        let limits = Limits::default();
        let bound = limits.give_up_after();
        for options in [&[("timeout", "255")][..], &[("timeout", "255"), ("tsize", "0")], &[]] {
            let (mut t, _, t0) = start(5000, options);
            let mut now = t0;
            let mut waits = Vec::new();
            while let Some(due) = t.deadline() {
                waits.push(due - now);
                now = due;
                t.on_timeout(now);
            }
            assert_eq!(t.outcome(), Some(&Outcome::TimedOut), "{options:?}");
            assert!(now - t0 <= bound, "{options:?}: held for {:?}", now - t0);
            assert!(waits.iter().all(|w| *w <= limits.max_timeout), "{options:?}: {waits:?}");
            assert!(t.retransmitted() >= 1, "{options:?}");
        }
        // Progress renews it: the bound is on silence, not on the whole transfer.
        let (mut t, _, t0) = start(512 * 10, &[("timeout", "255")]);
        t.on_packet(&ack(0), t0);
        let later = t0 + bound - Duration::from_secs(1);
        assert_eq!(t.on_packet(&ack(1), later).len(), 1);
        assert!(t.deadline().unwrap() <= later + limits.max_timeout);
        assert!(t.on_timeout(later + bound).is_empty());
        assert_eq!(t.outcome(), Some(&Outcome::TimedOut));
    }

    #[test]
    fn a_repeated_request_gets_the_first_packet_again_until_the_client_answers() {
        // With options: the OACK again, until ACK 0.
        let (mut t, a, now) = start(5000, &[("tsize", "0"), ("blksize", "1024")]);
        assert!(!t.progressed());
        assert_eq!(t.on_repeated_request(), a);
        assert_eq!(t.on_packet(&ack(0), now), vec![data(1, 0, 1024)]);
        assert!(t.progressed());
        assert!(t.on_repeated_request().is_empty());
        // Without: DATA 1 again, until ACK 1.
        let (mut t, a, now) = start(5000, &[]);
        assert_eq!(t.on_repeated_request(), a);
        assert_eq!(t.on_repeated_request(), vec![data(1, 0, 512)]);
        assert_eq!(t.retransmitted(), 2);
        assert!(!t.progressed());
        t.on_packet(&ack(1), now);
        assert!(t.progressed());
        assert!(t.on_repeated_request().is_empty());
        // Nor after the client ended it.
        let (mut t, _, now) = start(5000, &[("tsize", "0")]);
        t.on_packet(&Packet::Error { code: 0, message: "Early terminate".into() }, now);
        assert!(t.on_repeated_request().is_empty());
    }

    #[test]
    fn an_unsized_transfer_learns_its_end_from_the_short_block() {
        let limits = Limits::default();
        let n = negotiate(&[("windowsize", "8")], Mode::Octet, 0, &limits);
        let now = Instant::now();
        let (mut t, a) = Transfer::start_unsized(&n, &limits, now);
        assert!(matches!(a[0], Action::SendOack(_)));
        // One block at a time, each up to a full block.
        assert_eq!(t.on_packet(&ack(0), now), vec![data(1, 0, 512)]);
        assert_eq!(t.on_packet(&ack(1), now), vec![data(2, 512, 512)]);
        // Block 2 came out 100 bytes long: it is the last.
        t.ends_at(512 + 100);
        assert!(t.on_packet(&ack(2), now).is_empty());
        assert_eq!(t.outcome(), Some(&Outcome::Complete));
        assert_eq!(t.bytes_acked(), 612);
        // A full last block is followed by an empty one.
        let (mut t, _) = Transfer::start_unsized(&negotiate(&[], Mode::Octet, 0, &limits), &limits, now);
        assert_eq!(t.on_packet(&ack(1), now), vec![data(2, 512, 512)]);
        assert_eq!(t.on_packet(&ack(2), now), vec![data(3, 1024, 512)]);
        t.ends_at(1024);
        assert!(t.on_packet(&ack(3), now).is_empty());
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
