//! MJPEG over HTTP, what IP cameras serve: one `GET`, then an endless
//! `multipart/x-mixed-replace` body with one JPEG per part.
//!
//! Hand-written on `std::net` rather than an HTTP crate: the whole client is one GET and a
//! multipart splitter (~150 lines). Asking for HTTP/1.0 rules out chunked encoding, cameras on a
//! warehouse network speak plain http, and the lean runtime keeps its dependency tree small.

use super::{FrameData, FrameSource, Reconnecting};
use crate::limits::{
    CONNECT_TIMEOUT, FRAME_DEADLINE, HEADER_DEADLINE, MAX_STREAM_HEADERS, MAX_STREAM_LINE,
    MAX_STREAM_PART, STOP_POLL,
};
use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest part accepted (limits.rs).
const MAX_PART: usize = MAX_STREAM_PART as usize;

/// The camera's socket, read against a deadline (the answer's headers, then each frame, must
/// arrive whole in time: a server that drips one byte every few seconds is cut off) and the stop
/// flag (Ctrl-C and SIGTERM are honoured within [`STOP_POLL`] while waiting).
struct Conn {
    tcp: TcpStream,
    deadline: Instant,
    /// What the deadline is for, in the error.
    waiting_for: &'static str,
    stop: Arc<AtomicBool>,
}

impl Conn {
    fn expect(&mut self, what: &'static str, within: Duration) {
        self.deadline = Instant::now() + within;
        self.waiting_for = what;
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("stopped"));
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("{} did not arrive in time", self.waiting_for),
                ));
            }
            self.tcp.set_read_timeout(Some(left.min(STOP_POLL)))?;
            match self.tcp.read(buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                r => return r,
            }
        }
    }
}

pub struct MjpegSource {
    /// The URL as given (with any password); `conn.what` is the redacted one for logs.
    url: String,
    conn: Reconnecting<Stream>,
}

/// One HTTP answer's multipart body; generic over the byte source so the parser can be tested
/// on plain bytes (property tests below).
struct Stream<R = Conn> {
    reader: BufReader<R>,
    /// `--boundary`, as it starts each part.
    delimiter: Vec<u8>,
    /// The delimiter line of the next part was already consumed while scanning a part without a
    /// Content-Length.
    at_part_headers: bool,
    /// The closing delimiter followed the last part: the next read reports the end.
    ended: bool,
}

struct Url {
    host: String,
    port: u16,
    path: String,
    /// `user:password` from the URL, sent as HTTP basic auth.
    credentials: Option<String>,
}

/// An HTTP answer: status line, headers, and the reader at the start of the body.
type Answer = (String, Vec<(String, String)>, BufReader<Conn>);

/// How many redirects (301/302/303/307/308) are followed before giving up.
const MAX_REDIRECTS: usize = 5;

/// `http://AUTHORITY/PATH` split into the authority and the path (`""` when there is none).
fn split_http(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("http://")?;
    Some(rest.split_at(rest.find('/').unwrap_or(rest.len())))
}

