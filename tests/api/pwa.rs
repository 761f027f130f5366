//! The PWA as the server delivers it (issue 5), and the three API routes it
//! brought along.
//!
//! - `web/`, served by `server/web.rs`: the shells and their deep links,
//!   security and cache headers, ETags and 304s, `{{…}}` placeholders filled
//!   in, every referenced URL and every precached URL answering (versioned
//!   ones `immutable`), compression, the manifest's install essentials,
//!   nothing loaded from another origin, and the resident app's first-load
//!   budget (60 KB compressed). These never touch the database, so they run
//!   once (on SQLite), not per backend. Only `index.html`, `org.html`,
//!   `admin.html`, `sw.js`, `manifest.webmanifest` and `locales/{de,en}.json`
//!   are named here: every other file is found by following references or
//!   by listing `web/`.
//! - `POST /api/v1/devices/me/test-notification`: one push, to that device
//!   only, through the strict test push service.
//! - `GET /api/v1/groups/{id}/subscriber-history`: daily snapshots plus
//!   today's live figure, 30 days.
//! - `GET /api/v1/groups/{id}/qr.svg`: a public SVG.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::test::{self, TestRequest};
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::harness::*;
use crate::push_service::Program;
use herold::db::schema::{device_notices, devices, subscriber_counts};

const MINUTE: i64 = 60 * 1000;
const DAY: i64 = 24 * 3600 * 1000;
/// The resident app's first load, compressed (issue 5, "Fast on a cheap phone").
const BUDGET_BYTES: usize = 60 * 1024;

// ---------------------------------------------------------------------------
// Raw HTTP against the full app (compression included)
// ---------------------------------------------------------------------------

/// A response with its body as sent (compressed bodies stay compressed).
struct Got {
    path: String,
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap_or_else(|_| panic!("{}: body is not UTF-8", self.path))
    }

    fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    fn cache_control(&self) -> &str {
        self.header("cache-control").unwrap_or("")
    }

    #[track_caller]
    fn ok(self) -> Got {
        assert_eq!(self.status, 200, "GET {}: {}", self.path, String::from_utf8_lossy(&self.body));
        self
    }
}

/// `herold::app` on the test app's state, read without the harness's JSON
/// decoding: the same middleware stack `herold serve` runs.
struct Site<S> {
    svc: S,
}

async fn site(
    app: &TestApp,
) -> Site<impl Service<Request, Response = ServiceResponse<impl MessageBody>, Error = actix_web::Error>> {
    Site { svc: test::init_service(herold::app(app.state.clone())).await }
}

impl<S, B> Site<S>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Got {
        let mut req = TestRequest::get().uri(path);
        for (name, value) in headers {
            req = req.insert_header((*name, *value));
        }
        let res = test::call_service(&self.svc, req.to_request()).await;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = test::read_body(res).await.to_vec();
        Got { path: path.to_owned(), status, headers, body }
    }

    async fn get(&self, path: &str) -> Got {
        self.get_with(path, &[]).await
    }

    /// The service worker's precache list, parsed from the served `sw.js`
    /// where `web/sw.js` has its `{{shell}}` placeholder.
    async fn precache(&self) -> Vec<String> {
        let raw = std::fs::read_to_string(web_dir().join("sw.js")).expect("web/sw.js");
        let at = raw.find("{{shell}}").expect("web/sw.js embeds {{shell}}");
        let line_start = raw[..at].rfind('\n').map_or(0, |i| i + 1);
        let prefix = &raw[line_start..at];
        assert!(!prefix.trim().is_empty(), "{{{{shell}}}} must follow something on its line (e.g. `const SHELL = `)");
        let served = self.get("/sw.js").await.ok().text();
        let mut found = served.match_indices(prefix);
        let (start, _) = found.next().unwrap_or_else(|| panic!("served sw.js lacks `{prefix}`"));
        let value = serde_json::Deserializer::from_str(&served[start + prefix.len()..])
            .into_iter::<Value>()
            .next()
            .expect("a JSON value after the prefix")
            .expect("the precache list is JSON");
        let list: Vec<String> = value
            .as_array()
            .expect("the precache list is an array")
            .iter()
            .map(|v| v.as_str().expect("precache entries are strings").to_owned())
            .collect();
        assert!(!list.is_empty(), "empty precache list");
        list
    }

    /// The files a page pulls in (HTML attributes, CSS `url()`, module
    /// imports), transitively: its versioned files and the manifest.
    async fn closure(&self, start: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![start.to_owned()];
        while let Some(url) = todo.pop() {
            if !seen.insert(url.clone()) {
                continue;
            }
            let got = self.get(&url).await.ok();
            if got.content_type().starts_with("image/png") {
                continue;
            }
            let path = url.split('?').next().unwrap_or("").to_owned();
            for r in references(&path, got.content_type(), &got.text(), true) {
                match resolve(&url, &r) {
                    Some(r) if r.starts_with("/v/") || r == "/manifest.webmanifest" => todo.push(r),
                    _ => {}
                }
            }
        }
        seen
    }

    /// What the server put where `web/<file>` has `placeholder` (the text
    /// between what precedes it on its line and the character after it).
    async fn filled_in(&self, file: &str, url: &str, placeholder: &str) -> String {
        let raw = std::fs::read_to_string(web_dir().join(file)).unwrap_or_else(|_| panic!("web/{file}"));
        let at = raw.find(placeholder).unwrap_or_else(|| panic!("web/{file} has no {placeholder}"));
        let line_start = raw[..at].rfind('\n').map_or(0, |i| i + 1);
        let prefix = &raw[line_start..at];
        let after = raw[at + placeholder.len()..].chars().next().unwrap_or('\n');
        let served = self.get(url).await.ok().text();
        let start = served.find(prefix).unwrap_or_else(|| panic!("{url} lacks `{prefix}`")) + prefix.len();
        served[start..].split(after).next().unwrap_or("").to_owned()
    }

    /// The current asset version: the `/v/<version>/` of the precached files.
    async fn version(&self) -> String {
        let precache = self.precache().await;
        let versions: BTreeSet<String> = precache
            .iter()
            .filter_map(|u| u.strip_prefix("/v/"))
            .filter_map(|r| r.split('/').next())
            .map(str::to_owned)
            .collect();
        assert_eq!(versions.len(), 1, "precached files of one version: {precache:?}");
        versions.into_iter().next().expect("one")
    }
}

fn web_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
}

/// Every file the server embeds (`web/**`, without `*.md`), as `web/`-relative paths.
fn web_files() -> Vec<String> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read web/") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_none_or(|e| e != "md") {
                let rel = path.strip_prefix(root).expect("under web/").to_string_lossy().replace('\\', "/");
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(&web_dir(), &web_dir(), &mut out);
    out.sort();
    out
}

