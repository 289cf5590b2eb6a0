//! Where no fixture folder is given, the tests fetch Raspberry Pi's bootloader files by sha256
//! into the cache and assemble the reference outputs; offline, one message says what is missing
//! and how to provide it. The "upstream" here is a loopback server holding the real files.

mod common;

use bramble::fetch::download::Mirror;
use bramble::fetch::eeprom_fixtures::{Sources, manifest, provide};
use bramble::source::eeprom_release::{RELEASES, RPI_EEPROM};
use common::http::HttpServer;
use common::*;
use std::path::Path;

fn sources(work: &Path, mirror: String) -> Sources {
    Sources {
        given: None,
        shared: work.join("no-shared-folder"),
        assembled: work.join("target/eeprom-fixtures"),
        cache: work.join("cache"),
        mirrors: vec![Mirror { from: RPI_EEPROM.into(), to: mirror }],
    }
}

/// A URL where nothing listens: the network is down.
fn nowhere() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}")
}

#[test]
fn fetched_by_sha256_they_are_the_shared_fixtures_and_work_offline_after() {
    let real = eeprom_fixtures();
    let site = HttpServer::start();
    for r in RELEASES {
        for f in [r.image, r.recovery] {
            let file = f.url.rsplit('/').next().unwrap();
            let bytes = std::fs::read(real.join(format!("firmware-{}/default/{file}", r.chip.number()))).unwrap();
            site.put(&format!("/rpi-eeprom{}", f.url.strip_prefix(RPI_EEPROM).unwrap()), bytes);
        }
    }
    let work = tempfile::tempdir().unwrap();
    let s = sources(work.path(), site.url("/rpi-eeprom"));
    let dir = provide(&s).unwrap();
    assert_eq!(dir, s.assembled);
    assert_eq!(site.requests().len(), 4, "each pinned file is fetched once");
    // sha256sum judges the folder, and every file is byte for byte the shared one.
    std::fs::write(work.path().join("SHA256SUMS"), bramble::fetch::eeprom_fixtures::SHA256SUMS).unwrap();
    let sums = std::process::Command::new("sha256sum")
        .args(["-c", "--strict"])
        .arg(work.path().join("SHA256SUMS"))
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(sums.status.success(), "{}", String::from_utf8_lossy(&sums.stdout));
    for (_, rel) in manifest() {
        assert!(std::fs::read(dir.join(rel)).unwrap() == std::fs::read(real.join(rel)).unwrap(), "{rel}");
    }

    // Offline now, with the folder gone: the cache alone gives it again.
    std::fs::remove_dir_all(&dir).unwrap();
    let offline = sources(work.path(), nowhere());
    assert_eq!(provide(&offline).unwrap(), dir);
    assert!(std::fs::read(dir.join(manifest()[2].1)).is_ok());
}

#[test]
fn offline_without_fixtures_one_message_says_what_is_missing_and_how_to_provide_it() {
    let work = tempfile::tempdir().unwrap();
    let s = sources(work.path(), nowhere());
    let message = provide(&s).unwrap_err();
    for r in RELEASES {
        for f in [r.image, r.recovery] {
            assert!(message.contains(f.sha256), "{} not named in:\n{message}", f.url);
        }
    }
    for hint in ["BRAMBLE_FIXTURES=DIR", "BRAMBLE_FIXTURES_MIRROR=URL", "no shared folder at", "be online once"] {
        assert!(message.contains(hint), "`{hint}` not in:\n{message}");
    }
    assert!(!s.assembled.exists() && !work.path().join("target").exists(), "nothing half-made is left");

    // A given folder that lacks the files is named, with what it lacks.
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let given = Sources { given: Some(empty.clone()), ..s };
    let message = provide(&given).unwrap_err();
    assert!(message.starts_with(&format!("BRAMBLE_FIXTURES={} does not hold", empty.display())), "{message}");
    assert!(message.contains("firmware-2712/default/pieeprom-2026-05-26.f21.bin"), "{message}");
}
