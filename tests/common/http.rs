//! A small HTTP/1.1 file server for tests, on 127.0.0.1: GET with Range (206), 404 for unknown
//! paths, absolute-URI requests (so it can stand in for a proxy), a log of every request, and
//! fault injection: cut a response after N body bytes, a given number of times.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub range: Option<String>,
    /// The request line named a full URL (proxy style).
    pub absolute: bool,
}

#[derive(Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    /// path → (cut after this many body bytes, times left)
    cuts: HashMap<String, (usize, usize)>,
    log: Vec<Request>,
}

pub struct HttpServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl HttpServer {
    pub fn start() -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &state);
                });
            }
        });
        HttpServer { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn put(&self, path: &str, bytes: Vec<u8>) {
        self.state.lock().unwrap().files.insert(path.to_string(), bytes);
    }

    /// The next `times` responses for `path` stop after `after` body bytes.
    pub fn cut(&self, path: &str, after: usize, times: usize) {
        self.state.lock().unwrap().cuts.insert(path.to_string(), (after, times));
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn requests_for(&self, path: &str) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut range = None;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.eq_ignore_ascii_case("range")
            {
                range = Some(v.trim().to_string());
            }
        }
        let absolute = target.starts_with("http://");
        let path = if absolute {
            target.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap_or_else(|| "/".into())
        } else {
            target
        };
        let (body, cut) = {
            let mut s = state.lock().unwrap();
            s.log.push(Request { path: path.clone(), range: range.clone(), absolute });
            let body = s.files.get(&path).cloned();
            let cut = match s.cuts.get_mut(&path) {
                Some((after, times)) if *times > 0 => {
                    *times -= 1;
                    Some(*after)
                }
                _ => None,
            };
            (body, cut)
        };
        let Some(body) = body else {
            out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found")?;
            continue;
        };
        let start = range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split('-').next())
            .and_then(|s| s.parse::<usize>().ok());
        let (status, from) = match start {
            Some(s) if s >= body.len() => {
                let head = format!(
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\n\r\n",
                    body.len()
                );
                out.write_all(head.as_bytes())?;
                continue;
            }
            Some(s) => ("206 Partial Content", s),
            None => ("200 OK", 0),
        };
        let part = &body[from..];
        let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\n", part.len());
        if from > 0 {
            head += &format!("Content-Range: bytes {from}-{}/{}\r\n", body.len() - 1, body.len());
        }
        head += "\r\n";
        out.write_all(head.as_bytes())?;
        match cut {
            Some(after) if after < part.len() => {
                out.write_all(&part[..after])?;
                out.flush()?;
                // Drop the connection mid-body, as a flaky network does.
                return Ok(());
            }
            _ => out.write_all(part)?,
        }
    }
}
