//! `bramble eeprom` end to end: every fixture reproduced byte for byte against Raspberry Pi's
//! own rpi-eeprom-config/rpi-eeprom-digest outputs, errors checked by their messages, and the
//! update card judged by sfdisk, fsck.fat, mtools, cmp and sha256sum.

mod common;

use common::*;
use predicates::prelude::*;
use std::path::Path;

/// The fixtures' .sig files were made with this SOURCE_DATE_EPOCH (fixtures SOURCES.md).
const FIXTURE_EPOCH: &str = "1787152470";

/// 1-based offsets where two files differ, as `cmp -l` lists them.
fn differing_offsets(a: &Path, b: &Path) -> Vec<usize> {
    let out = tool("cmp", &["-l", path_str(a), path_str(b)]);
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split_whitespace().next()?.parse().ok()).collect()
}

fn sha256sum(path: &Path) -> String {
    tool_ok("sha256sum", &[path_str(path)]).split_whitespace().next().unwrap().to_string()
}

/// Where the update timestamp lives (research/pi-netboot.md §3.5, measured with rpi-eeprom-config).
fn updatetime_offsets(chip: u32) -> &'static [usize] {
    match chip {
        2711 => &[524_280],
        _ => &[26_552, 662_824],
    }
}

#[test]
fn set_with_config_file_reproduces_rpi_eeprom_config() {
    let tmp = tempfile::tempdir().unwrap();
    for fx in all_eeprom_fixtures() {
        let out = tmp.path().join("out.bin");
        bramble()
            .args([
                "eeprom",
                "set",
                path_str(&fx.image),
                "--out",
                path_str(&out),
                "--config",
                path_str(&fx.f21_bootconf()),
            ])
            .assert()
            .success();
        assert!(differing_offsets(&out, &fx.f21_image()).is_empty(), "{}", fx.image.display());
    }
}

#[test]
fn set_with_key_value_reproduces_rpi_eeprom_config() {
    // The fixtures' f21 configs were made by replacing BOOT_ORDER's line (2712) or appending
    // one (2711): exactly what a KEY=VALUE edit does.
    let tmp = tempfile::tempdir().unwrap();
    for fx in all_eeprom_fixtures() {
        let out = tmp.path().join("out.bin");
        bramble()
            .args(["eeprom", "set", path_str(&fx.image), "-o", path_str(&out), "BOOT_ORDER=0xf21"])
            .assert()
            .success()
            .stderr(predicate::str::contains("BOOT_ORDER=0xf21 (SD CARD, NETWORK, RESTART)"));
        assert!(differing_offsets(&out, &fx.f21_image()).is_empty(), "{}", fx.image.display());
    }
}

#[test]
fn extracted_config_written_back_gives_the_input_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    for fx in all_eeprom_fixtures() {
        let extracted = bramble().args(["eeprom", "show", "--config-only", path_str(&fx.image)]).output().unwrap();
        assert!(extracted.status.success());
        assert_eq!(extracted.stdout, std::fs::read(fx.bootconf()).unwrap());
        let conf = tmp.path().join("bootconf.txt");
        std::fs::write(&conf, &extracted.stdout).unwrap();
        // Round trip through a different config and back.
        let f21 = tmp.path().join("f21.bin");
        let back = tmp.path().join("back.bin");
        bramble()
            .args(["eeprom", "set", path_str(&fx.image), "-o", path_str(&f21), "BOOT_ORDER=0xf21"])
            .assert()
            .success();
        bramble()
            .args(["eeprom", "set", path_str(&f21), "-o", path_str(&back), "--config", path_str(&conf)])
            .assert()
            .success();
        assert_eq!(sha256sum(&back), sha256sum(&fx.image), "{}", fx.image.display());
        // And in place.
        let copy = tmp.path().join("copy.bin");
        std::fs::copy(&fx.image, &copy).unwrap();
        bramble()
            .args(["eeprom", "set", path_str(&copy), "-o", path_str(&copy), "--config", path_str(&conf)])
            .assert()
            .success();
        assert!(differing_offsets(&copy, &fx.image).is_empty());
    }
}

