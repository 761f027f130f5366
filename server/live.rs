//! The live stream of question hours: `GET /sessions/{id}/events` as
//! server-sent events, fed from the database so that a change written by
//! any instance reaches the listeners of every instance.
//!
//! Per session with listeners on this instance there is one *room*: one
//! poller task that looks at the session's `version` every second (at once
//! when a local write pokes it), reads what changed after the version it
//! knows (`qa::changes`) and broadcasts it to the room's listeners. The room
//! keeps the latest public view of every question, so a listener that
//! (re)connects is served from memory: every question on a fresh connect,
//! only those changed after its `Last-Event-ID` on a resume, then the
//! session's state. The event `id` is the session version of the change.
//!
//! A question that vanished from the database (erased with its device) is
//! told like a dismissal, so clients drop it, and only its id stays here.
//!
//! Must not: hold a database connection across an await (the reads run on
//! the blocking pool, one short snapshot each), keep a poller without
//! listeners, accept more listeners than `max` (503 beyond) or more than
//! `per_client` from one client address (429 beyond; the address is a key
//! in memory, never stored or logged), or outlive the instance's draining:
//! every stream ends within a look once it drains, so the graceful shutdown
//! is not held up by open streams.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use futures_util::Stream;
use tokio::sync::{broadcast, watch, Notify};

use crate::error::{ApiError, ApiResult};
use crate::qa::{self, Changes, QuestionStatus, QuestionView, SessionState, SessionView};
use crate::state::AppState;

/// Listeners one instance serves at most (all sessions together); a stream
/// costs a connection, a little memory and nothing else.
pub const MAX_LISTENERS: usize = 2000;
/// Streams one client address may hold on one instance, so that a single
/// client cannot take every place. Generous: residents following a question
/// hour from one town hall's Wi-Fi (or behind carrier NAT) share an address.
pub const MAX_PER_CLIENT: usize = 50;
/// How often a room looks at its session's version.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// A comment this often keeps proxies from closing a quiet stream.
const PING_EVERY: Duration = Duration::from_secs(15);
/// Events a listener may fall behind before it is cut off (it reconnects
/// and resumes from its `Last-Event-ID`).
const BACKLOG: usize = 1024;
/// The browser's reconnection delay (`retry:`), milliseconds.
const RETRY_MS: u64 = 3000;

/// What a room sends its listeners.
#[derive(Debug, Clone)]
enum Event {
    Change {
        id: i64,
        kind: &'static str,
        data: Arc<str>,
    },
    Ping,
    /// The room is closing (draining, the session is gone): end the stream.
    Close,
}

