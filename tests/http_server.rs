//! Bramble's HTTP server against real clients, curl and wget: files of 0 B, 1 B and tens of MiB
//! (sha256sum must agree), HEAD, byte ranges and resuming, refused escapes (`..`, `%2e%2e`,
//! `%00`, symlinks out), directories, other methods, keep-alive, many downloads at once,
//! generated content and the log line per request. Limits, timeouts and memory are in
//! `http_limits.rs`.

mod common;

use bramble::daemon::http::{Generate, GenerateRequest, Generated};
use common::http_daemon::*;
use common::*;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn sha(path: &Path) -> String {
    tool_ok("sha256sum", &[path_str(path)]).split_whitespace().next().unwrap().to_string()
}

#[test]
fn files_of_every_size_arrive_intact_with_their_length() {
    let (_keep, root) = lab_tree();
    let server = HttpDaemon::start(&root, |_| {});
    let out = tempfile::tempdir().unwrap();
    for &(name, size) in SIZES {
        let got = out.path().join(name);
        let fetched = curl(&["-o", path_str(&got), &server.url(&format!("/{name}"))]);
        assert_eq!((fetched.exit, fetched.status), (0, 200), "{name}: {}", fetched.stderr);
        assert_eq!(fetched.header("content-length"), Some(size.to_string().as_str()), "{name}");
        assert_eq!(fetched.header("transfer-encoding"), None, "{name} must not be chunked");
        assert_eq!(fetched.header("accept-ranges"), Some("bytes"));
        assert!(fetched.header("etag").is_some_and(|t| t.starts_with('"')), "{name}: {:?}", fetched.headers);
        assert!(fetched.header("last-modified").is_some_and(|d| d.ends_with(" GMT")));
        assert_eq!(fetched.size_download, size as u64, "{name}");
        if size == 0 {
            // curl creates no output file when no byte arrives.
            assert!(std::fs::read(&got).unwrap_or_default().is_empty());
        } else {
            assert_eq!(sha(&got), sha(&root.join(name)), "{name}: sha256 differs");
        }
    }
}

#[test]
fn head_has_the_length_and_no_body() {
    let (_keep, root) = lab_tree();
    let server = HttpDaemon::start(&root, |_| {});
    for &(name, size) in SIZES {
        let head = curl(&["-I", &server.url(&format!("/{name}"))]);
        assert_eq!((head.exit, head.status), (0, 200), "{name}: {}", head.stderr);
        assert_eq!(head.header("content-length"), Some(size.to_string().as_str()), "{name}");
        assert_eq!(head.size_download, 0, "{name}: HEAD sent a body");
        let get = curl(&["-o", "/dev/null", &server.url(&format!("/{name}"))]);
        assert_eq!(head.header("etag"), get.header("etag"), "{name}: HEAD and GET disagree");
    }
    let missing = curl(&["-I", &server.url("/nothing")]);
    assert_eq!((missing.status, missing.size_download), (404, 0));
    // curl would not notice body bytes after a HEAD answer on a connection it then closes:
    // read the raw stream to its end instead.
    for (path, status) in [("/odd.bin", "200 OK"), ("/nothing", "404 Not Found")] {
        let raw = raw_exchange(server.addr, &format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "bytes after the headers of a HEAD answer: {text:?}");
    }
}

/// Send `request` on a new connection and read until the server closes it (bounded).
fn raw_exchange(addr: std::net::SocketAddr, request: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("the server closes the connection");
    answer
}

#[test]
fn byte_ranges_select_what_was_asked() {
    let (_keep, root) = lab_tree();
    let server = HttpDaemon::start(&root, |_| {});
    let url = server.url("/odd.bin");
    let whole = std::fs::read(root.join("odd.bin")).unwrap();
    let len = whole.len();
    for (range, first, last) in [
        ("0-0", 0, 0),
        ("-100", len - 100, len - 1),
        ("99000-", 99_000, len - 1),
        ("5-10", 5, 10),
        ("100-999999", 100, len - 1),
    ] {
        let got = curl(&["-r", range, &url]);
        assert_eq!(got.status, 206, "{range}: {:?}", got.headers);
        assert_eq!(got.header("content-range"), Some(format!("bytes {first}-{last}/{len}").as_str()), "{range}");
        assert_eq!(got.header("content-length"), Some((last - first + 1).to_string().as_str()), "{range}");
        assert_eq!(got.body, whole[first..=last], "{range}");
    }
    let past = curl(&["-r", &format!("{len}-"), &url]);
    assert_eq!(past.status, 416);
    assert_eq!(past.header("content-range"), Some(format!("bytes */{len}").as_str()));
    // Several ranges are answered with the whole file.
    let several = curl(&["-r", "0-1,5-6", &url]);
    assert_eq!((several.status, several.body.len()), (200, len));
    // A stale If-Range gets the whole current file; our own ETag gets the range.
    let stale = curl(&["-r", "0-0", "-H", "If-Range: \"stale\"", &url]);
    assert_eq!((stale.status, stale.body.len()), (200, len));
    let etag = curl(&["-I", &url]).header("etag").unwrap().to_string();
    let fresh = curl(&["-r", "0-0", "-H", &format!("If-Range: {etag}"), &url]);
    assert_eq!((fresh.status, fresh.body.len()), (206, 1));
    // Revalidation: the same ETag is not sent again.
    let cached = curl(&["-H", &format!("If-None-Match: {etag}"), &url]);
    assert_eq!((cached.status, cached.body.len()), (304, 0));
}

