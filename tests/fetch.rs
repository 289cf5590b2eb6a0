//! `bramble fetch` and `bramble cache` end to end, against an HTTP server inside the test on
//! 127.0.0.1 that plays Raspberry Pi's download site, its OS list and the rpi-eeprom repository:
//! fetch → lock → offline re-fetch, resumed downloads, wrong hashes, corrupted cache entries,
//! --locked, proxies, and garbage collection. Hashes are checked with sha256sum.

mod common;

use bramble::source::eeprom_release::{RELEASES, RPI_EEPROM};
use common::http::HttpServer;
use common::image::{PiImage, build_pi_image};
use common::*;
use predicates::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const IMAGE_PATH: &str =
    "/raspios_lite_arm64/images/raspios_lite_arm64-2026-05-13/2026-05-13-raspios-trixie-arm64-lite.img.xz";

/// A Raspberry-Pi-OS-shaped image made by the real tools (tests/common/image.rs), as `xz -T0`.
fn image() -> &'static PiImage {
    static IMAGE: OnceLock<PiImage> = OnceLock::new();
    IMAGE.get_or_init(|| build_pi_image(false))
}

fn image_bytes() -> Vec<u8> {
    std::fs::read(&image().xz).unwrap()
}

/// sha256sum of the uncompressed image, as the OS list's `extract_sha256` gives it.
fn extract_sha() -> String {
    tool_ok("sha256sum", &[path_str(&image().img)]).split_whitespace().next().unwrap().to_string()
}

fn sha_of(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, bytes).unwrap();
    tool_ok("sha256sum", &[path_str(&p)]).split_whitespace().next().unwrap().to_string()
}

/// The site: OS list (image hash in a .sha256 sidecar, as some list entries do), the image, and
/// the pinned bootloader files under /rpi-eeprom.
fn site() -> HttpServer {
    site_with(&extract_sha())
}

fn site_with(extract_sha256: &str) -> HttpServer {
    let server = HttpServer::start();
    let image = image_bytes();
    let list = format!(
        r#"{{"os_list": [{{"name": "Raspberry Pi OS (other)", "subitems": [
            {{"name": "Raspberry Pi OS Lite (64-bit)", "url": "{}", "image_download_size": {},
              "release_date": "2026-05-13", "extract_sha256": "{}", "extract_size": {}}}]}}]}}"#,
        server.url(IMAGE_PATH),
        image.len(),
        extract_sha256,
        std::fs::metadata(&self::image().img).unwrap().len()
    );
    server.put("/os_list.json", list.into_bytes());
    server.put(&format!("{IMAGE_PATH}.sha256"), format!("{}  x.img.xz\n", sha_of(&image)).into_bytes());
    server.put(IMAGE_PATH, image);
    for r in RELEASES {
        let dir = eeprom_fixtures().join(format!("firmware-{}/default", r.chip.number()));
        for f in [r.image, r.recovery] {
            let file = f.url.rsplit('/').next().unwrap();
            let path = f.url.strip_prefix(RPI_EEPROM).unwrap();
            server.put(&format!("/rpi-eeprom{path}"), std::fs::read(dir.join(file)).unwrap());
        }
    }
    server
}

struct Lab {
    dir: tempfile::TempDir,
    cache: PathBuf,
}

impl Lab {
    fn new(recipe: &str) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lab.toml"), recipe).unwrap();
        let cache = dir.path().join("cache");
        Lab { dir, cache }
    }

    fn recipe(&self) -> PathBuf {
        self.dir.path().join("lab.toml")
    }

    fn lock(&self) -> PathBuf {
        self.dir.path().join("lab.lock")
    }

    fn fetch(&self, server: &HttpServer, extra: &[&str]) -> assert_cmd::assert::Assert {
        bramble()
            .args(["fetch", path_str(&self.recipe()), "--cache", path_str(&self.cache)])
            .args(["--os-list", &server.url("/os_list.json")])
            .args(["--mirror", &format!("{RPI_EEPROM}={}", server.url("/rpi-eeprom"))])
            .args(extra)
            .assert()
    }

    fn cached(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.cache.join("sha256"))
            .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }
}

const PI4_LAB: &str = "[lab]\nname = \"t\"\n[os]\ncatalog = \"raspios-lite-arm64\"\n\
[[client]]\nname = \"n1\"\nmodel = \"pi4\"\nserial = \"00000001\"\n";

fn cache_file_sha(lab: &Lab, sha: &str) -> String {
    let p = lab.cache.join("sha256").join(sha);
    tool_ok("sha256sum", &[path_str(&p)]).split_whitespace().next().unwrap().to_string()
}

