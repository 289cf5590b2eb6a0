//! Deciding a response to a GET or HEAD of one representation: status, headers and which bytes
//! to send, from the request's `Range` and conditional headers (RFC 9110 §13 and §14). Pure:
//! no file is opened here; the handler carries the plan out.
//!
//! Evaluated, in RFC 9110 §13.2.2's order: `If-Match` (412), `If-None-Match` (304), `If-Range`
//! with an entity tag, `Range`. Date conditions (`If-Unmodified-Since`, `If-Modified-Since`, a
//! date in `If-Range`) are ignored, which is always safe (the full answer is sent): the lab's
//! files carry reproducible, clamped mtimes, so a date says nothing about whether a file
//! changed. The ETag, which includes the inode, does.

use super::range::{self, ByteRange, Requested};
use super::representation::Representation;
use hyper::StatusCode;
use hyper::header::{self, HeaderName};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
}

/// The request headers that shape the answer (each value as received; several lines of one
/// field joined with `,`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Conditions<'a> {
    pub range: Option<&'a str>,
    pub if_range: Option<&'a str>,
    pub if_match: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
}

/// What follows the headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    Empty,
    /// These bytes of the representation.
    Content(ByteRange),
    /// A short text explaining an error.
    Message(&'static str),
}

/// A response, decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, String)>,
    /// Always `Empty` for HEAD, whose headers still say what a GET would get.
    pub body: Body,
}

