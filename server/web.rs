//! The PWA (`web/`), embedded into the binary and served by it.
//!
//! There is no build step: the files are plain HTML, CSS and ES modules. What
//! a bundler would do is done here, once, when the assets are loaded:
//!
//! - every file `web/<path>` is served at `/v/<version>/<path>`, where the
//!   version is a hash of all files. Those URLs never change their content,
//!   so they are cached for a year (`immutable`); relative module imports
//!   resolve inside the same version.
//! - the shells (`index.html`, `org.html`, `admin.html`), the service worker
//!   and the manifest keep stable URLs, are revalidated on every load
//!   (`no-cache` + `ETag`) and get `{{base}}`, `{{version}}`, `{{locales}}`
//!   (and, in `sw.js`, `{{shell}}`: what to precache) filled in.
//!
//! Text files are sent brotli-compressed at the highest quality, each
//! compressed once on its first request; clients without brotli get the
//! app's `Compress` middleware (gzip), which leaves PNGs alone. Release builds read the
//! embedded files once at start; debug builds (development, tests) read
//! `web/` from disk on every request, so editing the PWA needs no rebuild.
//!
//! Must not: load or link anything from another origin (privacy rule), or
//! serve a route of its own under `/api`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use actix_web::http::header::{self, EntityTag, IfNoneMatch};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use rust_embed::Embed;
use sha2::{Digest, Sha256};

#[derive(Embed)]
#[folder = "web/"]
#[exclude = "*.md"]
struct Files;

/// Long cache for versioned URLs.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Stable URLs: always revalidated (cheap with the ETag).
const REVALIDATE: &str = "no-cache";

/// Client-side routes of each app: the server answers them with its shell.
const RESIDENT_ROUTES: &[&str] =
    &["/", "/towns", "/inbox", "/settings", "/reports", "/g/{id}", "/g/{id}/report", "/m/{id}", "/r/{id}", "/q/{id}"];

pub fn routes(cfg: &mut web::ServiceConfig) {
    for path in RESIDENT_ROUTES {
        cfg.route(path, web::get().to(|req: HttpRequest| async move { shell(&req, "index.html").await }));
    }
    for app in ["org", "admin"] {
        let page = format!("{app}.html");
        let nested = page.clone();
        cfg.route(
            &format!("/{app}"),
            web::get().to(move |req: HttpRequest| {
                let page = page.clone();
                async move { shell(&req, &page).await }
            }),
        )
        .route(
            &format!("/{app}/{{tail:.*}}"),
            web::get().to(move |req: HttpRequest| {
                let page = nested.clone();
                async move { shell(&req, &page).await }
            }),
        );
    }
    cfg.route("/sw.js", web::get().to(|req: HttpRequest| async move { service_worker(&req).await }))
        .route(
            "/manifest.webmanifest",
            web::get().to(|req: HttpRequest| async move { shell(&req, "manifest.webmanifest").await }),
        )
        .route("/v/{version}/{path:.*}", web::get().to(versioned));
}

/// One file, ready to send.
struct Asset {
    body: web::Bytes,
    content_type: String,
    etag: String,
}

impl Asset {
    fn new(body: Vec<u8>, content_type: String) -> Asset {
        Asset { etag: etag_of(&body), content_type, body: body.into() }
    }

    fn compressible(&self) -> bool {
        let t = &self.content_type;
        t.starts_with("text/") || t.contains("javascript") || t.contains("json") || t.contains("+xml")
    }
}

/// Every file of `web/`, processed.
pub struct Site {
    version: String,
    files: HashMap<String, Asset>,
}

/// The files the service worker precaches: the resident app and what it
/// needs, not the staff apps (a resident's phone never loads those) and not
/// the locales (the page asks the worker to keep the one language it uses).
fn precached(path: &str) -> bool {
    !matches!(path, "index.html" | "org.html" | "admin.html" | "sw.js" | "manifest.webmanifest")
        && !path.starts_with("staff/")
        && !path.starts_with("locales/")
}