/// Resolves `reference` against the URL of the file it appears in; `None`
/// for another origin, a fragment-only reference, or a non-network scheme.
fn resolve(base_path: &str, reference: &str) -> Option<String> {
    let reference = reference.trim();
    if reference.is_empty() || reference.starts_with('#') || foreign(reference) {
        return None;
    }
    let base = url::Url::parse("http://herold.test").expect("origin").join(base_path).expect("base path");
    let url = base.join(reference).ok()?;
    if url.scheme() != "http" || url.host_str() != Some("herold.test") {
        return None;
    }
    let mut out = url.path().to_owned();
    if let Some(q) = url.query() {
        out.push('?');
        out.push_str(q);
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// Reference scanners (HTML/SVG attributes, CSS url(), JS module specifiers
// and loading calls, manifest URL fields)
// ---------------------------------------------------------------------------

/// A reference that leaves the origin: `//host`, or a scheme other than the
/// local ones (`data:`, `blob:`) and the ones that load nothing (`mailto:`, `tel:`).
fn foreign(reference: &str) -> bool {
    let r = reference.trim().to_ascii_lowercase();
    if r.starts_with("//") || r.starts_with("\\\\") || r.starts_with("/\\") {
        return true;
    }
    match r.split_once(':') {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            !matches!(scheme, "data" | "blob" | "mailto" | "tel")
        }
        _ => false,
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// One start tag: its name and attributes (names lowercased, values as written).
struct Tag {
    name: String,
    attrs: Vec<(String, Option<String>)>,
}

/// The start tags of an HTML or SVG document (comments, end tags and the raw
/// text of `<script>` and `<style>` skipped; quoted values may hold `>`).
fn tags(doc: &str) -> Vec<Tag> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        if let Some(after) = rest.strip_prefix("!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        if rest.starts_with(['!', '/', '?']) {
            rest = rest.find('>').map_or("", |end| &rest[end + 1..]);
            continue;
        }
        let name_len = rest.find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/').unwrap_or(rest.len());
        let name = rest[..name_len].to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        rest = &rest[name_len..];
        let mut attrs = Vec::new();
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '/');
            if rest.is_empty() {
                break;
            }
            if let Some(after) = rest.strip_prefix('>') {
                rest = after;
                break;
            }
            let len = rest.find(|c: char| c.is_ascii_whitespace() || "=>/".contains(c)).unwrap_or(rest.len()).max(1);
            let attr = rest[..len].to_ascii_lowercase();
            rest = rest[len..].trim_start();
            let value = if let Some(after) = rest.strip_prefix('=') {
                let after = after.trim_start();
                match after.chars().next() {
                    Some(q @ ('"' | '\'')) => {
                        let end = after[1..].find(q).map_or(after.len(), |e| e + 1);
                        rest = after.get(end + 1..).unwrap_or("");
                        Some(after[1..end].to_owned())
                    }
                    _ => {
                        let end = after.find(|c: char| c.is_ascii_whitespace() || c == '>').unwrap_or(after.len());
                        rest = &after[end..];
                        Some(after[..end].to_owned())
                    }
                }
            } else {
                None
            };
            attrs.push((attr, value));
        }
        if name == "script" || name == "style" {
            let close = format!("</{name}");
            rest = rest.to_ascii_lowercase().find(&close).map_or("", |end| &rest[end..]);
        }
        out.push(Tag { name, attrs });
    }
    out
}

/// Values of the URL-carrying attributes of an HTML or SVG document.
fn attribute_urls(doc: &str) -> Vec<String> {
    const NAMES: [&str; 9] = ["src", "href", "xlink:href", "action", "formaction", "poster", "srcset", "ping", "data"];
    let mut out = Vec::new();
    for tag in tags(doc) {
        for (name, value) in tag.attrs {
            let Some(value) = value.filter(|_| NAMES.contains(&name.as_str())) else { continue };
            let value = value.replace("&amp;", "&");
            if name == "srcset" {
                out.extend(value.split(',').filter_map(|c| c.split_whitespace().next()).map(str::to_owned));
            } else {
                out.push(value);
            }
        }
    }
    out
}

/// `url(…)` and `@import "…"` references of a style sheet.
fn css_urls(css: &str) -> Vec<String> {
    let lower = css.to_ascii_lowercase();
    let mut out = Vec::new();
    for (at, _) in lower.match_indices("url(") {
        if lower[..at].ends_with(|c: char| is_ident(c) || c == '-') {
            continue;
        }
        let rest = &css[at + 4..];
        let value = rest.split(')').next().unwrap_or("").trim().trim_matches(['"', '\'']).trim();
        out.push(value.to_owned());
    }
    for (at, _) in lower.match_indices("@import") {
        let rest = css[at + 7..].trim_start();
        if let Some(q @ ('"' | '\'')) = rest.chars().next() {
            out.push(rest[1..].split(q).next().unwrap_or("").to_owned());
        }
    }
    out
}

/// The string literal at the start of `s` (after whitespace): its text, up
/// to the closing quote (a template literal up to its first `${`).
fn literal_at(s: &str) -> Option<String> {
    let s = s.trim_start();
    let quote = s.chars().next().filter(|c| matches!(c, '\'' | '"' | '`'))?;
    let mut out = String::new();
    let mut chars = s[1..].chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '$' if quote == '`' && chars.peek() == Some(&'{') => return Some(out),
            c if c == quote => return Some(out),
            c => out.push(c),
        }
    }
    None
}

/// Relative module specifiers of a script: `import … from '…'`,
/// `export … from '…'`, `import '…'`, `import('…')`.
fn js_imports(js: &str) -> Vec<String> {
    let mut out = Vec::new();
    for keyword in ["from", "import"] {
        for (at, _) in js.match_indices(keyword) {
            if js[..at].ends_with(|c: char| is_ident(c) || c == '.') {
                continue;
            }
            let rest = &js[at + keyword.len()..];
            if rest.starts_with(is_ident) {
                continue;
            }
            let rest = rest.trim_start();
            let rest = if keyword == "import" { rest.strip_prefix('(').unwrap_or(rest) } else { rest };
            if let Some(spec) = literal_at(rest) {
                out.push(spec);
            }
        }
    }
    out
}

/// What a script loads or links from a literal: module specifiers, the first
/// argument of the loading calls, and `src`/`href`/`action` set from a
/// literal (as a property, an object key or an assignment).
fn js_urls(js: &str) -> Vec<String> {
    let mut out = js_imports(js);
    const CALLS: [&str; 10] = [
        "fetch(",
        "importScripts(",
        "Worker(",
        "SharedWorker(",
        "WebSocket(",
        "EventSource(",
        "sendBeacon(",
        "openWindow(",
        "register(",
        "URL(",
    ];
    for call in CALLS {
        for (at, _) in js.match_indices(call) {
            if js[..at].ends_with(is_ident) {
                continue;
            }
            if let Some(arg) = literal_at(&js[at + call.len()..]) {
                out.push(arg);
            }
        }
    }
    for key in ["src", "href", "action", "srcset", "poster"] {
        for (at, _) in js.match_indices(key) {
            if js[..at].ends_with(|c: char| is_ident(c) || c == '-') {
                continue;
            }
            let rest = &js[at + key.len()..];
            if rest.starts_with(is_ident) {
                continue;
            }
            let rest = rest.trim_start();
            let rest = match rest.strip_prefix(':') {
                Some(r) => r,
                None => match rest.strip_prefix('=') {
                    Some(r) if !r.starts_with('=') => r,
                    _ => continue,
                },
            };
            if let Some(v) = literal_at(rest) {
                out.push(v);
            }
        }
    }
    out
}

/// An array of string literals at the start of `s` (`['a', "b"]`).
fn string_array_at(s: &str) -> Option<Vec<String>> {
    let mut rest = s.trim_start().strip_prefix('[')?;
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.starts_with(']') {
            return Some(out);
        }
        let item = literal_at(rest)?;
        let quote_len = 1;
        rest = &rest[quote_len + item.len() + quote_len..];
        out.push(item);
        rest = rest.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// URL-valued fields anywhere in a JSON document (manifest).
fn json_urls(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match doc {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("src" | "url" | "start_url" | "scope" | "id" | "action", Value::String(s)) => out.push(s.clone()),
                    _ => out.extend(json_urls(value)),
                }
            }
        }
        Value::Array(items) => out.extend(items.iter().flat_map(json_urls)),
        _ => {}
    }
    out
}

