//! Redis servers of the test's own: one it can restart empty or kill, a replica, and
//! Sentinel over them with the primary endpoint that follows it, as ElastiCache's does.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::eventually;

/// A redis-server of the test's own, on a free port, that it can restart empty.
pub struct OwnRedis {
    pub port: u16,
    child: tokio::process::Child,
    password: Option<String>,
    /// Where its self-signed certificate is, when it speaks only TLS.
    tls: Option<std::path::PathBuf>,
    /// Further arguments of its command line.
    extra: Vec<String>,
}

impl OwnRedis {
    pub async fn start() -> Self {
        OwnRedis::start_with(None, false).await
    }

    /// With `password`, the server refuses every command before `AUTH`; with `tls`, it
    /// speaks only TLS, as ElastiCache does.
    pub async fn start_with(password: Option<&str>, tls: bool) -> Self {
        let port = free_port().await;
        let password = password.map(str::to_string);
        let tls = tls.then(|| {
            let dir = std::env::temp_dir().join(format!("flashsale-redis-tls-{port}"));
            std::fs::create_dir_all(&dir).unwrap();
            let made = std::process::Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
                .args(["-keyout", "key.pem", "-out", "cert.pem"])
                .current_dir(&dir)
                .output()
                .expect("openssl is installed");
            assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
            dir
        });
        let child = Self::spawn(port, password.as_deref(), tls.as_deref(), &[]).await;
        OwnRedis { port, child, password, tls, extra: vec![] }
    }

    /// A replica of the server at `primary` (or of a proxy in front of it).
    pub async fn replica_of(primary: std::net::SocketAddr) -> Self {
        let port = free_port().await;
        let extra = vec!["--replicaof".to_string(), primary.ip().to_string(), primary.port().to_string()];
        let child = Self::spawn(port, None, None, &extra).await;
        let replica = OwnRedis { port, child, password: None, tls: None, extra };
        eventually("the replica in sync with its primary", Duration::from_secs(20), || async {
            let client = redis::Client::open(replica.url()).ok()?;
            let mut conn = client.get_multiplexed_async_connection().await.ok()?;
            let info: String = redis::cmd("INFO").arg("replication").query_async(&mut conn).await.ok()?;
            info.contains("master_link_status:up").then_some(())
        })
        .await;
        replica
    }

    /// SIGKILL: the server is gone at once, with whatever it had not replicated.
    pub fn kill(&mut self) {
        self.child.start_kill().unwrap();
    }

    async fn spawn(
        port: u16,
        password: Option<&str>,
        tls: Option<&std::path::Path>,
        extra: &[String],
    ) -> tokio::process::Child {
        let mut args = match tls {
            None => vec!["--port".to_string(), port.to_string()],
            Some(dir) => {
                let file = |name: &str| dir.join(name).display().to_string();
                let mut args = vec!["--port".to_string(), "0".to_string(), "--tls-port".to_string(), port.to_string()];
                args.extend([
                    "--tls-cert-file".to_string(),
                    file("cert.pem"),
                    "--tls-key-file".to_string(),
                    file("key.pem"),
                ]);
                args.extend([
                    "--tls-ca-cert-file".to_string(),
                    file("cert.pem"),
                    "--tls-auth-clients".to_string(),
                    "no".to_string(),
                ]);
                args
            }
        };
        // A replica's first sync starts at once (Redis waits 5 s by default for others).
        args.extend(
            ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"]
                .map(String::from),
        );
        args.extend(extra.iter().cloned());
        // A replica writes the primary's snapshot to its directory while it syncs.
        let dir = std::env::temp_dir().join(format!("flashsale-redis-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        args.extend(["--dir".to_string(), dir.display().to_string()]);
        if let Some(password) = password {
            args.extend(["--requirepass".to_string(), password.to_string()]);
        }
        let child = tokio::process::Command::new("redis-server")
            .args(args)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (scripts/services.sh installs it)");
        eventually("own redis-server up", Duration::from_secs(10), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
        })
        .await;
        child
    }

    /// Over TLS the certificate is self-signed: the client checks nothing of it
    /// (`#insecure`), but the connection is TLS all the same.
    pub fn url(&self) -> String {
        match self.tls {
            None => format!("redis://127.0.0.1:{}", self.port),
            Some(_) => format!("rediss://127.0.0.1:{}/#insecure", self.port),
        }
    }

    /// A restart that loses everything, as a failover to an empty replica does.
    pub async fn restart_empty(&mut self) {
        self.child.kill().await.unwrap();
        self.child = Self::spawn(self.port, self.password.as_deref(), self.tls.as_deref(), &self.extra).await;
    }
}

/// A port nobody listens on now, for a server the test starts.
pub async fn free_port() -> u16 {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port()
}

/// Redis Sentinel over one primary, quorum 1, quick to act.
pub struct Sentinel {
    port: u16,
    _child: tokio::process::Child,
}

const GROUP: &str = "flashsale";

impl Sentinel {
    pub async fn start(primary: u16) -> Self {
        let port = free_port().await;
        // Sentinel rewrites its configuration file as it learns the group.
        let dir = std::env::temp_dir().join(format!("flashsale-sentinel-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {GROUP} 127.0.0.1 {primary} 1\n\
                 sentinel down-after-milliseconds {GROUP} 1000\n\
                 sentinel failover-timeout {GROUP} 5000\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        let child = tokio::process::Command::new("redis-sentinel")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-sentinel is installed (scripts/services.sh installs it)");
        let sentinel = Sentinel { port, _child: child };
        eventually("sentinel sees the primary and its replica", Duration::from_secs(20), || async {
            let replicas: Vec<redis::Value> =
                sentinel.ask(redis::cmd("SENTINEL").arg("REPLICAS").arg(GROUP)).await.ok()?;
            (!replicas.is_empty()).then_some(())
        })
        .await;
        sentinel
    }

    async fn ask<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> redis::RedisResult<T> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", self.port))?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        cmd.query_async(&mut conn).await
    }

    async fn primary(&self) -> Option<SocketAddr> {
        let (host, port): (String, u16) =
            self.ask(redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(GROUP)).await.ok()?;
        format!("{host}:{port}").parse().ok()
    }
}

/// The stack's Redis address: connections go to Sentinel's current primary, and when
/// it changes every open connection is dropped, as a DNS-following client sees it.
pub struct PrimaryEndpoint {
    addr: SocketAddr,
    pub primary: watch::Receiver<SocketAddr>,
}

impl PrimaryEndpoint {
    pub async fn start(sentinel: &Sentinel) -> Self {
        let (tell, primary) = watch::channel(sentinel.primary().await.expect("sentinel knows the primary"));
        let sentinel_port = sentinel.port;
        tokio::spawn(async move {
            let client = redis::Client::open(format!("redis://127.0.0.1:{sentinel_port}")).unwrap();
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Ok(mut conn) = client.get_multiplexed_async_connection().await else { continue };
                let asked: redis::RedisResult<(String, u16)> =
                    redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(GROUP).query_async(&mut conn).await;
                if let Some(now) = asked.ok().and_then(|(h, p)| format!("{h}:{p}").parse().ok()) {
                    tell.send_if_modified(|was| std::mem::replace(was, now) != now);
                }
                if tell.is_closed() {
                    return;
                }
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let follow = primary.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                let mut changed = follow.clone();
                let upstream = *changed.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = changed.changed() => {}
                    }
                });
            }
        });
        PrimaryEndpoint { addr, primary }
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }
}
