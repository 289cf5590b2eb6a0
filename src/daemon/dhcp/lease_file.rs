//! Server-mode leases on disk: a TOML snapshot, and beside it (`<file>.journal`) a journal of
//! every change since, one line each. An ACK leaves only once the line of its lease is on disk:
//! the writer task appends whatever is pending and fsyncs once for all of it (group commit), then
//! lets the replies that waited go. A crash loses no ACKed lease, and the reply path never waits
//! for a whole rewrite (dnsmasq's synchronous one caps it at about 160 exchanges a second, pxe.md
//! §1.1). The journal is folded into a new snapshot (temporary file, fsync, rename:
//! `crate::output`) at start-up, when it has grown, and at shutdown; the snapshot's `journal`
//! number says which journal continues it, so a crash between the two writes replays nothing
//! twice. A snapshot without a journal (written before there was one) is read as it is.

use super::leases::{Change, Lease};
use super::reply::State;
use crate::recipe::MacAddr;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// A journal this many lines longer than the snapshot has leases (and at least this long) is
/// folded into a new snapshot.
pub const FOLD_LINES: usize = 20_000;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseFile {
    /// The journal that continues this snapshot.
    #[serde(default)]
    journal: u64,
    #[serde(default, rename = "lease")]
    leases: Vec<Record>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    mac: String,
    ip: Ipv4Addr,
    /// Unix seconds.
    expires: u64,
}

/// The snapshot's text.
pub fn encode(leases: &[Lease], journal: u64) -> String {
    let file = LeaseFile {
        journal,
        leases: leases.iter().map(|l| Record { mac: l.mac.to_string(), ip: l.ip, expires: l.expires }).collect(),
    };
    let body = toml::to_string(&file).unwrap_or_default();
    format!(
        "# Bramble's DHCP leases, rewritten by `bramble serve` (expires: Unix seconds); the changes since\n# are in the journal beside it.\n\n{body}"
    )
}

/// The most a lease file may hold: some 70 bytes a lease, so room for far more leases than the
/// largest pool (a /16) has addresses.
pub const MAX_FILE_BYTES: u64 = 32 << 20;

/// The longest line a lease file may have.
const MAX_LINE_BYTES: usize = 1024;

/// Read a snapshot: its journal number and leases; a missing file is none.
pub fn load_snapshot(path: &Path) -> Result<(u64, Vec<Lease>)> {
    let Some(text) = read_bounded(path)? else { return Ok((0, Vec::new())) };
    // No line of ours is long; a huge one would only make the parser slow and its message huge.
    if let Some((n, line)) = text.lines().enumerate().find(|(_, l)| l.len() > MAX_LINE_BYTES) {
        anyhow::bail!(
            "the lease file {}, line {}: {} bytes long, which no lease is (`{}`); move it away to start with no leases",
            path.display(),
            n + 1,
            line.len(),
            clip(line)
        );
    }
    let file: LeaseFile = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "the lease file {} is damaged ({}); move it away to start with no leases",
            path.display(),
            clip(&e.to_string())
        )
    })?;
    let journal = file.journal;
    let leases = file
        .leases
        .into_iter()
        .enumerate()
        .map(|(n, r)| {
            let mac: MacAddr = r.mac.parse().map_err(|_: String| {
                anyhow::anyhow!(
                    "the lease file {}: lease {}: `{}` is not a MAC address; move the file away to start with no leases",
                    path.display(),
                    n + 1,
                    clip(&r.mac)
                )
            })?;
            Ok(Lease { mac, ip: r.ip, expires: r.expires, bound: true })
        })
        .collect::<Result<_>>()?;
    Ok((journal, leases))
}

/// Where the journal of the snapshot `path` is.
pub fn journal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// The snapshot with its journal replayed: what the server had ACKed when it stopped. Returns
/// the number the next snapshot must not reuse, and the leases.
pub fn load(path: &Path) -> Result<(u64, Vec<Lease>)> {
    let (number, leases) = load_snapshot(path)?;
    let journal = journal_path(path);
    let Some(text) = read_bounded(&journal)? else { return Ok((number, leases)) };
    let (continues, changes) = parse_journal(&journal, &text)?;
    if continues < number {
        // The snapshot was written from it, and then the crash came before the new journal.
        return Ok((number, leases));
    }
    Ok((continues, replay(leases, changes)))
}

