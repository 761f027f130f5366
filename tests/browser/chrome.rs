//! Headless Chromium, launched as `/work/shared/BROWSER-TESTS.md` says (Debian's
//! `/usr/bin/chromium`, a fresh profile per test, the flags that keep it off
//! the network), driven with [`crate::cdp`].
//!
//! [`Browser`] records, for the whole run, what the pages and the service
//! worker requested (`Network.requestWillBeSent` on every page session and on
//! every service worker, which is auto-attached paused and let run only once
//! its network log is on), console errors, CSP violations and dialogs.
//! [`Page`] is one tab: navigate, wait for a screen, click like a user,
//! type, evaluate, take screenshots — and fail with a screenshot and the
//! page's state when something does not show up.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::cdp::{Cdp, Command as CdpCommand, Event};
use crate::http;

const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// How long a screen or an element may take to show up.
pub const UI_TIMEOUT: Duration = Duration::from_secs(15);

/// One request a page or a service worker made.
#[derive(Clone, Debug)]
pub struct NetRequest {
    pub session: String,
    pub request_id: String,
    pub url: String,
    pub resource_type: String,
    /// From a service worker target (not a page).
    pub from_worker_target: bool,
    /// Answered by the page's service worker or a cache, not the network.
    pub served_locally: bool,
    /// Bytes received over the network (`Network.loadingFinished`), headers included.
    pub encoded_length: Option<f64>,
    /// Of those, the response's header bytes (`Network.responseReceived`).
    pub header_length: Option<f64>,
    /// The response body as transferred: `encoded_length - header_length`.
    pub body_length: Option<f64>,
    pub failed: Option<String>,
}

/// A service worker version as `ServiceWorker.workerVersionUpdated` reports it.
#[derive(Clone, Debug)]
pub struct WorkerVersion {
    pub registration_id: String,
    pub status: String,
}

#[derive(Default)]
struct Recorded {
    requests: Vec<NetRequest>,
    /// Sessions of auto-attached service workers.
    worker_sessions: Vec<String>,
    /// Service worker registrations: id → scope URL.
    registrations: HashMap<String, String>,
    versions: HashMap<String, WorkerVersion>,
    console_errors: Vec<String>,
    csp_violations: Vec<String>,
    /// Applied to every service worker as soon as it is attached.
    offline: bool,
}

