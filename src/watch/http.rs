//! `tag watch --http ADDR`: the station's read-only endpoints: `/` (a self-contained live page,
//! page.html), `/stream.mjpg` (annotated frames, live.rs), `/status` (what the page polls),
//! `/metrics` (Prometheus text), `/healthz` (200 while frames arrive, 503 otherwise),
//! `/verdicts` (recent verdicts, JSON) and `/verdicts/N.jpg` (thumbnails of the listed ones);
//! with a collection under review, also `/review` (`crate::review`), the one route that writes.
//! `tag review` serves `/review` alone with the same server.
//!
//! tiny_http: a small synchronous server (four small dependencies, no async runtime), which fits
//! a Pi better than a tokio stack for a handful of scrapes a minute. Every answer is rendered
//! from a copy of the [`Board`] taken under a short lock, so clients never slow inference;
//! requests are served by two threads, so a flood waits its turn instead of growing memory.
//! A stream gets its own thread (it lasts as long as the viewer watches), up to
//! [`live::MAX_VIEWERS`].
//!
//! One workaround: tiny_http 0.12 hands each connection to a pool thread, and a burst of new
//! connections can leave one queued behind connections that stay open (streams, keep-alive)
//! until the next connection arrives (its `TaskPool::spawn` trusts a count of idle threads that a
//! just-woken thread is still in). A loopback connection every [`NUDGE`] starts a fresh pool
//! thread that serves whatever was queued, so no request waits longer than that.

use super::board::{self, Board};
use super::live::{self, Live};
use anyhow::{anyhow, Result};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tiny_http::{Header, Method, Request, Response, Server};

/// Threads answering requests.
const WORKERS: usize = 2;
/// How often the server connects to itself to unstick a queued connection (see the module doc).
const NUDGE: Duration = Duration::from_millis(500);

/// What a server answers: a station's board and live view, a collection under review, or both.
#[derive(Clone, Default)]
pub struct Routes {
    pub board: Option<Arc<Board>>,
    pub live: Option<Arc<Live>>,
    pub review: Option<Arc<crate::review::Review>>,
}

/// The running server; dropping it stops the threads.
pub struct HttpServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl HttpServer {
    /// Listens on `addr` (port 0: any free port, see [`HttpServer::addr`]).
    pub fn start(addr: SocketAddr, token: Option<String>, routes: Routes) -> Result<Self> {
        let server = Arc::new(
            Server::http(addr).map_err(|e| anyhow!("cannot listen on http://{addr}/: {e}"))?,
        );
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| anyhow!("http server on {addr} has no IP address"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let token = Arc::new(token.filter(|t| !t.is_empty()));
        let mut threads: Vec<JoinHandle<()>> = (0..WORKERS)
            .map(|_| {
                let (server, stop, token, routes) =
                    (server.clone(), stop.clone(), token.clone(), routes.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(100)) {
                            // A client gone mid-answer is its own business.
                            let _ = answer(req, &routes, token.as_deref());
                        }
                    }
                })
            })
            .collect();
        let target = match addr.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port()))
            }
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
            }
            _ => addr,
        };
        let nudging = stop.clone();
        threads.push(std::thread::spawn(move || {
            while !nudging.load(Ordering::Relaxed) {
                std::thread::sleep(NUDGE);
                // Connect and hang up: tiny_http reads EOF and the new thread moves on.
                let _ = std::net::TcpStream::connect_timeout(&target, NUDGE);
            }
        }));
        Ok(HttpServer {
            addr,
            stop,
            threads,
        })
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

/// The token from `?token=` or `Authorization: Bearer`.
fn presented_token(req: &Request) -> Option<String> {
    let query = req.url().split_once('?').map(|(_, q)| q).unwrap_or("");
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(str::to_string)
        .or_else(|| {
            req.headers()
                .iter()
                .find(|h| h.field.equiv("Authorization"))
                .and_then(|h| h.value.as_str().strip_prefix("Bearer ").map(str::to_string))
        })
}

/// Compares without stopping at the first differing byte (no timing hint about the token).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0, |d, (x, y)| d | (x ^ y)) == 0
}

/// The live page: one file, no external assets (works on a network without internet).
const PAGE: &str = include_str!("page.html");

