//! Runs of file blocks mapped to volume blocks, as extent trees and block maps yield them:
//! clipped to the file's length and merged where contiguous.
//!
//! Not for byte ranges; `data.rs` turns runs into the public `Extent`s.

/// `len` file blocks from `logical` live at volume block `physical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub logical: u64,
    pub physical: u64,
    pub len: u64,
    pub uninit: bool,
}

/// Runs in logical order, never reaching `limit` (the file's length in blocks).
pub(crate) struct Runs {
    pub runs: Vec<Run>,
    pub limit: u64,
}

impl Runs {
    pub(crate) fn new(limit: u64) -> Runs {
        Runs { runs: Vec::new(), limit }
    }

    /// Adds a run that starts at or after every run so far; callers check that order.
    pub(crate) fn push(&mut self, run: Run) {
        if run.logical >= self.limit {
            return;
        }
        let len = run.len.min(self.limit - run.logical);
        if let Some(last) = self.runs.last_mut() {
            let contiguous = last.logical + last.len == run.logical
                && last.physical.checked_add(last.len) == Some(run.physical)
                && last.uninit == run.uninit;
            if contiguous {
                last.len += len;
                return;
            }
        }
        self.runs.push(Run { len, ..run });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_when_contiguous_and_stop_at_the_limit() {
        let mut runs = Runs::new(10);
        runs.push(Run { logical: 0, physical: 100, len: 2, uninit: false });
        runs.push(Run { logical: 2, physical: 102, len: 2, uninit: false });
        runs.push(Run { logical: 4, physical: 104, len: 1, uninit: true });
        runs.push(Run { logical: 6, physical: 200, len: 8, uninit: false });
        runs.push(Run { logical: 12, physical: 300, len: 1, uninit: false });
        assert_eq!(
            runs.runs,
            [
                Run { logical: 0, physical: 100, len: 4, uninit: false },
                Run { logical: 4, physical: 104, len: 1, uninit: true },
                Run { logical: 6, physical: 200, len: 4, uninit: false },
            ]
        );
    }
}