/// What the reactor does with each event: records it, and lets paused
/// service workers run once their network log is on.
fn react(rec: &mut Recorded, e: &Event) -> Vec<CdpCommand> {
    let session = e.session.clone().unwrap_or_default();
    let p = &e.params;
    let mut send = Vec::new();
    match e.method.as_str() {
        "Target.attachedToTarget" if p["targetInfo"]["type"] == "service_worker" => {
            let s = p["sessionId"].as_str().unwrap_or_default().to_owned();
            rec.worker_sessions.push(s.clone());
            send.push(("Network.enable".into(), json!({}), Some(s.clone())));
            send.push(("Runtime.enable".into(), json!({}), Some(s.clone())));
            if rec.offline {
                send.push(("Network.emulateNetworkConditions".into(), offline_conditions(true), Some(s.clone())));
            }
            send.push(("Runtime.runIfWaitingForDebugger".into(), json!({}), Some(s)));
        }
        "Network.requestWillBeSent" => {
            let id = p["requestId"].as_str().unwrap_or_default().to_owned();
            // A redirect reuses the id: keep both URLs.
            rec.requests.push(NetRequest {
                from_worker_target: rec.worker_sessions.contains(&session),
                session,
                request_id: id,
                url: p["request"]["url"].as_str().unwrap_or_default().to_owned(),
                resource_type: p["type"].as_str().unwrap_or_default().to_owned(),
                served_locally: false,
                encoded_length: None,
                header_length: None,
                body_length: None,
                failed: None,
            });
        }
        "Network.responseReceived" => {
            let r = &p["response"];
            let local = r["fromServiceWorker"] == true || r["fromDiskCache"] == true || r["fromPrefetchCache"] == true;
            if let Some(req) = find_request(rec, &session, p) {
                req.served_locally = local;
                req.header_length = r["encodedDataLength"].as_f64();
            }
        }
        "Network.loadingFinished" => {
            if let Some(req) = find_request(rec, &session, p) {
                req.encoded_length = p["encodedDataLength"].as_f64();
                req.body_length = req.encoded_length.map(|total| (total - req.header_length.unwrap_or(0.0)).max(0.0));
            }
        }
        "Network.loadingFailed" => {
            if let Some(req) = find_request(rec, &session, p) {
                req.failed = Some(p["errorText"].as_str().unwrap_or("failed").to_owned());
            }
        }
        "Runtime.exceptionThrown" => {
            let d = &p["exceptionDetails"];
            let text = d["exception"]["description"].as_str().or(d["text"].as_str()).unwrap_or("?");
            rec.console_errors.push(format!("exception: {text} ({})", d["url"].as_str().unwrap_or("")));
        }
        "Runtime.consoleAPICalled" if p["type"] == "error" || p["type"] == "warning" => {
            let args: Vec<String> = p["args"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| a["value"].as_str().map(str::to_owned).unwrap_or_else(|| a["description"].to_string()))
                .collect();
            rec.console_errors.push(format!("console.{}: {}", p["type"].as_str().unwrap_or(""), args.join(" ")));
        }
        "Log.entryAdded" => {
            let entry = &p["entry"];
            let text = entry["text"].as_str().unwrap_or_default();
            if text.contains("Content Security Policy") || text.contains("Content-Security-Policy") {
                rec.csp_violations.push(format!("{text} ({})", entry["url"].as_str().unwrap_or("")));
            } else if entry["level"] == "error" {
                rec.console_errors.push(format!("log: {text} ({})", entry["url"].as_str().unwrap_or("")));
            }
        }
        "Page.javascriptDialogOpening" => {
            send.push((
                "Page.handleJavaScriptDialog".into(),
                json!({"accept": true, "promptText": "Geprüft im Browsertest"}),
                Some(session),
            ));
        }
        "ServiceWorker.workerRegistrationUpdated" => {
            for r in p["registrations"].as_array().into_iter().flatten() {
                let id = r["registrationId"].as_str().unwrap_or_default().to_owned();
                if r["isDeleted"] == true {
                    rec.registrations.remove(&id);
                } else {
                    rec.registrations.insert(id, r["scopeURL"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
        "ServiceWorker.workerVersionUpdated" => {
            for v in p["versions"].as_array().into_iter().flatten() {
                rec.versions.insert(
                    v["versionId"].as_str().unwrap_or_default().to_owned(),
                    WorkerVersion {
                        registration_id: v["registrationId"].as_str().unwrap_or_default().to_owned(),
                        status: v["status"].as_str().unwrap_or_default().to_owned(),
                    },
                );
            }
        }
        _ => {}
    }
    send
}

fn find_request<'a>(rec: &'a mut Recorded, session: &str, p: &Value) -> Option<&'a mut NetRequest> {
    let id = p["requestId"].as_str()?;
    rec.requests.iter_mut().rev().find(|r| r.session == session && r.request_id == id)
}

fn offline_conditions(offline: bool) -> Value {
    json!({"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
}

/// Where screenshots go: `target/browser-screenshots/`.
pub fn artifacts_dir() -> PathBuf {
    // target/debug/herold → target/
    let target = Path::new(env!("CARGO_BIN_EXE_herold")).parent().and_then(Path::parent).expect("target dir");
    let dir = target.join("browser-screenshots");
    std::fs::create_dir_all(&dir).expect("create target/browser-screenshots");
    dir
}

/// A headless Chromium with its own profile; killed (with every child
/// process) on drop.
pub struct Browser {
    child: Child,
    cdp: RefCell<Cdp>,
    rec: Rc<RefCell<Recorded>>,
    pub user_agent: String,
    /// The test's name: prefix of its screenshots.
    pub name: String,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium. `None` (after a loud SKIP line) when it is not
    /// installed, unless `HEROLD_REQUIRE_BROWSER=1`, which makes that a failure.
    pub fn launch(name: &str) -> Option<Browser> {
        let exe = std::env::var("HEROLD_CHROMIUM").unwrap_or_else(|_| DEFAULT_CHROMIUM.to_owned());
        if !Path::new(&exe).exists() {
            if std::env::var("HEROLD_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
                panic!("HEROLD_REQUIRE_BROWSER=1 but {exe} is missing: apt-get install -y chromium");
            }
            crate::say_once(
                "browser",
                &format!(
                    "*** browser tests SKIPPED: {exe} not found (apt-get install -y chromium; \
                     CI sets HEROLD_REQUIRE_BROWSER=1 and fails without it). ***"
                ),
            );
            return None;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let log = std::fs::File::create(profile.path().join("chromium.log")).expect("chromium log");
        let user_data = profile.path().join("profile");
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", user_data.display()),
            "--remote-debugging-port=0",
            "about:blank",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        // Its own process group: Drop kills the browser and all its helpers.
        .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {exe}: {e}"));
        let mut browser_child = KillOnDrop(Some(child));

        let port_file = user_data.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port: u16 = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
            {
                break port;
            }
            if let Ok(Some(status)) = browser_child.0.as_mut().unwrap().try_wait() {
                panic!("{exe} exited with {status} at start:\n{}", tail(&profile.path().join("chromium.log")));
            }
            assert!(
                Instant::now() < deadline,
                "{exe} wrote no DevToolsActivePort in 30 s:\n{}",
                tail(&profile.path().join("chromium.log"))
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let version = http::request(port, "GET", "/json/version", &[], None).expect("GET /json/version").json();
        let ws = version["webSocketDebuggerUrl"].as_str().expect("webSocketDebuggerUrl");
        let mut cdp = Cdp::connect(ws).unwrap_or_else(|e| panic!("{e}"));

        let rec = Rc::new(RefCell::new(Recorded::default()));
        let r = rec.clone();
        cdp.set_reactor(Box::new(move |e| react(&mut r.borrow_mut(), e)));
        // Every service worker is attached paused; the reactor turns its
        // network log on and lets it run (see `react`).
        cdp.call(
            "Target.setAutoAttach",
            json!({"autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true,
                   "filter": [{"type": "service_worker", "exclude": false}]}),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let user_agent = version["User-Agent"].as_str().unwrap_or_default().replace("HeadlessChrome", "Chrome");
        Some(Browser {
            child: browser_child.0.take().unwrap(),
            cdp: RefCell::new(cdp),
            rec,
            user_agent,
            name: name.to_owned(),
            profile,
        })
    }

    /// A raw command to the browser (or a session); panics on error.
    #[track_caller]
    pub fn call(&self, method: &str, params: Value, session: Option<&str>) -> Value {
        self.cdp.borrow_mut().call(method, params, session).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_call(&self, method: &str, params: Value, session: Option<&str>) -> Result<Value, crate::cdp::CdpError> {
        self.cdp.borrow_mut().call(method, params, session)
    }

    /// Processes events that have arrived (the reactor records them).
    pub fn pump(&self) {
        self.cdp.borrow_mut().pump().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Waits (at most `timeout`) for the next event of `method`; the reactor has recorded it by then.
    pub fn wait_event(&self, method: &str, timeout: Duration) -> Option<Event> {
        self.cdp.borrow_mut().wait_event(method, None, |_| true, timeout).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Grants `notifications` to `origin`, as a resident tapping "Allow" would.
    pub fn grant_notifications(&self, origin: &str) {
        self.call("Browser.grantPermissions", json!({"origin": origin, "permissions": ["notifications"]}), None);
    }

    /// A new tab at `about:blank`, `width`×`height` CSS pixels, in the
    /// browser's default profile (where push works).
    pub fn new_page(&self, width: u32, height: u32, mobile: bool) -> Page<'_> {
        self.open_page(json!({"url": "about:blank"}), width, height, mobile)
    }

    /// A tab in a fresh browser context of its own (its own storage and
    /// cookies): another person at another computer.
    pub fn new_isolated_page(&self, width: u32, height: u32, mobile: bool) -> Page<'_> {
        let context = self.call("Target.createBrowserContext", json!({"disposeOnDetach": true}), None);
        let id = context["browserContextId"].as_str().expect("browserContextId");
        self.open_page(json!({"url": "about:blank", "browserContextId": id}), width, height, mobile)
    }

    fn open_page(&self, params: Value, width: u32, height: u32, mobile: bool) -> Page<'_> {
        let target = self.call("Target.createTarget", params, None);
        let target_id = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = self.call("Target.attachToTarget", json!({"targetId": target_id, "flatten": true}), None);
        let session = attached["sessionId"].as_str().expect("sessionId").to_owned();
        let page = Page { browser: self, session, shots: RefCell::new(0) };
        for domain in ["Page", "Runtime", "Network", "Log", "ServiceWorker"] {
            page.call(&format!("{domain}.enable"), json!({}));
        }
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        );
        page
    }

    /// Every request recorded so far.
    pub fn requests(&self) -> Vec<NetRequest> {
        self.pump();
        self.rec.borrow().requests.clone()
    }

    pub fn worker_sessions(&self) -> Vec<String> {
        self.pump();
        self.rec.borrow().worker_sessions.clone()
    }

    pub fn console_errors(&self) -> Vec<String> {
        self.rec.borrow().console_errors.clone()
    }

    /// The registration id of the service worker whose scope is `scope`,
    /// once a version of it is activated.
    pub fn wait_worker_activated(&self, scope: &str) -> String {
        let deadline = Instant::now() + UI_TIMEOUT;
        loop {
            self.pump();
            {
                let rec = self.rec.borrow();
                let activated = rec.registrations.iter().find(|(id, s)| {
                    s.as_str() == scope
                        && rec.versions.values().any(|v| &v.registration_id == *id && v.status == "activated")
                });
                if let Some((id, _)) = activated {
                    return id.clone();
                }
                if Instant::now() > deadline {
                    panic!(
                        "no activated service worker for scope {scope} after {UI_TIMEOUT:?}; registrations {:?}, \
                         versions {:?}; console errors: {:#?}",
                        rec.registrations,
                        rec.versions.values().collect::<Vec<_>>(),
                        rec.console_errors
                    );
                }
            }
            self.wait_event("ServiceWorker.workerVersionUpdated", Duration::from_millis(200));
        }
    }

    /// Takes every page and service worker offline (also those attached later).
    pub fn set_offline(&self, offline: bool, pages: &[&Page]) {
        self.rec.borrow_mut().offline = offline;
        for page in pages {
            page.call("Network.emulateNetworkConditions", offline_conditions(offline));
        }
        for s in self.worker_sessions() {
            // A worker that has stopped since is gone; its successor gets it on attach.
            let _ = self.try_call("Network.emulateNetworkConditions", offline_conditions(offline), Some(&s));
        }
    }

    /// Asserts that every request went to `origin` (`data:` and `blob:`
    /// allowed), and that no Content-Security-Policy violation was reported.
    #[track_caller]
    pub fn assert_only_origin(&self, origin: &str) {
        let requests = self.requests();
        assert!(!requests.is_empty(), "no request recorded at all: is the network log on?");
        let prefix = format!("{origin}/");
        let foreign: Vec<String> = requests
            .iter()
            .filter(|r| {
                !(r.url.starts_with(&prefix)
                    || r.url == origin
                    || r.url.starts_with("data:")
                    || r.url.starts_with("blob:"))
            })
            .map(|r| {
                format!(
                    "  - {} ({}{})",
                    r.url,
                    r.resource_type,
                    if r.from_worker_target { ", service worker" } else { "" }
                )
            })
            .collect();
        assert!(
            foreign.is_empty(),
            "the PWA contacted another origin than {origin} ({} of {} requests):\n{}",
            foreign.len(),
            requests.len(),
            foreign.join("\n")
        );
        let csp = self.rec.borrow().csp_violations.clone();
        assert!(csp.is_empty(), "Content-Security-Policy violations:\n  - {}", csp.join("\n  - "));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.child);
        let _ = &self.profile;
    }
}

struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            kill_group(child);
        }
    }
}

fn kill_group(child: &mut Child) {
    // The browser's own process group (see `process_group(0)`): its id is the browser's pid.
    let pgid = child.id() as libc::pid_t;
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    let _ = child.wait();
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.contains("dbus")).collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// One tab, with its own flattened session.
pub struct Page<'b> {
    pub browser: &'b Browser,
    pub session: String,
    shots: RefCell<u32>,
}

impl Page<'_> {
    #[track_caller]
    pub fn call(&self, method: &str, params: Value) -> Value {
        match self.browser.try_call(method, params, Some(&self.session)) {
            Ok(v) => v,
            Err(e) => self.fail(&e.to_string()),
        }
    }

    /// Language of the browser (`Accept-Language`, `navigator.languages`) and
    /// of `Intl`: what the PWA picks its language from.
    pub fn set_language(&self, lang: &str) {
        let (accept, locale) = match lang {
            "de" => ("de-DE,de", "de-DE"),
            "en" => ("en-GB,en", "en-GB"),
            other => (other, other),
        };
        self.call(
            "Emulation.setUserAgentOverride",
            json!({"userAgent": self.browser.user_agent, "acceptLanguage": accept}),
        );
        self.call("Emulation.setLocaleOverride", json!({"locale": locale}));
    }

    /// Runs before any script of every document this page loads.
    pub fn add_init_script(&self, source: &str) {
        self.call("Page.addScriptToEvaluateOnNewDocument", json!({"source": source}));
    }

    /// Navigates and waits for the screen `screen` (see [`Self::wait_screen`]).
    #[track_caller]
    pub fn goto(&self, url: &str, screen: &str) {
        self.navigate(url);
        self.wait_screen(screen);
    }

    #[track_caller]
    pub fn navigate(&self, url: &str) {
        let res = self.call("Page.navigate", json!({"url": url}));
        if let Some(err) = res["errorText"].as_str() {
            self.fail(&format!("navigation to {url} failed: {err}"));
        }
    }

    #[track_caller]
    pub fn reload(&self) {
        self.call("Page.reload", json!({"ignoreCache": false}));
    }

    /// Evaluates `expr` (awaiting a promise) and returns its value; fails on an exception.
    #[track_caller]
    pub fn eval(&self, expr: &str) -> Value {
        match self.try_eval(expr) {
            Ok(v) => v,
            Err(e) => self.fail(&format!("evaluating `{}`: {e}", short(expr))),
        }
    }

    /// [`Self::eval`] without failing (the page may be between documents).
    pub fn try_eval(&self, expr: &str) -> Result<Value, String> {
        let res = self
            .browser
            .try_call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true, "userGesture": true}),
                Some(&self.session),
            )
            .map_err(|e| e.to_string())?;
        if let Some(d) = res.get("exceptionDetails") {
            let text = d["exception"]["description"].as_str().or(d["text"].as_str()).unwrap_or("exception");
            return Err(text.to_owned());
        }
        Ok(res["result"]["value"].clone())
    }

    /// Polls the JS condition `cond` until it is truthy; fails with `what` after `timeout`.
    #[track_caller]
    pub fn wait_until(&self, cond: &str, what: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last_err = String::new();
        loop {
            match self.try_eval(&format!("!!({cond})")) {
                Ok(Value::Bool(true)) => return,
                Ok(_) => {}
                Err(e) => last_err = e,
            }
            if Instant::now() > deadline {
                let err = if last_err.is_empty() { String::new() } else { format!(" (last error: {last_err})") };
                self.fail(&format!("{what}: not so after {timeout:?}{err}"));
            }
            std::thread::sleep(Duration::from_millis(40));
        }
    }

    /// Waits for `document.body.dataset.ready === "true"` on screen `name`
    /// (the PWA's `screenReady()` convention).
    #[track_caller]
    pub fn wait_screen(&self, name: &str) {
        self.wait_until(
            &format!(
                "document.body && document.body.dataset.ready === 'true' && document.body.dataset.screen === {}",
                json!(name)
            ),
            &format!("screen {name:?} ready"),
            UI_TIMEOUT,
        );
    }

    /// Waits until `selector` matches an element.
    #[track_caller]
    pub fn wait_for(&self, selector: &str) {
        self.wait_until(
            &format!("document.querySelector({})", json!(selector)),
            &format!("{selector} present"),
            UI_TIMEOUT,
        );
    }

    /// Waits until `selector` matches a visible element.
    #[track_caller]
    pub fn wait_visible(&self, selector: &str) {
        self.wait_until(&visible_js(selector), &format!("{selector} visible"), UI_TIMEOUT);
    }

    /// Waits until `selector` matches nothing.
    #[track_caller]
    pub fn wait_gone(&self, selector: &str) {
        self.wait_until(
            &format!("!document.querySelector({})", json!(selector)),
            &format!("{selector} gone"),
            UI_TIMEOUT,
        );
    }

    pub fn exists(&self, selector: &str) -> bool {
        self.eval(&format!("!!document.querySelector({})", json!(selector))) == Value::Bool(true)
    }

    pub fn is_visible(&self, selector: &str) -> bool {
        self.eval(&visible_js(selector)) == Value::Bool(true)
    }

    /// The element's trimmed text content (fails if there is none).
    #[track_caller]
    pub fn text(&self, selector: &str) -> String {
        self.wait_for(selector);
        self.eval(&format!("document.querySelector({}).textContent.trim()", json!(selector)))
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    #[track_caller]
    pub fn attr(&self, selector: &str, name: &str) -> Option<String> {
        self.wait_for(selector);
        self.eval(&format!("document.querySelector({}).getAttribute({})", json!(selector), json!(name)))
            .as_str()
            .map(str::to_owned)
    }

    /// Clicks the element's centre with real mouse events, as a user would
    /// (a user gesture, so permission prompts and `<dialog>`s behave as in life).
    /// Fails when something else covers that point.
    #[track_caller]
    pub fn click(&self, selector: &str) {
        self.wait_visible(selector);
        let sel = json!(selector);
        let pos = self.eval(&format!(
            "(() => {{ const el = document.querySelector({sel}); el.scrollIntoView({{block: 'center', inline: 'center'}});
               const r = el.getBoundingClientRect(); const x = r.left + r.width / 2, y = r.top + r.height / 2;
               const hit = document.elementFromPoint(x, y);
               return {{x, y, hit: !!hit && (hit === el || el.contains(hit) || hit.contains(el) && hit.tagName === 'LABEL'),
                        covered: hit ? hit.outerHTML.slice(0, 200) : null}}; }})()"
        ));
        if pos["hit"] != true {
            self.fail(&format!("cannot click {selector}: covered by {}", pos["covered"]));
        }
        let (x, y) = (pos["x"].as_f64().unwrap(), pos["y"].as_f64().unwrap());
        self.call("Input.dispatchMouseEvent", json!({"type": "mouseMoved", "x": x, "y": y}));
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }

    /// Focuses a text field by clicking it, replaces its content and types `text`.
    #[track_caller]
    pub fn fill(&self, selector: &str, text: &str) {
        self.click(selector);
        self.eval(&format!(
            "(() => {{ const el = document.querySelector({}); el.focus(); el.select && el.select(); }})()",
            json!(selector)
        ));
        if text.is_empty() {
            self.call(
                "Input.dispatchKeyEvent",
                json!({"type": "keyDown", "key": "Backspace", "code": "Backspace", "windowsVirtualKeyCode": 8}),
            );
            self.call(
                "Input.dispatchKeyEvent",
                json!({"type": "keyUp", "key": "Backspace", "code": "Backspace", "windowsVirtualKeyCode": 8}),
            );
        } else {
            self.call("Input.insertText", json!({"text": text}));
        }
    }

    /// Chooses `value` in a `<select>` (fires `input` and `change`).
    #[track_caller]
    pub fn select(&self, selector: &str, value: &str) {
        self.wait_visible(selector);
        let ok = self.eval(&format!(
            "(() => {{ const el = document.querySelector({}); if (![...el.options].some(o => o.value === {v})) return false;
               el.focus(); el.value = {v}; el.dispatchEvent(new Event('input', {{bubbles: true}}));
               el.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()",
            json!(selector),
            v = json!(value)
        ));
        if ok != Value::Bool(true) {
            let options =
                self.eval(&format!("[...document.querySelector({}).options].map(o => o.value)", json!(selector)));
            self.fail(&format!("{selector} has no option {value:?} (options: {options})"));
        }
    }

    /// Presses a key (e.g. `Escape`, `Enter`, `Tab`).
    pub fn press(&self, key: &str) {
        let code = match key {
            "Enter" => 13,
            "Escape" => 27,
            "Tab" => 9,
            _ => 0,
        };
        for kind in ["keyDown", "keyUp"] {
            self.call(
                "Input.dispatchKeyEvent",
                json!({"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code,
                       "text": if key == "Enter" && kind == "keyDown" { "\r" } else { "" }}),
            );
        }
    }

    /// Saves a PNG of the viewport as `target/browser-screenshots/<name>.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png =
            base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap_or("")).expect("base64 PNG");
        let path = artifacts_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Fails the test with a screenshot and what the page looked like.
    #[track_caller]
    pub fn fail(&self, what: &str) -> ! {
        let n = {
            let mut n = self.shots.borrow_mut();
            *n += 1;
            *n
        };
        let shot = self
            .browser
            .try_call("Page.captureScreenshot", json!({"format": "png"}), Some(&self.session))
            .ok()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s["data"].as_str().unwrap_or("")).ok())
            .map(|png| {
                let path = artifacts_dir().join(format!("FAILED-{}-{n}.png", self.browser.name));
                let _ = std::fs::write(&path, png);
                path.display().to_string()
            })
            .unwrap_or_else(|| "(no screenshot)".into());
        let state = self
            .try_eval(
                "JSON.stringify({url: location.href, screen: document.body && document.body.dataset.screen,
                 ready: document.body && document.body.dataset.ready, lang: document.documentElement.lang,
                 text: document.body ? document.body.innerText.slice(0, 600) : null})",
            )
            .map(|v| v.as_str().unwrap_or("").to_owned())
            .unwrap_or_else(|e| format!("(page state unavailable: {e})"));
        let errors = self.browser.console_errors();
        panic!(
            "[{}] {what}\n  page: {state}\n  screenshot: {shot}\n  console errors ({}):\n    {}",
            self.browser.name,
            errors.len(),
            errors.iter().rev().take(15).rev().cloned().collect::<Vec<_>>().join("\n    ")
        );
    }
}

fn visible_js(selector: &str) -> String {
    format!(
        "(() => {{ const el = document.querySelector({}); if (!el) return false; const r = el.getBoundingClientRect();
           const s = getComputedStyle(el); return r.width > 0 && r.height > 0 && s.visibility !== 'hidden'; }})()",
        json!(selector)
    )
}

fn short(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 160 {
        s.chars().take(160).collect::<String>() + "…"
    } else {
        s
    }
}
