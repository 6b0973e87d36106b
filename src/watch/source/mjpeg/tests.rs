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
    let u = parse_url("http://[::1]:8080/v").unwrap();
    assert_eq!(
        (u.host.as_str(), u.port, u.path.as_str()),
        ("::1", 8080, "/v")
    );
    let u = parse_url("http://[fe80::2]/").unwrap();
    assert_eq!((u.host.as_str(), u.port), ("fe80::2", 80));
    assert!(parse_url("http://[::1:8080/").is_err());
    assert!(parse_url("http:///a").is_err());
}

#[test]
fn credentials_are_parsed_sent_encoded_and_never_shown() {
    let u = parse_url("http://admin:p%40ss:w@10.0.0.7:8080/video").unwrap();
    assert_eq!(u.credentials.as_deref(), Some("admin:p@ss:w"));
    assert_eq!((u.host.as_str(), u.port), ("10.0.0.7", 8080));
    assert_eq!(
        base64(b"Aladdin:open sesame"),
        "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    );
    assert_eq!(base64(b"ab"), "YWI=");
    assert_eq!(base64(b""), "");
    assert_eq!(
        redacted("http://admin:secret@cam/v"),
        "http://admin:***@cam/v"
    );
    assert_eq!(redacted("http://cam:81/v@x"), "http://cam:81/v@x");
    let e = format!(
        "{:#}",
        parse_url("http://admin:secret@cam:x/").err().unwrap()
    );
    assert!(!e.contains("secret"), "{e}");
}

/// Answers each of `answers` in turn, one connection each, passing the request to `check`.
fn serve_sequence(answers: Vec<Vec<u8>>, check: fn(&str) -> bool) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for answer in answers {
            let Ok((mut s, _)) = l.accept() else { return };
            let mut req = [0u8; 2048];
            let n = s.read(&mut req).unwrap_or(0);
            let req = String::from_utf8_lossy(&req[..n]).into_owned();
            if check(&req) {
                let _ = s.write_all(&answer);
            } else {
                let _ = s.write_all(b"HTTP/1.0 401 Unauthorized\r\n\r\n");
            }
        }
    });
    addr
}

fn stream_answer() -> Vec<u8> {
    let mut a = MJPEG_HEAD.as_bytes().to_vec();
    a.extend_from_slice(b"--f\r\nContent-Length: 3\r\n\r\nabc\r\n");
    a
}

#[test]
fn basic_auth_and_redirects() {
    // admin:secret -> YWRtaW46c2VjcmV0
    let authorised = |r: &str| r.contains("Authorization: Basic YWRtaW46c2VjcmV0\r\n");
    let addr = serve_sequence(
        vec![
            b"HTTP/1.0 302 Found\r\nLocation: /real\r\n\r\n".to_vec(),
            stream_answer(),
        ],
        authorised,
    );
    let mut s = Stream::open(&format!("http://admin:secret@{addr}/old"), no_stop()).unwrap();
    assert_eq!(s.next_part().unwrap(), b"abc");
    let addr = serve_sequence(vec![stream_answer()], authorised);
    let e = format!(
        "{:#}",
        Stream::open(&format!("http://admin:wrong@{addr}/"), no_stop())
            .err()
            .unwrap()
    );
    assert!(
        e.contains("user name and password") && !e.contains("wrong"),
        "{e}"
    );
    let looping: Vec<Vec<u8>> = (0..=MAX_REDIRECTS)
        .map(|_| b"HTTP/1.0 301 Moved\r\nLocation: /again\r\n\r\n".to_vec())
        .collect();
    let addr = serve_sequence(looping, |_| true);
    let e = format!(
        "{:#}",
        Stream::open(&format!("http://{addr}/"), no_stop())
            .err()
            .unwrap()
    );
    assert!(e.contains("redirects more than"), "{e}");
}

fn no_stop() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

const MJPEG_HEAD: &str =
    "HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=f\r\n\r\n";

#[test]
fn a_part_without_newlines_is_bounded() {
    let mut body = b"--f\r\nContent-Type: image/jpeg\r\n\r\n".to_vec();
    body.extend(std::iter::repeat_n(b'A', MAX_PART + 4096));
    let url = serve_once(MJPEG_HEAD, body);
    let mut s = Stream::open(&url, no_stop()).unwrap();
    let e = s.next_part().unwrap_err();
    assert!(e.to_string().contains("grew past"), "{e}");
}

/// A server that sends one byte every 50 ms and never finishes.
fn dripping_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        while s.write_all(b"H").is_ok() {
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    addr
}