impl Event {
    fn to_bytes(&self) -> Bytes {
        match self {
            Event::Change { id, kind, data } => Bytes::from(format!("id: {id}\nevent: {kind}\ndata: {data}\n\n")),
            Event::Ping => Bytes::from_static(b": ping\n\n"),
            Event::Close => Bytes::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Pending,
    Ready,
    /// The room closed before or after loading.
    Gone,
}

/// The latest public view of a question.
struct Entry {
    version: i64,
    dismissed: bool,
    created_at: String,
    data: Arc<str>,
}

/// What a room knows of its session.
#[derive(Default)]
struct Snapshot {
    /// The session version everything here is up to.
    version: i64,
    session: Option<SessionView>,
    session_data: Option<Arc<str>>,
    times: (i64, i64, bool),
    questions: HashMap<String, Entry>,
}

fn to_json<T: serde::Serialize>(value: &T) -> Arc<str> {
    serde_json::to_string(value).unwrap_or_default().into()
}

impl Snapshot {
    /// Takes in what changed; returns the events that say so (questions in
    /// the order of their change, then those erased, then the session).
    fn apply(&mut self, changes: Changes) -> Vec<Event> {
        let mut events = Vec::new();
        for (version, question) in changes.questions {
            let data = to_json(&question);
            let dismissed = question.status == QuestionStatus::Dismissed;
            events.push(Event::Change { id: version, kind: "question", data: data.clone() });
            let created_at = question.created_at;
            self.questions.insert(question.id, Entry { version, dismissed, created_at, data });
        }
        // Erased with its device, a question leaves no row to say so. Told
        // as dismissed (clients drop it); its text leaves memory, its id
        // stays so that a resume from before hears of it too.
        let mut erased: Vec<String> = self
            .questions
            .iter()
            .filter(|(id, e)| !e.dismissed && !changes.present.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        erased.sort();
        for id in erased {
            let Some(entry) = self.questions.get_mut(&id) else { continue };
            let gone = QuestionView {
                id,
                body: String::new(),
                votes: 0,
                voted: false,
                mine: false,
                status: QuestionStatus::Dismissed,
                answer: None,
                created_at: entry.created_at.clone(),
                author: None,
            };
            *entry = Entry {
                version: changes.version,
                dismissed: true,
                created_at: gone.created_at.clone(),
                data: to_json(&gone),
            };
            events.push(Event::Change { id: changes.version, kind: "question", data: entry.data.clone() });
        }
        self.version = self.version.max(changes.version);
        self.times = (changes.starts_at, changes.ends_at, changes.cancelled);
        if let Some(event) = self.set_session(changes.session) {
            events.push(event);
        }
        events
    }

    fn set_session(&mut self, session: SessionView) -> Option<Event> {
        if self.session.as_ref() == Some(&session) {
            return None;
        }
        let data = to_json(&session);
        self.session = Some(session);
        self.session_data = Some(data.clone());
        Some(Event::Change { id: self.version, kind: "session", data })
    }

    /// The session opening or ending by the clock (no write says so).
    fn tick(&mut self, now: i64) -> Option<Event> {
        let (starts_at, ends_at, cancelled) = self.times;
        let state = if cancelled {
            SessionState::Cancelled
        } else if now < starts_at {
            SessionState::Scheduled
        } else if now < ends_at {
            SessionState::Open
        } else {
            SessionState::Ended
        };
        let mut session = self.session.clone()?;
        if session.state == state {
            return None;
        }
        session.state = state;
        self.set_session(session)
    }

    /// What a listener gets on connecting: the questions changed after
    /// `since` (a resume), or every question not dismissed (a fresh connect,
    /// or an id this session never gave out); then the session.
    fn replay(&self, since: Option<i64>) -> Vec<Event> {
        let since = since.filter(|s| (0..=self.version).contains(s));
        let mut questions: Vec<&Entry> = self
            .questions
            .values()
            .filter(|e| match since {
                Some(s) => e.version > s,
                None => !e.dismissed,
            })
            .collect();
        questions.sort_by_key(|e| e.version);
        let mut events: Vec<Event> = questions
            .into_iter()
            .map(|e| Event::Change { id: e.version, kind: "question", data: e.data.clone() })
            .collect();
        // The session's state always comes last, also on a resume: the clock
        // may have opened or ended it without a new version.
        if let Some(data) = &self.session_data {
            events.push(Event::Change { id: self.version, kind: "session", data: data.clone() });
        }
        events
    }
}

/// One session's listeners on this instance, and their poller.
struct Room {
    session_id: String,
    sender: broadcast::Sender<Event>,
    snapshot: Mutex<Snapshot>,
    load: watch::Sender<Load>,
    poke: Notify,
    /// Changed only under the hub's lock (joins and the poller's exit race otherwise).
    listeners: AtomicUsize,
}

impl Room {
    fn snapshot(&self) -> MutexGuard<'_, Snapshot> {
        self.snapshot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Updates the snapshot and tells the listeners, under one lock, so a
    /// listener joining meanwhile gets each change once: from the replay
    /// or from the broadcast.
    fn publish(&self, update: impl FnOnce(&mut Snapshot) -> Vec<Event>) {
        let mut snapshot = self.snapshot();
        for event in update(&mut snapshot) {
            // No receiver is not an error: listeners come and go.
            let _ = self.sender.send(event);
        }
    }

    /// The replay and the receiver of what follows; `None` once the room closed.
    fn join(&self, since: Option<i64>) -> Option<(Vec<Event>, broadcast::Receiver<Event>)> {
        let snapshot = self.snapshot();
        if *self.load.borrow() != Load::Ready {
            return None;
        }
        Some((snapshot.replay(since), self.sender.subscribe()))
    }

    /// Ends every stream of the room, also one joining right now (under
    /// the snapshot's lock, like `join`).
    fn close(&self) {
        let _snapshot = self.snapshot();
        self.load.send_replace(Load::Gone);
        let _ = self.sender.send(Event::Close);
    }
}

/// All rooms of this instance (`AppState::live`).
pub struct Hub {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    /// Streams open per client address (`limits::client_key`); changed
    /// only under the rooms' lock, like the counts.
    clients: Mutex<HashMap<IpAddr, usize>>,
    listeners: AtomicUsize,
    max: usize,
    per_client: usize,
    ping: Duration,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new(MAX_LISTENERS)
    }
}

impl Hub {
    pub fn new(max_listeners: usize) -> Self {
        Hub::with_ping(max_listeners, PING_EVERY)
    }

    /// A hub that pings every `ping`. A client that left is only noticed when
    /// a write to it fails (actix allows half-closed connections), so the
    /// ping also bounds how long a gone listener holds its place.
    pub fn with_ping(max_listeners: usize, ping: Duration) -> Self {
        Hub {
            rooms: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            listeners: AtomicUsize::new(0),
            max: max_listeners,
            per_client: MAX_PER_CLIENT,
            ping,
        }
    }

    /// The same hub with at most `n` streams per client address.
    pub fn per_client(mut self, n: usize) -> Self {
        self.per_client = n;
        self
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<String, Arc<Room>>> {
        self.rooms.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn clients(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Listeners connected now.
    pub fn listeners(&self) -> usize {
        self.listeners.load(Ordering::SeqCst)
    }

    /// Sessions with a poller now.
    pub fn rooms_open(&self) -> usize {
        self.rooms().len()
    }

    /// Tells a session's room (if any here) to look now: a local write
    /// reaches local listeners without waiting for the next look.
    pub fn poke(&self, session_id: &str) {
        if let Some(room) = self.rooms().get(session_id) {
            room.poke.notify_one();
        }
    }

    /// Opens a stream of the session's events for `client` (the request's
    /// `limits::client_key`); `since` is the `Last-Event-ID` of a resume.
    /// The caller checked that the session exists and is public. 429 when
    /// the client has `per_client` streams here, 503 when this instance
    /// has `max` listeners.
    pub fn listen(
        self: &Arc<Self>,
        state: &AppState,
        session_id: &str,
        client: IpAddr,
        since: Option<i64>,
    ) -> ApiResult<impl Stream<Item = Result<Bytes, Infallible>> + 'static> {
        if state.is_draining() {
            return Err(ApiError::Unavailable);
        }
        let room = {
            let mut rooms = self.rooms();
            let mut clients = self.clients();
            if clients.get(&client).copied().unwrap_or(0) >= self.per_client {
                // Without the address: it is a key, never logged.
                tracing::info!(per_client = self.per_client, "live stream refused: per-client limit reached");
                // A place held by a client that left frees within a ping.
                return Err(ApiError::TooManyRequests(self.ping.as_secs().max(1)));
            }
            if self.listeners.load(Ordering::SeqCst) >= self.max {
                tracing::warn!(max = self.max, "live stream refused: listener limit reached");
                return Err(ApiError::Unavailable);
            }
            *clients.entry(client).or_insert(0) += 1;
            drop(clients);
            self.listeners.fetch_add(1, Ordering::SeqCst);
            let (room, new) = match rooms.get(session_id) {
                Some(room) => (room.clone(), false),
                None => {
                    let room = Arc::new(Room {
                        session_id: session_id.to_owned(),
                        sender: broadcast::channel(BACKLOG).0,
                        snapshot: Mutex::new(Snapshot::default()),
                        load: watch::channel(Load::Pending).0,
                        poke: Notify::new(),
                        listeners: AtomicUsize::new(0),
                    });
                    rooms.insert(session_id.to_owned(), room.clone());
                    (room, true)
                }
            };
            room.listeners.fetch_add(1, Ordering::SeqCst);
            if new {
                actix_web::rt::spawn(poll(state.clone(), self.clone(), room.clone()));
            }
            room
        };
        let listener = Listener {
            guard: Leave { hub: self.clone(), room: room.clone(), client },
            since,
            queue: VecDeque::from([Bytes::from(format!("retry: {RETRY_MS}\n\n"))]),
            rx: None,
        };
        Ok(futures_util::stream::unfold(listener, Listener::next))
    }

    /// Removes a room without listeners; false when someone joined meanwhile.
    fn close_if_empty(&self, room: &Arc<Room>) -> bool {
        let mut rooms = self.rooms();
        if room.listeners.load(Ordering::SeqCst) > 0 {
            return false;
        }
        if rooms.get(&room.session_id).is_some_and(|r| Arc::ptr_eq(r, room)) {
            rooms.remove(&room.session_id);
        }
        true
    }

    fn remove(&self, room: &Arc<Room>) {
        let mut rooms = self.rooms();
        if rooms.get(&room.session_id).is_some_and(|r| Arc::ptr_eq(r, room)) {
            rooms.remove(&room.session_id);
        }
    }
}

/// Counts a listener out when its stream is dropped (the client left, the
/// server stops).
struct Leave {
    hub: Arc<Hub>,
    room: Arc<Room>,
    client: IpAddr,
}

impl Drop for Leave {
    fn drop(&mut self) {
        let _rooms = self.hub.rooms();
        let mut clients = self.hub.clients();
        if let Some(held) = clients.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                clients.remove(&self.client);
            }
        }
        drop(clients);
        self.hub.listeners.fetch_sub(1, Ordering::SeqCst);
        if self.room.listeners.fetch_sub(1, Ordering::SeqCst) == 1 {
            // The last one: the poller may stop now rather than at its next look.
            self.room.poke.notify_one();
        }
    }
}

struct Listener {
    guard: Leave,
    since: Option<i64>,
    queue: VecDeque<Bytes>,
    rx: Option<broadcast::Receiver<Event>>,
}

impl Listener {
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Listener)> {
        if let Some(bytes) = self.queue.pop_front() {
            return Some((Ok(bytes), self));
        }
        if self.rx.is_none() {
            let room = self.guard.room.clone();
            let mut load = room.load.subscribe();
            let ready = load.wait_for(|l| *l != Load::Pending).await.map(|l| *l == Load::Ready).unwrap_or(false);
            if !ready {
                return None;
            }
            let (replay, rx) = room.join(self.since)?;
            self.queue.extend(replay.iter().map(Event::to_bytes));
            self.rx = Some(rx);
            if let Some(bytes) = self.queue.pop_front() {
                return Some((Ok(bytes), self));
            }
        }
        match self.rx.as_mut()?.recv().await {
            Ok(Event::Close) => None,
            Ok(event) => Some((Ok(event.to_bytes()), self)),
            // Fell behind (a slow client) or the room is gone: the browser
            // reconnects and resumes from its last event id.
            Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// Ends the room however its poller ends (done, draining, cancelled or
/// panicked): out of the hub, listeners told to close.
struct Closing {
    hub: Arc<Hub>,
    room: Arc<Room>,
}

impl Drop for Closing {
    fn drop(&mut self) {
        self.hub.remove(&self.room);
        self.room.close();
    }
}

/// Runs blocking database work on the blocking pool, without a write
/// transaction (these are reads).
async fn read<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&mut crate::db::DbConn) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let pool = state.pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get()?;
        work(&mut conn)
    })
    .await?
}