#[test]
fn curl_and_wget_resume_a_partial_download() {
    let (_keep, root) = lab_tree();
    let server = HttpDaemon::start(&root, |_| {});
    let out = tempfile::tempdir().unwrap();
    let whole = std::fs::read(root.join("big.img")).unwrap();
    let by_curl = out.path().join("by-curl.img");
    std::fs::write(&by_curl, &whole[..1_000_000]).unwrap();
    let resumed = curl(&["-C", "-", "-o", path_str(&by_curl), &server.url("/big.img")]);
    assert_eq!((resumed.exit, resumed.status), (0, 206), "{}", resumed.stderr);
    assert_eq!(sha(&by_curl), sha(&root.join("big.img")));

    let by_wget = out.path().join("by-wget.img");
    std::fs::write(&by_wget, &whole[..3_000_001]).unwrap();
    tool_ok("wget", &["-q", "--tries=1", "--timeout=30", "-c", "-O", path_str(&by_wget), &server.url("/big.img")]);
    assert_eq!(sha(&by_wget), sha(&root.join("big.img")));
    let fresh = out.path().join("fresh.bin");
    tool_ok("wget", &["-q", "--tries=1", "--timeout=30", "-O", path_str(&fresh), &server.url("/odd.bin")]);
    assert_eq!(sha(&fresh), sha(&root.join("odd.bin")));
}

#[test]
fn escapes_directories_and_other_methods_are_refused() {
    let (_keep, root) = lab_tree();
    let server = HttpDaemon::start(&root, |_| {});
    for (path, status) in [
        ("/../secret", 403),
        ("/%2e%2e/secret", 403),
        ("/os/%2E%2E/%2e%2e/secret", 403),
        ("/os%2f..%2f..%2fsecret", 403),
        ("/..%5csecret", 403),
        ("/escape", 403),
        ("/a%00b", 400),
        ("/one.bin%00.txt", 400),
        ("/%ff", 400),
        ("/os", 404),
        ("/os/", 404),
        ("/", 404),
        ("/nothing", 404),
    ] {
        let got = curl(&["--path-as-is", &server.url(path)]);
        assert_eq!(got.status, status, "{path}: {:?}", got.headers);
        assert!(!String::from_utf8_lossy(&got.body).contains("SECRET"), "{path} leaked the secret");
        assert_eq!(got.header("location"), None, "{path}: never a redirect");
    }
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        let got = curl(&["-X", method, "--data", "x", &server.url("/one.bin")]);
        assert_eq!(got.status, 405, "{method}");
        assert_eq!(got.header("allow"), Some("GET, HEAD"), "{method}");
    }
}

#[test]
fn names_decode_fall_back_without_case_and_ignore_queries() {
    let (_keep, root) = lab_tree();
    let server = HttpDaemon::start(&root, |_| {});
    for (path, body) in [
        ("/os/Pios/Boot/Start4.elf", &b"firmware"[..]),
        ("/OS/pios/BOOT/start4.ELF", b"firmware"),
        ("/a%20b/%C3%A9t%C3%A9.txt", b"summer\n"),
        ("/os/./Pios//Boot/Start4.elf", b"firmware"),
        ("/one.bin?cache=bust&x=%2e%2e", &std::fs::read(root.join("one.bin")).unwrap()),
        ("/link.bin", &std::fs::read(root.join("one.bin")).unwrap()),
    ] {
        let got = curl(&["--path-as-is", &server.url(path)]);
        assert_eq!((got.status, got.body.as_slice()), (200, body), "{path}");
    }
    let text = curl(&[&server.url("/a%20b/%C3%A9t%C3%A9.txt")]);
    assert_eq!(text.header("content-type"), Some("text/plain; charset=utf-8"));
}

