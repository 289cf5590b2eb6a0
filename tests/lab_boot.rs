//! The lab, end to end: `bramble build` makes a Debian arm64 lab (mmdebstrap, rootless), `bramble
//! deploy` puts it in place, and in namespaces this test makes, `bramble serve` (DHCP server,
//! TFTP, HTTP) and a userspace NFS server (nfs-ganesha, as ../shared/e2e/03 uses) boot two arm64
//! UEFI machines from the one shared read-only root: firmware PXE → GRUB → Debian's kernel and
//! initramfs → NFS root → systemd. Each must reach multi-user with its own host name, a
//! read-only root, a writable /var/log and its SSH server running on host keys made at boot, as
//! its serial console shows.

mod common;

use common::netns::{Netns, NsDaemon};
use common::qemu::{self, Firmware, Vm};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Two arm64 machines under TCG on two cores: firmware, 40 MB over TFTP, then systemd.
const BOOT_LIMIT: Duration = Duration::from_secs(900);

fn recipe(macs: &[(&str, &str)]) -> String {
    let mut text = String::from(
        "[lab]\nname = \"e2e-lab\"\noverlays = [\"overlay\"]\n\n[os]\nsource = \"debian\"\n\n\
         [server]\ninterface = \"br0\"\naddress = \"10.77.0.1/24\"\ndhcp = \"server\"\nrange = \"10.77.0.100-10.77.0.150\"\n",
    );
    for (name, mac) in macs {
        text.push_str(&format!(
            "\n[[client]]\nname = \"{name}\"\nmodel = \"pc\"\nmac = \"{mac}\"\nboot = \"os\"\ncmdline = \"console=ttyAMA0\"\n"
        ));
    }
    text
}

/// rpcbind and nfs-ganesha in `ns`, exporting `root` read-only over NFSv3 and v4; in a private
/// /run (rpcbind's socket is a path, shared across namespaces otherwise).
struct NfsServer {
    child: Child,
    log: PathBuf,
}

impl NfsServer {
    fn start(ns: &Netns, root: &Path, work: &Path) -> NfsServer {
        let conf = work.join("ganesha.conf");
        std::fs::create_dir_all(work.join("recov")).unwrap();
        std::fs::write(
            &conf,
            format!(
                "NFS_CORE_PARAM {{ Protocols = 3, 4; NFS_Port = 2049; MNT_Port = 20048; Enable_NLM = false; \
                 Enable_RQUOTA = false; Bind_addr = 10.77.0.1; }}\n\
                 NFSV4 {{ Graceless = true; RecoveryRoot = \"{recov}\"; }}\n\
                 EXPORT {{ Export_Id = 1; Path = \"{root}\"; Pseudo = \"{root}\"; Access_Type = RO; \
                 Squash = No_Root_Squash; Protocols = 3, 4; Transports = TCP, UDP; SecType = sys; FSAL {{ Name = VFS; }} }}\n",
                recov = work.join("recov").display(),
                root = root.display()
            ),
        )
        .unwrap();
        let log = work.join("ganesha.log");
        let script = format!(
            "mount -t tmpfs tmpfs /run && rpcbind -f & sleep 1; exec ganesha.nfsd -F -f '{}' -L '{}' -p '{}' -N NIV_EVENT",
            conf.display(),
            log.display(),
            work.join("ganesha.pid").display()
        );
        let child = Command::new("setsid")
            .args(["ip", "netns", "exec", &ns.name, "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nfs-ganesha (apt-get install nfs-ganesha nfs-ganesha-vfs rpcbind)");
        std::thread::sleep(Duration::from_secs(3));
        NfsServer { child, log }
    }
}

impl Drop for NfsServer {
    fn drop(&mut self) {
        // setsid made the shell a group leader: signal the whole group (rpcbind and ganesha).
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).output();
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).output();
        let _ = self.child.wait();
    }
}

#[test]
fn two_machines_boot_one_shared_root() {
    let _one_at_a_time = qemu::serial_lock();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let machines = [("vm1", "52:54:00:77:00:21"), ("vm2", "52:54:00:77:00:22")];
    std::fs::write(dir.join("lab.toml"), recipe(&machines)).unwrap();
    common::marker::write_overlay(dir);
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-cache/bramble-cache");
    common::bramble()
        .arg("build")
        .arg(dir.join("lab.toml"))
        .arg("-o")
        .arg(dir.join("out"))
        .arg("--cache")
        .arg(&cache)
        .timeout(Duration::from_secs(2400))
        .assert()
        .success();
    let dest = dir.join("srv");
    common::bramble()
        .arg("deploy")
        .arg(dir.join("out/lab"))
        .arg(&dest)
        .args(["--no-exports", "--no-service"])
        .assert()
        .success();
    let os_root = std::fs::read_dir(dest.join("os")).unwrap().next().unwrap().unwrap().path().join("root");
    assert!(os_root.join("etc/os-release").exists(), "deploy unpacked no root at {}", os_root.display());

    let ns = Netns::new("lab");
    qemu::bridge(&ns, &["tap1", "tap2"]);
    let nfs = NfsServer::start(&ns, &os_root, dir);
    let config = dest.join("daemon.toml");
    let daemon = NsDaemon::start(&ns, &["--config", config.to_str().unwrap()]);
    let mut vms: Vec<Vm> = machines
        .iter()
        .zip(["tap1", "tap2"])
        .map(|((_, mac), tap)| Vm::start(&ns, tap, Firmware::Arm64Uefi, mac, 1024, dir))
        .collect();
    for ((name, _), vm) in machines.iter().zip(vms.iter_mut()) {
        let want = common::marker::expected(name);
        let ok = vm.wait_for(&[&want], BOOT_LIMIT);
        assert!(
            ok,
            "{name} did not boot the shared root to multi-user.\nconsole:\n{}\ndaemon:\n{}\nnfs:\n{}",
            vm.tail(60),
            daemon.log().join("\n"),
            std::fs::read_to_string(&nfs.log).unwrap_or_default()
        );
    }
}
