//! Connection slots: how many connections are open, which of them have no request in progress, and
//! who makes room when the limit is reached.
//!
//! At the limit a new connection takes the slot of the connection that has been quiet the longest
//! (idle after a response, or no byte of a request yet), as nginx reuses its idle keep-alive
//! connections when it runs out: a client that opens sockets and sends nothing cannot keep real
//! clients out. A connection with a request in progress (bytes of it read, or its answer being
//! computed) is never chosen; only when every slot is busy does a new connection wait, as long as a
//! request may take at most, before it is refused.
//!
//! The closing itself is hyper's graceful shutdown, which closes a connection at once when it is
//! between requests and otherwise lets the request in progress finish first. Each connection also
//! closes itself after `first_byte_timeout` without a request in progress, a shorter bound than the
//! request timeout.
//!
//! What a connection is doing is learned from its socket ([`watched::Watched`]: bytes arrived, or the
//! read would block) and from the service ([`Requests::start`]: a request is being answered).
//!
//! An HTTP/2 connection (its first bytes are the HTTP/2 preface) is multiplexed: its socket also
//! carries frames that are no request (SETTINGS, PING, WINDOW_UPDATE, a HEADERS block still being
//! sent), so its reads never mark it busy; it is busy exactly while at least one of its streams is
//! being answered. A client that opens an HTTP/2 connection and never completes a request is
//! therefore quiet: reclaimable, and closed (GOAWAY) after the first-byte timeout, like an HTTP/1
//! socket that sends nothing.

mod watched;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

pub use watched::Watched;

/// The slots of one listener.
pub struct Connections {
    limit: usize,
    first_byte_timeout: Duration,
    table: Mutex<Table>,
    /// A slot was freed or a connection became reclaimable: an accept waiting for room may go on.
    changed: Notify,
    /// Set once at shutdown: every connection finishes its request in progress and closes.
    shutdown: watch::Sender<bool>,
    reclaimed: AtomicU64,
    refused: AtomicU64,
}

#[derive(Default)]
struct Table {
    open: usize,
    /// Open connections told to close, counted out of `open` for admission: they hold no request.
    reclaiming: usize,
    /// Connections with no request in progress, by the time they became so (oldest first).
    idle: BTreeMap<(Instant, u64), Arc<Conn>>,
    next_id: u64,
}

