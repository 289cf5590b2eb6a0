//! One request, from its head to a response: the method and path checked, the generator asked,
//! the file found (on the blocking pool), the plan made and carried out with a body that
//! streams the file from disk in bounded chunks. Connections, limits and timeouts are
//! `server.rs`'s.

use super::file_body::FileBody;
use super::generate::{Generate, GenerateRequest};
use super::plan::{self, Body, Conditions, Method, Plan};
use super::representation::Representation;
use super::request_log::{LoggedBody, RequestLog};
use super::target;
use crate::daemon::files::{self, LookupError};
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// What is served.
pub struct Site {
    /// Canonical; nothing outside it is ever served.
    pub root: PathBuf,
    pub generator: Option<Arc<dyn Generate>>,
}

type ResponseBody = UnsyncBoxBody<Bytes, io::Error>;

/// The bytes a plan's `Body::Content` is cut from.
enum Source {
    Memory(Bytes),
    File(std::fs::File),
}

/// Answer `request` from `peer`, which connected to `local`.
pub async fn handle<B>(site: &Site, request: Request<B>, peer: SocketAddr, local: SocketAddr) -> Response<LoggedBody> {
    let uri = request.uri();
    let mut log = RequestLog::new(peer, request.method().as_str(), uri.path());
    let method = match *request.method() {
        hyper::Method::GET => Method::Get,
        hyper::Method::HEAD => Method::Head,
        _ => {
            log.error = Some("method not allowed".into());
            let plan = plan::method_not_allowed();
            let body = plain_body(plan.body);
            return respond(plan, body, log);
        }
    };
    let parts = match target::components(uri.path()) {
        Ok(parts) => parts,
        Err(e) => {
            let status = target::refusal_status(&e);
            let text = match status {
                StatusCode::FORBIDDEN => "forbidden: the path leaves the served folder\n",
                StatusCode::BAD_REQUEST => {
                    "bad request: the path cannot name a file (control character or not UTF-8)\n"
                }
                _ => "not found\n",
            };
            log.error = Some(e.to_string());
            return refuse(method, status, text, log);
        }
    };
    let headers = Headers::new(request.headers());
    let conditions = headers.conditions();

    if let Some(generator) = &site.generator {
        let path = parts.join("/");
        let asked = GenerateRequest { path: &path, query: uri.query(), peer, local };
        if let Some(generated) = generator.generate(&asked) {
            log.source = Some("generated".into());
            let repr = Representation::generated(generated.body.len() as u64, generated.content_type);
            let plan = plan::plan(method, &conditions, &repr);
            return carry_out(plan, Source::Memory(generated.body), log);
        }
    }

    let root = site.root.clone();
    let lookup = tokio::task::spawn_blocking(move || files::find(&root, &[PathBuf::new()], &parts).map(|f| (f, parts)));
    let (found, parts) = match lookup.await {
        Ok(Ok(found)) => found,
        Ok(Err(LookupError::NotFound)) => {
            log.error = Some("not found".into());
            return refuse(method, StatusCode::NOT_FOUND, "not found\n", log);
        }
        Ok(Err(LookupError::Denied)) => {
            log.error = Some("a symlink leads out of the served folder, or the file is not readable".into());
            return refuse(method, StatusCode::FORBIDDEN, "forbidden\n", log);
        }
        Err(e) => return internal_error(method, log, format!("lookup failed: {e}")),
    };
    log.source = Some(relative(&found.path, &site.root));
    let name = parts.last().map_or("", String::as_str);
    let meta = &found.metadata;
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let repr = Representation::file(name, meta.len(), meta.ino(), modified, SystemTime::now());
    let plan = plan::plan(method, &conditions, &repr);
    carry_out(plan, Source::File(found.file), log)
}

/// The request headers `plan` reads, each field's lines joined with `,` as RFC 9110 §5.3
/// allows. A value that is not visible ASCII is treated as absent.
struct Headers {
    range: Option<String>,
    if_range: Option<String>,
    if_match: Option<String>,
    if_none_match: Option<String>,
}

impl Headers {
    fn new(map: &HeaderMap) -> Headers {
        let joined = |name: HeaderName| -> Option<String> {
            let values: Option<Vec<&str>> = map.get_all(&name).iter().map(|v| v.to_str().ok()).collect();
            values.filter(|v| !v.is_empty()).map(|v| v.join(","))
        };
        Headers {
            range: joined(header::RANGE),
            if_range: joined(header::IF_RANGE),
            if_match: joined(header::IF_MATCH),
            if_none_match: joined(header::IF_NONE_MATCH),
        }
    }

    fn conditions(&self) -> Conditions<'_> {
        Conditions {
            range: self.range.as_deref(),
            if_range: self.if_range.as_deref(),
            if_match: self.if_match.as_deref(),
            if_none_match: self.if_none_match.as_deref(),
        }
    }
}

/// Send `plan`, cutting its content from `source`.
fn carry_out(plan: Plan, source: Source, log: RequestLog) -> Response<LoggedBody> {
    let body = match (plan.body, source) {
        (Body::Content(r), Source::Memory(bytes)) => {
            // `r` lies inside the body, whose length fits a usize.
            full(bytes.slice(r.first as usize..=r.last as usize))
        }
        (Body::Content(r), Source::File(file)) => FileBody::new(file, r.first, r.len()).boxed_unsync(),
        (other, _) => plain_body(other),
    };
    respond(plan, body, log)
}

fn internal_error(method: Method, mut log: RequestLog, error: String) -> Response<LoggedBody> {
    log.error = Some(error);
    refuse(method, StatusCode::INTERNAL_SERVER_ERROR, "internal error: see the server's log\n", log)
}

/// An error answer with a short explanation.
fn refuse(method: Method, status: StatusCode, text: &'static str, log: RequestLog) -> Response<LoggedBody> {
    let plan = plan::message(method, status, text);
    let body = plain_body(plan.body);
    respond(plan, body, log)
}

fn respond(plan: Plan, body: ResponseBody, mut log: RequestLog) -> Response<LoggedBody> {
    log.status = plan.status.as_u16();
    log.expected = match plan.body {
        Body::Content(r) => r.len(),
        Body::Message(text) => text.len() as u64,
        Body::Empty => 0,
    };
    let mut response = Response::new(LoggedBody::new(body, log));
    *response.status_mut() = plan.status;
    for (name, value) in plan.headers {
        // Every value is ours (numbers, tags, dates, fixed strings), so this never skips one.
        if let Ok(value) = HeaderValue::try_from(value) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

fn full(bytes: Bytes) -> ResponseBody {
    Full::new(bytes).map_err(|never: Infallible| match never {}).boxed_unsync()
}

/// The body of a plan that sends no file content.
fn plain_body(body: Body) -> ResponseBody {
    debug_assert!(!matches!(body, Body::Content(_)), "file content needs its source");
    match body {
        Body::Message(text) => full(Bytes::from_static(text.as_bytes())),
        Body::Empty | Body::Content(_) => Empty::new().map_err(|never: Infallible| match never {}).boxed_unsync(),
    }
}
