//! The decoded-block cache: a byte budget shared by cached blocks and blocks being decoded, LRU
//! eviction, one decode per block at a time (single-flight), and read-ahead worker threads.
//!
//! Every decoded block lives in an `Arc`; the cache holds one reference and a reader copying out
//! of a block holds another for as long as the copy takes. Those references are only taken and
//! dropped under the state lock, so a strong count of one, seen under the lock, means nobody
//! but the cache holds the block and evicting it really frees its memory. That is what lets the
//! budget count every decoded byte alive, not just what the cache map holds.

use super::XzError;
use super::decode::decode_block;
use super::format::Layout;
use crate::read_at::ReadAt;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Deref;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Counters for tests and diagnostics; see `XzReader::stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XzStats {
    /// Blocks decompressed successfully, by readers and read-ahead together.
    pub decodes: u64,
    /// Decodes that failed (corrupt data, I/O errors).
    pub failed_decodes: u64,
    /// Reads of a block that found it cached (or being decoded by another thread).
    pub hits: u64,
    /// Blocks decoded by read-ahead before anyone asked for them.
    pub read_ahead: u64,
    pub evictions: u64,
    /// Decoded bytes alive now: cached, being copied from, or being decoded.
    pub bytes_now: u64,
    /// The most `bytes_now` has ever been; never more than `XzOptions::cache_bytes`.
    pub bytes_peak: u64,
}

/// Reads count as sequential when they skip at most this much past where the previous one ended
/// (a filesystem reading a file skips metadata and fragments), ...
const SEQUENTIAL_GAP: u64 = 256 * 1024;
/// ... and there are this many of them in a row: random reads almost never are.
const SEQUENTIAL_READS: u32 = 4;

pub(super) struct Engine {
    pub source: Arc<dyn ReadAt>,
    pub layout: Layout,
    pub budget: u64,
    pub memlimit: u64,
    /// How many blocks read-ahead keeps decoded ahead of a sequential reader; 0 turns it off.
    pub depth: usize,
    state: Mutex<State>,
    /// Signalled whenever a decode ends, a reference is dropped, or read-ahead work is queued;
    /// everything that waits rechecks its own condition.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    slots: HashMap<usize, Slot>,
    /// Last-use tick to block number, oldest first.
    lru: BTreeMap<u64, usize>,
    tick: u64,
    /// Bytes of cached blocks plus bytes reserved for decodes under way.
    used: u64,
    /// Blocks read-ahead should decode next.
    queue: VecDeque<usize>,
    shutdown: bool,
    /// Where the previous read ended, the last block it touched, and how many reads in a row
    /// started where the one before ended.
    last_end: Option<u64>,
    last_block: Option<usize>,
    streak: u32,
    stats: XzStats,
}

enum Slot {
    Decoding,
    Ready(Entry),
}

struct Entry {
    data: Arc<Vec<u8>>,
    tick: u64,
    /// False while read-ahead has decoded it and no reader has used it yet: read-ahead must not
    /// evict such blocks to make room for more read-ahead, or it would chase its own tail.
    used: bool,
}

/// A decoded block kept alive while a reader copies out of it.
pub(super) struct Pinned<'a> {
    engine: &'a Engine,
    data: Option<Arc<Vec<u8>>>,
}

impl Deref for Pinned<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl Drop for Pinned<'_> {
    fn drop(&mut self) {
        // Under the lock, so that evictors never see a stale count and waiters are woken.
        let _state = self.engine.lock();
        self.data.take();
        self.engine.changed.notify_all();
    }
}

/// The budget reserved for one decode; given back if the decode fails or unwinds.
struct Ticket<'a> {
    engine: &'a Engine,
    block: usize,
    size: u64,
    done: bool,
}

impl Ticket<'_> {
    /// Caches the decoded block; a reader (`used`) gets a reference taken under the lock.
    fn complete(mut self, data: Vec<u8>, used: bool) -> Option<Arc<Vec<u8>>> {
        let data = Arc::new(data);
        let mut st = self.engine.lock();
        st.tick += 1;
        let tick = st.tick;
        st.lru.insert(tick, self.block);
        let pin = used.then(|| data.clone());
        st.slots.insert(self.block, Slot::Ready(Entry { data, tick, used }));
        st.stats.decodes += 1;
        if !used {
            st.stats.read_ahead += 1;
        }
        self.done = true;
        self.engine.changed.notify_all();
        pin
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut st = self.engine.lock();
        st.slots.remove(&self.block);
        st.used -= self.size;
        st.stats.failed_decodes += 1;
        self.engine.changed.notify_all();
    }
}

impl Engine {
    pub fn new(source: Arc<dyn ReadAt>, layout: Layout, budget: u64, memlimit: u64, depth: usize) -> Engine {
        Engine { source, layout, budget, memlimit, depth, state: Mutex::new(State::default()), changed: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, and the state stays consistent at every
        // unlock, so a poisoned lock is still good to use.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }

    pub fn stats(&self) -> XzStats {
        let st = self.lock();
        XzStats { bytes_now: st.used, ..st.stats }
    }

    /// Block `number` decoded, from the cache or by decoding it in this thread, waiting for
    /// another thread that is already decoding it or for budget to come free.
    pub fn get(&self, number: usize) -> Result<Pinned<'_>, XzError> {
        let size = self.layout.blocks[number].uncompressed_size;
        let mut guard = self.lock();
        loop {
            let st = &mut *guard;
            match st.slots.get_mut(&number) {
                Some(Slot::Ready(entry)) => {
                    st.tick += 1;
                    st.lru.remove(&entry.tick);
                    st.lru.insert(st.tick, number);
                    entry.tick = st.tick;
                    entry.used = true;
                    st.stats.hits += 1;
                    return Ok(Pinned { engine: self, data: Some(entry.data.clone()) });
                }
                Some(Slot::Decoding) => guard = self.wait(guard),
                None => {
                    if self.reserve(st, number, size, true) {
                        break;
                    }
                    // Everything else in the budget is being decoded or copied from; both end
                    // without needing budget, so waiting here cannot deadlock.
                    guard = self.wait(guard);
                }
            }
        }
        drop(guard);
        let ticket = Ticket { engine: self, block: number, size, done: false };
        let data = self.decode(number)?;
        Ok(Pinned { engine: self, data: ticket.complete(data, true) })
    }

    fn decode(&self, number: usize) -> Result<Vec<u8>, XzError> {
        let block = &self.layout.blocks[number];
        let header = &self.layout.streams[block.stream as usize].header;
        decode_block(self.source.as_ref(), header, block, number, self.memlimit)
    }

    /// Makes room for `size` bytes by evicting least recently used blocks nobody is copying
    /// from (and, unless `evict_unused`, that some reader has already used), then reserves the
    /// room and marks the block as being decoded. Evicts nothing if that would not be enough.
    fn reserve(&self, st: &mut State, number: usize, size: u64, evict_unused: bool) -> bool {
        if st.used.saturating_add(size) > self.budget {
            let victims = {
                let slots = &st.slots;
                let evictable = |block: &usize| match slots.get(block) {
                    Some(Slot::Ready(entry)) if Arc::strong_count(&entry.data) == 1 && (evict_unused || entry.used) => {
                        Some(entry.data.len() as u64)
                    }
                    _ => None,
                };
                let mut victims = Vec::new();
                let mut left = st.used;
                for (&tick, block) in &st.lru {
                    if left.saturating_add(size) <= self.budget {
                        break;
                    }
                    if let Some(len) = evictable(block) {
                        left -= len;
                        victims.push((tick, *block));
                    }
                }
                if left.saturating_add(size) > self.budget {
                    return false;
                }
                victims
            };
            for (tick, block) in victims {
                st.lru.remove(&tick);
                if let Some(Slot::Ready(entry)) = st.slots.remove(&block) {
                    st.used -= entry.data.len() as u64;
                    st.stats.evictions += 1;
                }
            }
        }
        st.used += size;
        st.stats.bytes_peak = st.stats.bytes_peak.max(st.used);
        st.slots.insert(number, Slot::Decoding);
        true
    }

    /// Notes a read of `[start, end)`, whose last byte is in block `last`; says whether reads
    /// look sequential enough that read-ahead should run: several reads in a row, each starting
    /// at or a little after where the previous one ended.
    pub fn note_read(&self, start: u64, end: u64, last: usize) -> bool {
        if self.depth == 0 {
            return false;
        }
        let mut st = self.lock();
        let sequential = st.last_end.is_some_and(|prev| start >= prev && start - prev <= SEQUENTIAL_GAP);
        st.streak = if sequential { st.streak.saturating_add(1) } else { 0 };
        let entered = st.last_block != Some(last);
        st.last_end = Some(end);
        st.last_block = Some(last);
        // Scheduled once when the streak is long enough and then at each new block, rather
        // than at every small read.
        let go = st.streak >= SEQUENTIAL_READS && (st.streak == SEQUENTIAL_READS || entered);
        if go {
            self.queue_after(&mut st, last);
        }
        go
    }

    /// Asks read-ahead for the `depth` non-empty blocks after `block`, dropping older requests.
    pub fn read_ahead_after(&self, block: usize) {
        if self.depth > 0 {
            let mut st = self.lock();
            self.queue_after(&mut st, block);
        }
    }

    fn queue_after(&self, st: &mut State, block: usize) {
        st.queue.clear();
        let wanted = self.layout.blocks.iter().enumerate().skip(block + 1).filter(|(_, b)| b.uncompressed_size > 0);
        for (number, _) in wanted.take(self.depth) {
            if !st.slots.contains_key(&number) {
                st.queue.push_back(number);
            }
        }
        if !st.queue.is_empty() {
            self.changed.notify_all();
        }
    }

    /// Stops the read-ahead workers once they finish the block in hand.
    pub fn shut_down(&self) {
        let mut st = self.lock();
        st.shutdown = true;
        st.queue.clear();
        self.changed.notify_all();
    }

    /// A read-ahead worker: decodes queued blocks while there is budget to spare for them.
    pub fn work(&self) {
        loop {
            let mut st = self.lock();
            let number = loop {
                if st.shutdown {
                    return;
                }
                match st.queue.pop_front() {
                    Some(n) if !st.slots.contains_key(&n) => break n,
                    Some(_) => {}
                    None => st = self.wait(st),
                }
            };
            let size = self.layout.blocks[number].uncompressed_size;
            if !self.reserve(&mut st, number, size, false) {
                // The budget is full of blocks still to be read; the reader catches up first.
                st.queue.clear();
                continue;
            }
            drop(st);
            let ticket = Ticket { engine: self, block: number, size, done: false };
            // A failure is left for the reader who wants the block to meet and report.
            if let Ok(data) = self.decode(number) {
                ticket.complete(data, false);
            }
        }
    }
}
