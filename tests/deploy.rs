//! `bramble deploy` as root into a system root of its own (`--root`): a lab with per-client
//! roots built from the Raspberry Pi OS-shaped image, deployed, written to by its "clients"
//! (files, SSH host keys), redeployed changed, reset one client at a time; the service it
//! installs judged by systemd itself (systemd-analyze verify, systemctl --root is-enabled,
//! the account systemd-sysusers made); and its file errors with capabilities dropped
//! (setpriv), each naming the path and the step.

mod common;

use bramble::source::eeprom_release::RPI_EEPROM;
use common::http::HttpServer;
use common::raspios::site;
use common::*;
use std::path::Path;
use std::process::Command;

fn recipe(url: &str, sha: &str, clients: &[(&str, &str)]) -> String {
    let mut text = format!(
        "[lab]\nname = \"keep\"\nroot = \"per-client\"\nssh_host_keys = \"per-client\"\n\n\
         [os]\nurl = \"{url}\"\nsha256 = \"{sha}\"\n"
    );
    for (name, serial) in clients {
        text.push_str(&format!("\n[[client]]\nname = \"{name}\"\nmodel = \"pi4\"\nserial = \"{serial}\"\n"));
    }
    text
}

fn build(dir: &Path, server: &HttpServer, recipe: &str, out: &str) {
    std::fs::write(dir.join(format!("{out}.toml")), recipe).unwrap();
    bramble()
        .args(["build", path_str(&dir.join(format!("{out}.toml"))), "-o", path_str(&dir.join(out))])
        .args(["--cache", path_str(&dir.join("cache"))])
        .args(["--mirror", &format!("{RPI_EEPROM}={}", server.url("/rpi-eeprom"))])
        .assert()
        .success();
}

fn deploy(lab: &Path, sys: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    bramble().arg("deploy").arg(lab).arg(sys.join("srv/bramble")).args(["--root", path_str(sys)]).args(extra).assert()
}

/// What a client's first boot and its user leave in its own root.
fn write_state(root: &Path, name: &str) {
    std::fs::write(root.join(format!("clients/{name}/root/etc/ssh/ssh_host_ed25519_key")), format!("key of {name}\n"))
        .unwrap();
    std::fs::write(root.join(format!("clients/{name}/root/home/pi/notes.txt")), format!("{name}'s work\n")).unwrap();
}

fn state(root: &Path, name: &str) -> Option<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(root.join(format!("clients/{name}/root/{p}"))).ok();
    Some((read("etc/ssh/ssh_host_ed25519_key")?, read("home/pi/notes.txt")?))
}

#[test]
fn client_roots_survive_a_redeploy_unless_reset_and_the_service_is_installed() {
    let image = common::raspios::build();
    let (server, sha) = site(&image.xz);
    let work = tempfile::tempdir().unwrap();
    let d = work.path();
    let url = server.url("/pi.img.xz");
    build(d, &server, &recipe(&url, &sha, &[("node1", "0000000a"), ("node2", "0000000b")]), "a");
    // Changed: node2 is now found by another serial, and node3 joins.
    build(d, &server, &recipe(&url, &sha, &[("node1", "0000000a"), ("node2", "0000000c"), ("node3", "0000000d")]), "b");
    let sys = d.join("sys");
    let lab = sys.join("srv/bramble");
    // The system the service is for has systemd's own units and /bin/kill (ExecReload's), as
    // verify checks the unit against them.
    std::fs::create_dir_all(sys.join("usr/lib/systemd")).unwrap();
    tool_ok("cp", &["-a", "/usr/lib/systemd/system", path_str(&sys.join("usr/lib/systemd/"))]);
    std::fs::create_dir_all(sys.join("usr/bin")).unwrap();
    std::fs::copy("/usr/bin/kill", sys.join("usr/bin/kill")).unwrap();
    std::os::unix::fs::symlink("usr/bin", sys.join("bin")).unwrap();

    // Leases of a daemon run by hand beside daemon.toml go to the service's state folder.
    let leases = "[[lease]]\nmac = \"02:00:00:00:00:31\"\nip = \"10.42.0.100\"\nexpires = 1800000000\n";
    std::fs::create_dir_all(&lab).unwrap();
    std::fs::write(lab.join("leases.toml"), leases).unwrap();
    let out = deploy(&d.join("a/lab"), &sys, &[]).success().get_output().stdout.clone();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("systemd is not running here"), "{out}");
    assert_eq!(std::fs::read_to_string(sys.join("var/lib/bramble/leases.toml")).unwrap(), leases);
    assert_eq!(std::fs::read_to_string(lab.join("leases.toml")).unwrap(), leases);
    // The service, judged by systemd: the unit verifies against the root's files, is enabled,
    // and its account exists.
    let unit = sys.join("etc/systemd/system/bramble.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        text.contains(
            "ExecStart=/usr/local/bin/bramble serve --config /srv/bramble/daemon.toml --lease-file /var/lib/bramble/leases.toml"
        ) && text.contains("ExecReload=/bin/kill -HUP $MAINPID")
            && text.contains("ProtectSystem=strict"),
        "{text}"
    );
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no", &format!("--root={}", sys.display()), "/etc/systemd/system/bramble.service"])
        .output()
        .expect("systemd-analyze");
    // Warnings (an unknown key, a missing program) are on stderr even when it succeeds.
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
    // As locked down as the image's (tests/server_image.rs).
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--root", path_str(&sys), "bramble.service"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout).into_owned();
    let score: f64 = report
        .lines()
        .find_map(|l| l.split("Overall exposure level for bramble.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {report}{}", String::from_utf8_lossy(&security.stderr)));
    assert!(score <= 2.5, "bramble.service exposure {score}:\n{report}");
    let enabled = Command::new("systemctl")
        .args([&format!("--root={}", sys.display()), "is-enabled", "bramble.service"])
        .output()
        .expect("systemctl");
    assert_eq!(String::from_utf8_lossy(&enabled.stdout).trim(), "enabled");
    let passwd = std::fs::read_to_string(sys.join("etc/passwd")).unwrap();
    assert!(
        passwd.lines().any(|l| l.starts_with("bramble:x:") && l.ends_with(":/var/lib/bramble:/usr/sbin/nologin")),
        "{passwd}"
    );
    assert!(
        std::fs::read_to_string(sys.join("etc/exports.d/bramble.exports"))
            .unwrap()
            .contains("/srv/bramble/clients/node1/root")
    );

    for name in ["node1", "node2"] {
        write_state(&lab, name);
    }
    let out = deploy(&d.join("b/lab"), &sys, &[]).success().get_output().stdout.clone();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("kept clients/node1/root"), "{out}");
    for name in ["node1", "node2"] {
        assert_eq!(state(&lab, name), Some((format!("key of {name}\n"), format!("{name}'s work\n"))), "{name}");
    }
    assert!(lab.join("clients/node3/root/etc/os-release").exists(), "the new client gets the build's root");
    assert_eq!(state(&lab, "node3"), None);
    let daemon_toml = std::fs::read_to_string(lab.join("daemon.toml")).unwrap();
    assert!(daemon_toml.contains("0000000c") && daemon_toml.contains("node3"), "the changed lab is deployed");

    // A lab without node3 would delete node3's root: refused, everything left as it was.
    write_state(&lab, "node3");
    let failed = deploy(&d.join("a/lab"), &sys, &[]).failure().get_output().stderr.clone();
    let failed = String::from_utf8_lossy(&failed);
    assert!(failed.contains("no client node3") && failed.contains("--reset-client node3"), "{failed}");
    assert!(state(&lab, "node3").is_some() && std::fs::read_to_string(lab.join("daemon.toml")).unwrap() == daemon_toml);
    let siblings: Vec<_> = std::fs::read_dir(sys.join("srv")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(siblings, ["bramble"], "no half-made lab is left beside it");

    // A reset asked for by name replaces that root only; --reset replaces them all.
    let out = deploy(&d.join("b/lab"), &sys, &["--reset-client", "node1"]).success().get_output().stdout.clone();
    assert!(String::from_utf8_lossy(&out).contains("reset clients/node1/root"));
    assert_eq!(state(&lab, "node1"), None);
    assert!(lab.join("clients/node1/root/etc/os-release").exists());
    assert!(state(&lab, "node2").is_some() && state(&lab, "node3").is_some());
    let misspelt = deploy(&d.join("b/lab"), &sys, &["--reset-client", "nod2"]).failure().get_output().stderr.clone();
    assert!(String::from_utf8_lossy(&misspelt).contains("--reset-client nod2: no deployed client root by that name"));
    deploy(&d.join("b/lab"), &sys, &["--reset"]).success();
    for name in ["node1", "node2", "node3"] {
        assert_eq!(state(&lab, name), None, "{name}");
    }
}