#[test]
fn sign_reproduces_rpi_eeprom_digest() {
    let tmp = tempfile::tempdir().unwrap();
    for fx in all_eeprom_fixtures() {
        let sig = tmp.path().join("a.sig");
        bramble()
            .env("SOURCE_DATE_EPOCH", FIXTURE_EPOCH)
            .args(["eeprom", "sign", path_str(&fx.f21_image()), "--out", path_str(&sig)])
            .assert()
            .success();
        assert_eq!(std::fs::read(&sig).unwrap(), std::fs::read(fx.f21_sig()).unwrap(), "{}", fx.image.display());
        let sig2 = tmp.path().join("b.sig");
        bramble()
            .args(["eeprom", "sign", path_str(&fx.f21_image()), "-o", path_str(&sig2), "--timestamp", FIXTURE_EPOCH])
            .assert()
            .success();
        assert_eq!(std::fs::read(&sig2).unwrap(), std::fs::read(fx.f21_sig()).unwrap());
        let text = std::fs::read_to_string(&sig).unwrap();
        assert_eq!(text.lines().next().unwrap(), sha256sum(&fx.f21_image()));
    }
}

#[test]
fn timestamp_changes_only_the_update_timestamp_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    for fx in all_eeprom_fixtures() {
        let out = tmp.path().join("ts.bin");
        bramble()
            .args([
                "eeprom",
                "set",
                path_str(&fx.image),
                "-o",
                path_str(&out),
                "--timestamp",
                "1800000000",
                "BOOT_ORDER=0xf21",
            ])
            .assert()
            .success();
        let expected: Vec<usize> = updatetime_offsets(fx.chip).iter().flat_map(|&at| at + 1..=at + 8).collect();
        let diff = differing_offsets(&out, &fx.f21_image());
        assert!(!diff.is_empty() && diff.iter().all(|o| expected.contains(o)), "{diff:?}");
        let bytes = std::fs::read(&out).unwrap();
        for &at in updatetime_offsets(fx.chip) {
            assert_eq!(&bytes[at..at + 4], &(!1_800_000_000u32).to_le_bytes());
            assert_eq!(&bytes[at + 4..at + 8], &1_800_000_000u32.to_le_bytes());
        }
        bramble()
            .args(["eeprom", "show", path_str(&out)])
            .assert()
            .success()
            .stdout(predicate::str::contains("2027-01-15 08:00:00 UTC (update timestamp 1800000000)"));
    }
}

#[test]
fn show_names_chip_build_and_boot_modes() {
    for fx in all_eeprom_fixtures() {
        let expected_order = if fx.chip == 2711 {
            "BOOT_ORDER  0xf41 (not set: the bootloader's default): SD CARD, USB-MSD, RESTART"
        } else {
            "BOOT_ORDER  0xf461: SD CARD, NVME, USB-MSD, RESTART"
        };
        bramble()
            .args(["eeprom", "show", "--sections", path_str(&fx.image)])
            .assert()
            .success()
            .stdout(predicate::str::contains(format!("chip        BCM{}", fx.chip)))
            .stdout(predicate::str::contains("BUILD_TIMESTAMP="))
            .stdout(predicate::str::contains(expected_order))
            .stdout(predicate::str::contains("file bootconf.txt"))
            .stdout(predicate::str::contains(std::fs::read_to_string(fx.bootconf()).unwrap().trim_end()));
    }
}

