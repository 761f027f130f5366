//! A small synchronous client for the Chrome DevTools Protocol (CDP) over
//! one WebSocket (tungstenite), with flattened sessions: every command may
//! carry a `sessionId` (a page or a service worker attached with
//! `Target.attachToTarget {flatten: true}`), and every event names its session.
//!
//! Why not `chromiumoxide` or `headless_chrome`: their generated protocol
//! crates take minutes to compile on a 2-core machine, and these tests use
//! about twenty commands. JSON in, JSON out is all that needs.
//!
//! - [`Cdp::call`] sends a command and blocks until its answer, buffering
//!   the events that arrive meanwhile.
//! - [`Cdp::wait_event`] takes the first buffered (or next arriving) event
//!   that matches.
//! - A *reactor* sees every event as it is read and may send commands at
//!   once without waiting for their answers: a service worker paused at start
//!   must be told to run, and a `confirm()` dialog answered, while the test's
//!   own thread is blocked in some other call.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// How long [`Cdp::call`] waits for an answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Events kept for [`Cdp::wait_event`]; the oldest go first.
const MAX_BUFFERED: usize = 20_000;

/// One protocol event.
#[derive(Clone, Debug)]
pub struct Event {
    pub method: String,
    pub params: Value,
    /// The flattened session it came from (`None`: the browser itself).
    pub session: Option<String>,
}

/// A command the reactor wants sent: method, params, session.
pub type Command = (String, Value, Option<String>);

/// Sees every event as it is read; returns commands to send right away.
pub type Reactor = Box<dyn FnMut(&Event) -> Vec<Command>>;

/// What went wrong with a command.
#[derive(Debug)]
pub enum CdpError {
    /// The browser answered with a protocol error.
    Protocol { method: String, code: i64, message: String },
    /// No answer in time.
    Timeout { method: String },
    /// The connection broke (the browser died?).
    Connection(String),
}

impl fmt::Display for CdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CdpError::Protocol { method, code, message } => write!(f, "{method}: error {code}: {message}"),
            CdpError::Timeout { method } => write!(f, "{method}: no answer within {CALL_TIMEOUT:?}"),
            CdpError::Connection(e) => write!(f, "DevTools connection: {e}"),
        }
    }
}

impl std::error::Error for CdpError {}

pub struct Cdp {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    events: VecDeque<Event>,
    /// Ids of commands sent without waiting: their answers are dropped.
    unawaited: HashSet<u64>,
    reactor: Option<Reactor>,
}

impl Cdp {
    /// Connects to a DevTools WebSocket URL (`ws://127.0.0.1:PORT/devtools/browser/…`).
    pub fn connect(url: &str) -> Result<Cdp, CdpError> {
        let addr = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .ok_or_else(|| CdpError::Connection(format!("not a ws:// URL: {url}")))?;
        let stream = TcpStream::connect(addr).map_err(|e| CdpError::Connection(format!("connect {addr}: {e}")))?;
        stream.set_nodelay(true).map_err(|e| CdpError::Connection(e.to_string()))?;
        // Screenshots arrive as one large base64 message.
        let config = WebSocketConfig::default().max_message_size(Some(256 << 20)).max_frame_size(Some(256 << 20));
        let (ws, _) = tungstenite::client::client_with_config(url, stream, Some(config))
            .map_err(|e| CdpError::Connection(format!("handshake with {url}: {e}")))?;
        Ok(Cdp { ws, next_id: 1, events: VecDeque::new(), unawaited: HashSet::new(), reactor: None })
    }

    /// Installs the reactor (see the module documentation).
    pub fn set_reactor(&mut self, reactor: Reactor) {
        self.reactor = Some(reactor);
    }

    /// Sends a command and waits for its result.
    pub fn call(&mut self, method: &str, params: Value, session: Option<&str>) -> Result<Value, CdpError> {
        self.call_with_timeout(method, params, session, CALL_TIMEOUT)
    }

