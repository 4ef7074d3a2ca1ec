//! The soak's load: paced senders posting alerts to `/api/v2/alerts` (fresh ones, a few routed to
//! a faulty target, and re-sends of accepted ones), and the h2c idle-connection flood.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::Rng;
use super::http::Client;
use super::mocks::Behaviour;

/// A sender's request timeout: an answer later than this counts as no answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a sender waits before looking again for a server that is down.
const DOWN_POLL: Duration = Duration::from_millis(20);

/// What the soak is doing, for the answer histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Normal = 0,
    DiskFull = 1,
    DiskFreed = 2,
    Flood = 3,
    ClockAhead = 4,
    ClockBack = 5,
    Restarting = 6,
}

impl Phase {
    const ALL: [Phase; 7] = [
        Phase::Normal,
        Phase::DiskFull,
        Phase::DiskFreed,
        Phase::Flood,
        Phase::ClockAhead,
        Phase::ClockBack,
        Phase::Restarting,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::Normal => "normal",
            Phase::DiskFull => "disk full",
            Phase::DiskFreed => "disk freed",
            Phase::Flood => "h2c flood",
            Phase::ClockAhead => "clock ahead",
            Phase::ClockBack => "clock stepped back",
            Phase::Restarting => "restarting",
        }
    }
}

/// What the senders share with the orchestrator.
pub(crate) struct Ledger {
    /// The server's address, `None` while it is down.
    pub(crate) addr: Mutex<Option<String>>,
    pub(crate) phase: AtomicU8,
    pub(crate) stop: AtomicBool,
    next_id: AtomicU64,
    pub(crate) alerts_sent: AtomicU64,
    pub(crate) resends: AtomicU64,
    accepted: Mutex<Accepted>,
    refused: Mutex<HashSet<String>>,
    /// Answers by phase and status (0: no answer).
    answers: Mutex<BTreeMap<(Phase, u16), u64>>,
    /// When a request last got a 2xx.
    last_accept: Mutex<Option<Instant>>,
    run: String,
}

#[derive(Default)]
struct Accepted {
    routes: HashMap<String, Option<Behaviour>>,
    names: Vec<String>,
}

impl Ledger {
    pub(crate) fn new(run: &str) -> Self {
        Self {
            addr: Mutex::new(None),
            phase: AtomicU8::new(Phase::Normal as u8),
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            alerts_sent: AtomicU64::new(0),
            resends: AtomicU64::new(0),
            accepted: Mutex::default(),
            refused: Mutex::default(),
            answers: Mutex::default(),
            last_accept: Mutex::new(None),
            run: run.to_owned(),
        }
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    fn phase(&self) -> Phase {
        let n = self.phase.load(Ordering::SeqCst);
        Phase::ALL
            .into_iter()
            .find(|p| *p as u8 == n)
            .unwrap_or(Phase::Normal)
    }

    pub(crate) fn phase_name(&self) -> &'static str {
        self.phase().name()
    }

    pub(crate) fn set_addr(&self, addr: Option<String>) {
        *self.addr.lock().expect("not poisoned") = addr;
    }

    pub(crate) fn last_accept(&self) -> Option<Instant> {
        *self.last_accept.lock().expect("not poisoned")
    }

    /// Answers in a phase with a status.
    pub(crate) fn answers(&self, phase: Phase, status: u16) -> u64 {
        self.answers
            .lock()
            .expect("not poisoned")
            .get(&(phase, status))
            .copied()
            .unwrap_or(0)
    }

    /// Every (phase, status, count), for the report.
    pub(crate) fn answer_table(&self) -> Vec<(Phase, u16, u64)> {
        self.answers
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(&(p, s), &n)| (p, s, n))
            .collect()
    }

    pub(crate) fn accepted(&self) -> HashMap<String, Option<Behaviour>> {
        self.accepted.lock().expect("not poisoned").routes.clone()
    }

    pub(crate) fn refused(&self) -> HashSet<String> {
        self.refused.lock().expect("not poisoned").clone()
    }

    fn count(&self, phase: Phase, status: u16) {
        *self
            .answers
            .lock()
            .expect("not poisoned")
            .entry((phase, status))
            .or_default() += 1;
    }
}

/// One alert of a request.
struct Outgoing {
    name: String,
    route: Option<Behaviour>,
    fresh: bool,
}

fn labels(run: &str, alert: &Outgoing) -> serde_json::Value {
    json!({
        "alertname": alert.name,
        "soak": run,
        "fault": alert.route.map_or("none", Behaviour::name),
    })
}