#[test]
fn bad_images_are_clear_errors_and_leave_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = &all_eeprom_fixtures()[0];
    let image = std::fs::read(&fx.image).unwrap();
    let truncated = tmp.path().join("truncated.bin");
    std::fs::write(&truncated, &image[..300_000]).unwrap();
    let not_eeprom = tmp.path().join("zeros.bin");
    std::fs::write(&not_eeprom, vec![0x5au8; 524_288]).unwrap();
    let corrupt = tmp.path().join("corrupt.bin");
    let mut c = image.clone();
    c[0x72E00..0x72E04].copy_from_slice(b"JUNK");
    std::fs::write(&corrupt, &c).unwrap();
    let out = tmp.path().join("out.bin");
    let cases = [
        (&truncated, "is 300000 bytes, but a bootloader EEPROM image is 524288 bytes (Pi 4) or 2097152 bytes (Pi 5)"),
        (&not_eeprom, "it is not a pieeprom.bin"),
        (&corrupt, "has a corrupt section header at offset 0x72e00"),
    ];
    for (input, message) in cases {
        for cmd in [
            vec!["eeprom", "set", path_str(input), "-o", path_str(&out), "BOOT_ORDER=0xf21"],
            vec!["eeprom", "show", path_str(input)],
        ] {
            bramble()
                .args(&cmd)
                .assert()
                .code(1)
                .stderr(predicate::str::contains(input.file_name().unwrap().to_str().unwrap()))
                .stderr(predicate::str::contains(message));
        }
        assert!(!out.exists());
    }
    bramble()
        .args(["eeprom", "show", "/nonexistent/pieeprom.bin"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot read EEPROM image /nonexistent/pieeprom.bin"));
}

#[test]
fn bad_configs_are_refused_with_line_and_fix_and_keep_the_old_output() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = &all_eeprom_fixtures()[0];
    let out = tmp.path().join("out.bin");
    std::fs::write(&out, b"previous good output").unwrap();
    let conf = tmp.path().join("bootconf.txt");
    std::fs::write(&conf, "[all]\nBOOT_ORDER=f21\nTFTP_PREFIX=3\nTFTP_IP=10.0.0\nDHCP_TIMEOUT = 45000\nTFTP_PREFIX_STR=0123456789012345678901234567890123\n").unwrap();
    bramble()
        .args(["eeprom", "set", path_str(&fx.image), "-o", path_str(&out), "--config", path_str(&conf)])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!("--> {}:2:1", conf.display())))
        .stderr(predicate::str::contains("BOOT_ORDER=f21: `f21` has no 0x prefix"))
        .stderr(predicate::str::contains(format!("--> {}:3:1", conf.display())))
        .stderr(predicate::str::contains("TFTP_PREFIX=3: is out of range: it must be between 0 and 2"))
        .stderr(predicate::str::contains("TFTP_IP=10.0.0: is not a dotted IPv4 address"))
        .stderr(predicate::str::contains("spaces around `=`"))
        .stderr(predicate::str::contains("help: write `DHCP_TIMEOUT=45000`"))
        .stderr(predicate::str::contains("the bootloader takes at most 32"))
        .stderr(predicate::str::contains("5 errors in the bootloader configuration; nothing was written"));
    assert_eq!(std::fs::read(&out).unwrap(), b"previous good output");

    let big = tmp.path().join("big.txt");
    std::fs::write(&big, "#".repeat(4077)).unwrap();
    bramble()
        .args(["eeprom", "set", path_str(&fx.image), "-o", path_str(&out), "--config", path_str(&big)])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("bootconf.txt of 4077 bytes: the bootloader allows at most 4076 bytes"));
    assert_eq!(std::fs::read(&out).unwrap(), b"previous good output");
    std::fs::write(&big, "#".repeat(4076)).unwrap();
    bramble()
        .args(["eeprom", "set", path_str(&fx.image), "-o", path_str(&out), "--config", path_str(&big)])
        .assert()
        .success();

    // Unknown keys are kept, with a warning.
    let kept = tmp.path().join("kept.bin");
    bramble()
        .args(["eeprom", "set", path_str(&fx.image), "-o", path_str(&kept), "MY_SETTING=1"])
        .assert()
        .success()
        .stderr(predicate::str::contains("warning: argument: MY_SETTING is not a documented bootloader property"));
    let shown = bramble().args(["eeprom", "show", "--config-only", path_str(&kept)]).output().unwrap();
    assert!(String::from_utf8_lossy(&shown.stdout).ends_with("MY_SETTING=1\n"));
}