/// Every reference a served file makes, by its kind. `crawl`: only those
/// that name a whole file (no literal URL prefixes from scripts).
fn references(path: &str, content_type: &str, text: &str, crawl: bool) -> Vec<String> {
    let ext = path.rsplit('.').next().unwrap_or("");
    if content_type.starts_with("text/html") || ext == "svg" {
        let mut refs = attribute_urls(text);
        refs.extend(css_urls(text));
        refs
    } else if content_type.starts_with("text/css") {
        css_urls(text)
    } else if content_type.starts_with("text/javascript") {
        if crawl {
            js_imports(text)
        } else {
            js_urls(text)
        }
    } else if content_type.starts_with("application/manifest+json") {
        json_urls(&serde_json::from_str(text).unwrap_or_else(|e| panic!("{path}: not JSON: {e}")))
    } else {
        Vec::new()
    }
}

#[test]
fn the_origin_scanner_finds_foreign_references_and_only_those() {
    let html = r##"<link rel="stylesheet" href="https://fonts.example/a.css"><img alt="" src=//cdn.example/x.png>
        <a href="/inbox">x</a><a href="#main">y</a><svg xmlns="http://www.w3.org/2000/svg"><use xlink:href="#i"/></svg>
        <img data-src="https://lazy.example/y.png"><p>see the src=https://text.example in prose</p>"##;
    let found: Vec<String> = attribute_urls(html).into_iter().filter(|u| foreign(u)).collect();
    assert_eq!(found, ["https://fonts.example/a.css", "//cdn.example/x.png"], "data-src is no attribute of ours");

    let css =
        "@import url(\"https://fonts.example/b.css\"); .a { background: url( '/v/1/i.png' ) } .b { mask: url(#m) }\n\
               @import 'http://x.example/c.css'; .c { background-image: URL(//cdn.example/d.png) }";
    let found: Vec<String> = css_urls(css).into_iter().filter(|u| foreign(u)).collect();
    assert_eq!(found, ["https://fonts.example/b.css", "//cdn.example/d.png", "http://x.example/c.css"]);

    let js = r#"import { h } from '../common/dom.js';
        import confetti from "https://esm.example/confetti.js";
        import 'https://cdn.example/side.js';
        const lazy = await import(`https://cdn.example/${name}.js`);
        export * from "./ui.js";
        const NS = 'http://www.w3.org/2000/svg';
        field({ type: 'url', placeholder: 'https://', hint: 'https://example.org' });
        await fetch('/api/v1/tenants'); await fetch("https://tracker.example/p");
        img.src = 'https://img.example/a.png'; h('a', { href: 'https://www.example/' });
        h('img', { src: '/api/v1/groups/' + id + '/qr.svg' }); if (a.href == 'x') {}
        new URL('../locales/de.json', import.meta.url); navigator.sendBeacon('//stats.example/b');"#;
    let found: Vec<String> = js_urls(js).into_iter().filter(|u| foreign(u)).collect();
    let found: BTreeSet<&str> = found.iter().map(String::as_str).collect();
    let want: BTreeSet<&str> = [
        "https://esm.example/confetti.js",
        "https://cdn.example/side.js",
        "https://cdn.example/",
        "https://tracker.example/p",
        "https://img.example/a.png",
        "https://www.example/",
        "//stats.example/b",
    ]
    .into();
    assert_eq!(found, want);
    let imports = js_imports(js);
    assert!(imports.contains(&"../common/dom.js".to_owned()) && imports.contains(&"./ui.js".to_owned()), "{imports:?}");

    let manifest = json!({"start_url": "/", "icons": [{"src": "https://cdn.example/i.png"}, {"src": "/v/1/i.png"}],
                          "shortcuts": [{"url": "/inbox"}], "description": "https://text.example"});
    let found: Vec<String> = json_urls(&manifest).into_iter().filter(|u| foreign(u)).collect();
    assert_eq!(found, ["https://cdn.example/i.png"]);

    for local in
        ["/", "/v/abc/app.js", "./x.js", "../y.js", "data:image/png;base64,AAA", "blob:x", "mailto:a@b.de", "#x"]
    {
        assert!(!foreign(local), "{local}");
    }
    assert_eq!(resolve("/v/1/app/main.js", "../common/dom.js").as_deref(), Some("/v/1/common/dom.js"));
    assert_eq!(resolve("/", "/v/1/css/app.css").as_deref(), Some("/v/1/css/app.css"));
    assert_eq!(resolve("/", "https://cdn.example/x.js"), None);
}

// ---------------------------------------------------------------------------
// The shells
// ---------------------------------------------------------------------------

/// (request path, the path of the shell that must answer it)
fn shell_paths() -> Vec<(String, &'static str)> {
    let id = herold::auth::secrets::new_id();
    vec![
        ("/".into(), "/"),
        ("/towns".into(), "/"),
        ("/inbox".into(), "/"),
        ("/settings".into(), "/"),
        (format!("/g/{id}"), "/"),
        (format!("/m/{id}"), "/"),
        ("/reports".into(), "/"),
        (format!("/r/{id}"), "/"),
        (format!("/q/{id}"), "/"),
        (format!("/g/{id}/report"), "/"),
        ("/org".into(), "/org"),
        ("/org/".into(), "/org"),
        ("/org/anything".into(), "/org"),
        (format!("/org/groups/{id}/poster"), "/org"),
        ("/admin".into(), "/admin"),
        ("/admin/reports".into(), "/admin"),
        (format!("/admin/groups/{id}"), "/admin"),
    ]
}