/// The room's poller: loads the session, then looks every second for what
/// changed, until the last listener leaves or the instance drains.
async fn poll(state: AppState, hub: Arc<Hub>, room: Arc<Room>) {
    let _closing = Closing { hub: hub.clone(), room: room.clone() };
    let id = room.session_id.clone();
    let mut known: Option<i64> = None;
    let mut pinged = Instant::now();
    loop {
        if state.is_draining() || hub.close_if_empty(&room) {
            return;
        }
        let now = state.now_ms();
        match known {
            None => {
                let sid = id.clone();
                match read(&state, move |c| qa::changes(c, &sid, -1, now)).await {
                    Ok(Some(changes)) => {
                        known = Some(changes.version);
                        // Nobody is subscribed before the load: no events.
                        room.publish(|s| {
                            s.apply(changes);
                            Vec::new()
                        });
                        room.load.send_replace(Load::Ready);
                    }
                    Ok(None) => return,
                    Err(e) => tracing::warn!(error = %e, "live stream: loading the session failed"),
                }
            }
            Some(version) => {
                let sid = id.clone();
                match read(&state, move |c| qa::version(c, &sid)).await {
                    Ok(Some(current)) if current > version => {
                        let sid = id.clone();
                        match read(&state, move |c| qa::changes(c, &sid, version, now)).await {
                            Ok(Some(changes)) => {
                                known = Some(changes.version);
                                room.publish(|s| s.apply(changes));
                            }
                            Ok(None) => return,
                            Err(e) => tracing::warn!(error = %e, "live stream: reading changes failed"),
                        }
                    }
                    Ok(Some(_)) => room.publish(|s| s.tick(now).into_iter().collect()),
                    Ok(None) => return,
                    Err(e) => tracing::warn!(error = %e, "live stream: looking at the session failed"),
                }
            }
        }
        if pinged.elapsed() >= hub.ping {
            pinged = Instant::now();
            let _ = room.sender.send(Event::Ping);
        }
        tokio::select! {
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            _ = room.poke.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qa::{Named, QuestionView};

    fn session(state: SessionState) -> SessionView {
        SessionView {
            id: "s".into(),
            group: Named { id: "g".into(), name: "Rathaus".into() },
            organization: Named { id: "o".into(), name: "Stadt".into() },
            title: "Fragestunde".into(),
            description: String::new(),
            starts_at: "2026-11-26T12:00:00.000Z".into(),
            ends_at: "2026-11-26T13:00:00.000Z".into(),
            state,
            questions: None,
        }
    }

    fn question(id: &str, status: QuestionStatus, votes: i64) -> QuestionView {
        QuestionView {
            id: id.into(),
            body: format!("Frage {id}"),
            votes,
            voted: false,
            mine: false,
            status,
            answer: None,
            created_at: "2026-11-26T12:00:00.000Z".into(),
            author: None,
        }
    }

    /// A change of the questions given, which are all the session has.
    fn changes(version: i64, state: SessionState, questions: Vec<(i64, QuestionView)>) -> Changes {
        let present = questions.iter().map(|(_, q)| q.id.clone()).collect();
        Changes {
            version,
            starts_at: 1000,
            ends_at: 2000,
            cancelled: false,
            session: session(state),
            questions,
            present,
        }
    }

    fn data(events: &[Event]) -> Vec<serde_json::Value> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Change { data, .. } => serde_json::from_str(data).ok(),
                _ => None,
            })
            .collect()
    }

    fn ids(events: &[Event]) -> Vec<(i64, &'static str)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Change { id, kind, .. } => Some((*id, *kind)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn events_are_server_sent_event_frames() {
        let e = Event::Change { id: 7, kind: "question", data: "{\"id\":\"q\"}".into() };
        assert_eq!(&e.to_bytes()[..], b"id: 7\nevent: question\ndata: {\"id\":\"q\"}\n\n");
        assert_eq!(&Event::Ping.to_bytes()[..], b": ping\n\n");
    }

    #[test]
    fn a_resume_replays_only_what_changed_after_its_id() {
        let mut s = Snapshot::default();
        s.apply(changes(
            3,
            SessionState::Open,
            vec![(1, question("a", QuestionStatus::Open, 0)), (2, question("b", QuestionStatus::Open, 0))],
        ));
        // A fresh connect: every question, then the session (its id is the newest).
        assert_eq!(ids(&s.replay(None)), vec![(1, "question"), (2, "question"), (3, "session")]);
        // Question b gets a vote, question a is dismissed.
        let live = s.apply(changes(
            5,
            SessionState::Open,
            vec![(4, question("b", QuestionStatus::Open, 1)), (5, question("a", QuestionStatus::Dismissed, 0))],
        ));
        assert_eq!(ids(&live), vec![(4, "question"), (5, "question")], "the session did not change");
        assert_eq!(ids(&s.replay(Some(3))), vec![(4, "question"), (5, "question"), (5, "session")]);
        assert_eq!(ids(&s.replay(Some(4))), vec![(5, "question"), (5, "session")]);
        assert_eq!(ids(&s.replay(Some(5))), vec![(5, "session")], "only the session's state");
        // A fresh connect leaves the dismissed question out; an id from
        // elsewhere (newer than anything here) counts as fresh.
        assert_eq!(ids(&s.replay(None)), vec![(4, "question"), (5, "session")]);
        assert_eq!(ids(&s.replay(Some(99))), vec![(4, "question"), (5, "session")]);
    }

    #[test]
    fn a_question_erased_with_its_device_is_dropped_and_never_replayed() {
        let mut s = Snapshot::default();
        s.apply(changes(
            2,
            SessionState::Open,
            vec![(1, question("a", QuestionStatus::Open, 0)), (2, question("b", QuestionStatus::Open, 1))],
        ));
        // a's device is erased: a is gone, and b lost that device's vote.
        let live = s.apply(changes(3, SessionState::Open, vec![(3, question("b", QuestionStatus::Open, 0))]));
        assert_eq!(ids(&live), vec![(3, "question"), (3, "question")]);
        let told = data(&live);
        assert_eq!((told[0]["id"].as_str(), told[0]["votes"].as_i64()), (Some("b"), Some(0)));
        assert_eq!(told[1]["id"], "a");
        assert_eq!(told[1]["status"], "dismissed", "clients drop it");
        assert_eq!(told[1]["body"], "");
        assert_eq!(told[1]["created_at"], "2026-11-26T12:00:00.000Z", "the shape of any question");
        // A fresh connect never sees it; a resume from before hears it went.
        let fresh = s.replay(None);
        assert_eq!(data(&fresh).iter().map(|d| d["id"].clone()).collect::<Vec<_>>(), vec!["b", "s"]);
        let resumed = data(&s.replay(Some(2)));
        assert!(resumed.iter().any(|d| d["id"] == "a" && d["status"] == "dismissed"), "{resumed:?}");
        assert!(s.questions.values().all(|e| !e.data.contains("Frage a")), "its text left memory");
        // Told once: the next change does not repeat it.
        let next = s.apply(changes(4, SessionState::Open, vec![(4, question("b", QuestionStatus::Open, 1))]));
        assert_eq!(ids(&next), vec![(4, "question")]);
    }

    #[test]
    fn the_clock_opens_and_ends_a_session() {
        let mut s = Snapshot::default();
        s.apply(changes(0, SessionState::Scheduled, vec![]));
        assert!(s.tick(500).is_none(), "still scheduled");
        let opened = s.tick(1000).into_iter().collect::<Vec<_>>();
        assert_eq!(ids(&opened), vec![(0, "session")]);
        assert!(matches!(&opened[0], Event::Change { data, .. } if data.contains("\"state\":\"open\"")));
        assert!(s.tick(1500).is_none());
        let ended = s.tick(2000).into_iter().collect::<Vec<_>>();
        assert!(matches!(&ended[0], Event::Change { data, .. } if data.contains("\"state\":\"ended\"")));
    }
}