#[test]
fn fetch_writes_a_lock_and_a_second_run_works_offline() {
    let server = site();
    let lab = Lab::new(PI4_LAB);
    lab.fetch(&server, &[])
        .success()
        .stdout(predicate::str::contains("os"))
        .stdout(predicate::str::contains("downloaded 2026-05-13-raspios-trixie-arm64-lite.img.xz (2026-05-13)"))
        .stdout(predicate::str::contains("pieeprom-2711"))
        .stdout(predicate::str::contains(format!("wrote {}", lab.lock().display())));
    let lock = std::fs::read_to_string(lab.lock()).unwrap();
    let image_sha = sha_of(&image_bytes());
    assert!(lock.contains(&format!("sha256 = \"{image_sha}\"")), "{lock}");
    assert!(lock.contains(&format!("url = \"{}\"", server.url(IMAGE_PATH))), "{lock}");
    assert!(lock.contains("from = \"catalog:raspios-lite-arm64\""), "{lock}");
    assert!(lock.contains(&format!("size = {}", image_bytes().len())), "{lock}");
    assert!(lock.contains(&format!("extract_sha256 = \"{}\"", extract_sha())), "{lock}");
    assert!(lock.contains("release_date = \"2026-05-13\""), "{lock}");
    // The lock pins the upstream URLs, not the mirror's.
    assert!(lock.contains(&format!("url = \"{}", RPI_EEPROM)), "{lock}");
    // Every file is cached under its sha256, and hashes to it.
    let cached = lab.cached();
    assert_eq!(cached.len(), 3);
    for sha in &cached {
        assert_eq!(&cache_file_sha(&lab, sha), sha);
    }
    // Offline and locked: no request reaches the server.
    let before = server.requests().len();
    lab.fetch(&server, &["--offline", "--locked"])
        .success()
        .stdout(predicate::str::contains("cached"))
        .stdout(predicate::str::contains("is up to date"));
    assert_eq!(server.requests().len(), before);
}

#[test]
fn an_interrupted_download_resumes_where_it_stopped() {
    let server = site();
    let cut = image_bytes().len() / 3;
    server.cut(IMAGE_PATH, cut, 2);
    let lab = Lab::new(PI4_LAB);
    lab.fetch(&server, &[]).success().stderr(predicate::str::contains("retrying"));
    let gets = server.requests_for(IMAGE_PATH);
    assert_eq!(gets.len(), 3, "{gets:?}");
    assert_eq!(gets[0].range, None);
    assert_eq!(gets[1].range.as_deref(), Some(format!("bytes={cut}-").as_str()));
    assert_eq!(gets[2].range.as_deref(), Some(format!("bytes={}-", 2 * cut).as_str()));
    let sha = sha_of(&image_bytes());
    assert_eq!(cache_file_sha(&lab, &sha), sha);
    assert_eq!(std::fs::read_dir(lab.cache.join("partial")).unwrap().count(), 0);
}

#[test]
fn a_wrong_sha256_is_a_clear_error_and_caches_nothing() {
    let server = site();
    let wrong = "0".repeat(64);
    let recipe = format!("[lab]\nname = \"t\"\n[os]\nurl = \"{}\"\nsha256 = \"{wrong}\"\n", server.url(IMAGE_PATH));
    let lab = Lab::new(&recipe);
    let actual = sha_of(&image_bytes());
    lab.fetch(&server, &[])
        .code(1)
        .stderr(predicate::str::contains(server.url(IMAGE_PATH)))
        .stderr(predicate::str::contains(format!("the download's sha256 is {actual}, but {wrong} was expected")))
        .stderr(predicate::str::contains("nothing was cached"));
    assert!(lab.cached().is_empty());
    assert_eq!(std::fs::read_dir(lab.cache.join("partial")).unwrap().count(), 0);
    assert!(!lab.lock().exists());
}

#[test]
fn an_image_that_does_not_decompress_to_the_published_hash_is_removed() {
    let wrong = "e".repeat(64);
    let server = site_with(&wrong);
    let lab = Lab::new(PI4_LAB);
    lab.fetch(&server, &[])
        .code(1)
        .stderr(predicate::str::contains(format!(
            "the uncompressed image's sha256 is {}, but the OS list says {wrong}",
            extract_sha()
        )))
        .stderr(predicate::str::contains("failed verification and was removed from the cache"));
    assert!(!lab.cache.join("sha256").join(sha_of(&image_bytes())).exists());
    assert!(!lab.lock().exists());
}