/// `setpriv` with `args`, then `bramble deploy LAB DEST …`.
fn deploy_as(args: &[&str], lab: &Path, dest: &Path) -> String {
    let out = Command::new("setpriv")
        .args(args)
        .arg("--")
        .arg(assert_cmd::cargo::cargo_bin("bramble"))
        .arg("deploy")
        .arg(lab)
        .arg(dest)
        .args(["--no-exports", "--no-service"])
        .env("NO_COLOR", "1")
        .output()
        .expect("setpriv");
    assert!(!out.status.success(), "deploy succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn file_errors_name_the_path_and_the_step() {
    let work = tempfile::tempdir().unwrap();
    let d = work.path();
    let lab = d.join("lab");
    std::fs::create_dir_all(lab.join("clients/a")).unwrap();
    std::fs::write(lab.join("daemon.toml"), "lab = \".\"\ninterface = \"lo\"\n").unwrap();
    std::fs::write(lab.join("clients/a/config.txt"), "x\n").unwrap();
    // Root without the capabilities that pass over file permissions: permissions apply again.
    let no_override = ["--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"];

    let err = deploy_as(&["--reuid=nobody", "--regid=nogroup", "--clear-groups"], &lab, &d.join("srv/lab"));
    assert!(err.contains("run it as root"), "{err}");

    // A destination folder nobody may write in.
    let locked = d.join("locked");
    std::fs::create_dir(&locked).unwrap();
    tool_ok("chown", &["nobody:nogroup", path_str(&locked)]);
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let err = deploy_as(&no_override, &lab, &locked.join("lab"));
    assert!(
        err.contains(&format!("cannot create the folder {}/.lab.new-", locked.display()))
            && err.contains("Permission denied"),
        "{err}"
    );

    // A file of the lab that cannot be read.
    let secret = lab.join("clients/a/config.txt");
    tool_ok("chown", &["nobody:nogroup", path_str(&secret)]);
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let err = deploy_as(&no_override, &lab, &d.join("srv/lab"));
    assert!(
        err.contains(&format!("cannot copy {} to ", secret.display())) && err.contains("Permission denied"),
        "{err}"
    );
    assert!(!d.join("srv/lab").exists());
    let left: Vec<_> = std::fs::read_dir(d.join("srv")).unwrap().collect();
    assert!(left.is_empty(), "the half-made copy is removed");

    // A destination whose parent is a file.
    std::fs::write(d.join("file"), "").unwrap();
    let err = deploy_as(&["--inh-caps=-all"], &lab, &d.join("file/lab"));
    assert!(err.contains(&format!("cannot create the folder {} for the lab", d.join("file").display())), "{err}");
}