#[test]
fn keep_alive_reuses_one_connection_for_head_then_get() {
    let (_keep, root) = lab_tree();
    let server = HttpDaemon::start(&root, |_| {});
    // EDK2's pattern: HEAD for the size, then GET, on one connection.
    let out = tempfile::tempdir().unwrap();
    let got = out.path().join("odd.bin");
    let run = tool(
        "curl",
        &[
            "-sv",
            "--max-time",
            "30",
            "-I",
            &server.url("/odd.bin"),
            "--next",
            "-o",
            path_str(&got),
            &server.url("/odd.bin"),
        ],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("Re-using existing connection"), "no reuse:\n{stderr}");
    assert_eq!(stderr.matches("Connected to").count(), 1, "{stderr}");
    assert_eq!(sha(&got), sha(&root.join("odd.bin")));
    // Two GETs of different files in one call.
    let run = tool(
        "curl",
        &[
            "-sv",
            "--max-time",
            "30",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            &server.url("/one.bin"),
            &server.url("/big.img"),
        ],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success() && stderr.contains("Re-using existing connection"), "{stderr}");
}

#[test]
fn many_clients_download_at_once() {
    use sha2::{Digest, Sha256};
    let (_keep, root) = lab_tree();
    let clients = 48;
    let server = HttpDaemon::start(&root, |c| c.http.max_per_client = clients);
    let out = tempfile::tempdir().unwrap();
    let file = "odd.bin";
    let want = Sha256::digest(std::fs::read(root.join(file)).unwrap());
    let mut children: Vec<_> = (0..clients)
        .map(|i| {
            let dest = out.path().join(format!("{i}.bin"));
            let child = std::process::Command::new("curl")
                .args(["-sS", "--fail", "--max-time", "60", "-o", path_str(&dest)])
                // Half of them ask for the whole file as a range, like a resuming client.
                .args(if i % 2 == 0 { &["-r", "0-"][..] } else { &[] })
                .arg(server.url(&format!("/{file}")))
                .spawn()
                .expect("curl");
            (child, dest)
        })
        .collect();
    // And a large one beside them.
    let big = out.path().join("big.img");
    let big_child = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "60", "-o", path_str(&big), &server.url("/big.img")])
        .spawn()
        .expect("curl");
    children.push((big_child, big.clone()));
    for (mut child, dest) in children {
        assert!(child.wait().unwrap().success(), "{}", dest.display());
        if dest != big {
            assert_eq!(Sha256::digest(std::fs::read(&dest).unwrap()), want, "{}", dest.display());
        }
    }
    assert_eq!(sha(&big), sha(&root.join("big.img")));
}

/// Serves `/ipxe/<mac>.ipxe` with the client's address and the address it reached us at, and
/// remembers every path it was asked about.
struct IpxeScripts {
    asked: Mutex<Vec<String>>,
}

impl Generate for IpxeScripts {
    fn generate(&self, request: &GenerateRequest<'_>) -> Option<Generated> {
        self.asked.lock().unwrap().push(request.path.to_string());
        let mac = request.path.strip_prefix("ipxe/")?.strip_suffix(".ipxe")?;
        let script = format!(
            "#!ipxe\n# for {mac} at {}, query {:?}\nkernel http://{}/os/Pios/Boot/Start4.elf\nboot\n",
            request.peer.ip(),
            request.query.unwrap_or(""),
            request.local
        );
        Some(Generated::new(script, "text/plain; charset=utf-8"))
    }
}

#[test]
fn generated_content_comes_before_files() {
    let (_keep, root) = lab_tree();
    write(&root.join("ipxe/shadowed.ipxe"), b"from disk\n");
    let scripts = Arc::new(IpxeScripts { asked: Mutex::new(Vec::new()) });
    let generator = scripts.clone();
    let server = HttpDaemon::start(&root, |c| c.generator = Some(generator));
    let got = curl(&[&server.url("/ipxe/dc-a6-32-01-36-c2.ipxe?arch=arm64")]);
    let text = String::from_utf8(got.body.clone()).unwrap();
    assert_eq!(got.status, 200);
    assert!(text.starts_with("#!ipxe\n# for dc-a6-32-01-36-c2 at 127.0.0.1, query \"arch=arm64\"\n"), "{text}");
    assert!(text.contains(&format!("kernel http://{}/os/", server.addr)), "{text}");
    assert_eq!(got.header("content-length"), Some(text.len().to_string().as_str()));
    assert_eq!(got.header("cache-control"), Some("no-store"));
    assert_eq!(got.header("etag"), None);
    // The generator wins over a file of the same name; HEAD and ranges work as for files.
    assert!(curl(&[&server.url("/ipxe/shadowed.ipxe")]).body.starts_with(b"#!ipxe\n# for shadowed at "));
    let head = curl(&["-I", &server.url("/ipxe/aa.ipxe")]);
    assert!(head.size_download == 0 && head.header("content-length").is_some());
    let range = curl(&["-r", "0-6", &server.url("/ipxe/aa.ipxe")]);
    assert_eq!((range.status, range.body.as_slice()), (206, &b"#!ipxe\n"[..]));
    // Declined paths fall through to the files; refused paths never reach the generator.
    assert_eq!(curl(&[&server.url("/one.bin")]).status, 200);
    assert_eq!(curl(&["--path-as-is", &server.url("/ipxe/../secret")]).status, 403);
    assert_eq!(curl(&[&server.url("/ipxe/a%00.ipxe")]).status, 400);
    let asked = scripts.asked.lock().unwrap();
    assert!(asked.contains(&"one.bin".to_string()), "{asked:?}");
    assert!(asked.iter().all(|p| !p.contains("..") && !p.contains('\0') && !p.starts_with('/')), "{asked:?}");
}

