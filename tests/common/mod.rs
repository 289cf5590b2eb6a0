//! Helpers shared by the end-to-end tests: run the real binary, find the shared fixtures, run
//! third-party tools and insist they exist (`just setup` installs them).

#![allow(dead_code)]

pub mod deb_archive;
pub mod http;
pub mod http_daemon;
pub mod image;
pub mod marker;
pub mod netns;
pub mod pcboot;
pub mod qemu;
pub mod raspios;
pub mod swap_race;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `bramble` binary under test, with a clean environment for reproducibility knobs.
pub fn bramble() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("bramble").expect("bramble binary");
    cmd.env_remove("SOURCE_DATE_EPOCH").env("NO_COLOR", "1");
    cmd
}

/// BRAMBLE_FIXTURES, ../shared/fixtures/eeprom, or a copy fetched by sha256 (see
/// `bramble::fetch::eeprom_fixtures`).
pub fn eeprom_fixtures() -> PathBuf {
    bramble::fetch::eeprom_fixtures::dir()
}

/// One upstream image with its reference outputs from rpi-eeprom-config/-digest.
pub struct EepromFixture {
    pub image: PathBuf,
    pub chip: u32,
}

impl EepromFixture {
    fn sibling(&self, suffix: &str) -> PathBuf {
        let stem = self.image.file_stem().unwrap().to_string_lossy().to_string();
        self.image.with_file_name(format!("{stem}{suffix}"))
    }
    pub fn bootconf(&self) -> PathBuf {
        self.sibling(".bootconf.txt")
    }
    pub fn f21_bootconf(&self) -> PathBuf {
        self.sibling(".f21.bootconf.txt")
    }
    pub fn f21_image(&self) -> PathBuf {
        self.sibling(".f21.bin")
    }
    pub fn f21_sig(&self) -> PathBuf {
        self.sibling(".f21.sig")
    }
    pub fn recovery(&self) -> PathBuf {
        self.image.with_file_name("recovery.bin")
    }
}

/// Every `firmware-27xx/<channel>/pieeprom-<date>.bin` in the fixtures that has references.
pub fn all_eeprom_fixtures() -> Vec<EepromFixture> {
    let mut out = Vec::new();
    for chip_dir in std::fs::read_dir(eeprom_fixtures()).unwrap().map(|e| e.unwrap().path()) {
        let Some(chip) = chip_dir.file_name().and_then(|n| n.to_str()?.strip_prefix("firmware-")?.parse().ok()) else {
            continue;
        };
        for channel in std::fs::read_dir(&chip_dir).unwrap().map(|e| e.unwrap().path()) {
            for file in std::fs::read_dir(&channel).unwrap().map(|e| e.unwrap().path()) {
                let name = file.file_name().unwrap().to_string_lossy().to_string();
                if name.starts_with("pieeprom-") && name.ends_with(".bin") && !name.ends_with(".f21.bin") {
                    let fx = EepromFixture { image: file, chip };
                    if fx.f21_image().exists() {
                        out.push(fx);
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| a.image.cmp(&b.image));
    assert!(out.len() >= 2, "expected the 2711 and 2712 fixtures");
    out
}

/// Run a third-party tool; panic with a hint if it is not installed.
pub fn tool(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); run `just setup` to install the test tools"))
}

/// Run a tool and return its stdout, asserting it succeeded.
pub fn tool_ok(program: &str, args: &[&str]) -> String {
    let out = tool(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `bramble serve` running in the background on a free loopback port, its log collected.
pub struct Daemon {
    child: std::process::Child,
    pub addr: std::net::SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Daemon {
    /// Start with `args` (e.g. `--tftp-root DIR`), TFTP listening on 127.0.0.1 at a port the
    /// kernel picks and no HTTP; returns once the TFTP server says it is serving.
    pub fn start(args: &[&str]) -> Daemon {
        use std::io::BufRead;
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("bramble"))
            .args(["-v", "serve", "--tftp-bind", "127.0.0.1:0", "--no-http"])
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start bramble serve");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("tftp: serving").and_then(|_| line.find("bind=")) {
                    let addr: String = line[at + 5..].chars().take_while(|c| !c.is_whitespace()).collect();
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("bramble serve did not start: {:?}", log.lock().unwrap()));
        Daemon { child, addr: addr.parse().unwrap(), log }
    }

    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// The daemon's process ID (for /proc/<pid>/status).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Wait (bounded) until `count` log lines contain `needle`; return those lines.
    pub fn wait_log(&self, needle: &str, count: usize) -> Vec<String> {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let hits: Vec<String> = self.log().into_iter().filter(|l| l.contains(needle)).collect();
            if hits.len() >= count || std::time::Instant::now() > until {
                return hits;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// sha256 of `bytes` as sha256sum prints it (computed by sha256sum, not by our code).
pub fn sha256_of(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, bytes).unwrap();
    tool_ok("sha256sum", &[path_str(&p)]).split_whitespace().next().unwrap().to_string()
}

/// Incompressible, reproducible bytes (xorshift64): file contents for the image tests.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
