//! A TCP proxy in front of the test server that can cut or black-hole the database.

use super::app::admin_url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What a TCP proxy in front of the database does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Bytes flow both ways.
    Forward,
    /// Every live connection is dropped; new ones are accepted and closed at once.
    Cut,
    /// A black hole: live connections stall (bytes are held, not lost) and new ones are
    /// accepted and never answered, until the mode changes.
    Hang,
    /// Live connections keep working; new ones are accepted and closed at once.
    RefuseNew,
}

/// A TCP proxy on 127.0.0.1 in front of the test server, with a switch.
///
/// The pumps are hand-written rather than `copy_bidirectional`: in `Hang` they must hold bytes
/// already read and deliver them when forwarding resumes, which a dropped copy future would lose.
pub struct Proxy {
    pub port: u16,
    mode: watch::Sender<ProxyMode>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding to the server of [`admin_url`].
    pub async fn start() -> Proxy {
        Proxy::start_to(&admin_url()).await
    }

    /// Starts forwarding to the server of database URL `url`.
    pub async fn start_to(url: &str) -> Proxy {
        let config: tokio_postgres::Config = url.parse().expect("a database url");
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            other => panic!("the proxy needs a TCP database host, not {other:?}"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let upstream = format!("{host}:{port}");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let local = listener.local_addr().unwrap().port();
        let (mode, _) = watch::channel(ProxyMode::Forward);
        let modes = mode.clone();
        let accept = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let current = *modes.borrow();
                match current {
                    ProxyMode::Cut | ProxyMode::RefuseNew => drop(socket),
                    ProxyMode::Forward | ProxyMode::Hang => {
                        tokio::spawn(serve(socket, upstream.clone(), modes.subscribe()));
                    }
                }
            }
        });
        Proxy {
            port: local,
            mode,
            accept,
        }
    }

    pub fn set(&self, mode: ProxyMode) {
        self.mode.send_replace(mode);
    }

    /// `url` (a database URL of the test server) pointing at this proxy instead.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("scheme://");
        let end = rest.find('/').unwrap_or(rest.len());
        let authority = &rest[..end];
        let userinfo = authority.rfind('@').map_or("", |i| &authority[..=i]);
        format!(
            "{scheme}://{userinfo}127.0.0.1:{}{}",
            self.port,
            &rest[end..]
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.mode.send_replace(ProxyMode::Cut);
    }
}

async fn serve(client: TcpStream, upstream: String, mut mode: watch::Receiver<ProxyMode>) {
    // A connection accepted while hanging waits, unanswered, for the switch.
    loop {
        match *mode.borrow_and_update() {
            ProxyMode::Forward => break,
            ProxyMode::Hang => {}
            ProxyMode::Cut | ProxyMode::RefuseNew => return,
        }
        if mode.changed().await.is_err() {
            return;
        }
    }
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        _ = pump(client_read, server_write, mode.clone()) => {}
        _ = pump(server_read, client_write, mode.clone()) => {}
        _ = until_cut(mode) => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<ProxyMode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        loop {
            match *mode.borrow_and_update() {
                ProxyMode::Hang => {}
                ProxyMode::Cut => return,
                ProxyMode::Forward | ProxyMode::RefuseNew => break,
            }
            if mode.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn until_cut(mut mode: watch::Receiver<ProxyMode>) {
    loop {
        if *mode.borrow_and_update() == ProxyMode::Cut {
            return;
        }
        if mode.changed().await.is_err() {
            return;
        }
    }
}
