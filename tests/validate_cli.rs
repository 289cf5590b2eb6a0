//! `bramble validate` end to end: the shipped recipes pass, and a recipe with many mistakes gets
//! every one reported in one run, each at its file:line:column with the fix.

mod common;

use common::*;
use predicates::prelude::*;

#[test]
fn builtin_and_shipped_recipes_are_valid() {
    bramble()
        .arg("validate")
        .assert()
        .success()
        .stdout(predicate::str::contains("recipes/default.toml (built in): ok"))
        .stdout(predicate::str::contains("4 clients (4×pi4), dhcp proxy, os raspios-lite-arm64"));
    let recipes = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    // The examples without a key say only that nobody could log in (each lab adds its own).
    for (file, summary, keys) in [
        ("default.toml", "lab `bramble`, 4 clients (4×pi4), dhcp proxy", false),
        ("pi4-proxy.toml", "lab `k3s-rack`, 4 clients (4×pi4), dhcp proxy", true),
        ("mixed-server.toml", "lab `classroom`, 8 clients (6×pi4, 2×pi5), dhcp server", false),
    ] {
        let out = bramble().args(["validate", path_str(&recipes.join(file))]).assert().success();
        let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert!(stdout.contains(summary), "{file}: {stdout}");
        if keys {
            assert!(stderr.is_empty(), "{file}: {stderr}");
        } else {
            assert_eq!(stderr.matches("warning: ").count(), 1, "{file}: {stderr}");
            assert!(stderr.contains("nobody can log in to this lab"), "{file}: {stderr}");
            assert!(stdout.contains("ok (1 warning)"), "{file}: {stdout}");
        }
    }
}

/// recipes/debian.toml as shipped: user pi, no password, no key. Validate and build both say
/// so, naming the key to add; with a key the warning is gone.
#[test]
fn a_lab_nobody_can_log_in_to_is_warned_about_with_the_key_to_add() {
    let recipes = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let debian = recipes.join("debian.toml");
    let out = bramble().args(["validate", path_str(&debian)]).assert().success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains(&format!(
            "warning: {}: nobody can log in to this lab: user `pi` has no password and [server] has no `ssh_keys`",
            debian.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("ssh_keys = [\"ssh-ed25519 AAAA… you@laptop\"]"), "{stderr}");
    assert!(stderr.contains("~/.ssh/id_ed25519.pub"), "{stderr}");
    // The same at build time, before anything is fetched (offline, with nothing cached, the
    // build then stops; the lock goes elsewhere so the repository stays as it is).
    let tmp = tempfile::tempdir().unwrap();
    let out = bramble()
        .args(["build", path_str(&debian), "-o", path_str(&tmp.path().join("out")), "--offline"])
        .args(["--lock", path_str(&tmp.path().join("debian.lock")), "--cache", path_str(&tmp.path().join("cache"))])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("nobody can log in to this lab: user `pi` has no password"), "{stderr}");
    assert!(stderr.contains("ssh_keys = [\"ssh-ed25519 AAAA… you@laptop\"]"), "{stderr}");
    assert!(stderr.contains("cannot resolve"), "{stderr}");
    // With a key: nothing to say.
    let text = std::fs::read_to_string(&debian).unwrap().replace(
        "dhcp = \"proxy\"\n",
        "dhcp = \"proxy\"\nssh_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1dXzLdQzNn3m5bLx0aN3Z me@lab\"]\n",
    );
    let keyed = tmp.path().join("debian.toml");
    std::fs::write(&keyed, text).unwrap();
    bramble().args(["validate", path_str(&keyed)]).assert().success().stderr(predicate::str::is_empty());
}

/// 32-bit Raspberry Pi OS would give an aarch64 daemon and arm64 packages on an armhf system:
/// refused at the name, with the 64-bit name of the same kind.
#[test]
fn thirty_two_bit_catalog_names_are_refused_with_the_64_bit_name() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, arm64) in [
        ("raspios-lite-armhf", "raspios-lite-arm64"),
        ("raspios-armhf", "raspios-arm64"),
        ("raspios-full-armhf", "raspios-full-arm64"),
    ] {
        let path = tmp.path().join(format!("{name}.toml"));
        std::fs::write(&path, format!("[lab]\nname = \"t\"\n\n[os]\ncatalog = \"{name}\"\n")).unwrap();
        let out = bramble().args(["validate", path_str(&path)]).assert().code(1);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert!(stderr.contains(&format!("--> {}:5:11", path.display())), "{stderr}");
        assert!(stderr.contains(&format!("`{name}` is 32-bit Raspberry Pi OS (armhf)")), "{stderr}");
        assert!(stderr.contains(&format!("use catalog = \"{arm64}\"")), "{stderr}");
        bramble()
            .args(["build", path_str(&path), "-o", path_str(&tmp.path().join("out"))])
            .assert()
            .code(1)
            .stderr(predicate::str::contains("has errors; run `bramble validate"));
    }
    assert!(!tmp.path().join("out").exists());
}