fn answer(mut req: Request, routes: &Routes, token: Option<&str>) -> std::io::Result<()> {
    let text = |code: u16, body: String, kind: &str| {
        Response::from_string(body)
            .with_status_code(code)
            .with_header(header("Content-Type", kind))
            .with_header(header("Cache-Control", "no-store"))
    };
    let plain = "text/plain; charset=utf-8";
    let path = req.url().split('?').next().unwrap_or("").to_string();
    let reviewing = routes.review.is_some() && path.starts_with("/review");
    let allowed = matches!(req.method(), Method::Get | Method::Head)
        || (reviewing && *req.method() == Method::Post);
    if !allowed {
        return req.respond(text(405, "read-only: GET or HEAD\n".into(), plain));
    }
    if let Some(want) = token {
        if !presented_token(&req).is_some_and(|t| same(&t, want)) {
            return req.respond(text(
                401,
                "a token is required: ?token=... or Authorization: Bearer ...\n".into(),
                plain,
            ));
        }
    }
    if let Some(review) = routes.review.as_ref().filter(|_| reviewing) {
        let mut body = Vec::new();
        if *req.method() == Method::Post {
            use std::io::Read;
            let limit = crate::review::MAX_BODY as u64;
            req.as_reader().take(limit + 1).read_to_end(&mut body)?;
            if body.len() as u64 > limit {
                return req.respond(text(413, "request body too large\n".into(), plain));
            }
        }
        let method = req.method().as_str().to_string();
        if let Some(r) = review.answer(&method, &path, &body) {
            return req.respond(
                Response::from_data(r.body)
                    .with_status_code(r.code)
                    .with_header(header("Content-Type", r.content_type))
                    .with_header(header("Cache-Control", "no-store")),
            );
        }
    }
    let (Some(board), Some(live)) = (&routes.board, &routes.live) else {
        // `tag review`: the review page is all there is.
        let query = req
            .url()
            .find('?')
            .map_or("", |i| &req.url()[i..])
            .to_string();
        return req.respond(match path.as_str() {
            "/" => Response::from_string("")
                .with_status_code(302)
                .with_header(header("Location", &format!("/review{query}"))),
            _ => text(404, "not found: this server serves /review\n".into(), plain),
        });
    };
    if path.starts_with("/review") {
        return req.respond(text(
            404,
            "no review here: start tag watch with --collect DIR and --review (or a token)\n".into(),
            plain,
        ));
    }
    let response = match path.as_str() {
        "/" => text(200, PAGE.to_string(), "text/html; charset=utf-8"),
        "/status" => text(
            200,
            serde_json::to_string(&board::Status {
                viewers: live.viewers(),
                ..board.status()
            })
            .expect("status serialises")
                + "\n",
            "application/json",
        ),
        "/stream.mjpg" => {
            let Some(viewer) = live.join() else {
                return req.respond(text(
                    503,
                    format!(
                        "{} viewers already watch this station; try again later\n",
                        live::MAX_VIEWERS
                    ),
                    plain,
                ));
            };
            if *req.method() == Method::Head {
                return req.respond(text(200, String::new(), "multipart/x-mixed-replace"));
            }
            // The stream lasts as long as the viewer watches: its own thread, never joined
            // (a stuck viewer must not hold up shutdown), counted by its slot.
            std::thread::spawn(move || {
                let mut out = req.into_writer();
                let _ = viewer.stream(&mut out);
            });
            return Ok(());
        }
        p if p.starts_with("/verdicts/") && p.ends_with(".jpg") => {
            let frame = p["/verdicts/".len()..p.len() - 4].parse::<u64>().ok();
            match frame.and_then(|f| board.thumbnail(f)) {
                Some(jpeg) => Response::from_data(jpeg.as_slice())
                    .with_header(header("Content-Type", "image/jpeg"))
                    .with_header(header("Cache-Control", "max-age=3600")),
                None => text(
                    404,
                    "no such verdict image (only the newest verdicts keep one)\n".into(),
                    plain,
                ),
            }
        }
        "/metrics" => text(
            200,
            board.metrics(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        "/healthz" => match board.health() {
            Ok(s) => text(200, s + "\n", plain),
            Err(s) => text(503, s + "\n", plain),
        },
        "/verdicts" => text(
            200,
            serde_json::to_string(&board.verdicts()).expect("verdicts serialise") + "\n",
            "application/json",
        ),
        _ => text(
            404,
            "not found: try /, /stream.mjpg, /status, /metrics, /healthz or /verdicts\n".into(),
            plain,
        ),
    };
    req.respond(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(same("s3cret", "s3cret"));
        assert!(!same("s3cret", "s3cres"));
        assert!(!same("s3cret", "s3cre"));
    }
}
