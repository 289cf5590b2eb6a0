//! Network namespaces for tests that need real interfaces (DHCP broadcasts, SO_BINDTODEVICE):
//! each test creates its own, named with its tag and the process id, and removes them when the
//! guard drops, also when the test fails. Traffic stays inside them. Needs root.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("bt-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        super::tool_ok("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NS ARGS…`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        super::tool_ok("ip", &all);
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// A server namespace and a client namespace joined by two veth pairs: `veth0` (10.77.0.1/24)
/// ↔ `eth0`, the lab link, and `veth1` (10.78.0.1/24) ↔ `eth1`, another network.
pub struct Lab {
    pub server: Netns,
    pub client: Netns,
}

impl Lab {
    pub fn new(tag: &str) -> Lab {
        let server = Netns::new(&format!("{tag}-s"));
        let client = Netns::new(&format!("{tag}-c"));
        for (ours, theirs, addr) in [("veth0", "eth0", "10.77.0.1/24"), ("veth1", "eth1", "10.78.0.1/24")] {
            server.ip(&["link", "add", ours, "type", "veth", "peer", "name", theirs, "netns", &client.name]);
            server.ip(&["addr", "add", addr, "dev", ours]);
            server.ip(&["link", "set", ours, "up"]);
            client.ip(&["link", "set", theirs, "up"]);
        }
        Lab { server, client }
    }
}

/// `bramble serve` running inside a namespace, its log collected; stopped with SIGTERM (as
/// systemd does) on drop.
pub struct NsDaemon {
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
}

impl NsDaemon {
    /// Start `bramble -v serve ARGS` in `ns`; returns once the DHCP server says it is serving.
    pub fn start(ns: &Netns, args: &[&str]) -> NsDaemon {
        let mut command = ns.command(assert_cmd::cargo::cargo_bin("bramble").to_str().expect("utf-8 path"));
        command.args(["-v", "serve"]).args(args);
        NsDaemon::launch(command)
    }

    /// As [`NsDaemon::start`], in a mount namespace of its own where `read_only` is bound
    /// read-only over itself, as systemd does for the unit's `ReadOnlyPaths=`.
    pub fn start_read_only(ns: &Netns, read_only: &std::path::Path, args: &[&str]) -> NsDaemon {
        let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let dir = quote(read_only.to_str().expect("utf-8 path"));
        let bramble = quote(assert_cmd::cargo::cargo_bin("bramble").to_str().expect("utf-8 path"));
        let args: Vec<String> = args.iter().map(|a| quote(a)).collect();
        let script = format!("mount --bind -o ro {dir} {dir} && exec {bramble} -v serve {}", args.join(" "));
        let mut command = ns.command("unshare");
        command.args(["--mount", "--propagation", "slave", "sh", "-c", &script]);
        NsDaemon::launch(command)
    }

    fn launch(mut command: Command) -> NsDaemon {
        let mut child = command
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bramble serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let daemon = NsDaemon { child: Some(child), log };
        if daemon.wait_log("dhcp: serving", 1).is_empty() {
            panic!("bramble serve did not start: {:#?}", daemon.log());
        }
        daemon
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Wait (at most 15 s) until `count` log lines contain `needle`; return those lines.
    pub fn wait_log(&self, needle: &str, count: usize) -> Vec<String> {
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            let hits: Vec<String> = self.log().into_iter().filter(|l| l.contains(needle)).collect();
            if hits.len() >= count || Instant::now() > until {
                return hits;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then wait (at most 10 s) for it to exit; true if it exited by itself.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return true };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).output();
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for NsDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}

impl NsDaemon {
    /// The daemon's process id (`ip netns exec` execs it, so it is the child's).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Wait (at most 10 s) for the daemon to exit by itself (say, killed by a test); its status.
    pub fn wait_exit(&mut self) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}