#[track_caller]
fn assert_security_headers(got: &Got) {
    let csp = got.header("content-security-policy").unwrap_or_else(|| panic!("{}: no CSP", got.path));
    for directive in ["default-src 'self'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(directive), "{}: CSP lacks {directive}: {csp}", got.path);
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{}: CSP too lax: {csp}", got.path);
    for part in csp.split(';') {
        assert!(
            !part.contains("http:") && !part.contains("https:") && !part.contains(" *"),
            "{}: CSP allows other origins: {csp}",
            got.path
        );
    }
    assert_eq!(got.header("x-content-type-options"), Some("nosniff"), "{}", got.path);
    assert!(got.header("referrer-policy").is_some(), "{}: no Referrer-Policy", got.path);
}

#[actix_web::test]
async fn shells_answer_every_app_route_with_security_and_revalidation_headers() {
    let app = TestApp::new(Db::Sqlite).await.expect("sqlite");
    let site = site(&app).await;
    let mut shells: BTreeMap<&str, Got> = BTreeMap::new();
    for shell in ["/", "/org", "/admin"] {
        shells.insert(shell, site.get(shell).await.ok());
    }
    let bodies: BTreeSet<&[u8]> = shells.values().map(|g| g.body.as_slice()).collect();
    assert_eq!(bodies.len(), 3, "resident app, dashboard and console are three different pages");

    for (path, shell) in shell_paths() {
        let got = site.get(&path).await.ok();
        assert!(got.content_type().starts_with("text/html"), "{path}: {}", got.content_type());
        assert_security_headers(&got);
        assert_eq!(got.cache_control(), "no-cache", "{path}: a shell is revalidated on every load");
        let etag = got.header("etag").unwrap_or_else(|| panic!("{path}: no ETag")).to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{path}: ETag {etag}");
        assert_eq!(got.body, shells[shell].body, "{path} serves the shell of {shell}");
        let text = got.text();
        assert!(text.trim_start().to_ascii_lowercase().starts_with("<!doctype html>"), "{path}: {text:.80}");
        assert!(!text.contains("{{"), "{path}: a placeholder is left: {text}");

        let again = site.get_with(&path, &[("If-None-Match", etag.as_str())]).await;
        assert_eq!(again.status, 304, "{path}: If-None-Match with the current ETag");
        assert!(again.body.is_empty(), "{path}: a 304 has no body");
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        let any = site.get_with(&path, &[("If-None-Match", "*")]).await;
        assert_eq!(any.status, 304, "{path}: If-None-Match: *");
        let stale = site.get_with(&path, &[("If-None-Match", "\"0123456789abcdef\"")]).await.ok();
        assert_eq!(stale.body, got.body, "{path}: another ETag gets the page");
    }
}

/// The CSP forbids inline script and style: the shells must not need them.
#[actix_web::test]
async fn shells_need_no_inline_script_or_style() {
    let app = TestApp::new(Db::Sqlite).await.expect("sqlite");
    let site = site(&app).await;
    for shell in ["/", "/org", "/admin"] {
        let html = site.get(shell).await.ok().text();
        let lower = html.to_ascii_lowercase();
        for (at, _) in lower.match_indices("<script") {
            let open_end = at + lower[at..].find('>').expect("closed tag");
            let close = at + lower[at..].find("</script>").expect("closed script");
            assert!(lower[open_end + 1..close].trim().is_empty(), "{shell}: inline script: {}", &html[at..close]);
        }
        let tags = tags(&html);
        assert!(tags.iter().any(|t| t.name == "script"), "{shell}: no script at all?");
        for tag in &tags {
            if tag.name == "script" {
                assert!(tag.attrs.iter().any(|(n, v)| n == "src" && v.is_some()), "{shell}: a script without src");
            }
            assert!(tag.name != "style", "{shell}: inline <style> is blocked by the CSP");
            for (name, _) in &tag.attrs {
                assert!(name != "style", "{shell}: a style= attribute on <{}> is blocked by the CSP", tag.name);
                assert!(
                    !(name.starts_with("on") && name.len() > 2),
                    "{shell}: inline handler {name}= on <{}>",
                    tag.name
                );
            }
        }
        assert!(!lower.contains("javascript:"), "{shell}: javascript: URL");
    }
}

// ---------------------------------------------------------------------------
// Service worker and manifest
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn the_service_worker_is_served_at_the_root_with_its_precache_list() {
    let app = TestApp::new(Db::Sqlite).await.expect("sqlite");
    let site = site(&app).await;
    let sw = site.get("/sw.js").await.ok();
    assert!(sw.content_type().starts_with("text/javascript"), "{}", sw.content_type());
    assert_eq!(sw.header("service-worker-allowed"), Some("/"));
    assert_eq!(sw.cache_control(), "no-cache", "a new worker must be found at once");
    assert!(sw.header("etag").is_some());
    assert!(!sw.text().contains("{{"), "a placeholder is left in sw.js");
    let etag = sw.header("etag").expect("etag").to_owned();
    assert_eq!(site.get_with("/sw.js", &[("If-None-Match", etag.as_str())]).await.status, 304);

    let version = site.version().await;
    assert!(sw.text().contains(&version), "sw.js knows its version");
    let precache = site.precache().await;
    assert!(precache.contains(&"/".to_owned()), "the resident shell is precached: {precache:?}");
    for file in ["index.html", "org.html", "admin.html", "sw.js"] {
        assert!(!precache.iter().any(|u| u.ends_with(&format!("/{file}"))), "{file} is not precached under /v/");
    }
    assert!(!precache.iter().any(|u| u.contains("/staff/")), "a resident's phone never needs the staff apps");
    let unique: BTreeSet<&String> = precache.iter().collect();
    assert_eq!(unique.len(), precache.len(), "no URL twice: {precache:?}");
    for url in &precache {
        let got = site.get(url).await.ok();
        if url.starts_with("/v/") {
            assert!(got.cache_control().contains("immutable"), "{url}: {}", got.cache_control());
            assert!(got.cache_control().contains("max-age=31536000"), "{url}: {}", got.cache_control());
        } else {
            assert_eq!(got.cache_control(), "no-cache", "{url}");
        }
    }
}

/// Width and height of a PNG (from its IHDR chunk).
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.len() > 24 && png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR", "not a PNG");
    let be = |b: &[u8]| u32::from_be_bytes(b.try_into().expect("4 bytes"));
    (be(&png[16..20]), be(&png[20..24]))
}

#[actix_web::test]
async fn the_manifest_makes_the_app_installable() {
    let app = TestApp::new(Db::Sqlite).await.expect("sqlite");
    let site = site(&app).await;
    let got = site.get("/manifest.webmanifest").await.ok();
    assert!(got.content_type().starts_with("application/manifest+json"), "{}", got.content_type());
    assert_eq!(got.cache_control(), "no-cache");
    let text = got.text();
    assert!(!text.contains("{{"), "a placeholder is left in the manifest");
    let m: Value = serde_json::from_str(&text).expect("the manifest is JSON");
    assert!(m["name"].is_string() || m["short_name"].is_string(), "{m}");
    assert!(["standalone", "fullscreen", "minimal-ui"].contains(&m["display"].as_str().unwrap_or("")), "{m}");
    assert!(m["theme_color"].is_string() && m["background_color"].is_string(), "theme colours: {m}");

    let start = m["start_url"].as_str().expect("start_url");
    let start = resolve("/manifest.webmanifest", start).expect("start_url is on this origin");
    let page = site.get(&start).await.ok();
    assert_eq!(page.body, site.get("/").await.ok().body, "start_url opens the resident app");
    if let Some(scope) = m["scope"].as_str() {
        assert!(
            start.starts_with(&resolve("/manifest.webmanifest", scope).expect("local scope")),
            "start_url in scope"
        );
    }

    let icons = m["icons"].as_array().expect("icons");
    let (mut large, mut maskable) = (false, false);
    for icon in icons {
        let src = icon["src"].as_str().expect("icon src");
        let url = resolve("/manifest.webmanifest", src).expect("icon on this origin");
        let got = site.get(&url).await.ok();
        assert!(got.content_type().starts_with("image/"), "{url}: {}", got.content_type());
        assert!(got.cache_control().contains("immutable"), "{url}: icons are versioned");
        let sizes = icon["sizes"].as_str().unwrap_or("");
        let purposes = icon["purpose"].as_str().unwrap_or("any");
        if got.content_type().starts_with("image/png") {
            let (w, h) = png_size(&got.body);
            assert!(sizes.split_whitespace().any(|s| s == format!("{w}x{h}")), "{url} is {w}x{h}, declared {sizes}");
            if w >= 512 && h >= 512 && purposes.split_whitespace().any(|p| p == "any") {
                large = true;
            }
        }
        if purposes.split_whitespace().any(|p| p == "maskable") {
            maskable = true;
        }
    }
    assert!(large, "an icon of at least 512 px (purpose any): {icons:?}");
    assert!(maskable, "a maskable icon: {icons:?}");

    let shortcuts = m["shortcuts"].as_array().expect("shortcuts");
    assert!(!shortcuts.is_empty());
    for s in shortcuts {
        let url = resolve("/manifest.webmanifest", s["url"].as_str().expect("shortcut url")).expect("local");
        let got = site.get(&url).await.ok();
        assert!(got.content_type().starts_with("text/html"), "{url}");
    }

    let index = site.get("/").await.ok().text();
    let linked: Vec<String> = attribute_urls(&index).iter().filter_map(|u| resolve("/", u)).collect();
    assert!(linked.contains(&"/manifest.webmanifest".to_owned()), "the resident shell links the manifest");
}

// ---------------------------------------------------------------------------
// Every reference answers
// ---------------------------------------------------------------------------

