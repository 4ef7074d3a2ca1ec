//! The soak's mock targets: real HTTP/1.1 servers on 127.0.0.1, one thread per connection (at
//! most [`MAX_CONNECTIONS`] each), all inside the soak's thread scope and stopped by its flag.
//!
//! - `healthy` answers 200 at once and records every delivery (alert name, fingerprint, status,
//!   idempotency key);
//! - `drip` reads the request and sends its answer at 1 byte/s;
//! - `big` answers 200 with a 100 MB body;
//! - `reset` peeks at the request and closes the connection with the request unread, which makes
//!   the kernel send a TCP reset (every other time after half a status line).
//!
//! Every mock remembers the alert names it was sent, so the soak can tell an alert a faulty target
//! was at least offered from one it never saw.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::Scope;
use std::time::{Duration, Instant};

use super::http::{Message, read_message};

/// Connections one mock serves at once; more are closed at once.
const MAX_CONNECTIONS: usize = 256;
/// How often an idle connection looks at the stop flag.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// The longest a request may take to arrive once it has begun.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request body read (the server's webhook bodies are a few KiB).
const MAX_REQUEST_BODY: usize = 1024 * 1024;
/// The size of the big target's body.
pub(crate) const BIG_BODY_BYTES: u64 = 100 * 1024 * 1024;
/// The answer every well-behaved or dripping target gives.
const OK_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";

/// How a mock behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Behaviour {
    Healthy,
    Drip,
    Big,
    Reset,
}

impl Behaviour {
    pub(crate) const FAULTS: [Behaviour; 3] = [Behaviour::Drip, Behaviour::Big, Behaviour::Reset];

    /// The target's name in the server's config, and the `fault` label value routed to it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Behaviour::Healthy => "healthy",
            Behaviour::Drip => "drip",
            Behaviour::Big => "big",
            Behaviour::Reset => "reset",
        }
    }
}

/// One delivery the healthy target answered 200.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Delivery {
    pub(crate) alert_name: String,
    pub(crate) fingerprint: String,
    pub(crate) status: String,
    pub(crate) key: String,
}

/// What a mock saw.
#[derive(Default)]
pub(crate) struct Recorded {
    /// Deliveries (the healthy target only).
    pub(crate) deliveries: Mutex<Vec<Delivery>>,
    /// Alert names any request carried.
    pub(crate) seen: Mutex<HashSet<String>>,
    pub(crate) requests: AtomicU64,
    pub(crate) connections: AtomicU64,
    pub(crate) refused_connections: AtomicU64,
    /// The most bytes of one big body written before the server hung up, and how many bodies
    /// were written in full (the server read 100 MB).
    pub(crate) big_max_written: AtomicU64,
    pub(crate) big_complete: AtomicU64,
}

/// A mock target bound to a free loopback port.
pub(crate) struct Mock {
    pub(crate) behaviour: Behaviour,
    listener: TcpListener,
    addr: SocketAddr,
    active: AtomicUsize,
    pub(crate) recorded: Recorded,
}