    pub fn call_with_timeout(
        &mut self,
        method: &str,
        params: Value,
        session: Option<&str>,
        timeout: Duration,
    ) -> Result<Value, CdpError> {
        let id = self.send(method, params, session)?;
        let deadline = Instant::now() + timeout;
        loop {
            let Some(msg) = self.read_one(deadline)? else {
                // The late answer must not be taken for another command's.
                self.unawaited.insert(id);
                return Err(CdpError::Timeout { method: method.to_owned() });
            };
            if msg.get("id").and_then(Value::as_u64) == Some(id) {
                if let Some(error) = msg.get("error") {
                    return Err(CdpError::Protocol {
                        method: method.to_owned(),
                        code: error["code"].as_i64().unwrap_or(0),
                        message: error["message"].as_str().unwrap_or("").to_owned()
                            + error
                                .get("data")
                                .and_then(Value::as_str)
                                .map(|d| format!(" ({d})"))
                                .as_deref()
                                .unwrap_or(""),
                    });
                }
                return Ok(msg.get("result").cloned().unwrap_or(Value::Null));
            }
            self.dispatch(msg)?;
        }
    }

    /// Sends a command whose answer nobody waits for.
    pub fn send_unawaited(&mut self, method: &str, params: Value, session: Option<&str>) -> Result<(), CdpError> {
        let id = self.send(method, params, session)?;
        self.unawaited.insert(id);
        Ok(())
    }

    /// The first event of `method` (from `session`, when given) for which
    /// `matches` holds: a buffered one, or the next to arrive. `None` on timeout.
    pub fn wait_event(
        &mut self,
        method: &str,
        session: Option<&str>,
        matches: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Option<Event>, CdpError> {
        let fits = |e: &Event| e.method == method && (session.is_none() || e.session.as_deref() == session);
        if let Some(pos) = self.events.iter().position(|e| fits(e) && matches(&e.params)) {
            return Ok(self.events.remove(pos));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let Some(msg) = self.read_one(deadline)? else { return Ok(None) };
            self.dispatch(msg)?;
            if let Some(e) = self.events.back() {
                if fits(e) && matches(&e.params) {
                    return Ok(self.events.pop_back());
                }
            }
        }
    }

    /// Reads whatever has arrived, without waiting, so the reactor and the
    /// buffer are up to date.
    pub fn pump(&mut self) -> Result<(), CdpError> {
        while let Some(msg) = self.read_one(Instant::now() + Duration::from_millis(1))? {
            self.dispatch(msg)?;
        }
        Ok(())
    }

    fn send(&mut self, method: &str, params: Value, session: Option<&str>) -> Result<u64, CdpError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .map_err(|e| CdpError::Connection(format!("send {method}: {e}")))?;
        Ok(id)
    }

    /// The next message, or `None` at `deadline`.
    fn read_one(&mut self, deadline: Instant) -> Result<Option<Value>, CdpError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            self.ws.get_ref().set_read_timeout(Some(left)).map_err(|e| CdpError::Connection(e.to_string()))?;
            match self.ws.read() {
                Ok(Message::Text(text)) => {
                    return serde_json::from_str(text.as_str())
                        .map(Some)
                        .map_err(|e| CdpError::Connection(format!("not JSON: {e}")));
                }
                Ok(Message::Close(frame)) => {
                    return Err(CdpError::Connection(format!("closed by the browser: {frame:?}")))
                }
                Ok(_) => continue,
                // A timed-out read keeps any partial frame; reading again resumes it.
                Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(CdpError::Connection(e.to_string())),
            }
        }
    }

    /// Buffers an event (after the reactor saw it) or drops an unawaited answer.
    fn dispatch(&mut self, msg: Value) -> Result<(), CdpError> {
        if let Some(id) = msg.get("id").and_then(Value::as_u64) {
            self.unawaited.remove(&id);
            return Ok(());
        }
        let Some(method) = msg.get("method").and_then(Value::as_str) else { return Ok(()) };
        let event = Event {
            method: method.to_owned(),
            params: msg.get("params").cloned().unwrap_or(Value::Null),
            session: msg.get("sessionId").and_then(Value::as_str).map(str::to_owned),
        };
        if let Some(mut reactor) = self.reactor.take() {
            let commands = reactor(&event);
            self.reactor = Some(reactor);
            for (method, params, session) in commands {
                self.send_unawaited(&method, params, session.as_deref())?;
            }
        }
        if self.events.len() >= MAX_BUFFERED {
            self.events.pop_front();
        }
        self.events.push_back(event);
        Ok(())
    }
}