/// The brotli body of a text file at the highest quality (about 12 %
/// smaller than the `Compress` middleware's quick setting), compressed once
/// per content — on the blocking pool, a first request waits for it — and
/// kept for the life of the process (the set of contents is the site's).
async fn brotli_of(asset: &Asset) -> Option<web::Bytes> {
    type Cache = Mutex<HashMap<String, web::Bytes>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    if !asset.compressible() {
        return None;
    }
    let cache = CACHE.get_or_init(Cache::default);
    if let Some(hit) = cache.lock().ok().and_then(|c| c.get(&asset.etag).cloned()) {
        return Some(hit);
    }
    let body = asset.body.clone();
    let compressed = web::block(move || {
        let params = brotli::enc::BrotliEncoderParams { quality: 11, lgwin: 22, ..Default::default() };
        let mut out = Vec::with_capacity(body.len() / 3);
        brotli::BrotliCompress(&mut &body[..], &mut out, &params).ok().map(|_| web::Bytes::from(out))
    })
    .await
    .ok()
    .flatten()?;
    if let Ok(mut c) = cache.lock() {
        c.insert(asset.etag.clone(), compressed.clone());
    }
    Some(compressed)
}

fn content_type(path: &str) -> String {
    let mime = match path.rsplit('.').next() {
        Some("webmanifest") => "application/manifest+json".to_owned(),
        Some("js" | "mjs") => "text/javascript".to_owned(),
        _ => mime_guess::from_path(path).first_or_octet_stream().essence_str().to_owned(),
    };
    if mime.starts_with("text/") || mime.ends_with("json") || mime.ends_with("+xml") {
        format!("{mime}; charset=utf-8")
    } else {
        mime
    }
}

fn etag_of(body: &[u8]) -> String {
    hex(&Sha256::digest(body)[..12])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Site {
    /// Reads and processes every embedded file.
    pub fn load() -> Site {
        let mut raw: BTreeMap<String, Vec<u8>> =
            Files::iter().filter_map(|p| Files::get(&p).map(|f| (p.to_string(), f.data.into_owned()))).collect();
        let parts = locale_parts(&raw);
        let mut digest = Sha256::new();
        for (path, data) in &raw {
            digest.update(path.as_bytes());
            digest.update([0]);
            digest.update(Sha256::digest(data));
        }
        let version = hex(&digest.finalize()[..6]);
        let base = format!("/v/{version}");
        let locales: Vec<&str> = raw
            .keys()
            .filter_map(|p| p.strip_prefix("locales/").and_then(|f| f.strip_suffix(".json")))
            .filter(|code| !code.contains('/'))
            .collect();
        let mut shell: Vec<String> = vec!["/".to_owned(), "/manifest.webmanifest".to_owned()];
        shell.extend(raw.keys().filter(|p| precached(p)).map(|p| format!("{base}/{p}")));
        let shell = serde_json::to_string(&shell).unwrap_or_else(|_| "[]".to_owned());
        let locales = locales.join(",");
        raw.extend(parts);
        let files = raw
            .iter()
            .map(|(path, data)| {
                let templated = path.ends_with(".html") || path == "sw.js" || path == "manifest.webmanifest";
                let body = match (templated, std::str::from_utf8(data)) {
                    (true, Ok(text)) => text
                        .replace("{{base}}", &base)
                        .replace("{{version}}", &version)
                        .replace("{{locales}}", &locales)
                        .replace("{{shell}}", &shell)
                        .into_bytes(),
                    _ => data.clone(),
                };
                (path.clone(), Asset::new(body, content_type(path)))
            })
            .collect();
        Site { version, files }
    }

    pub fn version(&self) -> &str {
        &self.version
    }
}

/// Translators keep one file per language (`locales/<lang>.json`, one
/// namespace per app); the apps load `locales/<lang>/<namespace>.json`, so a
/// resident's phone never downloads the staff apps' strings. Each part
/// carries the file's `meta`. A file that is not a JSON object is skipped
/// (and logged): the apps then fall back to German.
fn locale_parts(raw: &BTreeMap<String, Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    let mut parts = Vec::new();
    for (path, data) in raw {
        let Some(code) = path.strip_prefix("locales/").and_then(|f| f.strip_suffix(".json")) else { continue };
        if code.contains('/') {
            continue;
        }
        let Ok(serde_json::Value::Object(mut file)) = serde_json::from_slice::<serde_json::Value>(data) else {
            tracing::warn!(%path, "locale file is not a JSON object; skipped");
            continue;
        };
        let meta = file.remove("meta").unwrap_or(serde_json::Value::Null);
        for (namespace, strings) in file {
            let part = serde_json::json!({ "meta": meta, namespace.clone(): strings });
            parts.push((format!("locales/{code}/{namespace}.json"), part.to_string().into_bytes()));
        }
    }
    parts
}

/// The processed site: loaded once in release builds, re-read from `web/`
/// on every request in debug builds.
fn site() -> Arc<Site> {
    static SITE: OnceLock<Arc<Site>> = OnceLock::new();
    if cfg!(debug_assertions) {
        return Arc::new(Site::load());
    }
    SITE.get_or_init(|| Arc::new(Site::load())).clone()
}

/// Whether the request's `Accept-Encoding` offers brotli (without `q=0`).
fn accepts_brotli(req: &HttpRequest) -> bool {
    req.headers().get_all(header::ACCEPT_ENCODING).filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |item| {
            let mut parts = item.split(';').map(str::trim);
            parts.next().is_some_and(|coding| coding.eq_ignore_ascii_case("br"))
                && !parts.any(|p| p.replace(' ', "").eq_ignore_ascii_case("q=0"))
        },
    )
}