/// Follows every same-origin reference from the shells, the service worker,
/// the manifest and the precache list: each answers 200 with a fitting type
/// and cache policy; and the resident app's own closure is precached.
#[actix_web::test]
async fn every_referenced_and_precached_url_answers() {
    let app = TestApp::new(Db::Sqlite).await.expect("sqlite");
    let site = site(&app).await;
    let version = site.version().await;
    let precache: BTreeSet<String> = site.precache().await.into_iter().collect();

    let mut seen: BTreeMap<String, String> = BTreeMap::new(); // url -> who referenced it first
    let mut queue: VecDeque<(String, String)> = ["/", "/org", "/admin", "/sw.js", "/manifest.webmanifest"]
        .into_iter()
        .map(|u| (u.to_owned(), "start".to_owned()))
        .chain(precache.iter().map(|u| (u.clone(), "the precache list".to_owned())))
        .collect();
    // Which files the resident app reaches from `/` without the manifest and sw.js.
    let mut resident: BTreeSet<String> = BTreeSet::new();
    let mut resident_queue = vec!["/".to_owned()];
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();

    while let Some((url, from)) = queue.pop_front() {
        if seen.contains_key(&url) {
            continue;
        }
        seen.insert(url.clone(), from.clone());
        let got = site.get(&url).await;
        assert_eq!(got.status, 200, "{url} (referenced by {from}) answers {}", got.status);
        let path = url.split('?').next().unwrap_or("");
        let ext = path.rsplit('/').next().unwrap_or("").rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        let ct = got.content_type().to_owned();
        let fitting = match ext {
            "js" | "mjs" => ct.starts_with("text/javascript"),
            "css" => ct.starts_with("text/css"),
            "json" => ct.starts_with("application/json"),
            "svg" => ct.starts_with("image/svg+xml"),
            "png" => ct == "image/png",
            "webmanifest" => ct.starts_with("application/manifest+json"),
            "html" | "" => ct.starts_with("text/html"),
            _ => true,
        };
        assert!(fitting, "{url}: content type {ct}");
        if ct.starts_with("text/") || ct.contains("json") || ct.contains("xml") {
            assert!(ct.contains("charset=utf-8"), "{url}: {ct}");
        }
        if url.starts_with(&format!("/v/{version}/")) {
            assert_eq!(got.cache_control(), "public, max-age=31536000, immutable", "{url}");
        } else {
            assert!(!url.starts_with("/v/"), "{url}: a reference to another version (from {from})");
            assert_eq!(got.cache_control(), "no-cache", "{url}");
        }
        let refs = if got.content_type().starts_with("image/png") {
            Vec::new()
        } else {
            let mut refs: Vec<String> =
                references(path, &ct, &got.text(), true).iter().filter_map(|r| resolve(&url, r)).collect();
            // API calls are not files (and need a token or a method other than GET).
            refs.retain(|r| !r.starts_with("/api/"));
            refs
        };
        if path != "/sw.js" && path != "/manifest.webmanifest" {
            edges.insert(url.clone(), refs.clone());
        }
        for r in refs {
            queue.push_back((r, url.clone()));
        }
    }
    while let Some(url) = resident_queue.pop() {
        if resident.insert(url.clone()) {
            resident_queue.extend(edges.get(&url).cloned().unwrap_or_default());
        }
    }
    for url in &resident {
        if url.starts_with("/v/") || url == "/manifest.webmanifest" {
            assert!(precache.contains(url), "{url} is part of the resident app but not precached (offline start)");
        }
        assert!(!url.contains("/staff/"), "the resident app pulls in staff code: {url}");
    }
    assert!(resident.iter().any(|u| u.ends_with(".js")), "the resident app loads scripts: {resident:?}");
    assert!(resident.iter().any(|u| u.ends_with(".css")), "the resident app loads a style sheet: {resident:?}");
    // The staff apps reach their scripts too.
    for shell in ["/org", "/admin"] {
        let scripts = edges[shell].iter().filter(|u| u.ends_with(".js")).count();
        assert!(scripts > 0, "{shell} loads a script: {:?}", edges[shell]);
    }
    eprintln!("{} URLs checked, {} in the resident app", seen.len(), resident.len());
}

#[actix_web::test]
async fn other_versions_revalidate_and_missing_files_are_json_404s() {
    let app = TestApp::new(Db::Sqlite).await.expect("sqlite");
    let site = site(&app).await;
    let version = site.version().await;
    let current = format!("/v/{version}/locales/de.json");
    let now = site.get(&current).await.ok();
    assert!(now.cache_control().contains("immutable"));
    let etag = now.header("etag").expect("etag").to_owned();
    assert_eq!(site.get_with(&current, &[("If-None-Match", etag.as_str())]).await.status, 304);

    for other in ["000000000000", "old"] {
        let url = format!("/v/{other}/locales/de.json");
        let got = site.get(&url).await.ok();
        assert_eq!(got.cache_control(), "no-cache", "{url}: today's file, but not cached as the old one");
        assert_eq!(got.body, now.body, "{url}");
    }

    for missing in [
        format!("/v/{version}/does-not-exist.js"),
        format!("/v/{version}/"),
        format!("/v/{version}/locales/xx.json"),
        format!("/v/{version}/../Cargo.toml"),
        format!("/v/{version}/%2e%2e/Cargo.toml"),
        format!("/v/{version}/..%2fCargo.toml"),
        format!("/v/{version}/%2e%2e%2f%2e%2e%2fCargo.toml"),
        "/v/".to_owned(),
        "/does-not-exist.html".to_owned(),
        "/g/".to_owned(),
    ] {
        let got = site.get(&missing).await;
        assert_eq!(got.status, 404, "{missing}: {}", String::from_utf8_lossy(&got.body));
        assert!(got.content_type().starts_with("application/json"), "{missing}: {}", got.content_type());
        let body: Value = serde_json::from_slice(&got.body).expect("JSON error");
        assert!(body["code"].as_str().is_some_and(|c| !c.is_empty()), "{missing}: {body}");
        assert!(!String::from_utf8_lossy(&got.body).contains("[package]"), "{missing} leaks a file");
    }
}

/// Translators keep `locales/<lang>.json`; the server also serves each of
/// its namespaces as `locales/<lang>/<namespace>.json` (with the file's
/// `meta`), and tells the pages which languages there are.
#[actix_web::test]
async fn locales_are_served_whole_and_per_namespace() {
    let app = TestApp::new(Db::Sqlite).await.expect("sqlite");
    let site = site(&app).await;
    let version = site.version().await;
    let listed = site.filled_in("index.html", "/", "{{locales}}").await;
    let listed: BTreeSet<&str> = listed.split(',').map(str::trim).collect();
    assert!(listed.contains("de") && listed.contains("en"), "languages offered to the page: {listed:?}");
    for code in ["de", "en"] {
        let disk: Value = serde_json::from_str(
            &std::fs::read_to_string(web_dir().join(format!("locales/{code}.json"))).expect("locale file"),
        )
        .expect("a locale file is JSON");
        let whole = site.get(&format!("/v/{version}/locales/{code}.json")).await.ok();
        assert!(whole.content_type().starts_with("application/json"), "{}", whole.content_type());
        let namespaces: Vec<&String> = disk.as_object().expect("an object").keys().filter(|k| *k != "meta").collect();
        assert!(namespaces.len() >= 2, "{code}: namespaces {namespaces:?}");
        for ns in namespaces {
            let url = format!("/v/{version}/locales/{code}/{ns}.json");
            let got = site.get(&url).await.ok();
            assert!(got.cache_control().contains("immutable"), "{url}");
            let part: Value = serde_json::from_slice(&got.body).expect("a part is JSON");
            assert_eq!(part[ns.as_str()], disk[ns.as_str()], "{url}: the namespace as written");
            assert_eq!(part["meta"], disk.get("meta").cloned().unwrap_or(Value::Null), "{url}: the file's meta");
            assert_eq!(part.as_object().expect("object").len(), 2, "{url}: only meta and its namespace");
        }
    }
    assert_eq!(site.get(&format!("/v/{version}/locales/de/no-such-namespace.json")).await.status, 404);
}