impl Mock {
    pub(crate) fn bind(behaviour: Behaviour) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        Ok(Self {
            behaviour,
            listener,
            addr,
            active: AtomicUsize::new(0),
            recorded: Recorded::default(),
        })
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Serves until `stop` is set and [`Mock::wake`] is called; every thread it starts belongs to
    /// `scope`, which joins them.
    pub(crate) fn serve<'scope, 'env: 'scope>(
        &'env self,
        scope: &'scope Scope<'scope, 'env>,
        stop: &'env AtomicBool,
    ) {
        scope.spawn(move || {
            for stream in self.listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                if self.active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    self.recorded
                        .refused_connections
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                self.active.fetch_add(1, Ordering::Relaxed);
                self.recorded.connections.fetch_add(1, Ordering::Relaxed);
                scope.spawn(move || {
                    let _ = self.connection(stream, stop);
                    self.active.fetch_sub(1, Ordering::Relaxed);
                });
            }
        });
    }

    /// Unblocks the accept loop once `stop` is set.
    pub(crate) fn wake(&self) {
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }

    fn connection(&self, stream: TcpStream, stop: &AtomicBool) -> io::Result<()> {
        stream.set_nodelay(true)?;
        if self.behaviour == Behaviour::Reset {
            return self.reset(&stream, stop);
        }
        let mut writer = stream.try_clone()?;
        writer.set_write_timeout(Some(REQUEST_TIMEOUT))?;
        let mut reader = BufReader::new(stream);
        loop {
            // Idle: wait for the next request, looking at the stop flag now and then.
            reader.get_ref().set_read_timeout(Some(IDLE_POLL))?;
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                match reader.fill_buf() {
                    Ok([]) => return Ok(()),
                    Ok(_) => break,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => return Err(e),
                }
            }
            reader.get_ref().set_read_timeout(Some(REQUEST_TIMEOUT))?;
            let Some(request) = read_message(&mut reader, MAX_REQUEST_BODY)? else {
                return Ok(());
            };
            self.recorded.requests.fetch_add(1, Ordering::Relaxed);
            self.note(&request);
            match self.behaviour {
                Behaviour::Healthy | Behaviour::Reset => writer.write_all(OK_RESPONSE)?,
                Behaviour::Drip => {
                    for byte in OK_RESPONSE {
                        if stop.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        writer.write_all(std::slice::from_ref(byte))?;
                        // The fault itself: one byte a second.
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
                Behaviour::Big => self.big(&mut writer, stop)?,
            }
        }
    }

    /// Records what a request carried.
    fn note(&self, request: &Message) {
        if request.method() != "POST" && request.method() != "PUT" {
            return; // A health probe.
        }
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let text = |key: &str| body[key].as_str().unwrap_or_default().to_owned();
        let alert_name = text("alert_name");
        self.recorded
            .seen
            .lock()
            .expect("not poisoned")
            .insert(alert_name.clone());
        if self.behaviour == Behaviour::Healthy {
            self.recorded
                .deliveries
                .lock()
                .expect("not poisoned")
                .push(Delivery {
                    alert_name,
                    fingerprint: text("fingerprint"),
                    status: text("status"),
                    key: request
                        .header("idempotency-key")
                        .unwrap_or_default()
                        .to_owned(),
                });
        }
    }

    fn big(&self, writer: &mut TcpStream, stop: &AtomicBool) -> io::Result<()> {
        writer.write_all(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {BIG_BODY_BYTES}\r\n\r\n"
            )
            .as_bytes(),
        )?;
        let chunk = vec![b'x'; 64 * 1024];
        let mut written = 0_u64;
        let result = loop {
            if written >= BIG_BODY_BYTES {
                self.recorded.big_complete.fetch_add(1, Ordering::Relaxed);
                break Ok(());
            }
            if stop.load(Ordering::Relaxed) {
                break Err(io::ErrorKind::Interrupted.into());
            }
            match writer.write_all(&chunk) {
                Ok(()) => written += chunk.len() as u64,
                Err(e) => break Err(e),
            }
        };
        self.recorded
            .big_max_written
            .fetch_max(written, Ordering::Relaxed);
        result
    }

    /// Peeks until the whole request is in the socket's buffer (or it stops growing), notes it,
    /// and closes with it unread, so the kernel answers with a reset.
    fn reset(&self, stream: &TcpStream, stop: &AtomicBool) -> io::Result<()> {
        let mut buf = vec![0_u8; 64 * 1024];
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        stream.set_read_timeout(Some(IDLE_POLL))?;
        let request = loop {
            if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                return Ok(());
            }
            let n = match stream.peek(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            match read_message(&mut &buf[..n], MAX_REQUEST_BODY) {
                Ok(Some(request)) => break request,
                // The rest of the request is still on its way: peek returns at once while any
                // byte is buffered, so wait a little before looking again.
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        let count = self.recorded.requests.fetch_add(1, Ordering::Relaxed);
        self.note(&request);
        if count % 2 == 1 {
            let mut writer = stream;
            writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-le")?;
        }
        Ok(())
    }
}