/// Log lines, collected from the test binary's global subscriber.
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogSink;

impl std::io::Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn each_request_leaves_one_structured_log_line() {
    let _ = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(|| LogSink)
        .try_init();
    let (_keep, root) = lab_tree();
    write(&root.join("logged.txt"), b"0123456789");
    let server = HttpDaemon::start(&root, |_| {});
    assert_eq!(curl(&[&server.url("/logged.txt")]).status, 200);
    assert_eq!(curl(&["-r", "2-4", &server.url("/logged.txt")]).status, 206);
    assert_eq!(curl(&["-I", &server.url("/logged.txt")]).status, 200);
    assert_eq!(curl(&[&server.url("/logged-missing")]).status, 404);
    let lines = || -> Vec<String> {
        let log = String::from_utf8_lossy(&LOG.lock().unwrap()).into_owned();
        log.lines().filter(|l| l.contains("http request") && l.contains("path=/logged")).map(str::to_string).collect()
    };
    eventually("four request log lines", Duration::from_secs(10), || lines().len() >= 4);
    let lines = lines();
    let get = lines.iter().find(|l| l.contains("status=200") && l.contains("method=GET")).expect("GET line");
    for field in [
        "INFO",
        "peer=127.0.0.1:",
        "path=/logged.txt",
        "bytes=10",
        "ms=",
        "source=\"logged.txt\"",
        "outcome=\"complete\"",
    ] {
        assert!(get.contains(field), "{field} missing in {get}");
    }
    assert!(lines.iter().any(|l| l.contains("status=206") && l.contains("bytes=3")), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("DEBUG") && l.contains("method=HEAD") && l.contains("bytes=0")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains("status=404") && l.contains("path=/logged-missing")), "{lines:#?}");
    assert_eq!(lines.len(), 4, "{lines:#?}");
}

/// Issue 12 item 3: `d` trades places with a symlink to a folder outside the root as fast as
/// it can while curl asks for `d/f` over and over (keep-alive, 200 URLs per curl). The file
/// must be opened by what was checked, so not one body from outside may arrive.
#[test]
fn a_folder_swapped_for_a_symlink_out_never_serves_from_outside() {
    use common::swap_race::*;
    let dir = tempfile::tempdir().unwrap();
    let root = race_tree(dir.path());
    let server = HttpDaemon::start(&root.canonicalize().unwrap(), |_| {});
    let url = server.url("/d/f");
    let mut args: Vec<&str> = vec!["-s", "-w", "\n@@end@@\n"];
    args.extend(std::iter::repeat_n(url.as_str(), 200));
    let swapper = Swapper::start(&root);
    let until = std::time::Instant::now() + Duration::from_secs(4);
    let mut tally = Tally::default();
    for _ in 0..50 {
        if std::time::Instant::now() > until {
            break;
        }
        let out = tool("curl", &args);
        let text = out.stdout;
        let marker = b"\n@@end@@\n";
        let mut rest = &text[..];
        while let Some(at) = rest.windows(marker.len()).position(|w| w == marker) {
            tally.add(&rest[..at]);
            rest = &rest[at + marker.len()..];
        }
    }
    let swaps = swapper.stop();
    eprintln!("{swaps} swaps, {tally:?}");
    assert_eq!(tally.outside, 0, "bytes from outside the root were served: {tally:?}");
    assert!(tally.inside > 0 && tally.other > 0, "the race never ran both ways: {tally:?}");
}

/// Through a symlink to a folder outside the root, a file that exists there and one that does
/// not get the same answer: the server must not tell which names exist outside.
#[test]
fn an_outside_folder_link_tells_nothing_of_what_is_there() {
    let (keep, root) = lab_tree();
    std::fs::create_dir(keep.path().join("out")).unwrap();
    std::fs::write(keep.path().join("out/shadow"), b"shadow\n").unwrap();
    std::os::unix::fs::symlink(keep.path().join("out"), root.join("link")).unwrap();
    let server = HttpDaemon::start(&root, |_| {});
    let shadow = curl(&[&server.url("/link/shadow")]);
    let missing = curl(&[&server.url("/link/missing")]);
    assert_eq!((shadow.status, &shadow.body), (missing.status, &missing.body));
    assert_eq!(shadow.status, 403);
}
