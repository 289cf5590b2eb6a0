//! A recipe overlay for the boot tests: a unit on the client root that waits for multi-user and
//! then prints what the test checks on the console (host name, the state of multi-user and SSH,
//! whether / and /var/log are writable).

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

const UNIT: &str = "[Unit]\nDescription=Bramble end-to-end marker\n\n[Service]\nType=simple\n\
ExecStart=/usr/local/bin/bramble-e2e-marker\n\n[Install]\nWantedBy=multi-user.target\n";

const SCRIPT: &str = r#"#!/bin/sh
for i in $(seq 1 600); do
    [ "$(systemctl is-active multi-user.target)" = active ] && break
    sleep 1
done
for i in $(seq 1 60); do [ "$(systemctl is-active ssh)" = active ] && break; sleep 1; done
if touch /var/log/bramble-e2e 2>/dev/null; then varlog=writable; else varlog=readonly; fi
if touch /bramble-e2e 2>/dev/null; then root=writable; else root=readonly; fi
echo "BRAMBLE-E2E host=$(hostname) multi-user=$(systemctl is-active multi-user.target) root=$root varlog=$varlog ssh=$(systemctl is-active ssh)" >/dev/console
"#;

/// Writes `overlay/client/…` under `dir` (the recipe's folder); the recipe names it with
/// `[lab] overlays = ["overlay"]`.
pub fn write_overlay(dir: &Path) {
    let units = dir.join("overlay/client/etc/systemd/system");
    std::fs::create_dir_all(units.join("multi-user.target.wants")).unwrap();
    std::fs::write(units.join("bramble-e2e.service"), UNIT).unwrap();
    symlink("/etc/systemd/system/bramble-e2e.service", units.join("multi-user.target.wants/bramble-e2e.service"))
        .unwrap();
    let script = dir.join("overlay/client/usr/local/bin/bramble-e2e-marker");
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    std::fs::write(&script, SCRIPT).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The line a client named `host` prints when it booted as the lab expects.
pub fn expected(host: &str) -> String {
    format!("BRAMBLE-E2E host={host} multi-user=active root=readonly varlog=writable ssh=active")
}