impl Plan {
    /// The `Content-Length` this plan declares (what a GET sends), if any.
    pub fn content_length(&self) -> Option<u64> {
        self.headers.iter().find(|(name, _)| name == header::CONTENT_LENGTH).and_then(|(_, v)| v.parse().ok())
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

/// The answer to `method` of `repr` under `conditions`.
pub fn plan(method: Method, conditions: &Conditions, repr: &Representation) -> Plan {
    let etag = repr.etag.as_deref();
    if let Some(tags) = conditions.if_match.and_then(EntityTags::parse)
        && !tags.matches(etag, Comparison::Strong)
    {
        return message(method, StatusCode::PRECONDITION_FAILED, "precondition failed: the file has changed\n");
    }
    if let Some(tags) = conditions.if_none_match.and_then(EntityTags::parse)
        && tags.matches(etag, Comparison::Weak)
    {
        // RFC 9110 §15.4.5: the fields a 200 would carry that guide caches, and no body.
        let mut headers = vec![(header::CACHE_CONTROL, repr.cache_control.to_string())];
        headers.extend(etag.map(|t| (header::ETAG, t.to_string())));
        return Plan { status: StatusCode::NOT_MODIFIED, headers, body: Body::Empty };
    }

    let mut headers = vec![
        (header::CONTENT_TYPE, repr.content_type.to_string()),
        (header::ACCEPT_RANGES, "bytes".to_string()),
        (header::CACHE_CONTROL, repr.cache_control.to_string()),
    ];
    headers.extend(etag.map(|t| (header::ETAG, t.to_string())));
    headers.extend(repr.last_modified.as_ref().map(|d| (header::LAST_MODIFIED, d.clone())));

    // Ranges are defined for GET only (RFC 9110 §14.2); HEAD answers as the same GET would
    // (§9.3.2), as Apache and nginx do, so a client can probe a range before fetching it.
    let wanted = conditions
        .range
        .filter(|_| if_range_holds(conditions.if_range, etag))
        .and_then(|r| range::parse(r.as_bytes()))
        // An empty file has no bytes to select; answering it whole (200, 0 bytes) suits every
        // client better than a 416 would.
        .filter(|_| repr.len > 0);
    let (status, selected) = match wanted {
        Some(Requested::One(spec)) => match range::resolve(spec, repr.len) {
            Some(r) => {
                headers.push((header::CONTENT_RANGE, format!("bytes {}-{}/{}", r.first, r.last, repr.len)));
                (StatusCode::PARTIAL_CONTENT, Some(r))
            }
            None => {
                let mut refused = message(method, StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable\n");
                refused.headers.push((header::CONTENT_RANGE, format!("bytes */{}", repr.len)));
                return refused;
            }
        },
        // See `Requested::Several` for why several ranges get the whole file.
        Some(Requested::Several) | None => (StatusCode::OK, ByteRange::whole(repr.len)),
    };
    headers.push((header::CONTENT_LENGTH, selected.map_or(0, |r| r.len()).to_string()));
    let body = match (method, selected) {
        (Method::Get, Some(r)) => Body::Content(r),
        _ => Body::Empty,
    };
    Plan { status, headers, body }
}

/// An error answer with a short text body (or, for HEAD, only its length).
pub fn message(method: Method, status: StatusCode, text: &'static str) -> Plan {
    let mut headers = vec![
        (header::CONTENT_TYPE, TEXT.to_string()),
        (header::CONTENT_LENGTH, text.len().to_string()),
        (header::CACHE_CONTROL, "no-store".to_string()),
    ];
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.push((header::ALLOW, "GET, HEAD".to_string()));
    }
    let body = if method == Method::Get { Body::Message(text) } else { Body::Empty };
    Plan { status, headers, body }
}

/// The answer to any method but GET and HEAD: this server only ever reads.
pub fn method_not_allowed() -> Plan {
    message(
        Method::Get,
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed: this server only serves files (GET, HEAD)\n",
    )
}

/// Whether a `Range` may be honoured given `If-Range` (RFC 9110 §13.1.5): with no `If-Range`
/// always; with an entity tag only if it strongly matches ours; with a date never (see the
/// module comment), so the client gets the whole current file.
fn if_range_holds(if_range: Option<&str>, etag: Option<&str>) -> bool {
    let Some(value) = if_range else { return true };
    match EntityTags::parse(value) {
        Some(EntityTags::List(tags)) if tags.len() == 1 => EntityTags::List(tags).matches(etag, Comparison::Strong),
        _ => false,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// Both tags strong and equal (RFC 9110 §8.8.3.2).
    Strong,
    /// Equal once any `W/` is set aside.
    Weak,
}

/// `*` or a list of entity tags (RFC 9110 §8.8.3, §13.1.1).
#[derive(Debug, PartialEq, Eq)]
enum EntityTags<'a> {
    Any,
    /// Each tag as (weak, opaque-tag with its quotes).
    List(Vec<(bool, &'a str)>),
}

impl<'a> EntityTags<'a> {
    /// `None` for a value that is neither `*` nor a well-formed list; such a header is ignored.
    fn parse(value: &'a str) -> Option<EntityTags<'a>> {
        if value.trim_matches([' ', '\t']) == "*" {
            return Some(EntityTags::Any);
        }
        let mut tags = Vec::new();
        let mut rest = value;
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                break;
            }
            let (weak, after) = match rest.strip_prefix("W/") {
                Some(after) => (true, after),
                None => (false, rest),
            };
            // The opaque tag may hold commas (etagc is %x21 / %x23-7E / obs-text), so the
            // list is scanned quote to quote rather than split.
            let inner = after.strip_prefix('"')?;
            let end = inner.find('"')?;
            if inner[..end].bytes().any(|b| b < 0x21 || b == 0x7f) {
                return None;
            }
            tags.push((weak, &after[..end + 2]));
            rest = &inner[end + 1..];
            if !rest.is_empty() && !rest.starts_with([' ', '\t', ',']) {
                return None;
            }
        }
        (!tags.is_empty()).then_some(EntityTags::List(tags))
    }

    /// Whether the current representation, whose strong tag is `ours`, matches. `*` matches
    /// any representation that exists, and one always does here.
    fn matches(&self, ours: Option<&str>, comparison: Comparison) -> bool {
        match self {
            EntityTags::Any => true,
            EntityTags::List(tags) => ours.is_some_and(|ours| {
                tags.iter().any(|(weak, tag)| *tag == ours && (comparison == Comparison::Weak || !weak))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "\"1-a-2\"";

    fn file(len: u64) -> Representation {
        Representation {
            len,
            content_type: "application/octet-stream",
            etag: Some(TAG.to_string()),
            last_modified: Some("Sun, 06 Nov 1994 08:49:37 GMT".into()),
            cache_control: "no-cache",
        }
    }

    fn header(plan: &Plan, name: HeaderName) -> Option<&str> {
        plan.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    fn get(conditions: Conditions, len: u64) -> Plan {
        plan(Method::Get, &conditions, &file(len))
    }

    fn range(value: &str) -> Conditions<'_> {
        Conditions { range: Some(value), ..Default::default() }
    }

    #[test]
    fn whole_files_carry_length_type_and_validators() {
        let p = get(Conditions::default(), 10);
        assert_eq!(p.status, StatusCode::OK);
        assert_eq!(p.body, Body::Content(ByteRange { first: 0, last: 9 }));
        assert_eq!(p.content_length(), Some(10));
        assert_eq!(header(&p, header::ACCEPT_RANGES), Some("bytes"));
        assert_eq!(header(&p, header::ETAG), Some(TAG));
        assert_eq!(header(&p, header::LAST_MODIFIED), Some("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(header(&p, header::CONTENT_TYPE), Some("application/octet-stream"));
        assert_eq!(header(&p, header::CONTENT_RANGE), None);
    }

    #[test]
    fn head_has_the_get_headers_and_no_body() {
        for conditions in [Conditions::default(), range("bytes=2-3")] {
            let head = plan(Method::Head, &conditions, &file(10));
            let get = plan(Method::Get, &conditions, &file(10));
            assert_eq!((head.status, &head.headers), (get.status, &get.headers));
            assert_eq!(head.body, Body::Empty);
        }
        let empty = plan(Method::Head, &Conditions::default(), &file(0));
        assert_eq!((empty.status, empty.content_length(), empty.body), (StatusCode::OK, Some(0), Body::Empty));
    }

    #[test]
    fn single_ranges_are_partial_content() {
        for (value, first, last) in
            [("bytes=0-0", 0, 0), ("bytes=-3", 7, 9), ("bytes=4-", 4, 9), ("bytes=8-100", 8, 9), ("bytes=-20", 0, 9)]
        {
            let p = get(range(value), 10);
            assert_eq!(p.status, StatusCode::PARTIAL_CONTENT, "{value}");
            assert_eq!(p.body, Body::Content(ByteRange { first, last }), "{value}");
            assert_eq!(p.content_length(), Some(last - first + 1), "{value}");
            assert_eq!(header(&p, header::CONTENT_RANGE), Some(format!("bytes {first}-{last}/10").as_str()));
        }
    }

    #[test]
    fn unsatisfiable_ranges_are_416_with_the_length() {
        for value in ["bytes=10-", "bytes=10-20", "bytes=-0"] {
            let p = get(range(value), 10);
            assert_eq!(p.status, StatusCode::RANGE_NOT_SATISFIABLE, "{value}");
            assert_eq!(header(&p, header::CONTENT_RANGE), Some("bytes */10"));
            assert!(matches!(p.body, Body::Message(_)));
        }
    }

    #[test]
    fn other_ranges_get_the_whole_file() {
        // Several ranges, malformed ranges, other units, and any range of an empty file.
        for (value, len) in
            [("bytes=0-1,4-5", 10), ("bytes=5-1", 10), ("pages=1-2", 10), ("bytes=0-", 0), ("bytes=-1", 0)]
        {
            let p = get(range(value), len);
            assert_eq!((p.status, p.content_length()), (StatusCode::OK, Some(len)), "{value} of {len}");
            assert_eq!(p.body, ByteRange::whole(len).map_or(Body::Empty, Body::Content));
        }
    }

    #[test]
    fn if_range_needs_our_strong_tag() {
        let with = |if_range| Conditions { range: Some("bytes=0-0"), if_range: Some(if_range), ..Default::default() };
        assert_eq!(get(with(TAG), 10).status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(get(with(" \"1-a-2\" "), 10).status, StatusCode::PARTIAL_CONTENT);
        for stale in ["\"other\"", "W/\"1-a-2\"", "Sun, 06 Nov 1994 08:49:37 GMT", "\"1-a-2\", \"x\"", "*", ""] {
            let p = get(with(stale), 10);
            assert_eq!((p.status, p.content_length()), (StatusCode::OK, Some(10)), "{stale}");
        }
        // If-Range without Range changes nothing.
        let p = get(Conditions { if_range: Some("\"other\""), ..Default::default() }, 10);
        assert_eq!(p.status, StatusCode::OK);
    }

    #[test]
    fn if_none_match_gives_304_on_a_weak_match() {
        for value in [TAG, "W/\"1-a-2\"", "\"x\", \"1-a-2\"", "*", "\"a,b\",W/\"1-a-2\""] {
            let p = get(Conditions { if_none_match: Some(value), ..Default::default() }, 10);
            assert_eq!(p.status, StatusCode::NOT_MODIFIED, "{value}");
            assert_eq!((p.body, p.content_length()), (Body::Empty, None));
            assert_eq!(header(&p, header::ETAG), Some(TAG));
        }
        for value in ["\"x\"", "\"1-a-2", "1-a-2", "\"1-a-2\"x", ""] {
            let p = get(Conditions { if_none_match: Some(value), ..Default::default() }, 10);
            assert_eq!(p.status, StatusCode::OK, "{value}");
        }
    }

    #[test]
    fn if_match_needs_a_strong_match() {
        for (value, status) in [
            (TAG, StatusCode::OK),
            ("*", StatusCode::OK),
            ("\"x\", \"1-a-2\"", StatusCode::OK),
            ("W/\"1-a-2\"", StatusCode::PRECONDITION_FAILED),
            ("\"x\"", StatusCode::PRECONDITION_FAILED),
        ] {
            let p = get(Conditions { if_match: Some(value), ..Default::default() }, 10);
            assert_eq!(p.status, status, "{value}");
        }
        // If-Match is decided before If-None-Match.
        let p = get(Conditions { if_match: Some("\"x\""), if_none_match: Some(TAG), ..Default::default() }, 10);
        assert_eq!(p.status, StatusCode::PRECONDITION_FAILED);
    }

    #[test]
    fn generated_content_has_no_tag_to_match() {
        let repr = Representation::generated(5, TEXT);
        let p = plan(Method::Get, &Conditions { if_none_match: Some(TAG), ..Default::default() }, &repr);
        assert_eq!((p.status, header(&p, header::ETAG)), (StatusCode::OK, None));
        assert_eq!(header(&p, header::CACHE_CONTROL), Some("no-store"));
        let p = plan(Method::Get, &Conditions { if_match: Some(TAG), ..Default::default() }, &repr);
        assert_eq!(p.status, StatusCode::PRECONDITION_FAILED);
        let p = plan(Method::Get, &range("bytes=1-2"), &repr);
        assert_eq!((p.status, p.body), (StatusCode::PARTIAL_CONTENT, Body::Content(ByteRange { first: 1, last: 2 })));
    }

    #[test]
    fn entity_tag_lists_parse() {
        assert_eq!(EntityTags::parse(" * "), Some(EntityTags::Any));
        assert_eq!(
            EntityTags::parse("W/\"a\", \"b,c\" ,\"\""),
            Some(EntityTags::List(vec![(true, "\"a\""), (false, "\"b,c\""), (false, "\"\"")]))
        );
        for bad in ["", ",", "a", "\"a", "w/\"a\"", "\"a\"b", "\"a b\"", "\"a\x01\"", "*, \"a\""] {
            assert_eq!(EntityTags::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn errors_explain_themselves() {
        let p = message(Method::Get, StatusCode::NOT_FOUND, "not found\n");
        assert_eq!((p.body, p.content_length()), (Body::Message("not found\n"), Some(10)));
        let p = message(Method::Head, StatusCode::NOT_FOUND, "not found\n");
        assert_eq!((p.body, p.content_length()), (Body::Empty, Some(10)));
        let p = method_not_allowed();
        assert_eq!((p.status, header(&p, header::ALLOW)), (StatusCode::METHOD_NOT_ALLOWED, Some("GET, HEAD")));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn header_value() -> impl Strategy<Value = Option<String>> {
            prop_oneof![
                Just(None),
                Just(Some(TAG.to_string())),
                "bytes=[0-9]{0,3}-[0-9]{0,3}(,[0-9]{0,2}-[0-9]{0,2})?".prop_map(Some),
                "[ -~]{0,24}".prop_map(Some),
            ]
        }

        proptest! {
            /// Whatever the headers, the plan is consistent: bytes sent lie inside the file, the
            /// declared length is what is sent, 206 and 416 carry a Content-Range.
            #[test]
            fn plans_are_consistent(
                len in prop_oneof![Just(0u64), Just(1), 0u64..2000, Just(u64::MAX)],
                head in any::<bool>(),
                range in header_value(),
                if_range in header_value(),
                if_match in header_value(),
                if_none_match in header_value(),
            ) {
                let conditions = Conditions {
                    range: range.as_deref(),
                    if_range: if_range.as_deref(),
                    if_match: if_match.as_deref(),
                    if_none_match: if_none_match.as_deref(),
                };
                let method = if head { Method::Head } else { Method::Get };
                let p = plan(method, &conditions, &file(len));
                match p.body {
                    Body::Content(r) => {
                        prop_assert!(r.first <= r.last && r.last < len);
                        prop_assert_eq!(p.content_length(), Some(r.len()));
                        prop_assert!(!head);
                    }
                    Body::Message(text) => prop_assert_eq!(p.content_length(), Some(text.len() as u64)),
                    Body::Empty => prop_assert!(head || p.content_length().unwrap_or(0) == 0),
                }
                let content_range = header(&p, header::CONTENT_RANGE);
                match p.status {
                    StatusCode::OK => prop_assert_eq!(p.content_length(), Some(len)),
                    StatusCode::PARTIAL_CONTENT => {
                        let suffix = format!("/{len}");
                        prop_assert!(content_range.is_some_and(|v| v.ends_with(&suffix)));
                    }
                    StatusCode::RANGE_NOT_SATISFIABLE => {
                        prop_assert_eq!(content_range.map(str::to_string), Some(format!("bytes */{len}")));
                    }
                    StatusCode::NOT_MODIFIED | StatusCode::PRECONDITION_FAILED => {}
                    other => prop_assert!(false, "unexpected status {}", other),
                }
            }
        }
    }
}