#[test]
fn usage_errors_exit_2_and_help_works_everywhere() {
    bramble().args(["eeprom", "set", "x.bin"]).assert().code(2).stderr(predicate::str::contains("--out"));
    bramble()
        .args(["eeprom", "set", "x.bin", "-o", "y.bin", "NOEQUALS"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not KEY=VALUE"));
    bramble().args(["eeprom", "card", "--image", "x.bin"]).assert().code(2);
    bramble().args(["frobnicate"]).assert().code(2);
    bramble().arg("--version").assert().success().stdout(predicate::str::starts_with("bramble "));
    for args in [
        vec!["--help"],
        vec!["validate", "--help"],
        vec!["eeprom", "--help"],
        vec!["eeprom", "show", "--help"],
        vec!["eeprom", "set", "--help"],
        vec!["eeprom", "sign", "--help"],
        vec!["eeprom", "card", "--help"],
    ] {
        bramble().args(&args).assert().success().stdout(predicate::str::contains("Usage: bramble"));
    }
}

/// The partition's start and the disk, as sfdisk reads them.
fn sfdisk_dump(image: &Path) -> String {
    tool_ok("sfdisk", &["-d", path_str(image)])
}

#[test]
fn card_is_a_valid_reproducible_fat32_disk_with_the_update() {
    let tmp = tempfile::tempdir().unwrap();
    for fx in all_eeprom_fixtures() {
        let card = tmp.path().join("card.img");
        bramble()
            .env("SOURCE_DATE_EPOCH", FIXTURE_EPOCH)
            .args(["eeprom", "card", "--image", path_str(&fx.image), "--out", path_str(&card)])
            .assert()
            .success();

        // Partition table: one FAT32 (LBA) partition at 1 MiB.
        let dump = sfdisk_dump(&card);
        assert!(dump.contains("label: dos"), "{dump}");
        assert!(dump.contains("label-id: 0x"), "{dump}");
        assert!(dump.contains("card.img1 : start=        2048, size=      131072, type=c"), "{dump}");

        // The filesystem passes fsck.fat (on the partition's bytes) and reads back with mtools.
        let part = tmp.path().join("part.img");
        tool_ok(
            "dd",
            &[
                &format!("if={}", path_str(&card)),
                &format!("of={}", path_str(&part)),
                "bs=512",
                "skip=2048",
                "status=none",
            ],
        );
        let fsck = tool("fsck.fat", &["-n", path_str(&part)]);
        let report = String::from_utf8_lossy(&fsck.stdout).to_string() + &String::from_utf8_lossy(&fsck.stderr);
        assert!(fsck.status.success(), "{report}");
        assert!(!report.contains("uninitialized") && !report.contains("differences"), "{report}");
        let on_card = format!("{}@@1M", path_str(&card));
        let listing = tool_ok("mdir", &["-i", &on_card, "-b", "::"]);
        let mut names: Vec<&str> = listing.lines().map(|l| l.trim_start_matches("::/")).collect();
        names.sort();
        assert_eq!(names, ["pieeprom.sig", "pieeprom.upd", "recovery.bin"]);
        let sig = tool_ok("mtype", &["-i", &on_card, "::pieeprom.sig"]);
        let upd = tmp.path().join("pieeprom.upd");
        let recovery = tmp.path().join("recovery.bin");
        tool_ok("mcopy", &["-n", "-i", &on_card, "::pieeprom.upd", path_str(&upd)]);
        tool_ok("mcopy", &["-n", "-i", &on_card, "::recovery.bin", path_str(&recovery)]);

        // recovery.bin is the one beside the image; pieeprom.upd is rpi-eeprom-config's f21
        // image plus the update timestamp; the .sig is its sha256 with the same ts.
        assert!(differing_offsets(&recovery, &fx.recovery()).is_empty());
        let expected: Vec<usize> = updatetime_offsets(fx.chip).iter().flat_map(|&at| at + 1..=at + 8).collect();
        assert!(differing_offsets(&upd, &fx.f21_image()).iter().all(|o| expected.contains(o)));
        assert_eq!(sig, format!("{}\nts: {FIXTURE_EPOCH}\ntarget-soc: {}\n", sha256sum(&upd), fx.chip));

        // Same inputs, same bytes; --dir writes the same files loose.
        let again = tmp.path().join("again.img");
        let dir = tmp.path().join("tftp");
        bramble()
            .args(["eeprom", "card", "--image", path_str(&fx.image), "--timestamp", FIXTURE_EPOCH])
            .args(["--out", path_str(&again), "--dir", path_str(&dir)])
            .assert()
            .success();
        assert_eq!(sha256sum(&again), sha256sum(&card));
        assert_eq!(sha256sum(&dir.join("pieeprom.upd")), sha256sum(&upd));
        assert_eq!(std::fs::read_to_string(dir.join("pieeprom.sig")).unwrap(), sig);
        assert!(differing_offsets(&dir.join("recovery.bin"), &fx.recovery()).is_empty());
    }
}

#[test]
fn card_options_reach_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = &all_eeprom_fixtures()[0];
    let dir = tmp.path().join("upd");
    bramble()
        .args(["eeprom", "card", "--image", path_str(&fx.image), "--dir", path_str(&dir), "--timestamp", "1800000000"])
        .args(["--boot-order", "0xf241", "TFTP_PREFIX=2", "TFTP_FILE_TIMEOUT=120000"])
        .assert()
        .success();
    let shown =
        bramble().args(["eeprom", "show", "--config-only", path_str(&dir.join("pieeprom.upd"))]).output().unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("BOOT_ORDER=0xf241\nTFTP_PREFIX=2\nTFTP_FILE_TIMEOUT=120000\n"), "{text}");
    bramble()
        .args([
            "eeprom",
            "card",
            "--image",
            path_str(&fx.image),
            "--dir",
            path_str(&dir),
            "--boot-order",
            "0xf21",
            "BOOT_ORDER=0xf1",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("BOOT_ORDER is given twice"));
}

#[test]
fn card_needs_a_recovery_bin_and_says_where_to_get_it() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = &all_eeprom_fixtures()[0];
    let lonely = tmp.path().join("pieeprom.bin");
    std::fs::copy(&fx.image, &lonely).unwrap();
    let out = tmp.path().join("card.img");
    bramble()
        .args(["eeprom", "card", "--image", path_str(&lonely), "--out", path_str(&out)])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("pass --recovery FILE"));
    bramble()
        .args([
            "eeprom",
            "card",
            "--image",
            path_str(&lonely),
            "--recovery",
            path_str(&fx.image),
            "--out",
            path_str(&out),
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is not a recovery.bin"));
    assert!(!out.exists());
}

#[test]
fn stale_timestamps_are_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = &all_eeprom_fixtures()[0];
    bramble()
        .args([
            "eeprom",
            "sign",
            path_str(&fx.image),
            "-o",
            path_str(&tmp.path().join("s.sig")),
            "--timestamp",
            "1600000000",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("warning: timestamp 1600000000"))
        .stderr(predicate::str::contains("older than this bootloader's build"));
    bramble()
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .args(["eeprom", "sign", path_str(&fx.image), "-o", path_str(&tmp.path().join("t.sig"))])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("SOURCE_DATE_EPOCH=`yesterday`"));
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let fx = &all_eeprom_fixtures()[1];
    let bin = assert_cmd::cargo::cargo_bin("bramble");
    for args in ["eeprom show --sections", "eeprom show --config-only", "validate"] {
        let script = format!("set -o pipefail; '{}' {args} '{}' | true", bin.display(), path_str(&fx.image));
        let script =
            if args == "validate" { format!("set -o pipefail; '{}' validate | true", bin.display()) } else { script };
        let out = tool("bash", &["-c", &script]);
        assert!(out.status.success(), "{args}: {}", String::from_utf8_lossy(&out.stderr));
        // Nothing about the pipe: the built-in recipe's one warning (no SSH key) may be there.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let quiet =
            stderr.lines().all(|l| !l.starts_with("error") && !l.contains("Broken pipe") && !l.contains("panicked"));
        assert!(quiet, "{args}: {stderr}");
        assert!(args == "validate" || stderr.is_empty(), "{args}: {stderr}");
    }
}