#[actix_web::test]
async fn text_assets_are_compressed_on_request_and_images_are_not() {
    let app = TestApp::new(Db::Sqlite).await.expect("sqlite");
    let site = site(&app).await;
    let version = site.version().await;
    for url in ["/".to_owned(), "/sw.js".to_owned(), format!("/v/{version}/locales/de.json")] {
        let plain = site.get_with(&url, &[("Accept-Encoding", "identity")]).await.ok();
        assert!(plain.header("content-encoding").is_none_or(|e| e == "identity"), "{url}");
        let gzip = site.get_with(&url, &[("Accept-Encoding", "gzip")]).await.ok();
        assert_eq!(gzip.header("content-encoding"), Some("gzip"), "{url}");
        assert!(gzip.body.starts_with(&[0x1f, 0x8b]), "{url}: a gzip stream");
        assert!(gzip.body.len() < plain.body.len(), "{url}: gzip {} vs {}", gzip.body.len(), plain.body.len());
        let br = site.get_with(&url, &[("Accept-Encoding", "gzip, deflate, br")]).await.ok();
        assert_eq!(br.header("content-encoding"), Some("br"), "{url}: brotli preferred when offered");
        assert!(br.body.len() < plain.body.len(), "{url}: br {} vs {}", br.body.len(), plain.body.len());
        assert!(
            br.header("vary").is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")),
            "{url}: caches must keep encodings apart"
        );
        assert!(br.header("etag").is_some(), "{url}: compressed responses are revalidated too");
    }
    let precache = site.precache().await;
    let png = precache.iter().find(|u| u.ends_with(".png")).expect("a precached PNG icon");
    let got = site.get_with(png, &[("Accept-Encoding", "br, gzip")]).await.ok();
    assert!(got.header("content-encoding").is_none_or(|e| e == "identity"), "{png}: PNG is compressed already");
    png_size(&got.body);
}

// ---------------------------------------------------------------------------
// Privacy: nothing from another origin
// ---------------------------------------------------------------------------

/// Every file of `web/` as served (templated where it is), scanned for
/// references that leave the origin: HTML/SVG attributes, CSS `url()` and
/// `@import`, JS module specifiers, loading calls and `src`/`href` literals,
/// and the manifest's URL fields. Locale text is prose, not loaded: skipped.
#[actix_web::test]
async fn no_served_file_references_another_origin() {
    let app = TestApp::new(Db::Sqlite).await.expect("sqlite");
    let site = site(&app).await;
    let version = site.version().await;
    let mut urls: Vec<String> =
        vec!["/".into(), "/org".into(), "/admin".into(), "/sw.js".into(), "/manifest.webmanifest".into()];
    urls.extend(web_files().iter().filter(|f| !f.starts_with("locales/")).map(|f| format!("/v/{version}/{f}")));
    let mut offences = Vec::new();
    let mut scanned = 0;
    for url in &urls {
        let got = site.get(url).await;
        if got.status == 404 {
            continue; // written while the test ran
        }
        let got = got.ok();
        if got.content_type().starts_with("image/png") {
            continue;
        }
        scanned += 1;
        let text = got.text();
        for r in references(url, got.content_type(), &text, false) {
            if foreign(&r) {
                offences.push(format!("{url}: {r}"));
            }
        }
    }
    assert!(scanned >= 8, "too few files scanned: {scanned}");
    assert!(offences.is_empty(), "references to other origins:\n{}", offences.join("\n"));
}

// ---------------------------------------------------------------------------
// The first-load budget
// ---------------------------------------------------------------------------

/// `/`, sw.js, the manifest and everything the service worker precaches,
/// as transferred with brotli (gzip printed too): at most 60 KB.
#[actix_web::test]
async fn the_resident_first_load_fits_in_60_kb_compressed() {
    let app = TestApp::new(Db::Sqlite).await.expect("sqlite");
    let site = site(&app).await;
    let version = site.version().await;
    let mut urls: BTreeSet<String> = ["/", "/sw.js", "/manifest.webmanifest"].map(str::to_owned).into();
    urls.extend(site.precache().await);
    let resident = site.closure("/").await;
    // The strings: the German parts the resident app asks for (German is the
    // default), found where the app starts i18n; the whole file if not found.
    let mut namespaces: BTreeSet<String> = BTreeSet::new();
    for url in resident.iter().filter(|u| u.ends_with(".js")) {
        let js = site.get(url).await.ok().text();
        for (at, _) in js.match_indices("initI18n(") {
            if js[..at].ends_with(|c: char| is_ident(c) || c == '.') || js[..at].trim_end().ends_with("function") {
                continue;
            }
            namespaces.extend(string_array_at(&js[at + "initI18n(".len()..]).unwrap_or_default());
        }
    }
    if namespaces.is_empty() {
        eprintln!("no initI18n([...]) call found in the resident app: counting all of locales/de.json");
        urls.insert(format!("/v/{version}/locales/de.json"));
    } else {
        namespaces.insert("common".to_owned());
        urls.extend(namespaces.iter().map(|ns| format!("/v/{version}/locales/de/{ns}.json")));
    }
    urls.extend(resident);
    let (mut plain_total, mut gzip_total, mut br_total) = (0, 0, 0);
    let mut lines = Vec::new();
    for url in &urls {
        let plain = site.get_with(url, &[("Accept-Encoding", "identity")]).await.ok();
        let gzip = site.get_with(url, &[("Accept-Encoding", "gzip")]).await.ok();
        let br = site.get_with(url, &[("Accept-Encoding", "br")]).await.ok();
        if !plain.content_type().starts_with("image/png") {
            assert_eq!(br.header("content-encoding"), Some("br"), "{url} is sent compressed");
        }
        plain_total += plain.body.len();
        gzip_total += gzip.body.len();
        br_total += br.body.len();
        lines.push(format!("{:>7} {:>7} {:>7}  {url}", plain.body.len(), gzip.body.len(), br.body.len()));
    }
    eprintln!(
        "resident first load ({} files): {plain_total} B plain, {gzip_total} B gzip, {br_total} B br \
         (budget {BUDGET_BYTES} B)\n  plain    gzip      br\n{}",
        urls.len(),
        lines.join("\n")
    );
    assert!(br_total <= BUDGET_BYTES, "first load {br_total} B br > {BUDGET_BYTES} B");
}

// ---------------------------------------------------------------------------
// POST /api/v1/devices/me/test-notification
// ---------------------------------------------------------------------------

async fn notice_count(app: &TestApp) -> i64 {
    app.with_conn(|c| device_notices::table.count().get_result(c).expect("count")).await
}

async fn device_count(app: &TestApp) -> i64 {
    app.with_conn(|c| devices::table.count().get_result(c).expect("count")).await
}

fn test_path() -> &'static str {
    "/api/v1/devices/me/test-notification"
}