#[test]
fn a_corrupted_cache_entry_is_detected_and_fetched_again() {
    let server = site();
    let lab = Lab::new(PI4_LAB);
    lab.fetch(&server, &[]).success();
    let sha = sha_of(&image_bytes());
    let cached = lab.cache.join("sha256").join(&sha);
    let mut bytes = std::fs::read(&cached).unwrap();
    bytes[12345] ^= 0xff;
    std::fs::write(&cached, &bytes).unwrap();
    // Offline, the damage is reported as a missing file with its name and URL.
    lab.fetch(&server, &["--offline"])
        .code(1)
        .stderr(predicate::str::contains("is corrupted"))
        .stderr(predicate::str::contains(format!("os ({}), sha256 {sha}", server.url(IMAGE_PATH))));
    let before = server.requests_for(IMAGE_PATH).len();
    lab.fetch(&server, &[]).success().stdout(predicate::str::contains("downloaded 2026-05-13"));
    assert_eq!(server.requests_for(IMAGE_PATH).len(), before + 1);
    assert_eq!(cache_file_sha(&lab, &sha), sha);
}

#[test]
fn locked_refuses_to_change_the_lock() {
    let server = site();
    let lab = Lab::new(PI4_LAB);
    lab.fetch(&server, &[]).success();
    let lock_before = std::fs::read(lab.lock()).unwrap();
    // A Pi 5 joins the lab: two more inputs.
    let bigger = format!("{PI4_LAB}[[client]]\nname = \"n2\"\nmodel = \"pi5\"\nserial = \"00000002\"\n");
    std::fs::write(lab.recipe(), bigger).unwrap();
    lab.fetch(&server, &["--locked"])
        .code(1)
        .stderr(predicate::str::contains("`pieeprom-2712` (eeprom:2712:"))
        .stderr(predicate::str::contains("run without --locked"));
    assert_eq!(std::fs::read(lab.lock()).unwrap(), lock_before);
    lab.fetch(&server, &[]).success().stdout(predicate::str::contains("pieeprom-2712"));
    assert!(std::fs::read_to_string(lab.lock()).unwrap().contains("name = \"recovery-2712\""));
}

#[test]
fn http_errors_name_the_url() {
    let server = site();
    let missing = server.url("/nowhere.img.xz");
    let recipe = format!("[lab]\nname = \"t\"\n[os]\nurl = \"{missing}\"\nsha256 = \"{}\"\n", "1".repeat(64));
    Lab::new(&recipe)
        .fetch(&server, &[])
        .code(1)
        .stderr(predicate::str::contains(format!("{missing}: the server says 404 Not Found")));
    // TLS to a server that speaks plain HTTP: a TLS error, named as such.
    let tls = format!("https://{}/x.img.xz", server.addr);
    let recipe = format!("[lab]\nname = \"t\"\n[os]\nurl = \"{tls}\"\nsha256 = \"{}\"\n", "1".repeat(64));
    Lab::new(&recipe).fetch(&server, &[]).code(1).stderr(predicate::str::contains(format!("{tls}: TLS failed")));
}

#[test]
fn downloads_go_through_http_proxy() {
    let server = site();
    // A host name that does not resolve: only the proxy can answer for it.
    let url = format!("http://images.bramble.invalid{IMAGE_PATH}");
    let recipe = format!("[lab]\nname = \"t\"\n[os]\nurl = \"{url}\"\nsha256 = \"{}\"\n", sha_of(&image_bytes()));
    let lab = Lab::new(&recipe);
    bramble()
        .env("HTTP_PROXY", server.url(""))
        .env("http_proxy", server.url(""))
        .args(["fetch", path_str(&lab.recipe()), "--cache", path_str(&lab.cache)])
        .assert()
        .success();
    let via_proxy = server.requests_for(IMAGE_PATH);
    assert!(via_proxy.iter().all(|r| r.absolute) && !via_proxy.is_empty(), "{via_proxy:?}");
}

#[test]
fn cache_list_and_gc_follow_the_locks() {
    let server = site();
    let lab = Lab::new(PI4_LAB);
    lab.fetch(&server, &[]).success();
    // A second lab sharing the cache, with its own extra input; then it goes away.
    let other = tempfile::tempdir().unwrap();
    let url = server.url("/extra.bin");
    server.put("/extra.bin", b"extra bytes".to_vec());
    let recipe = format!("[lab]\nname = \"u\"\n[os]\nurl = \"{url}\"\nsha256 = \"{}\"\n", sha_of(b"extra bytes"));
    std::fs::write(other.path().join("lab.toml"), recipe).unwrap();
    bramble()
        .args(["fetch", path_str(&other.path().join("lab.toml")), "--cache", path_str(&lab.cache)])
        .assert()
        .success();
    assert_eq!(lab.cached().len(), 4);
    bramble()
        .args(["cache", "list", "--cache", path_str(&lab.cache)])
        .assert()
        .success()
        .stdout(predicate::str::contains("4 files"))
        .stdout(predicate::str::contains(format!("pieeprom-2711 in {}", lab.lock().canonicalize().unwrap().display())));
    std::fs::remove_file(other.path().join("lab.lock")).unwrap();
    bramble()
        .args(["cache", "gc", "--dry-run", "--cache", path_str(&lab.cache)])
        .assert()
        .success()
        .stdout(predicate::str::contains("would remove 1 file(s)"));
    assert_eq!(lab.cached().len(), 4);
    bramble().args(["cache", "gc", "--cache", path_str(&lab.cache)]).assert().success();
    assert_eq!(lab.cached().len(), 3);
    assert!(!lab.cached().contains(&sha_of(b"extra bytes")));
    // What remains is exactly what the lab's lock names.
    let lock = std::fs::read_to_string(lab.lock()).unwrap();
    assert!(lab.cached().iter().all(|sha| lock.contains(sha.as_str())));
    let _ = Path::new(".");
}

