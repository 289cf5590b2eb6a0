//! The daemon's systemd service on a server the user runs: the same hardened unit the server
//! image carries (`overlays/server/etc/systemd/system/bramble.service`), pointed at the
//! deployed lab; its system user (through systemd-sysusers); enabled as `systemctl enable`
//! does it (the `multi-user.target.wants` symlink); and on a running system, started, or
//! reloaded when it already runs, which keeps its transfers and leases.

use super::join_root;
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The server image's unit: one description of the service.
const IMAGE_UNIT: &str = include_str!("../../overlays/server/etc/systemd/system/bramble.service");
pub const UNIT_NAME: &str = "bramble.service";
pub const UNIT_PATH: &str = "/etc/systemd/system/bramble.service";
/// What `systemctl enable` makes for `WantedBy=multi-user.target`.
pub const WANTS_LINK: &str = "/etc/systemd/system/multi-user.target.wants/bramble.service";
pub const SYSUSERS_PATH: &str = "/usr/lib/sysusers.d/bramble.conf";
/// The same account the server image makes (`lab/server_root.rs`).
const SYSUSERS: &str = "# The bramble daemon's account, for systemd-sysusers (installed by `bramble deploy`).\n\
u bramble - \"Bramble boot daemon\" /var/lib/bramble /usr/sbin/nologin\n";
/// Where the program goes when the one running lies where the unit cannot see it.
pub const PROGRAM: &str = "/usr/local/bin/bramble";

/// Whether the hardened unit can serve a lab at `lab_dir` (as the server sees it).
pub fn check_lab_dir(lab_dir: &str) -> Result<()> {
    // ExecStart= and ReadOnlyPaths= would need quoting and escaping for these.
    if let Some(c) = lab_dir.chars().find(|c| c.is_whitespace() || c.is_control() || "\"'\\%$;".contains(*c)) {
        bail!(
            "the service cannot name {lab_dir} (it holds {c:?}): deploy to a plain path such as /srv/bramble, or give --no-service"
        );
    }
    // ProtectHome=yes hides these; PrivateTmp=yes gives the service its own /tmp.
    for hidden in ["/home", "/root", "/run/user", "/tmp", "/var/tmp"] {
        if Path::new(lab_dir).starts_with(hidden) {
            bail!(
                "the service cannot see {lab_dir}: its unit hides {hidden} (ProtectHome, PrivateTmp); \
                 deploy to /srv/bramble, or give --no-service and run `bramble serve` yourself"
            );
        }
    }
    Ok(())
}