both_backends_delivering!(
    async fn a_test_notification_reaches_that_device_only(d: Delivering, batch = 500) {
        let mut devices = d.devices(3).await;
        let (sub, device) = devices.remove(0);
        let others = devices;

        let body = d.app.post(test_path(), Some(&device.token), Value::Null).await.expect(202);
        assert_eq!(body["status"], "queued");
        assert_eq!(notice_count(&d.app).await, 1);
        d.deliver().await;
        assert_eq!(d.push.count(), 1, "exactly one push");
        d.push.assert_no_violations();
        let got = d.push.deliveries_for(&sub.id);
        assert_eq!(got.len(), 1);
        let p = &got[0].payload;
        assert_eq!(p["notification"]["tag"], "herold-test");
        assert_eq!(p["notification"]["title"], "Testbenachrichtigung", "German by default: {p}");
        assert!(p["notification"]["body"].as_str().is_some_and(|b| !b.is_empty()), "{p}");
        assert!(p["notification"]["navigate"].as_str().is_some_and(|n| n.ends_with("/settings")), "{p}");
        assert_eq!(p["herold"]["kind"], "test");
        assert!(p["herold"].get("message_id").is_none_or(Value::is_null), "not a message: {p}");
        assert_eq!(got[0].ttl, 600, "a test notification is useless after ten minutes");
        assert!(got[0].urgency.as_deref().is_none_or(|u| u == "normal"), "{:?}", got[0].urgency);
        for (other, _) in &others {
            assert!(d.push.requests_for(&other.id).is_empty(), "another device got the test notification");
        }
        assert_eq!(notice_count(&d.app).await, 0, "delivered notices are deleted");

        // English on request; nothing left to send afterwards.
        d.app.post(test_path(), Some(&device.token), json!({"lang": "en"})).await.expect(202);
        d.deliver().await;
        let got = d.push.deliveries_for(&sub.id);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].payload["notification"]["title"], "Test notification");
        assert_eq!(got[1].payload["notification"]["lang"], "en");
        assert_eq!(got[1].payload["notification"]["tag"], "herold-test");
        d.app.advance(3_600_000);
        d.deliver().await;
        assert_eq!(d.push.request_count(), 2, "sent once each, never again");

        // Asked twice before the engine runs: one push, the later one.
        d.app.post(test_path(), Some(&device.token), json!({"lang": "de"})).await.expect(202);
        d.app.post(test_path(), Some(&device.token), json!({"lang": "en"})).await.expect(202);
        assert_eq!(notice_count(&d.app).await, 1, "a second request replaces the unsent one");
        d.deliver().await;
        let got = d.push.deliveries_for(&sub.id);
        assert_eq!(got.len(), 3);
        assert_eq!(got[2].payload["notification"]["title"], "Test notification");
        d.push.assert_no_violations();
        assert_eq!(device_count(&d.app).await, 3);
    }
);

both_backends!(
    async fn a_test_notification_needs_a_device_token(app: TestApp) {
        app.with_tenant("wismar").await;
        let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
        app.post(test_path(), None, Value::Null).await.expect_error(401, "unauthenticated");
        app.post(test_path(), Some(&admin.access), Value::Null).await.expect_error(401, "unauthenticated");
        let bogus = herold::auth::secrets::new_secret(herold::auth::secrets::DEVICE_PREFIX);
        app.post(test_path(), Some(&bogus), json!({"lang": "en"})).await.expect_error(401, "unauthenticated");
        assert_eq!(notice_count(&app).await, 0);
        // Any other language falls back to German; an empty object is fine.
        let device = app.device().await;
        app.post(test_path(), Some(&device.token), json!({"lang": "fr"})).await.expect(202);
        app.post(test_path(), Some(&device.token), json!({})).await.expect(202);
        assert_eq!(notice_count(&app).await, 1);
    }
);

both_backends_delivering!(
    async fn erasing_the_device_drops_its_pending_test_notification(d: Delivering, batch = 500) {
        let (sub, device) = d.devices(1).await.remove(0);
        let (keeper_sub, keeper) = d.devices(1).await.remove(0);
        d.app.post(test_path(), Some(&device.token), Value::Null).await.expect(202);
        d.app.post(test_path(), Some(&keeper.token), Value::Null).await.expect(202);
        assert_eq!(notice_count(&d.app).await, 2);
        d.app.delete("/api/v1/devices/me", Some(&device.token)).await.expect(204);
        assert_eq!(notice_count(&d.app).await, 1, "the erased device's notice goes with it");
        d.deliver().await;
        assert!(d.push.requests_for(&sub.id).is_empty(), "nothing sent to an erased device");
        assert_eq!(d.push.deliveries_for(&keeper_sub.id).len(), 1);
        assert_eq!(notice_count(&d.app).await, 0);
    }
);

