//! Stopping an instance: on SIGTERM it drains (goes on answering, each answer closing its
//! connection), then stops accepting and exits once what it holds is answered; with
//! `server.reuse_port` a new process listens on the same port before the old one stops, so a
//! restart never refuses a connection. The real binary, as a process of its own.

use crate::helpers::app::TestDb;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process, killed if the test ends (or fails) before it stopped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `reviews-api serve` on `port`, with SO_REUSEPORT.
fn serve(db: &TestDb, port: u16) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_reviews-api"))
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("PORT", port.to_string())
        .env("REVIEWS__SERVER__REUSE_PORT", "true")
        .env("REVIEWS__SERVER__DRAIN_SECS", "2")
        .env("REVIEWS__SERVER__WORKERS", "1")
        .env("REVIEWS__CACHE__ENABLED", "false")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start reviews-api serve");
    Server(child)
}

/// One GET /health on `stream` (kept alive); the whole answer, headers lower-cased.
fn health(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    // "OK" is the whole body: read until it has arrived after the headers.
    while !answer.ends_with(b"\r\n\r\nOK") {
        let n = stream.read(&mut buf).expect("read the answer");
        assert!(
            n > 0,
            "closed before answering: {:?}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).to_lowercase()
}

fn connect_until_up(port: u16, server: &mut Server) -> TcpStream {
    let child = &mut server.0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            if health(&mut stream).starts_with("http/1.1 200") {
                return stream;
            }
        }
        assert!(Instant::now() < deadline, "no answer on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sigterm(server: &Server) {
    let pid = i32::try_from(server.0.id()).unwrap();
    // SAFETY: kill(2) on a child we started and have not reaped; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}

#[tokio::test]
async fn sigterm_drains_open_connections_and_a_second_process_takes_the_port() {
    let db = TestDb::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut old = serve(&db, port);
    let mut kept = connect_until_up(port, &mut old);
    // The replacement listens on the same port while the old one still runs.
    let mut new = serve(&db, port);
    // Either process may take this connection: it only waits for the new one to be up.
    connect_until_up(port, &mut new);

    sigterm(&old);
    // A request on a connection the old process holds is still answered, and closes it.
    std::thread::sleep(Duration::from_millis(300));
    let answer = health(&mut kept);
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    let mut rest = [0u8; 16];
    assert_eq!(
        kept.read(&mut rest).unwrap_or(0),
        0,
        "closed after the answer"
    );
    // Its connections closed, the old process exits by itself, cleanly.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = old.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    // Every new connection is served, by the new process.
    for _ in 0..20 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the port still accepts");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert!(health(&mut stream).starts_with("http/1.1 200"));
    }
    // The new process keeps its connections alive: it is not draining.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for _ in 0..2 {
        assert!(!health(&mut stream).contains("connection: close"));
    }
    sigterm(&new);
    assert!(new.0.wait().unwrap().success());
}