/// Two recipes in one folder each keep their own pins in `<recipe>.lock`, so `--locked` holds
/// for both; a shared `bramble.lock` from before is taken over only by the recipe it was for.
#[test]
fn two_recipes_in_one_folder_keep_their_own_locks() {
    let server = site();
    let lab = Lab::new(PI4_LAB);
    let d = lab.dir.path();
    // The second recipe: the same folder, a Pi 5 lab from a URL.
    let url = server.url("/extra.img");
    server.put("/extra.img", b"another image".to_vec());
    let pi5 = format!(
        "[lab]\nname = \"v\"\n[os]\nurl = \"{url}\"\nsha256 = \"{}\"\n\
         [[client]]\nname = \"n2\"\nmodel = \"pi5\"\nserial = \"00000002\"\n",
        sha_of(b"another image")
    );
    std::fs::write(d.join("pi5.toml"), &pi5).unwrap();
    let fetch = |recipe: &str, extra: &[&str]| {
        bramble()
            .args(["fetch", path_str(&d.join(recipe)), "--cache", path_str(&lab.cache)])
            .args(["--os-list", &server.url("/os_list.json")])
            .args(["--mirror", &format!("{RPI_EEPROM}={}", server.url("/rpi-eeprom"))])
            .args(extra)
            .assert()
    };
    fetch("lab.toml", &[])
        .success()
        .stdout(predicate::str::contains(format!("wrote {}", d.join("lab.lock").display())));
    fetch("pi5.toml", &[])
        .success()
        .stdout(predicate::str::contains(format!("wrote {}", d.join("pi5.lock").display())));
    let lab_lock = std::fs::read_to_string(d.join("lab.lock")).unwrap();
    let pi5_lock = std::fs::read_to_string(d.join("pi5.lock")).unwrap();
    assert!(lab_lock.contains("recipe = \"lab.toml\"") && lab_lock.contains("pieeprom-2711"), "{lab_lock}");
    assert!(!lab_lock.contains("pieeprom-2712"), "{lab_lock}");
    assert!(pi5_lock.contains("recipe = \"pi5.toml\"") && pi5_lock.contains("pieeprom-2712"), "{pi5_lock}");
    assert!(!d.join("bramble.lock").exists());
    // Each holds under --locked, in either order, and neither file changes.
    for recipe in ["lab.toml", "pi5.toml", "lab.toml"] {
        fetch(recipe, &["--locked", "--offline"]).success().stdout(predicate::str::contains("is up to date"));
    }
    assert_eq!(std::fs::read_to_string(d.join("lab.lock")).unwrap(), lab_lock);
    assert_eq!(std::fs::read_to_string(d.join("pi5.lock")).unwrap(), pi5_lock);

    // A folder from before: one bramble.lock, written for lab.toml. pi5.toml leaves it alone and
    // says so; lab.toml takes it over as lab.lock.
    std::fs::rename(d.join("lab.lock"), d.join("bramble.lock")).unwrap();
    std::fs::remove_file(d.join("pi5.lock")).unwrap();
    fetch("pi5.toml", &[]).success().stderr(predicate::str::contains(format!(
        "note: {} is the lock of `lab.toml`, not of pi5.toml; left as it is. pi5.toml's pins go in {}",
        d.join("bramble.lock").display(),
        d.join("pi5.lock").display()
    )));
    assert_eq!(std::fs::read_to_string(d.join("bramble.lock")).unwrap(), lab_lock);
    fetch("lab.toml", &["--locked", "--offline"])
        .success()
        .stderr(predicate::str::contains(format!(
            "note: renamed {} to {}",
            d.join("bramble.lock").display(),
            d.join("lab.lock").display()
        )))
        .stdout(predicate::str::contains("is up to date"));
    assert!(!d.join("bramble.lock").exists());
    assert_eq!(std::fs::read_to_string(d.join("lab.lock")).unwrap(), lab_lock);
}