/// The header line of journal `number`.
fn journal_header(number: u64) -> String {
    format!("# bramble lease journal {number}: changes since the snapshot with journal = {number}\n")
}

/// A journal line.
fn encode_change(change: &Change, out: &mut String) {
    use std::fmt::Write as _;
    let _ = match change {
        Change::Bind(l) => writeln!(out, "bind {} {} {}", l.mac, l.ip, l.expires),
        Change::Free(ip) => writeln!(out, "free {ip}"),
    };
}

/// A journal's number and changes. A last line without its newline was being written when the
/// server stopped, and no reply waited on it being complete: it is left out.
fn parse_journal(path: &Path, text: &str) -> Result<(u64, Vec<Change>)> {
    let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
    let mut lines = complete.lines().enumerate();
    let number = lines
        .next()
        .and_then(|(_, l)| l.strip_prefix("# bramble lease journal "))
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse::<u64>().ok());
    let Some(number) = number else {
        if complete.is_empty() {
            return Ok((0, Vec::new()));
        }
        anyhow::bail!(
            "{}, line 1: not a bramble lease journal; move it away (its leases are lost) to start",
            path.display()
        );
    };
    let bad = |n: usize, line: &str| {
        anyhow::anyhow!(
            "{}, line {}: `{}` is not a journal line; move the file away (its leases are lost) to start",
            path.display(),
            n + 1,
            clip(line)
        )
    };
    let mut changes = Vec::new();
    for (n, line) in lines {
        let words: Vec<&str> = line.split(' ').collect();
        let change = match words[..] {
            ["bind", mac, ip, expires] => Change::Bind(Lease {
                mac: mac.parse().map_err(|_: String| bad(n, line))?,
                ip: ip.parse().map_err(|_| bad(n, line))?,
                expires: expires.parse().map_err(|_| bad(n, line))?,
                bound: true,
            }),
            ["free", ip] => Change::Free(ip.parse().map_err(|_| bad(n, line))?),
            _ => return Err(bad(n, line)),
        };
        changes.push(change);
    }
    Ok((number, changes))
}

/// `changes` applied to `leases` as [`super::leases::Leases`] made them: a lease is its MAC's
/// only one and its address's only holder.
pub fn replay(leases: Vec<Lease>, changes: Vec<Change>) -> Vec<Lease> {
    let mut by_ip: BTreeMap<Ipv4Addr, Lease> = BTreeMap::new();
    let mut by_mac: HashMap<MacAddr, Ipv4Addr> = HashMap::new();
    for change in leases.into_iter().map(Change::Bind).chain(changes) {
        match change {
            Change::Bind(lease) => {
                if let Some(old) = by_mac.insert(lease.mac, lease.ip)
                    && old != lease.ip
                {
                    by_ip.remove(&old);
                }
                if let Some(previous) = by_ip.insert(lease.ip, lease.clone())
                    && previous.mac != lease.mac
                {
                    by_mac.remove(&previous.mac);
                }
            }
            Change::Free(ip) => {
                if let Some(gone) = by_ip.remove(&ip) {
                    by_mac.remove(&gone.mac);
                }
            }
        }
    }
    by_ip.into_values().collect()
}

/// The text of `path` if it exists: a regular file (opened without blocking, so a FIFO put in
/// its place cannot hang start-up, and checked after opening, so a symlink to a device is seen
/// for what it is) of at most [`MAX_FILE_BYTES`].
pub fn read_bounded(path: &Path) -> Result<Option<String>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let what = || format!("the lease file {}", path.display());
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", what())),
    };
    let meta = file.metadata().with_context(|| format!("cannot read {}", what()))?;
    if !meta.is_file() {
        anyhow::bail!(
            "{} is not a regular file (it is {}); point lease_file (--lease-file) at a file, or remove what is there",
            what(),
            kind_of(&meta.file_type())
        );
    }
    if meta.len() > MAX_FILE_BYTES {
        anyhow::bail!(
            "{} is {} bytes, more than any lease file can be ({MAX_FILE_BYTES}); move it away",
            what(),
            meta.len()
        );
    }
    let mut bytes = Vec::new();
    (&mut file).take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).with_context(|| format!("cannot read {}", what()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        anyhow::bail!("{} grew past {MAX_FILE_BYTES} bytes while being read; move it away", what());
    }
    String::from_utf8(bytes).map(Some).map_err(|e| {
        anyhow::anyhow!("{} is not UTF-8 text (byte {}); move it away", what(), e.utf8_error().valid_up_to())
    })
}