/// Posts alerts at `per_second` requests a second until the ledger says stop.
pub(crate) fn sender(ledger: &Ledger, seed: u64, per_second: u32) {
    let mut rng = Rng::new(seed);
    let interval = Duration::from_secs(1) / per_second.max(1);
    let mut client: Option<Client> = None;
    let mut next = Instant::now();
    while !ledger.stop.load(Ordering::Relaxed) {
        // Pacing, not synchronisation: the senders offer a steady load.
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        next += interval;
        let Some(addr) = ledger.addr.lock().expect("not poisoned").clone() else {
            std::thread::sleep(DOWN_POLL);
            next = Instant::now();
            continue;
        };
        if client.as_ref().is_none_or(|c| c.addr() != addr) {
            client = Some(Client::new(&addr, REQUEST_TIMEOUT));
        }
        let batch = batch(ledger, &mut rng);
        let body: Vec<serde_json::Value> = batch
            .iter()
            .map(|a| json!({"labels": labels(&ledger.run, a)}))
            .collect();
        let body = serde_json::to_vec(&body).expect("JSON");
        ledger
            .alerts_sent
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let phase = ledger.phase();
        let answer =
            client
                .as_mut()
                .expect("made above")
                .request("POST", "/api/v2/alerts", Some(&body));
        match answer {
            Ok(response) if (200..300).contains(&response.status) => {
                ledger.count(phase, response.status);
                let mut accepted = ledger.accepted.lock().expect("not poisoned");
                for alert in batch.into_iter().filter(|a| a.fresh) {
                    accepted.names.push(alert.name.clone());
                    accepted.routes.insert(alert.name, alert.route);
                }
                drop(accepted);
                *ledger.last_accept.lock().expect("not poisoned") = Some(Instant::now());
            }
            Ok(response) => {
                ledger.count(phase, response.status);
                let mut refused = ledger.refused.lock().expect("not poisoned");
                refused.extend(batch.into_iter().filter(|a| a.fresh).map(|a| a.name));
            }
            // No answer: the server died or hung up. The outcome is unknown, so the alerts count
            // neither as accepted nor as refused.
            Err(_) => ledger.count(phase, 0),
        }
    }
}

/// One to five alerts: mostly fresh (1 in 100 to the dripping target, 1 in 100 to the big one,
/// 2 in 100 to the resetting one), 1 in 25 a re-send of an accepted alert.
fn batch(ledger: &Ledger, rng: &mut Rng) -> Vec<Outgoing> {
    let size = 1 + rng.below(5);
    (0..size)
        .map(|_| {
            if rng.below(25) == 0 {
                let accepted = ledger.accepted.lock().expect("not poisoned");
                if !accepted.names.is_empty() {
                    let name =
                        accepted.names[rng.below(accepted.names.len() as u64) as usize].clone();
                    let route = accepted.routes[&name];
                    ledger.resends.fetch_add(1, Ordering::Relaxed);
                    return Outgoing {
                        name,
                        route,
                        fresh: false,
                    };
                }
            }
            let id = ledger.next_id.fetch_add(1, Ordering::Relaxed);
            let route = match rng.below(100) {
                0 => Some(Behaviour::Drip),
                1 => Some(Behaviour::Big),
                2 | 3 => Some(Behaviour::Reset),
                _ => None,
            };
            Outgoing {
                name: format!("soak-{id}"),
                route,
                fresh: true,
            }
        })
        .collect()
}

/// What the h2c flood saw.
#[derive(Debug, Default)]
pub(crate) struct FloodReport {
    pub(crate) opened: u64,
    pub(crate) failed: u64,
    /// Connections the server closed while they sat idle, and when the first went.
    pub(crate) closed_by_server: u64,
    pub(crate) first_close_after: Option<Duration>,
}

/// The HTTP/2 client preface and an empty SETTINGS frame: a prior-knowledge h2c connection that
/// then says nothing at all.
const H2C_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Opens `count` idle h2c connections to `addr` and holds them for `hold` (or until `stop`),
/// counting those the server closes.
pub(crate) fn h2c_flood(addr: &str, count: u64, hold: Duration, stop: &AtomicBool) -> FloodReport {
    let mut report = FloodReport::default();
    let Ok(addr) = addr.parse() else {
        return report;
    };
    let started = Instant::now();
    let mut open: Vec<Option<TcpStream>> = Vec::new();
    for _ in 0..count {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)).and_then(|mut s| {
            s.write_all(H2C_PREFACE)?;
            s.set_nonblocking(true)?;
            Ok(s)
        }) {
            Ok(stream) => {
                report.opened += 1;
                open.push(Some(stream));
            }
            Err(_) => report.failed += 1,
        }
    }
    let mut buf = [0_u8; 4096];
    let deadline = started + hold;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        for slot in &mut open {
            let Some(stream) = slot else { continue };
            // Drain what the server sends (SETTINGS, PINGs, a GOAWAY) and never answer it.
            let closed = loop {
                match stream.read(&mut buf) {
                    Ok(0) => break true,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                    Err(_) => break true,
                }
            };
            if closed {
                *slot = None;
                report.closed_by_server += 1;
                report.first_close_after.get_or_insert(started.elapsed());
            }
        }
        // The idle connections are looked at once a second.
        std::thread::sleep(
            Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now())),
        );
    }
    report
}