/// The image's unit for a lab at `lab_dir`, run by `program`: only ExecStart= (its config and
/// its leases in the unit's StateDirectory, as the image keeps them) and ReadOnlyPaths= differ.
pub fn unit(program: &str, lab_dir: &str) -> String {
    let mut text = format!("# The server image's unit, installed by `bramble deploy` for the lab in {lab_dir}.\n");
    for line in IMAGE_UNIT.lines() {
        if line.starts_with("ExecStart=") {
            text.push_str(&format!(
                "ExecStart={program} serve --config {lab_dir}/daemon.toml --lease-file {}\n",
                crate::lab::plan::SERVER_LEASE_FILE
            ));
        } else if line.starts_with("ReadOnlyPaths=") {
            text.push_str(&format!("ReadOnlyPaths={lab_dir}\n"));
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

fn write(root: &Path, path: &str, bytes: &[u8], what: &str) -> Result<PathBuf> {
    let target = join_root(root, Path::new(path));
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder {} for {what}", dir.display()))?;
    }
    crate::output::write_file(&target, bytes)
        .with_context(|| format!("cannot install {what} as {}", target.display()))?;
    Ok(target)
}

/// The program the unit runs: this one where it already lies under /usr on the live system,
/// else a copy in /usr/local/bin (a home folder is hidden from the service; an image's root
/// needs its own).
fn program(root: &Path, live: bool, out: &mut dyn Write) -> Result<String> {
    let exe = std::env::current_exe().context("cannot find the running bramble program")?;
    let exe = exe.canonicalize().with_context(|| format!("cannot find the running program {}", exe.display()))?;
    if live && exe.starts_with("/usr") {
        return exe.to_str().map(str::to_string).context("the program's path is not UTF-8");
    }
    let bytes = std::fs::read(&exe).with_context(|| format!("cannot read the running program {}", exe.display()))?;
    let target = join_root(root, Path::new(PROGRAM));
    if std::fs::read(&target).ok().as_deref() != Some(&bytes[..]) {
        let target = write(root, PROGRAM, &bytes, "the bramble program")?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", target.display()))?;
        writeln!(out, "installed {} as {}", exe.display(), target.display())?;
    }
    Ok(PROGRAM.to_string())
}

/// Run a system tool, its failure an error naming it and what it said.
fn run_tool(program: &str, args: &[&str], what: &str) -> Result<()> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program} to {what}: is systemd installed?"))?;
    if !output.status.success() {
        bail!(
            "`{program} {}` failed to {what} ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The service keeps its leases in its StateDirectory; a daemon run by hand kept them beside
/// daemon.toml. The first install carries them over, so clients keep their addresses.
fn carry_leases(root: &Path, lab_dir: &str, out: &mut dyn Write) -> Result<()> {
    let state = join_root(root, Path::new(crate::lab::plan::SERVER_LEASE_FILE));
    let by_hand = join_root(root, Path::new(lab_dir)).join(crate::lab::daemon_toml::default_lease_file());
    if state.exists() || !by_hand.exists() {
        return Ok(());
    }
    let dir = state.parent().expect("has a parent");
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the folder {} for the leases", dir.display()))?;
    let journal = crate::daemon::dhcp::lease_file::journal_path;
    // The journal holds what was ACKed since the last snapshot: the two go together.
    for (from, to) in [(journal(&by_hand), journal(&state)), (by_hand.clone(), state.clone())] {
        if from.exists() {
            std::fs::copy(&from, &to)
                .with_context(|| format!("cannot carry the leases {} to {}", from.display(), to.display()))?;
        }
    }
    writeln!(out, "carried the leases {} to {}", by_hand.display(), state.display())?;
    Ok(())
}

/// Install the unit and its user under `root`, enable it, and on the live system with systemd
/// running, start it or (already running) reload it with the new lab.
pub fn install(root: &Path, lab_dir: &str, out: &mut dyn Write) -> Result<()> {
    let live = root == Path::new("/");
    let program = program(root, live, out)?;
    let unit_file = write(root, UNIT_PATH, unit(&program, lab_dir).as_bytes(), "the bramble unit")?;
    write(root, SYSUSERS_PATH, SYSUSERS.as_bytes(), "the bramble account")?;
    let root_arg = format!("--root={}", root.display());
    let mut args = vec!["bramble.conf"];
    if !live {
        args.insert(0, &root_arg);
    }
    run_tool("systemd-sysusers", &args, "create the bramble account")?;
    let link = join_root(root, Path::new(WANTS_LINK));
    let dir = link.parent().expect("has a parent");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the folder {}", dir.display()))?;
    if std::fs::read_link(&link).ok().as_deref() != Some(Path::new(UNIT_PATH)) {
        if link.symlink_metadata().is_ok() {
            std::fs::remove_file(&link).with_context(|| format!("cannot replace {}", link.display()))?;
        }
        std::os::unix::fs::symlink(UNIT_PATH, &link)
            .with_context(|| format!("cannot enable the unit: cannot create the symlink {}", link.display()))?;
    }
    writeln!(out, "installed {} and enabled it ({})", unit_file.display(), link.display())?;
    carry_leases(root, lab_dir, out)?;
    if !live || !Path::new("/run/systemd/system").exists() {
        writeln!(out, "systemd is not running here: {UNIT_NAME} starts at the next boot")?;
        return Ok(());
    }
    run_tool("systemctl", &["daemon-reload"], "read the new unit")?;
    run_tool("systemctl", &["reload-or-restart", UNIT_NAME], "start or reload the daemon")
        .context("see `journalctl -u bramble` for what the daemon said")?;
    writeln!(
        out,
        "{UNIT_NAME} serves the new lab (started, or reloaded keeping its transfers and leases); \
         `systemctl reload bramble` reloads it again"
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_is_the_images_pointed_at_the_lab() {
        let text = unit("/usr/local/bin/bramble", "/srv/lab");
        assert!(text.contains(
            "\nExecStart=/usr/local/bin/bramble serve --config /srv/lab/daemon.toml --lease-file /var/lib/bramble/leases.toml\n"
        ));
        assert!(text.contains("\nReadOnlyPaths=/srv/lab\n"));
        assert!(text.contains("\nExecReload=/bin/kill -HUP $MAINPID\n"));
        // Every other line is the image's, hardening included.
        let changed = |l: &&str| l.starts_with("ExecStart=") || l.starts_with("ReadOnlyPaths=");
        let image: Vec<&str> = IMAGE_UNIT.lines().filter(|l| !changed(l)).collect();
        let ours: Vec<&str> = text.lines().skip(1).filter(|l| !changed(l)).collect();
        assert_eq!(ours, image);
        assert!(image.contains(&"ProtectSystem=strict") && image.contains(&"User=bramble"));
    }

    #[test]
    fn labs_the_unit_cannot_see_are_refused() {
        assert!(check_lab_dir("/srv/bramble").is_ok());
        for bad in ["/home/me/lab", "/tmp/lab", "/root/lab", "/srv/my lab", "/srv/100%"] {
            assert!(check_lab_dir(bad).is_err(), "{bad}");
        }
        let e = check_lab_dir("/home/me/lab").unwrap_err().to_string();
        assert!(e.contains("hides /home") && e.contains("--no-service"), "{e}");
    }
}