async fn respond(req: &HttpRequest, asset: &Asset, cache: &str) -> HttpResponse {
    // Precompressed brotli when offered; otherwise the `Compress` middleware
    // (gzip) or nothing. It leaves a response with a `Content-Encoding` alone.
    let brotli = if accepts_brotli(req) { brotli_of(asset).await } else { None };
    let etag = match brotli {
        // Another representation, another strong ETag.
        Some(_) => EntityTag::new_strong(format!("{}-br", asset.etag)),
        None => EntityTag::new_strong(asset.etag.clone()),
    };
    let unchanged = match req.get_header::<IfNoneMatch>() {
        Some(IfNoneMatch::Any) => true,
        Some(IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(&etag)),
        None => false,
    };
    let mut response = if unchanged { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response.insert_header(header::ETag(etag)).insert_header((header::CACHE_CONTROL, cache));
    if asset.compressible() {
        response.insert_header((header::VARY, "Accept-Encoding"));
    }
    if unchanged {
        return response.finish();
    }
    match brotli {
        Some(body) => response
            .insert_header((header::CONTENT_ENCODING, "br"))
            .content_type(asset.content_type.as_str())
            .body(body.clone()),
        None => response.content_type(asset.content_type.as_str()).body(asset.body.clone()),
    }
}

fn missing() -> HttpResponse {
    use actix_web::ResponseError;
    crate::error::ApiError::NotFound("file").error_response()
}

async fn shell(req: &HttpRequest, page: &str) -> HttpResponse {
    let site = site();
    match site.files.get(page) {
        Some(asset) => respond(req, asset, REVALIDATE).await,
        None => missing(),
    }
}

async fn service_worker(req: &HttpRequest) -> HttpResponse {
    let mut response = shell(req, "sw.js").await;
    // The worker lives at the root so that its scope is the whole app.
    response
        .headers_mut()
        .insert(header::HeaderName::from_static("service-worker-allowed"), header::HeaderValue::from_static("/"));
    response
}

async fn versioned(req: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    let (version, file) = path.into_inner();
    let site = site();
    match site.files.get(&file) {
        // A page of an older version may still ask for its assets after an
        // upgrade: it gets today's file, but not cached as if it were the old one.
        Some(asset) if version == site.version => respond(&req, asset, IMMUTABLE).await,
        Some(asset) => respond(&req, asset, REVALIDATE).await,
        None => missing(),
    }
}