const BAD: &str = r#"[lab]
name = "Physics Lab"

[os]
catalog = "raspios-lite-amd64"

[server]
interface = "eth0"
address = "10.42.0.1/24"
dhcp = "server"
range = "10.42.0.100-10.42.1.20"
gatway = "10.42.0.254"

[eeprom]
BOOT_ORDER = "0xf91"

[[client]]
name = "node1"
model = "pi4"
serial = "d978055"
mac = "dc:a6:32:01:36:c2"

[[client]]
name = "node2"
model = "pi6"
serial = "3a1b9c07"
mac = "DC-A6-32-01-36-C2"
address = "10.42.0.1"
"#;

#[test]
fn every_problem_is_reported_at_once_with_location_and_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("lab.toml");
    std::fs::write(&path, BAD).unwrap();
    let p = path.display().to_string();
    let assert = bramble().args(["validate", &p]).assert().code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    let expect = [
        ("2:8", "lab name `Physics Lab` is not usable in hostnames and file names"),
        ("5:11", "`raspios-lite-amd64` is not in the OS catalog"),
        ("11:9", "range 10.42.0.100-10.42.1.20 is not inside the subnet 10.42.0.0/24"),
        ("12:1", "unknown key `gatway` in [server]"),
        ("15:1", "BOOT_ORDER=0xf91: 0x9 in `0xf91` is not a boot mode"),
        ("20:10", "`d978055` is not a serial number: write 8 hex digits, or the 16 of /proc/cpuinfo"),
        ("25:9", "`pi6` is not a model Bramble knows"),
        ("27:7", "MAC address dc:a6:32:01:36:c2 is used by two clients"),
        ("28:11", "10.42.0.1 is the server's or the gateway's address"),
    ];
    for (at, message) in expect {
        assert!(stderr.contains(&format!("--> {p}:{at}")), "missing location {at} for {message}:\n{stderr}");
        assert!(stderr.contains(message), "missing: {message}\n{stderr}");
    }
    for help in [
        "did you mean `raspios-lite-arm64`?",
        "did you mean `gateway`?",
        "use \"pi3\" (3B, 3B+), \"pi4\" (4B, 400, CM4), \"pi5\" (5, 500, CM5) or \"pc\" (a PXE machine)",
        "first used here",
    ] {
        assert!(stderr.contains(help), "missing help: {help}\n{stderr}");
    }
    assert!(stderr.contains(&format!("error: {p}: 9 errors")), "{stderr}");
}

#[test]
fn warnings_do_not_fail_and_quiet_hides_them() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("lab.toml");
    std::fs::write(&path, "[lab]\nname = \"w\"\n[eeprom]\nMY_KEY = 1\n[[client]]\nname = \"a\"\nmodel = \"pi4\"\nserial = \"00000001\"\nmac = \"00:11:22:33:44:55\"\n").unwrap();
    bramble()
        .args(["validate", path_str(&path)])
        .assert()
        .success()
        .stderr(predicate::str::contains("warning: MY_KEY is not a documented bootloader property"))
        .stderr(predicate::str::contains("warning: 00:11:22:33:44:55 does not start with a Raspberry Pi prefix"))
        .stderr(predicate::str::contains("nobody can log in to this lab"))
        .stdout(predicate::str::contains("ok (3 warnings)"));
    bramble().args(["-q", "validate", path_str(&path)]).assert().success().stderr(predicate::str::is_empty());
}

