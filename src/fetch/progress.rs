//! Download progress: a bar with rate and ETA when stderr is a terminal, otherwise a plain log
//! line every few seconds (CI logs stay readable).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How long between log lines when there is no terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

pub enum Progress {
    Bar(ProgressBar),
    Log { verb: &'static str, name: String, total: Option<u64>, done: u64, started: Instant, last: Instant },
    Quiet,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl Progress {
    /// Progress of downloading `name` (`total` bytes if known), `done` already present.
    pub fn start(name: &str, total: Option<u64>, done: u64, quiet: bool) -> Progress {
        Progress::start_with("downloading", name, total, done, quiet)
    }

    /// Progress of any long pass over `total` bytes (`verb`: "verifying", ...).
    pub fn start_with(verb: &'static str, name: &str, total: Option<u64>, done: u64, quiet: bool) -> Progress {
        if quiet {
            return Progress::Quiet;
        }
        if std::io::stderr().is_terminal() {
            let bar = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            };
            let style =
                ProgressStyle::with_template("{msg:>16} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(name.to_string());
            bar.set_position(done);
            return Progress::Bar(bar);
        }
        let resumed = if done > 0 { format!(", resuming at {:.1} MiB", mib(done)) } else { String::new() };
        let size = total.map_or("unknown size".to_string(), |t| format!("{:.1} MiB", mib(t)));
        tracing::info!("{verb} {name} ({size}{resumed})");
        let now = Instant::now();
        Progress::Log { verb, name: name.to_string(), total, done, started: now, last: now }
    }

    /// Progress of work told in steps, not bytes (mmdebstrap's stages): a spinner with the
    /// current step on a terminal, a log line per step otherwise.
    pub fn steps(verb: &'static str, name: &str, quiet: bool) -> Progress {
        if quiet {
            return Progress::Quiet;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            let style = ProgressStyle::with_template("{spinner} {prefix}: {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.set_prefix(format!("{verb} {name}"));
            bar.enable_steady_tick(Duration::from_millis(200));
            return Progress::Bar(bar);
        }
        tracing::info!("{verb} {name}");
        let now = Instant::now();
        Progress::Log { verb, name: name.to_string(), total: None, done: 0, started: now, last: now }
    }

    /// The step now under way.
    pub fn message(&mut self, step: &str) {
        match self {
            Progress::Bar(bar) => bar.set_message(step.to_string()),
            Progress::Log { verb, name, started, .. } => {
                tracing::info!("{verb} {name}: {step} ({:.0} s)", started.elapsed().as_secs_f64())
            }
            Progress::Quiet => {}
        }
    }

    pub fn advance(&mut self, bytes: u64) {
        match self {
            Progress::Bar(bar) => bar.inc(bytes),
            Progress::Log { verb, name, total, done, started, last } => {
                *done += bytes;
                if last.elapsed() >= LOG_EVERY {
                    *last = Instant::now();
                    let rate = mib(*done) / started.elapsed().as_secs_f64().max(0.001);
                    let of =
                        total.map_or(String::new(), |t| format!(" of {:.1} MiB ({}%)", mib(t), *done * 100 / t.max(1)));
                    tracing::info!("{verb} {name}: {:.1} MiB{of}, {rate:.1} MiB/s", mib(*done));
                }
            }
            Progress::Quiet => {}
        }
    }

    /// Back to `position` (the server ignored a resume request and sends everything again).
    pub fn reset(&mut self, position: u64) {
        match self {
            Progress::Bar(bar) => bar.set_position(position),
            Progress::Log { done, .. } => *done = position,
            Progress::Quiet => {}
        }
    }

    pub fn finish(self) {
        match self {
            Progress::Bar(bar) => bar.finish_and_clear(),
            Progress::Log { verb, name, done, started, total, .. } => {
                let secs = started.elapsed().as_secs_f64();
                if done == 0 && total.is_none() {
                    tracing::info!("{verb} {name}: done in {secs:.0} s");
                } else {
                    tracing::info!("{verb} {name}: done, {:.1} MiB in {secs:.1} s", mib(done));
                }
            }
            Progress::Quiet => {}
        }
    }
}