/// The URL as it may appear in logs: a password is shown as `***`.
pub fn redacted(url: &str) -> String {
    match split_http(url) {
        Some((authority, path)) => match authority.rfind('@') {
            Some(at) => {
                let user = authority[..at].split(':').next().unwrap_or("");
                format!("http://{user}:***@{}{path}", &authority[at + 1..])
            }
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// `%XX` escapes in URL user info (`p%40ss` -> `p@ss`).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding, for the basic-auth header: a dozen lines, not worth a crate.
fn base64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for c in input.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= c.len() {
                out.push(A[(n >> shift & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn parse_url(full: &str) -> Result<Url> {
    let url = &redacted(full);
    let (authority, path) =
        split_http(full).ok_or_else(|| anyhow!("{url}: only http:// URLs are supported"))?;
    let path = if path.is_empty() { "/" } else { path };
    let (credentials, authority) = match authority.rfind('@') {
        Some(at) => {
            let info = &authority[..at];
            let (user, pass) = info.split_once(':').unwrap_or((info, ""));
            (
                Some(format!("{}:{}", percent_decode(user), percent_decode(pass))),
                &authority[at + 1..],
            )
        }
        None => (None, authority),
    };
    // `[::1]:8080`: an IPv6 literal in brackets, its colons not a port separator.
    let (host, port_part) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, rest) = v6
                .split_once(']')
                .ok_or_else(|| anyhow!("{url}: `[` without `]` around an IPv6 address"))?;
            (h, rest.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port_part {
        Some(p) => p
            .parse()
            .map_err(|_| anyhow!("{url}: port `{p}` is not a number"))?,
        None => 80,
    };
    if host.is_empty() {
        bail!("{url}: no host name");
    }
    Ok(Url {
        host: host.to_string(),
        port,
        path: path.to_string(),
        credentials,
    })
}

impl MjpegSource {
    /// Connects once; an unreachable camera at start is an error (a typo in the URL should not
    /// look like a camera that is rebooting). Later losses are retried.
    pub fn connect(url: &str, reconnect_max_s: f32, stop: Arc<AtomicBool>) -> Result<Self> {
        let stream = Stream::open(url, stop.clone())?;
        Ok(Self {
            url: url.to_string(),
            conn: Reconnecting::new(redacted(url), stream, reconnect_max_s, stop),
        })
    }
}

impl Stream<Conn> {
    /// Connects, follows up to [`MAX_REDIRECTS`] redirects, and reads the answer's headers.
    fn open(url: &str, stop: Arc<AtomicBool>) -> Result<Self> {
        let shown = redacted(url);
        let mut target = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let (status, headers, reader) = Self::request(&target, &shown, stop.clone())?;
            let code = status.split_whitespace().nth(1).unwrap_or("");
            if status.starts_with("HTTP/") && code == "200" {
                return Self::from_answer(&shown, &headers, reader);
            }
            if let ("301" | "302" | "303" | "307" | "308", Some(location)) =
                (code, header(&headers, "location"))
            {
                target = redirect_target(&target, &location)
                    .with_context(|| format!("camera {shown} redirects to `{location}`"))?;
                continue;
            }
            if code == "401" {
                bail!(
                    "camera {shown} wants a user name and password: put them in the URL, \
                     http://user:password@host/path (answer `{}`)",
                    status.trim()
                );
            }
            bail!(
                "camera {shown} answered `{}` instead of 200 OK (is the stream path right?)",
                status.trim()
            );
        }
        bail!("camera {shown} redirects more than {MAX_REDIRECTS} times")
    }

    /// One GET: the status line, the headers and the reader positioned at the body.
    fn request(url: &str, url_shown: &str, stop: Arc<AtomicBool>) -> Result<Answer> {
        let u = parse_url(url)?;
        let addr = (u.host.as_str(), u.port)
            .to_socket_addrs()
            .with_context(|| format!("camera {url_shown}: cannot resolve host {}", u.host))?
            .next()
            .ok_or_else(|| anyhow!("camera {url_shown}: host {} has no address", u.host))?;
        let tcp = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).with_context(|| {
            format!("camera {url_shown} is unreachable (check that it is powered, on the network, and the URL)")
        })?;
        tcp.set_write_timeout(Some(CONNECT_TIMEOUT))?;
        let host = if u.host.contains(':') {
            format!("[{}]", u.host)
        } else {
            u.host.clone()
        };
        let auth = u
            .credentials
            .as_ref()
            .map(|c| format!("Authorization: Basic {}\r\n", base64(c.as_bytes())))
            .unwrap_or_default();
        (&tcp)
            .write_all(
                format!(
                    "GET {} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: fashion-tagger\r\n{auth}Accept: multipart/x-mixed-replace, image/jpeg\r\n\r\n",
                    u.path
                )
                .as_bytes(),
            )
            .with_context(|| format!("camera {url_shown}: cannot send the request"))?;
        let mut reader = BufReader::new(Conn {
            tcp,
            deadline: Instant::now() + HEADER_DEADLINE,
            waiting_for: "the HTTP answer",
            stop,
        });
        let status = read_line(&mut reader)
            .with_context(|| format!("camera {url_shown}: no HTTP answer"))?;
        let headers =
            read_headers(&mut reader).with_context(|| format!("camera {url_shown}: bad answer"))?;
        Ok((status, headers, reader))
    }

    fn from_answer(
        url: &str,
        headers: &[(String, String)],
        reader: BufReader<Conn>,
    ) -> Result<Self> {
        let ctype = header(headers, "content-type").unwrap_or_default();
        let boundary = ctype
            .split(';')
            .find_map(|p| p.trim().strip_prefix("boundary="))
            .map(|b| b.trim_matches('"').to_string())
            .filter(|_| ctype.to_ascii_lowercase().starts_with("multipart/"))
            .ok_or_else(|| {
                anyhow!("camera {url} does not serve an MJPEG stream (Content-Type `{ctype}`, expected multipart/x-mixed-replace; boundary=...)")
            })?;
        // Some servers put the leading dashes in the header value itself.
        let boundary = boundary.trim_start_matches("--");
        Ok(Self {
            reader,
            delimiter: format!("--{boundary}").into_bytes(),
            at_part_headers: false,
            ended: false,
        })
    }

    /// One part's body, within [`FRAME_DEADLINE`].
    fn next_frame_part(&mut self) -> Result<Vec<u8>> {
        self.reader
            .get_mut()
            .expect("a whole frame", FRAME_DEADLINE);
        self.next_part()
    }
}

impl<R: Read> Stream<R> {
    /// One part's body. Errors mean the stream is unusable (lost, or not MJPEG any more).
    fn next_part(&mut self) -> Result<Vec<u8>> {
        if self.ended {
            bail!("the camera ended the stream");
        }
        if !self.at_part_headers {
            loop {
                let line = read_line(&mut self.reader)?;
                let line = line.trim_end();
                if line.is_empty() {
                    continue;
                }
                if line.as_bytes() == self.delimiter.as_slice() {
                    break;
                }
                if line.as_bytes().starts_with(&self.delimiter) && line.ends_with("--") {
                    bail!("the camera ended the stream");
                }
                bail!(
                    "stream out of step: expected a part boundary, got `{}`",
                    truncate(line)
                );
            }
        }
        self.at_part_headers = false;
        let headers = read_headers(&mut self.reader)?;
        if let Some(len) = header(&headers, "content-length") {
            let len: usize = len
                .trim()
                .parse()
                .map_err(|_| anyhow!("bad Content-Length `{len}` in a part"))?;
            if len > MAX_PART {
                bail!("part of {len} bytes is larger than {MAX_PART}");
            }
            let mut body = vec![0; len];
            self.reader.read_exact(&mut body)?;
            return Ok(body);
        }
        // No length: the body runs up to CRLF + delimiter.
        let mut body = Vec::new();
        let mut marker = b"\r\n".to_vec();
        marker.extend_from_slice(&self.delimiter);
        loop {
            // Bounded even when no newline ever comes.
            let room = (MAX_PART + 1 - body.len()) as u64;
            let n = (&mut self.reader).take(room).read_until(b'\n', &mut body)?;
            if n == 0 {
                bail!("the stream closed inside a frame");
            }
            if body.len() > MAX_PART {
                bail!("part without Content-Length grew past {MAX_PART} bytes");
            }
            if let Some(pos) = find_line_start(&body, &marker) {
                let rest = body.split_off(pos);
                // The closing delimiter: this part is still a frame, the next call ends.
                self.ended = rest[marker.len()..].starts_with(b"--");
                self.at_part_headers = !self.ended;
                return Ok(body);
            }
        }
    }
}

/// Position of `marker` when the body ends with a line that starts with it.
fn find_line_start(body: &[u8], marker: &[u8]) -> Option<usize> {
    let last_line = body[..body.len().saturating_sub(1)]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let start = last_line.checked_sub(2)?;
    body[start..].starts_with(marker).then_some(start)
}

/// Where a `Location` header points: an absolute http:// URL, or a path on the same camera
/// (credentials kept).
fn redirect_target(from: &str, location: &str) -> Result<String> {
    let location = location.trim();
    if location.starts_with("http://") {
        return Ok(location.to_string());
    }
    if location.starts_with("https://") {
        bail!("https is not supported");
    }
    let Some(path) = location.strip_prefix('/') else {
        bail!("not an http:// URL or an absolute path");
    };
    let (authority, _) = split_http(from).context("not redirected from an http:// URL")?;
    Ok(format!("http://{authority}/{path}"))
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

fn read_line(r: &mut impl BufRead) -> Result<String> {
    let mut buf = Vec::new();
    let n = r.take(MAX_STREAM_LINE).read_until(b'\n', &mut buf)?;
    if n == 0 {
        bail!("the connection closed");
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn read_headers(r: &mut impl BufRead) -> Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let line = read_line(r)?;
        let line = line.trim_end();
        if line.is_empty() {
            return Ok(headers);
        }
        if headers.len() > MAX_STREAM_HEADERS {
            bail!("more than {MAX_STREAM_HEADERS} header lines");
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
}

fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

impl FrameSource for MjpegSource {
    fn next_frame(&mut self) -> Result<Option<FrameData>> {
        let (url, stop) = (self.url.clone(), self.conn.stop.clone());
        Ok(self
            .conn
            .next(Stream::<Conn>::next_frame_part, || {
                Stream::open(&url, stop.clone())
            })?
            .map(FrameData::Encoded))
    }

    fn reconnects(&self) -> u64 {
        self.conn.reconnects
    }

    fn is_live(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