#[test]
fn a_dripping_server_runs_into_the_deadline() {
    let tcp = TcpStream::connect(dripping_server()).unwrap();
    let mut c = Conn {
        tcp,
        deadline: Instant::now(),
        waiting_for: "",
        stop: no_stop(),
    };
    c.expect("the HTTP answer", Duration::from_millis(400));
    let started = Instant::now();
    let e = std::io::copy(&mut c, &mut std::io::sink()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    assert!(e.to_string().contains("HTTP answer"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_stop_ends_a_wait_for_the_answer() {
    let addr = dripping_server();
    let stop = no_stop();
    let s2 = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        s2.store(true, Ordering::Relaxed);
    });
    let started = Instant::now();
    assert!(Stream::open(&format!("http://{addr}/"), stop).is_err());
    assert!(started.elapsed() < HEADER_DEADLINE);
}

/// Serves `body` after the given headers once, on loopback.
fn serve_once(head: &'static str, body: Vec<u8>) -> String {
    let mut answer = head.as_bytes().to_vec();
    answer.extend(body);
    format!("http://{}/stream", serve_sequence(vec![answer], |_| true))
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
    let mut s = Stream::open(&url, no_stop()).unwrap();
    assert_eq!(s.next_part().unwrap(), b"AAAAA");
    assert_eq!(s.next_part().unwrap(), b"BB\nB");
    // The last part before the closing delimiter is a frame too.
    assert_eq!(s.next_part().unwrap(), b"CCC");
    let e = s.next_part().unwrap_err();
    assert!(e.to_string().contains("ended the stream"), "{e}");
}

#[test]
fn not_a_stream_is_explained() {
    let url = serve_once("HTTP/1.0 404 Not Found\r\n\r\n", Vec::new());
    let e = format!("{:#}", Stream::open(&url, no_stop()).err().unwrap());
    assert!(e.contains("404"), "{e}");
    let url = serve_once(
        "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n",
        Vec::new(),
    );
    let e = format!("{:#}", Stream::open(&url, no_stop()).err().unwrap());
    assert!(e.contains("does not serve an MJPEG stream"), "{e}");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let e = format!(
        "{:#}",
        Stream::open(&format!("http://{addr}/"), no_stop())
            .err()
            .unwrap()
    );
    assert!(e.contains("unreachable"), "{e}");
}

mod properties {
    use super::super::*;
    use proptest::prelude::*;

    fn parser(bytes: Vec<u8>) -> Stream<std::io::Cursor<Vec<u8>>> {
        Stream {
            reader: BufReader::new(std::io::Cursor::new(bytes)),
            delimiter: b"--f".to_vec(),
            at_part_headers: false,
            ended: false,
        }
    }

    /// Every part until the parser gives up; panics if it loops without consuming input.
    fn drain(bytes: Vec<u8>) -> (Vec<Vec<u8>>, bool) {
        let limit = bytes.len() + 2;
        let mut p = parser(bytes);
        let mut parts = vec![];
        for _ in 0..limit {
            match p.next_part() {
                Ok(b) => {
                    assert!(b.len() <= MAX_PART);
                    parts.push(b);
                }
                Err(_) => return (parts, true),
            }
        }
        (parts, false)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_end_in_parts_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let (_, ended) = drain(bytes);
            prop_assert!(ended);
        }

        #[test]
        fn well_formed_streams_round_trip(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6),
            lengths in proptest::collection::vec(any::<bool>(), 6),
        ) {
            let mut stream = vec![];
            let mut expected = vec![];
            for (body, &with_length) in bodies.iter().zip(&lengths) {
                // Without a length a body must not contain the delimiter line.
                if !with_length && body.windows(5).any(|w| w == b"\r\n--f") {
                    continue;
                }
                stream.extend_from_slice(b"--f\r\nContent-Type: image/jpeg\r\n");
                if with_length {
                    stream.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
                }
                stream.extend_from_slice(b"\r\n");
                stream.extend_from_slice(body);
                stream.extend_from_slice(b"\r\n");
                expected.push(body.clone());
            }
            stream.extend_from_slice(b"--f--\r\n");
            let (parts, ended) = drain(stream);
            prop_assert!(ended);
            prop_assert_eq!(parts, expected);
        }

        #[test]
        fn corrupted_streams_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..2000),
            cut in any::<proptest::sample::Index>(),
            flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 0..8),
        ) {
            let mut stream = b"--f\r\nContent-Length: 12\r\n\r\n0123456789ab\r\n--f\r\n\r\n".to_vec();
            stream.extend_from_slice(&body);
            stream.extend_from_slice(b"\r\n--f\r\nContent-Length: 99999999999\r\n\r\n");
            for (at, b) in flips {
                let i = at.index(stream.len());
                stream[i] = b;
            }
            stream.truncate(cut.index(stream.len() + 1));
            let (_, ended) = drain(stream);
            prop_assert!(ended);
        }
    }
}