#[test]
fn unreadable_and_malformed_files_name_themselves() {
    bramble()
        .args(["validate", "/nonexistent/lab.toml"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot read recipe /nonexistent/lab.toml"));
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("broken.toml");
    std::fs::write(&path, "[lab]\nname = \"x\n").unwrap();
    bramble()
        .args(["validate", path_str(&path)])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("TOML syntax"))
        .stderr(predicate::str::contains(format!("--> {}:2:", path.display())));
}

/// Where `needle` starts in `src`, as `line:column`.
fn at(src: &str, needle: &str) -> String {
    let offset = src.find(needle).unwrap_or_else(|| panic!("{needle} not in the recipe"));
    let line = src[..offset].matches('\n').count() + 1;
    let column = offset - src[..offset].rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{line}:{column}")
}

const ONE_PI: &str = "[lab]\nname = \"t\"\n\n[[client]]\nname = \"n1\"\nmodel = \"pi4\"\nserial = \"d9780558\"\n";

/// Recipes that were once "ok" though the build refused them or built something wrong: each is
/// refused by validate at the value it is about, with the fix, and by build the same way (build
/// runs the same checks before fetching anything, so it writes nothing).
#[test]
fn wrong_recipes_are_refused_where_they_are_wrong_by_validate_and_build() {
    // 50 settings of 105 bytes each over the pinned BCM2711 file (79 bytes) and BOOT_ORDER=0xf21.
    let settings: String = (0..50).map(|i| format!("X{i:02} = \"{}\"\n", "v".repeat(100))).collect();
    let big = format!("{ONE_PI}[eeprom]\n{settings}");
    let cases: Vec<(&str, String, &str, &str, &str)> = vec![
        (
            "eeprom too big",
            big,
            "[eeprom]",
            "[eeprom]'s settings do not fit the BCM2711 bootloader (Raspberry Pi 4, 400, CM4): bootconf.txt would be 5346 bytes; the bootloader holds at most 4076",
            "remove settings",
        ),
        (
            "empty BOOT_ORDER",
            format!("{ONE_PI}[eeprom]\nBOOT_ORDER = \"\"\n"),
            "BOOT_ORDER = \"\"",
            "BOOT_ORDER = \"\" leaves the bootloader's own order, 0xf41 (SD CARD, USB-MSD, RESTART): the Pi would never boot from the network",
            "remove it for Bramble's 0xf21",
        ),
        (
            "absolute overlay",
            ONE_PI.replace("name = \"t\"\n", "name = \"t\"\noverlays = [\"/etc\"]\n"),
            "\"/etc\"",
            "overlay folder `/etc` must be a folder beside the recipe",
            "write a path relative to the recipe's folder, without `..` or a leading `/`",
        ),
        (
            "long cmdline",
            format!("{ONE_PI}cmdline = \"{}\"\n", "quiet ".repeat(200)),
            "\"quiet",
            "`cmdline` is 1200 bytes; the firmware reads at most 1024 of cmdline.txt, and the OS and Bramble need the rest",
            "keep the client's own arguments to 640 bytes",
        ),
        (
            "TFTP_PREFIX_STR outside the root",
            format!("{ONE_PI}[eeprom]\nTFTP_PREFIX_STR = \"../../etc/\"\n"),
            "TFTP_PREFIX_STR = ",
            "TFTP_PREFIX_STR `../../etc/` is not a folder inside the TFTP root",
            "write a relative folder without `.`, `..` or `//`",
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (what, src, needle, message, help) in cases {
        let path = tmp.path().join("lab.toml");
        std::fs::write(&path, &src).unwrap();
        let p = path_str(&path);
        let assert = bramble().args(["validate", p]).assert().code(1);
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
        let error =
            stderr.split("\n\n").find(|d| d.starts_with("error: ")).unwrap_or_else(|| panic!("{what}: {stderr}"));
        assert!(error.contains(message), "{what}: {error}");
        assert!(error.contains(&format!("--> {p}:{}", at(&src, needle))), "{what}: {error}");
        assert!(error.contains(&format!("help: {help}")), "{what}: {error}");
        assert!(
            stderr.ends_with(&format!("error: {p}: 1 error\n")) || stderr.contains(&format!("error: {p}: 1 error,")),
            "{what}: one error only:\n{stderr}"
        );
        let out = tmp.path().join("out");
        bramble()
            .args(["build", p, "-o", path_str(&out), "--offline"])
            .assert()
            .code(1)
            .stderr(predicate::str::contains(format!("{p} has errors; run `bramble validate {p}` to see them")));
        assert!(!out.exists(), "{what}: build wrote {}", out.display());
    }
}

/// 40,000 `[eeprom]` keys: refused (they cannot fit the bootloader) with one warning per key,
/// in one run (the 40,001st warning is ONE_PI's: nobody can log in). How long it takes is measured in docs/benchmarks.md, not here.
#[test]
fn forty_thousand_eeprom_keys_are_all_reported() {
    let settings: String = (0..40_000).map(|i| format!("K{i:05} = {i}\n")).collect();
    let src = format!("{ONE_PI}[eeprom]\n{settings}");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("lab.toml");
    std::fs::write(&path, &src).unwrap();
    let assert = bramble().args(["validate", path_str(&path)]).assert().code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(stderr.contains("bootconf.txt would be at least"), "{}", &stderr[stderr.len().saturating_sub(2000)..]);
    assert!(stderr.contains(&format!("error: {}: 1 error, 40001 warnings", path.display())));
    assert!(stderr.contains(&format!("--> {}:{}", path.display(), at(&src, "K39999"))));
}
