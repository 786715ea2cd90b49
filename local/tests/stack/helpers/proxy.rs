//! The fault proxy: a TCP proxy the test owns between a client (the stack, a replica) and
//! a server, that puts the network's faults on the wire.
//!
//! - cut ([`FaultProxy::cut`]): every open connection dropped, new ones closed at once;
//! - black hole ([`FaultProxy::black_hole`]): every open connection dropped, new ones
//!   taken and never answered (a partition: no answer, no reset);
//! - lag ([`FaultProxy::lagging`], [`FaultProxy::lag_next_answers`]): the server's next
//!   answers held back, each by the proxy's lag (the work is done, the answer is late);
//! - silence ([`FaultProxy::silenced_by`]): a connection whose client sends a pattern goes
//!   silent both ways, for good, its sockets left open (to the server, a client cut off
//!   without FIN or RST).
//!
//! [`FaultProxy::restore`] forwards again, dropping what the black hole held.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with a new connection.
const FORWARD: u8 = 0;
const CUT: u8 = 1;
const BLACK_HOLE: u8 = 2;

pub struct FaultProxy {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    /// Bumped to drop every open connection.
    drop_all: Arc<watch::Sender<u64>>,
    /// Answers still to hold back.
    to_lag: Arc<AtomicU64>,
}

impl FaultProxy {
    /// A proxy that forwards until told otherwise.
    pub async fn start(upstream: SocketAddr) -> Self {
        Self::with(upstream, Duration::ZERO, None).await
    }

    /// A proxy that can hold back the server's next answers for `lag` each: a call that
    /// times out although the server did the work, or a dependency slow for a while.
    pub async fn lagging(upstream: SocketAddr, lag: Duration) -> Self {
        Self::with(upstream, lag, None).await
    }

    /// A proxy on which a connection goes silent both ways, for good, once its client
    /// sends `pattern`: the server's side stays open, it never hears the client left.
    pub async fn silenced_by(upstream: SocketAddr, pattern: &'static [u8]) -> Self {
        Self::with(upstream, Duration::ZERO, Some(pattern)).await
    }

    async fn with(upstream: SocketAddr, lag: Duration, silence_on: Option<&'static [u8]>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = FaultProxy {
            addr: listener.local_addr().unwrap(),
            mode: Arc::new(AtomicU8::new(FORWARD)),
            drop_all: Arc::new(watch::channel(0u64).0),
            to_lag: Arc::new(AtomicU64::new(0)),
        };
        let (mode, drop_all, to_lag) = (proxy.mode.clone(), proxy.drop_all.clone(), proxy.to_lag.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                let mut dropped = drop_all.subscribe();
                match mode.load(Ordering::SeqCst) {
                    CUT => continue, // closed at once
                    BLACK_HOLE => {
                        // Hold the socket and say nothing, until the proxy changes.
                        tokio::spawn(async move {
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                                _ = dropped.changed() => {}
                            }
                            drop(client);
                        });
                    }
                    _ => {
                        let to_lag = to_lag.clone();
                        tokio::spawn(async move {
                            let Ok(server) = TcpStream::connect(upstream).await else { return };
                            tokio::select! {
                                () = forward(client, server, lag, &to_lag, silence_on) => {}
                                _ = dropped.changed() => {}
                            }
                        });
                    }
                }
            }
        });
        proxy
    }

    /// Drops every connection and closes new ones at once, until [`FaultProxy::restore`].
    pub fn cut(&self) {
        self.mode.store(CUT, Ordering::SeqCst);
        self.drop_all.send_modify(|g| *g += 1);
    }

    /// Drops every connection and takes new ones without a word, until
    /// [`FaultProxy::restore`].
    pub fn black_hole(&self) {
        self.mode.store(BLACK_HOLE, Ordering::SeqCst);
        self.drop_all.send_modify(|g| *g += 1);
    }

    /// Forwards again; the connections a black hole held are dropped.
    pub fn restore(&self) {
        if self.mode.swap(FORWARD, Ordering::SeqCst) == BLACK_HOLE {
            self.drop_all.send_modify(|g| *g += 1);
        }
    }

    /// Holds back the next `answers` answers (`u64::MAX`: from now on; 0: none).
    pub fn lag_next_answers(&self, answers: u64) {
        self.to_lag.store(answers, Ordering::SeqCst);
    }
}

/// Copies both ways until both ends are done, the server's answers late while `to_lag`
/// counts them, and nothing more once the client sent `silence_on`.
async fn forward(
    client: TcpStream,
    server: TcpStream,
    lag: Duration,
    to_lag: &AtomicU64,
    silence_on: Option<&'static [u8]>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let silent = AtomicBool::new(false);
    let up = async {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(n) = client_read.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            if silence_on.is_some_and(|pattern| buffer[..n].windows(pattern.len()).any(|w| w == pattern)) {
                silent.store(true, Ordering::SeqCst);
            }
            if !silent.load(Ordering::SeqCst) && server_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        if silent.load(Ordering::SeqCst) {
            // The server's side stays open: it never hears that the client left.
            std::future::pending::<()>().await;
        }
        drop(server_write);
    };
    let down = async {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(n) = server_read.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            if to_lag.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                tokio::time::sleep(lag).await;
            }
            if !silent.load(Ordering::SeqCst) && client_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        drop(client_write);
    };
    tokio::join!(up, down);
}
