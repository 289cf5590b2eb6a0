//! A folder inside a served tree that keeps trading places with a symlink to a folder outside
//! it (one atomic `renameat2(RENAME_EXCHANGE)` per swap), for the containment race tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

pub const INSIDE: &[u8] = b"inside the root\n";
pub const OUTSIDE: &[u8] = b"OUTSIDE THE ROOT\n";

/// `root/d/f` (inside) and `outside/f` (outside) with `root/dl` a symlink to `outside`; the
/// swapper exchanges `root/d` and `root/dl` until stopped.
pub struct Swapper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
    root: PathBuf,
}

/// Make the two folders under `base`: `base/lab` (the root to serve) and `base/outside`.
pub fn race_tree(base: &Path) -> PathBuf {
    let root = base.join("lab");
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::create_dir_all(base.join("outside")).unwrap();
    std::fs::write(root.join("d/f"), INSIDE).unwrap();
    std::fs::write(base.join("outside/f"), OUTSIDE).unwrap();
    std::os::unix::fs::symlink(base.join("outside"), root.join("dl")).unwrap();
    root
}

impl Swapper {
    pub fn start(root: &Path) -> Swapper {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (d, dl) = (root.join("d"), root.join("dl"));
        let thread = std::thread::spawn(move || {
            let mut swaps = 0u64;
            // Bounded in count as well as by the stop flag.
            while !flag.load(Ordering::Relaxed) && swaps < 50_000_000 {
                swap(&d, &dl);
                swaps += 1;
            }
            if swaps % 2 == 1 {
                swap(&d, &dl);
                swaps += 1;
            }
            swaps
        });
        Swapper { stop, thread: Some(thread), root: root.to_path_buf() }
    }

    /// Stop with `d` a folder again; how many swaps were made.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let swaps = self.thread.take().unwrap().join().unwrap();
        assert!(self.root.join("d").symlink_metadata().unwrap().is_dir());
        swaps
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn swap(a: &Path, b: &Path) {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE).expect("renameat2 RENAME_EXCHANGE");
}

/// What a batch of downloads of `d/f` brought: (inside, outside, anything else).
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub inside: u64,
    pub outside: u64,
    pub other: u64,
}

impl Tally {
    pub fn add(&mut self, body: &[u8]) {
        if body == INSIDE {
            self.inside += 1;
        } else if body.windows(OUTSIDE.len() - 1).any(|w| w == &OUTSIDE[..OUTSIDE.len() - 1]) {
            self.outside += 1;
        } else {
            self.other += 1;
        }
    }
}