impl Connections {
    pub fn new(limit: usize, first_byte_timeout: Duration) -> Arc<Connections> {
        Arc::new(Connections {
            limit: limit.max(1),
            first_byte_timeout,
            table: Mutex::default(),
            changed: Notify::new(),
            shutdown: watch::Sender::new(false),
            reclaimed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn open(&self) -> usize {
        self.table().open
    }

    /// Connections closed to make room for new ones.
    pub fn reclaimed(&self) -> u64 {
        self.reclaimed.load(Ordering::Relaxed)
    }

    /// Connections closed unserved: every slot stayed busy as long as a request may take.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // Every critical section leaves the table consistent, so a panic elsewhere cannot have
        // broken it.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a new connection: a free one, or the one of the connection quiet the longest, which
    /// is told to close. `None` when every open connection has a request in progress.
    pub fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut table = self.table();
        if table.open - table.reclaiming >= self.limit {
            let (_, oldest) = table.idle.pop_first()?;
            oldest.reclaimed.store(true, Ordering::Relaxed);
            oldest.close.notify_one();
            table.reclaiming += 1;
            self.reclaimed.fetch_add(1, Ordering::Relaxed);
        }
        table.open += 1;
        table.next_id += 1;
        let conn = Arc::new(Conn {
            id: table.next_id,
            owner: self.clone(),
            activity: Mutex::new(Activity {
                phase: Phase::Fresh {
                    since: Instant::now(),
                },
                requests: 0,
            }),
            reclaimed: AtomicBool::new(false),
            close: Notify::new(),
        });
        Some(Slot { conn })
    }

    /// [`Connections::admit`], waiting up to `patience` for a request to finish; past it the
    /// connection is counted as refused.
    pub async fn admit_within(self: &Arc<Self>, patience: Duration) -> Option<Slot> {
        let deadline = Instant::now() + patience;
        loop {
            let mut changed = pin!(self.changed.notified());
            // Registered before looking, so a change between the look and the wait is not missed.
            changed.as_mut().enable();
            if let Some(slot) = self.admit() {
                return Some(slot);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
    }

    /// Tells every connection to close once its request in progress is answered, and waits until all
    /// are closed.
    pub async fn shutdown(&self) {
        self.shutdown.send_replace(true);
        loop {
            let mut changed = pin!(self.changed.notified());
            changed.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            changed.await;
        }
    }
}

/// One open connection's place in the table; freed when dropped.
pub struct Slot {
    conn: Arc<Conn>,
}

impl Slot {
    /// The socket, wrapped so that its reads tell the table whether a request is in progress.
    pub fn watch<S>(&self, stream: S) -> Watched<S> {
        Watched::new(stream, self.conn.clone())
    }

    /// What the service holds to mark its requests (see [`Requests::start`]).
    pub fn requests(&self) -> Requests {
        Requests(self.conn.clone())
    }

    /// Drives `connection` (hyper's) until it ends, asking it to close gracefully (`graceful`, hyper's
    /// `graceful_shutdown`) when it is reclaimed, when it stays without a request for the first-byte
    /// timeout, or at shutdown.
    pub async fn serve<C: Future>(
        self,
        connection: C,
        graceful: impl Fn(Pin<&mut C>),
    ) -> C::Output {
        let mut connection = pin!(connection);
        let mut shutdown = self.conn.owner.shutdown.subscribe();
        let timeout = self.conn.owner.first_byte_timeout;
        let mut deadline = Instant::now() + timeout;
        let mut closing = false;
        loop {
            tokio::select! {
                output = connection.as_mut() => return output,
                () = self.conn.close.notified(), if !closing => closing = true,
                _ = shutdown.wait_for(|down| *down), if !closing => closing = true,
                () = tokio::time::sleep_until(deadline), if !closing => {
                    // Re-armed from the moment the connection last became quiet; a busy connection
                    // looks again one timeout later.
                    match self.conn.quiet_since() {
                        Some(since) if since + timeout <= Instant::now() => closing = true,
                        Some(since) => deadline = since + timeout,
                        None => deadline = Instant::now() + timeout,
                    }
                }
            }
            if closing {
                graceful(connection.as_mut());
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let phase = self.conn.activity();
        let owner = &self.conn.owner;
        let mut table = owner.table();
        if let Phase::Idle { since } = phase.phase {
            table.idle.remove(&(since, self.conn.id));
        }
        table.open -= 1;
        if self.conn.reclaimed.load(Ordering::Relaxed) {
            table.reclaiming -= 1;
        }
        drop(table);
        drop(phase);
        owner.changed.notify_waiters();
    }
}

/// The service's side of a connection.
pub struct Requests(Arc<Conn>);

impl Requests {
    /// Marks a request as in progress until the guard is dropped (its answer is then being written).
    /// Counted: an HTTP/2 connection answers several at once, and is quiet only after the last.
    pub fn start(&self) -> InRequest {
        let mut activity = self.0.activity();
        activity.requests += 1;
        self.0.set(&mut activity, Phase::Busy);
        InRequest(self.0.clone())
    }
}

/// A request in progress on a connection; see [`Requests::start`].
pub struct InRequest(Arc<Conn>);

impl Drop for InRequest {
    fn drop(&mut self) {
        let mut activity = self.0.activity();
        activity.requests = activity.requests.saturating_sub(1);
        if activity.requests == 0 {
            let since = Instant::now();
            self.0.set(&mut activity, Phase::Answered { since });
        }
    }
}

/// What the table knows of one connection.
struct Conn {
    id: u64,
    owner: Arc<Connections>,
    activity: Mutex<Activity>,
    /// Chosen to make room: never listed as idle again.
    reclaimed: AtomicBool,
    /// Wakes the connection's task to close it.
    close: Notify,
}

/// A connection's phase and how many of its requests are being answered, changed together.
struct Activity {
    phase: Phase,
    requests: usize,
}

/// Where a connection is between requests. Only `Idle` may be reclaimed: `Fresh` and `Answered` have
/// not yet shown that nothing more is waiting to be read, which the next read that would block does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted, not read from yet.
    Fresh { since: Instant },
    /// No request in progress, and the socket had nothing more to read.
    Idle { since: Instant },
    /// Bytes of a request read, or its answer being computed.
    Busy,
    /// The answer was handed to hyper; the next read decides between `Idle` and `Busy`.
    Answered { since: Instant },
}

impl Conn {
    fn activity(&self) -> MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Since when the connection has had no request in progress (`None`: it has one).
    fn quiet_since(&self) -> Option<Instant> {
        match self.activity().phase {
            Phase::Fresh { since } | Phase::Idle { since } | Phase::Answered { since } => {
                Some(since)
            }
            Phase::Busy => None,
        }
    }

    /// Bytes of an HTTP/1 request arrived (an HTTP/2 connection's reads say nothing: see the module).
    fn read_bytes(&self) {
        let mut activity = self.activity();
        self.set(&mut activity, Phase::Busy);
    }

    /// A read would block: with no request in progress, the connection is idle from the moment its
    /// last request was answered (or it was accepted).
    fn read_would_block(self: &Arc<Self>) {
        let mut activity = self.activity();
        if activity.requests > 0 {
            return;
        }
        if let Phase::Fresh { since } | Phase::Answered { since } = activity.phase {
            activity.phase = Phase::Idle { since };
            let mut table = self.owner.table();
            if !self.reclaimed.load(Ordering::Relaxed) {
                table.idle.insert((since, self.id), self.clone());
            }
            drop(table);
            drop(activity);
            self.owner.changed.notify_waiters();
        }
    }

    fn set(&self, activity: &mut Activity, next: Phase) {
        if let Phase::Idle { since } = activity.phase {
            self.owner.table().idle.remove(&(since, self.id));
        }
        activity.phase = next;
    }
}