fn kind_of(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// At most [`CLIP`] characters of `text`, each line at most 100: a parser's message quotes the
/// offending line, which can be megabytes long.
fn clip(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if !out.is_empty() {
            out.push(' ');
        }
        let line = line.trim();
        out.extend(line.chars().take(100));
        if line.chars().nth(100).is_some() {
            out.push('…');
        }
        if out.chars().count() > CLIP {
            return out.chars().take(CLIP).collect::<String>() + "…";
        }
    }
    out
}

const CLIP: usize = 400;

/// Changes the journal is to make durable; `done` is told once they are.
pub struct Pending {
    pub changes: Vec<Change>,
    pub done: Option<oneshot::Sender<()>>,
}

/// The files of one lease store: the snapshot, and the open journal that continues it.
pub struct Store {
    path: PathBuf,
    number: u64,
    journal: File,
    lines: usize,
    snapshot_len: usize,
}

impl Store {
    /// Write `leases` as snapshot `after + 1` and start its empty journal.
    pub fn create(path: &Path, after: u64, leases: &[Lease]) -> Result<Store> {
        let mut store = Store {
            path: path.to_path_buf(),
            number: after,
            journal: File::open("/dev/null").context("cannot open /dev/null")?,
            lines: 0,
            snapshot_len: 0,
        };
        store.fold(leases)?;
        Ok(store)
    }

    /// A new snapshot of `leases` (all there is), then an empty journal for it.
    fn fold(&mut self, leases: &[Lease]) -> Result<()> {
        let number = self.number + 1;
        crate::output::write_file(&self.path, encode(leases, number).as_bytes())
            .with_context(|| format!("cannot write the lease file {}", self.path.display()))?;
        let journal = journal_path(&self.path);
        crate::output::write_file(&journal, journal_header(number).as_bytes())
            .with_context(|| format!("cannot write the lease journal {}", journal.display()))?;
        sync_dir(&self.path);
        self.journal = File::options()
            .append(true)
            .open(&journal)
            .with_context(|| format!("cannot open the lease journal {}", journal.display()))?;
        (self.number, self.lines, self.snapshot_len) = (number, 0, leases.len());
        Ok(())
    }

    /// Append `text` (whole lines) and wait until it is on disk.
    fn append(&mut self, text: &str, lines: usize) -> Result<()> {
        let journal = journal_path(&self.path);
        self.journal
            .write_all(text.as_bytes())
            .and_then(|()| self.journal.sync_data())
            .with_context(|| format!("cannot write the lease journal {}", journal.display()))?;
        self.lines += lines;
        Ok(())
    }

    fn wants_fold(&self) -> bool {
        self.lines >= FOLD_LINES.max(4 * self.snapshot_len)
    }
}

/// The renames of a fold survive a power cut only once the directory is synced too.
fn sync_dir(path: &Path) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The journal writer: takes everything pending, appends it with one fsync, and tells the
/// waiting replies; folds the journal into a snapshot when it has grown or an append failed
/// (the file may end in half a line), and once more when the queue closes (shutdown).
pub async fn run_writer(store: Store, state: Arc<Mutex<State>>, mut queue: mpsc::UnboundedReceiver<Pending>) {
    let mut store = Some(store);
    let mut damaged = false;
    let snapshot = |queue: &mut mpsc::UnboundedReceiver<Pending>, batch: &mut Vec<Pending>| {
        // Under the lock, nothing more is queued: everything queued so far is in the snapshot.
        let st = state.lock().expect("dhcp state lock");
        while let Ok(p) = queue.try_recv() {
            batch.push(p);
        }
        st.leases.as_ref().map(|l| l.snapshot()).unwrap_or_default()
    };
    loop {
        let Some(first) = queue.recv().await else { break };
        let mut batch = vec![first];
        while let Ok(p) = queue.try_recv() {
            batch.push(p);
        }
        let Some(mut s) = store.take() else { return };
        let fold = damaged || s.wants_fold();
        let (s, result) = if fold {
            let leases = snapshot(&mut queue, &mut batch);
            let count = leases.len();
            let Some((s, r)) = blocking(move || {
                let r = s.fold(&leases);
                (s, r)
            })
            .await
            else {
                return;
            };
            if r.is_ok() {
                debug!(leases = count, "dhcp: lease journal folded into the lease file");
            }
            (s, r)
        } else {
            let mut text = String::new();
            let mut lines = 0;
            for change in batch.iter().flat_map(|p| &p.changes) {
                encode_change(change, &mut text);
                lines += 1;
            }
            let Some(done) = blocking(move || {
                let r = s.append(&text, lines);
                (s, r)
            })
            .await
            else {
                return;
            };
            done
        };
        store = Some(s);
        match result {
            Ok(()) => {
                damaged = false;
                for p in batch {
                    if let Some(done) = p.done {
                        let _ = done.send(());
                    }
                }
            }
            Err(e) => {
                // The replies that waited are not sent; the clients ask again.
                damaged = true;
                warn!(
                    error = format!("{e:#}"),
                    held = batch.len(),
                    "dhcp: cannot save leases; their replies are not sent"
                );
            }
        }
    }
    if let Some(mut s) = store {
        let leases = snapshot(&mut queue, &mut Vec::new());
        let count = leases.len();
        match blocking(move || s.fold(&leases)).await {
            Some(Ok(())) => debug!(leases = count, "dhcp: leases saved"),
            Some(Err(e)) => {
                warn!(error = format!("{e:#}"), "dhcp: cannot save leases at shutdown (the journal has them)")
            }
            None => {}
        }
    }
}