both_backends_delivering!(
    async fn a_gone_answer_to_a_test_notification_deletes_the_device(d: Delivering, batch = 500) {
        d.app.with_tenant("wismar").await;
        let admin = d.app.city_admin("wismar", "rathaus@wismar.de").await;
        let parish = d.app.approved_org(&admin, "wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let group = d.app.group(&parish, "Gemeindebrief", "church").await;
        let (sub, device) = d.devices(1).await.remove(0);
        d.follow(&device, &group).await;
        d.push.program_for(&sub.id, Program::status(410));
        d.app.post(test_path(), Some(&device.token), Value::Null).await.expect(202);
        d.deliver().await;
        assert_eq!(d.push.requests_for(&sub.id).len(), 1);
        assert_eq!(device_count(&d.app).await, 0, "410: the device is gone");
        assert_eq!(notice_count(&d.app).await, 0);
        d.app.get("/api/v1/devices/me/subscriptions", Some(&device.token)).await.expect(401);
        assert_eq!(d.app.get(&format!("/api/v1/groups/{group}"), None).await.expect(200)["subscriber_count"], 0);
        d.app.advance(3_600_000);
        d.deliver().await;
        assert_eq!(d.push.request_count(), 1, "never tried again");
    }
);

both_backends_delivering!(
    async fn a_failing_test_notification_is_retried_with_backoff_until_it_expires(d: Delivering, batch = 500) {
        let (sub, device) = d.devices(1).await.remove(0);
        d.push.program_for(&sub.id, Program::status(503));
        d.app.post(test_path(), Some(&device.token), Value::Null).await.expect(202);
        d.deliver().await;
        assert_eq!(d.push.requests_for(&sub.id).len(), 1);
        assert_eq!(notice_count(&d.app).await, 1, "kept for a retry");
        // The first backoff is at least 24 s (30 s ± 20 %).
        d.app.advance(20_000);
        d.deliver().await;
        assert_eq!(d.push.requests_for(&sub.id).len(), 1, "not retried at once");
        d.app.advance(20_000);
        d.deliver().await;
        assert_eq!(d.push.requests_for(&sub.id).len(), 2, "retried after the backoff");
        // Step through well past the ten-minute lifetime.
        for _ in 0..30 {
            d.app.advance(MINUTE);
            d.deliver().await;
        }
        let tries = d.push.requests_for(&sub.id).len();
        assert!((3..=8).contains(&tries), "retried a few times, then given up: {tries}");
        assert_eq!(notice_count(&d.app).await, 0, "given up: the row goes");
        assert_eq!(device_count(&d.app).await, 1, "5xx never deletes a device");
        for r in d.push.requests_for(&sub.id) {
            let ttl: u64 = r.ttl.as_deref().expect("TTL").parse().expect("number");
            assert!(ttl <= 600, "TTL counts down to the notice's expiry: {ttl}");
        }
        d.app.advance(DAY);
        d.deliver().await;
        assert_eq!(d.push.requests_for(&sub.id).len(), tries, "not forever");

        // Once the push service recovers, a new test goes through.
        d.push.clear_programs();
        d.app.post(test_path(), Some(&device.token), Value::Null).await.expect(202);
        d.deliver().await;
        assert_eq!(d.push.deliveries_for(&sub.id).len(), 1);
        d.push.assert_no_violations();
    }
);

both_backends_delivering!(
    /// The engine was down for longer than the notice lives: it is dropped,
    /// not sent late (with a TTL of 0).
    async fn an_expired_test_notification_is_not_sent(d: Delivering, batch = 500) {
        let (sub, device) = d.devices(1).await.remove(0);
        d.app.post(test_path(), Some(&device.token), Value::Null).await.expect(202);
        d.app.advance(11 * MINUTE);
        d.deliver().await;
        assert!(d.push.requests_for(&sub.id).is_empty(), "sent after its expiry: {:?}", d.push.requests_for(&sub.id));
        assert_eq!(notice_count(&d.app).await, 0, "an expired notice is dropped");
    }
);

// ---------------------------------------------------------------------------
// GET /api/v1/groups/{id}/subscriber-history
// ---------------------------------------------------------------------------

async fn snapshot(app: &TestApp, at: i64) {
    app.with_conn(move |c| herold::delivery::store::snapshot_subscriber_counts(c, at).expect("snapshot")).await;
}

fn history_path(group: &str) -> String {
    format!("/api/v1/groups/{group}/subscriber-history")
}

async fn follow(app: &TestApp, device: &Device, group: &str) {
    app.put(&format!("/api/v1/devices/me/subscriptions/{group}"), Some(&device.token), Value::Null).await.expect(200);
}

fn days(history: &Value) -> Vec<(String, i64)> {
    assert_eq!(history["next"], Value::Null, "{history}");
    history["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| (d["day"].as_str().expect("day").to_owned(), d["subscribers"].as_i64().expect("subscribers")))
        .collect()
}

both_backends!(
    async fn subscriber_history_has_a_figure_per_day_and_today_live(app: TestApp) {
        app.with_tenant("wismar").await;
        let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
        let parish = app.approved_org(&admin, "wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let group = app.group(&parish, "Gemeindebrief", "church").await;
        let other = app.group(&parish, "Chor", "church").await;

        // A new group: today only, live.
        let h = app.get(&history_path(&group), Some(&parish.user.access)).await.expect(200);
        assert_eq!(days(&h), vec![("2026-11-26".to_owned(), 0)]);

        let (a, b, c) = (app.device().await, app.device().await, app.device().await);
        follow(&app, &a, &group).await;
        follow(&app, &b, &group).await;
        follow(&app, &c, &other).await;
        snapshot(&app, app.state.now_ms()).await;
        app.advance(DAY);
        // (Access tokens live 15 minutes.)
        let owner = app.login("buero@st-nikolai.de").await;
        let admin = app.login("rathaus@wismar.de").await;
        follow(&app, &c, &group).await;
        let h = app.get(&history_path(&group), Some(&owner.access)).await.expect(200);
        assert_eq!(days(&h), vec![("2026-11-26".to_owned(), 2), ("2026-11-27".to_owned(), 3)], "{h}");
        let h = app.get(&history_path(&other), Some(&owner.access)).await.expect(200);
        assert_eq!(days(&h), vec![("2026-11-26".to_owned(), 1), ("2026-11-27".to_owned(), 1)], "per group: {h}");

        // A snapshot of today is replaced later the same day, and today is always the live figure.
        snapshot(&app, app.state.now_ms()).await;
        app.delete(&format!("/api/v1/devices/me/subscriptions/{group}"), Some(&a.token)).await.expect(204);
        let h = app.get(&history_path(&group), Some(&admin.access)).await.expect(200);
        assert_eq!(days(&h), vec![("2026-11-26".to_owned(), 2), ("2026-11-27".to_owned(), 2)], "{h}");
        snapshot(&app, app.state.now_ms() + 3_600_000).await;
        let rows: Vec<(String, i64)> = {
            let group = group.clone();
            app.with_conn(move |c| {
                subscriber_counts::table
                    .filter(subscriber_counts::group_id.eq(&group))
                    .order(subscriber_counts::day.asc())
                    .select((subscriber_counts::day, subscriber_counts::subscribers))
                    .load(c)
                    .expect("rows")
            })
            .await
        };
        assert_eq!(rows, vec![("2026-11-26".to_owned(), 2), ("2026-11-27".to_owned(), 2)], "one row per day");

        // 30 days: today and the 29 before it, oldest first.
        let now = app.state.now_ms();
        for back in [29, 30, 31, 45] {
            snapshot(&app, now - back * DAY).await;
        }
        let h = app.get(&history_path(&group), Some(&owner.access)).await.expect(200);
        let got = days(&h);
        assert_eq!(got.first().map(|d| d.0.as_str()), Some("2026-10-29"), "29 days back is the oldest: {h}");
        assert!(!got.iter().any(|d| d.0.as_str() < "2026-10-29"), "older than 30 days: {h}");
        assert_eq!(got.last(), Some(&("2026-11-27".to_owned(), 2)));
        let sorted: Vec<&String> = got.iter().map(|d| &d.0).collect();
        assert!(sorted.windows(2).all(|w| w[0] < w[1]), "oldest first, each day once: {h}");
        app.advance(40 * DAY);
        let owner = app.login("buero@st-nikolai.de").await;
        let h = app.get(&history_path(&group), Some(&owner.access)).await.expect(200);
        assert_eq!(days(&h), vec![("2027-01-06".to_owned(), 2)], "old figures age out: {h}");
    }
);

both_backends!(
    async fn subscriber_history_is_for_the_organization_and_the_town_only(app: TestApp) {
        app.with_tenant("wismar").await;
        app.with_tenant("strausberg").await;
        let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
        let other_admin = app.city_admin("strausberg", "rathaus@strausberg.de").await;
        let parish = app.approved_org(&admin, "wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let club = app.approved_org(&admin, "wismar", "vorstand@hansa-wismar.de", "Hansa").await;
        let group = app.group(&parish, "Gemeindebrief", "church").await;
        let device = app.device().await;
        follow(&app, &device, &group).await;

        for user in [&parish.user, &admin] {
            let h = app.get(&history_path(&group), Some(&user.access)).await.expect(200);
            assert_eq!(days(&h), vec![("2026-11-26".to_owned(), 1)]);
        }
        for user in [&club.user, &other_admin] {
            app.get(&history_path(&group), Some(&user.access)).await.expect_error(404, "not_found");
        }
        app.get(&history_path(&group), None).await.expect_error(401, "unauthenticated");
        app.get(&history_path(&group), Some(&device.token)).await.expect_error(401, "unauthenticated");
        app.get(&history_path("nope"), Some(&admin.access)).await.expect_error(404, "not_found");
    }
);

// ---------------------------------------------------------------------------
// GET /api/v1/groups/{id}/qr.svg
// ---------------------------------------------------------------------------

both_backends!(
    async fn a_group_s_qr_code_is_a_public_svg(app: TestApp) {
        app.with_tenant("wismar").await;
        let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
        let parish = app.approved_org(&admin, "wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let group = app.group(&parish, "Gemeindebrief", "church").await;
        let res = app.get(&format!("/api/v1/groups/{group}/qr.svg"), None).await;
        assert_eq!(res.status.as_u16(), 200);
        let ct = res.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(ct.starts_with("image/svg+xml"), "{ct}");
        assert_eq!(res.headers.get("x-content-type-options").and_then(|v| v.to_str().ok()), Some("nosniff"));
        let svg = res.body.as_str().expect("SVG text").to_owned();
        assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"), "{svg:.200}");
        assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\""), "a standalone SVG");
        assert!(!svg.to_ascii_lowercase().contains("<script"), "no script in an image");
        // Many dark modules: rectangles, or subpaths of one path.
        let modules = svg.matches("<rect").count() + svg.matches(['M', 'm']).count();
        assert!(modules > 100, "{modules} modules: {svg:.300}");
        // The same link, the same code; another group, another code.
        let again = app.get(&format!("/api/v1/groups/{group}/qr.svg"), None).await;
        assert_eq!(again.body, res.body);
        let other = app.group(&parish, "Chor", "church").await;
        let other = app.get(&format!("/api/v1/groups/{other}/qr.svg"), None).await;
        assert_ne!(other.body, res.body);

        app.get("/api/v1/groups/does-not-exist/qr.svg", None).await.expect_error(404, "not_found");
    }
);
