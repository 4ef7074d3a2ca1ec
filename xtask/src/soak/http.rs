//! A minimal HTTP/1.1 reader and keep-alive client over `std::net`, enough for the soak's senders,
//! its API reads and its mock targets.
//!
//! The soak is a std-only module of xtask, with threads instead of a runtime, so that every
//! `cargo xtask` task stays quick to build; its HTTP needs are small and fully bounded: heads of at
//! most 64 KiB, bodies of at most [`MAX_BODY`], `Content-Length` or chunked framing.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The largest head (request or status line and headers) read.
const MAX_HEAD: usize = 64 * 1024;
/// The largest body read (`/metrics` and a DLQ page of 1000 entries fit).
pub(crate) const MAX_BODY: usize = 32 * 1024 * 1024;

/// One HTTP/1.1 message: its start line, headers (names lower-cased) and body.
#[derive(Debug, Default)]
pub(crate) struct Message {
    pub(crate) start: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Message {
    /// The first value of a header, by its lower-case name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A response's status code.
    pub(crate) fn status(&self) -> Option<u16> {
        self.start.split_whitespace().nth(1)?.parse().ok()
    }

    /// A request's method.
    pub(crate) fn method(&self) -> &str {
        self.start.split_whitespace().next().unwrap_or("")
    }

    /// Whether the peer asked to close the connection after this message.
    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Reads one line, bounded by what is left of the head's budget.
fn read_line(reader: &mut impl BufRead, budget: &mut usize) -> io::Result<String> {
    let mut line = Vec::new();
    let read = reader
        .by_ref()
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if read == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if read > *budget || !line.ends_with(b"\n") {
        return Err(invalid("head too long or truncated"));
    }
    *budget -= read;
    let text = String::from_utf8(line).map_err(|_| invalid("head is not UTF-8"))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// Reads one message. `Ok(None)` is a clean end of the connection before its first byte.
pub(crate) fn read_message(
    reader: &mut impl BufRead,
    max_body: usize,
) -> io::Result<Option<Message>> {
    if reader.fill_buf()?.is_empty() {
        return Ok(None);
    }
    let mut budget = MAX_HEAD;
    let start = read_line(reader, &mut budget)?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader, &mut budget)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid("header without colon"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut message = Message {
        start,
        headers,
        body: Vec::new(),
    };
    // A 204 or 304 answer carries no body whatever its headers say.
    if message.start.starts_with("HTTP/") && matches!(message.status(), Some(204 | 304)) {
        return Ok(Some(message));
    }
    if message
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let size_line = read_line(reader, &mut budget)?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| invalid("bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !read_line(reader, &mut budget)?.is_empty() {}
                break;
            }
            if message.body.len() + size > max_body {
                return Err(invalid("body too large"));
            }
            let old = message.body.len();
            message.body.resize(old + size, 0);
            reader.read_exact(&mut message.body[old..])?;
            if !read_line(reader, &mut budget)?.is_empty() {
                return Err(invalid("chunk not followed by CRLF"));
            }
        }
    } else if let Some(length) = message.header("content-length") {
        let length: usize = length.parse().map_err(|_| invalid("bad content-length"))?;
        if length > max_body {
            return Err(invalid("body too large"));
        }
        message.body.resize(length, 0);
        reader.read_exact(&mut message.body)?;
    } else if message.start.starts_with("HTTP/") {
        // A response without framing ends with the connection.
        reader
            .by_ref()
            .take(max_body as u64 + 1)
            .read_to_end(&mut message.body)?;
        if message.body.len() > max_body {
            return Err(invalid("body too large"));
        }
    }
    Ok(Some(message))
}

/// A keep-alive HTTP/1.1 client for one server address; it reconnects after any failure and
/// never retries a request itself (the caller decides what an unknown outcome means).
pub(crate) struct Client {
    addr: String,
    timeout: Duration,
    conn: Option<BufReader<TcpStream>>,
}

/// A response: status and body.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// The body as JSON (`null` when it is not JSON).
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl Client {
    pub(crate) fn new(addr: &str, timeout: Duration) -> Self {
        Self {
            addr: addr.to_owned(),
            timeout,
            conn: None,
        }
    }

    /// The address requests go to.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one request; on any error the connection is dropped.
    pub(crate) fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> io::Result<Response> {
        let result = self.try_request(method, path, body);
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> io::Result<Response> {
        if self.conn.is_none() {
            let addr = self.addr.parse().map_err(|_| invalid("bad address"))?;
            let stream = TcpStream::connect_timeout(&addr, self.timeout)?;
            stream.set_read_timeout(Some(self.timeout))?;
            stream.set_write_timeout(Some(self.timeout))?;
            stream.set_nodelay(true)?;
            self.conn = Some(BufReader::new(stream));
        }
        let conn = self.conn.as_mut().expect("connected above");
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\n", self.addr);
        if let Some(body) = body {
            head.push_str(&format!(
                "content-type: application/json\r\ncontent-length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        let stream = conn.get_mut();
        stream.write_all(head.as_bytes())?;
        if let Some(body) = body {
            stream.write_all(body)?;
        }
        let message = read_message(conn, MAX_BODY)?
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let status = message.status().ok_or_else(|| invalid("bad status line"))?;
        if message.closes() {
            self.conn = None;
        }
        Ok(Response {
            status,
            body: message.body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> io::Result<Option<Message>> {
        read_message(&mut io::BufReader::new(bytes), 1024)
    }

    #[test]
    fn reads_a_request_with_content_length() {
        let m = read(
            b"POST /hook HTTP/1.1\r\nContent-Length: 5\r\nIdempotency-Key: k\r\n\r\nhelloNEXT",
        )
        .unwrap()
        .unwrap();
        assert_eq!(m.method(), "POST");
        assert_eq!(m.header("idempotency-key"), Some("k"));
        assert_eq!(m.body, b"hello");
    }

    #[test]
    fn reads_a_chunked_response() {
        let m = read(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(m.status(), Some(200));
        assert_eq!(m.body, b"abcde");
    }

    #[test]
    fn refuses_bodies_over_the_bound_and_reports_a_clean_end() {
        assert!(read(b"HTTP/1.1 200 OK\r\ncontent-length: 4096\r\n\r\n").is_err());
        assert!(read(b"").unwrap().is_none());
        assert!(read(b"HTTP/1.1 200 OK\r\ncontent-le").is_err());
    }

    #[test]
    fn a_204_has_no_body() {
        let m = read(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap().unwrap();
        assert_eq!(m.status(), Some(204));
        assert!(m.body.is_empty());
    }
}
