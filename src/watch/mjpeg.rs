//! MJPEG over HTTP, what IP cameras serve: one `GET`, then an endless
//! `multipart/x-mixed-replace` body with one JPEG per part.
//!
//! Hand-written on `std::net` rather than an HTTP crate: the whole client is one GET and a
//! multipart splitter (~150 lines). Asking for HTTP/1.0 rules out chunked encoding, cameras on a
//! warehouse network speak plain http, and the lean runtime keeps its dependency tree small.

use super::source::{FrameData, FrameSource, Reconnecting};
use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Largest part accepted: a 4K JPEG is a few MiB; more means a broken stream.
const MAX_PART: usize = 32 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A camera that sends nothing for this long is treated as lost.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub struct MjpegSource {
    conn: Reconnecting<Stream>,
}

struct Stream {
    reader: BufReader<TcpStream>,
    /// `--boundary`, as it starts each part.
    delimiter: Vec<u8>,
    /// The delimiter line of the next part was already consumed while scanning a part without a
    /// Content-Length.
    at_part_headers: bool,
}

struct Url {
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Url> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse()
                .map_err(|_| anyhow!("{url}: port `{p}` is not a number"))?,
        ),
        None => (authority, 80),
    };
    if host.is_empty() {
        bail!("{url}: no host name");
    }
    Ok(Url {
        host: host.to_string(),
        port,
        path: path.to_string(),
    })
}

impl MjpegSource {
    /// Connects once; an unreachable camera at start is an error (a typo in the URL should not
    /// look like a camera that is rebooting). Later losses are retried.
    pub fn connect(url: &str, reconnect_max_s: f32, stop: Arc<AtomicBool>) -> Result<Self> {
        let stream = Stream::open(url)?;
        Ok(Self {
            conn: Reconnecting::new(url.to_string(), stream, reconnect_max_s, stop),
        })
    }
}

impl Stream {
    fn open(url: &str) -> Result<Self> {
        let u = parse_url(url)?;
        let addr = (u.host.as_str(), u.port)
            .to_socket_addrs()
            .with_context(|| format!("camera {url}: cannot resolve host {}", u.host))?
            .next()
            .ok_or_else(|| anyhow!("camera {url}: host {} has no address", u.host))?;
        let tcp = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).with_context(|| {
            format!("camera {url} is unreachable (check that it is powered, on the network, and the URL)")
        })?;
        tcp.set_read_timeout(Some(READ_TIMEOUT))?;
        (&tcp)
            .write_all(
                format!(
                    "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: fashion-tagger\r\nAccept: multipart/x-mixed-replace, image/jpeg\r\n\r\n",
                    u.path, u.host
                )
                .as_bytes(),
            )
            .with_context(|| format!("camera {url}: cannot send the request"))?;
        let mut reader = BufReader::new(tcp);
        let status =
            read_line(&mut reader).with_context(|| format!("camera {url}: no HTTP answer"))?;
        let code = status.split_whitespace().nth(1).unwrap_or("");
        if !status.starts_with("HTTP/") || code != "200" {
            bail!(
                "camera {url} answered `{}` instead of 200 OK (is the stream path right?)",
                status.trim()
            );
        }
        let headers = read_headers(&mut reader)?;
        let ctype = header(&headers, "content-type").unwrap_or_default();
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
        })
    }

    /// One part's body. Errors mean the stream is unusable (lost, or not MJPEG any more).
    fn next_part(&mut self) -> Result<Vec<u8>> {
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
            let mut chunk = Vec::new();
            let n = self.reader.read_until(b'\n', &mut chunk)?;
            if n == 0 {
                bail!("the stream closed inside a frame");
            }
            body.extend_from_slice(&chunk);
            if body.len() > MAX_PART {
                bail!("part without Content-Length grew past {MAX_PART} bytes");
            }
            if let Some(pos) = find_line_start(&body, &marker) {
                let rest = body.split_off(pos);
                if rest[marker.len()..].starts_with(b"--") {
                    bail!("the camera ended the stream");
                }
                self.at_part_headers = true;
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

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

fn read_line(r: &mut impl BufRead) -> Result<String> {
    let mut buf = Vec::new();
    let n = r.take(8192).read_until(b'\n', &mut buf)?;
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
        if headers.len() > 100 {
            bail!("more than 100 header lines");
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
        let url = self.conn.what.clone();
        Ok(self
            .conn
            .next(Stream::next_part, || Stream::open(&url))?
            .map(FrameData::Encoded))
    }

    fn is_live(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn urls() {
        let u = parse_url("http://10.0.0.7:8080/video.mjpg").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("10.0.0.7", 8080, "/video.mjpg")
        );
        let u = parse_url("http://cam").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        assert!(parse_url("http://cam:x/").is_err());
        assert!(parse_url("http:///a").is_err());
    }

    /// Serves `body` after the given headers once, on loopback.
    fn serve_once(head: &'static str, body: Vec<u8>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = [0u8; 1024];
            let _ = s.read(&mut req);
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        });
        format!("http://{addr}/stream")
    }

    #[test]
    fn parts_with_and_without_length() {
        let mut body = Vec::new();
        body.extend_from_slice(
            b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 5\r\n\r\nAAAAA\r\n",
        );
        body.extend_from_slice(b"--frame\r\nContent-Type: image/jpeg\r\n\r\nBB\nB\r\n");
        body.extend_from_slice(b"--frame\r\nContent-Type: image/jpeg\r\n\r\nCCC\r\n--frame--\r\n");
        let url = serve_once(
            "HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n",
            body,
        );
        let mut s = Stream::open(&url).unwrap();
        assert_eq!(s.next_part().unwrap(), b"AAAAA");
        assert_eq!(s.next_part().unwrap(), b"BB\nB");
        let e = s.next_part().unwrap_err();
        assert!(e.to_string().contains("ended the stream"), "{e}");
    }

    #[test]
    fn not_a_stream_is_explained() {
        let url = serve_once("HTTP/1.0 404 Not Found\r\n\r\n", Vec::new());
        let e = format!("{:#}", Stream::open(&url).err().unwrap());
        assert!(e.contains("404"), "{e}");
        let url = serve_once(
            "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n",
            Vec::new(),
        );
        let e = format!("{:#}", Stream::open(&url).err().unwrap());
        assert!(e.contains("does not serve an MJPEG stream"), "{e}");
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = format!(
            "{:#}",
            Stream::open(&format!("http://{addr}/")).err().unwrap()
        );
        assert!(e.contains("unreachable"), "{e}");
    }
}