/// Run file I/O off the async threads; `None` if the runtime is going away (or it panicked).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(t) => Some(t),
        Err(e) => {
            warn!(error = %e, "dhcp: lease writer failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.toml");
        assert_eq!(load(&path).unwrap(), (0, vec![]));
        let leases = vec![
            Lease {
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                ip: Ipv4Addr::new(10, 0, 0, 5),
                expires: 1_800_000_000,
                bound: true,
            },
            Lease { mac: MacAddr([2, 0, 0, 0, 0, 2]), ip: Ipv4Addr::new(10, 0, 0, 6), expires: 5, bound: true },
        ];
        Store::create(&path, 0, &leases).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("mac = \"02:00:00:00:00:01\"") && text.contains("journal = 1"), "{text}");
        assert_eq!(load(&path).unwrap(), (1, leases.clone()));
        // A lease file from before the journal: no `journal`, no journal file.
        std::fs::remove_file(journal_path(&path)).unwrap();
        std::fs::write(&path, text.replace("journal = 1\n", "")).unwrap();
        assert_eq!(load(&path).unwrap(), (0, leases));
        std::fs::write(&path, "[[lease]]\nmac = \"zz\"\nip = \"10.0.0.1\"\nexpires = 1\n").unwrap();
        assert!(format!("{:#}", load(&path).unwrap_err()).contains("not a MAC address"));
        std::fs::write(&path, "[[lease]\n").unwrap();
        assert!(format!("{:#}", load(&path).unwrap_err()).contains("is damaged ("));
    }

    fn lease(mac: u8, ip: u8, expires: u64) -> Lease {
        Lease { mac: MacAddr([2, 0, 0, 0, 0, mac]), ip: Ipv4Addr::new(10, 0, 0, ip), expires, bound: true }
    }

    #[test]
    fn the_journal_continues_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.toml");
        let mut store = Store::create(&path, 6, &[lease(1, 5, 100), lease(2, 6, 100)]).unwrap();
        let mut text = String::new();
        for c in [
            Change::Bind(lease(1, 7, 200)), // 1 moves from .5 to .7
            Change::Bind(lease(3, 6, 300)), // 3 takes 2's expired .6
            Change::Free(Ipv4Addr::new(10, 0, 0, 7)),
            Change::Bind(lease(4, 8, 400)),
        ] {
            encode_change(&c, &mut text);
        }
        store.append(&text, 4).unwrap();
        let want = vec![lease(3, 6, 300), lease(4, 8, 400)];
        assert_eq!(load(&path).unwrap(), (7, want.clone()));
        // Half a line (the server died writing it; nobody was told) is left out.
        store.append("bind 02:00:00:00:00:09 10.0.", 0).unwrap();
        assert_eq!(load(&path).unwrap(), (7, want.clone()));
        // A fold writes snapshot 8; if the crash comes before its new journal, the old journal
        // (7) is not replayed over it.
        let journal = std::fs::read(journal_path(&path)).unwrap();
        store.fold(&[lease(5, 9, 500)]).unwrap();
        assert_eq!(load(&path).unwrap(), (8, vec![lease(5, 9, 500)]));
        std::fs::write(journal_path(&path), &journal).unwrap();
        assert_eq!(load(&path).unwrap(), (8, vec![lease(5, 9, 500)]));
        // A damaged line is named, and the message stays short.
        std::fs::write(journal_path(&path), format!("{}bind x\nfree {}\n", journal_header(8), "9".repeat(1 << 20)))
            .unwrap();
        let e = format!("{:#}", load(&path).unwrap_err());
        assert!(e.contains("leases.toml.journal, line 2: `bind x` is not a journal line"), "{e}");
        std::fs::write(journal_path(&path), format!("{}free {}\n", journal_header(8), "9".repeat(1 << 20))).unwrap();
        let e = format!("{:#}", load(&path).unwrap_err());
        assert!(e.contains("line 2: `free 999") && e.len() < 1000, "{}", e.len());
        std::fs::write(journal_path(&path), "something else\n").unwrap();
        assert!(format!("{:#}", load(&path).unwrap_err()).contains("not a bramble lease journal"));
    }

    #[tokio::test]
    async fn replies_wait_for_the_commit_and_shutdown_folds() {
        use crate::daemon::dhcp::leases::{Leases, Pool};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.toml");
        let pool = Pool {
            range: "10.0.0.10-10.0.0.20".parse().unwrap(),
            subnet: "10.0.0.1/24".parse().unwrap(),
            server: Ipv4Addr::new(10, 0, 0, 1),
            lease_secs: 3600,
            boot_hold_secs: 300,
        };
        let state =
            Arc::new(Mutex::new(State { leases: Some(Leases::new(pool, Default::default())), ..State::default() }));
        let store = Store::create(&path, 0, &[]).unwrap();
        let (queue, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(run_writer(store, state.clone(), rx));
        let mut waiting = Vec::new();
        for n in 0..50u8 {
            let mut st = state.lock().unwrap();
            let leases = st.leases.as_mut().unwrap();
            leases.request(MacAddr([2, 0, 0, 0, 0, n]), Ipv4Addr::new(10, 0, 0, 10 + n % 11), None, 1000).ok();
            let (done, wait) = oneshot::channel();
            queue.send(Pending { changes: leases.take_changes(), done: Some(done) }).unwrap();
            waiting.push(wait);
        }
        for w in waiting {
            w.await.expect("committed");
        }
        // Every change is in the journal once its reply may go.
        let (_, on_disk) = load(&path).unwrap();
        assert_eq!(on_disk, state.lock().unwrap().leases.as_ref().unwrap().snapshot());
        assert_eq!(on_disk.len(), 11);
        drop(queue);
        writer.await.unwrap();
        assert_eq!(std::fs::read_to_string(journal_path(&path)).unwrap(), journal_header(2));
        assert_eq!(load_snapshot(&path).unwrap(), (2, on_disk));
    }

    #[test]
    fn only_bounded_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.toml");
        let err = |path: &Path| format!("{:#}", load(path).unwrap_err());
        // A FIFO: refused at once, not waited on.
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = err(&path);
        assert!(e.contains("is not a regular file (it is a FIFO)") && e.contains(path.to_str().unwrap()), "{e}");
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        assert!(err(&path).contains("(it is a character device)"), "{}", err(&path));
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(err(&path).contains("(it is a directory)"));
        std::fs::remove_dir(&path).unwrap();
        // A huge MAC, a huge unparsable line: the message names the file and stays short.
        let huge = "a".repeat(5 << 20);
        std::fs::write(&path, format!("[[lease]]\nmac = \"{huge}\"\nip = \"10.0.0.1\"\nexpires = 1\n")).unwrap();
        let e = err(&path);
        assert!(e.contains("line 2: 5242888 bytes long") && e.contains("`mac = \"aaaa") && e.len() < 1000, "{e}");
        let long = "a".repeat(900);
        std::fs::write(&path, format!("[[lease]]\nmac = \"{long}\"\nip = \"10.0.0.1\"\nexpires = 1\n")).unwrap();
        let e = err(&path);
        assert!(e.contains("lease 1: `aaaa") && e.contains("is not a MAC address") && e.len() < 1000, "{}", e.len());
        std::fs::write(&path, format!("[[lease]]\nmac = {long}\n")).unwrap();
        let e = err(&path);
        assert!(e.contains("is damaged") && e.contains("line 2") && e.len() < 1000, "{}: {}", e.len(), &e[..200]);
        // Too big to be a lease file.
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        assert!(err(&path).contains("more than any lease file can be"));
    }
}
