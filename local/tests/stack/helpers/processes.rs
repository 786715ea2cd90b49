//! The stack as real processes (`flashsale-local serve`) a test can kill, restart and
//! stop, and the wall clock of one, stepped through libfaketime.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::free_port;

/// One `flashsale-local serve` process the nemesis can kill, restart and stop.
pub struct Process {
    /// Its log's name under `FLASHSALE_NEMESIS_LOGS`.
    name: &'static str,
    pub addr: SocketAddr,
    env: Vec<(String, String)>,
    child: Option<tokio::process::Child>,
}

impl Process {
    pub async fn new(name: &'static str, env: Vec<(String, String)>) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port().await).parse().unwrap();
        Process { name, addr, env, child: None }
    }

    /// Where its log (stdout, as on Lambda) goes: a file that outlives restarts, or nowhere.
    fn log(&self) -> (std::process::Stdio, String) {
        let Ok(dir) = std::env::var("FLASHSALE_NEMESIS_LOGS") else {
            return (std::process::Stdio::null(), "off".into());
        };
        std::fs::create_dir_all(&dir).unwrap();
        let file =
            std::fs::OpenOptions::new().create(true).append(true).open(format!("{dir}/{}.log", self.name)).unwrap();
        (file.into(), std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
    }

    /// Starts it and waits until it serves; a start that fails (a dependency cut at that
    /// moment) is tried again, as Lambda would start another container.
    pub async fn start(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "the stack process came up within 60 s");
            let (log, filter) = self.log();
            let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_flashsale-local"))
                .arg("serve")
                .envs(self.env.iter().cloned())
                .env("FLASHSALE_LOCAL_ADDR", self.addr.to_string())
                .env("RUST_LOG", filter)
                .stdout(log)
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            for _ in 0..100 {
                if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                    self.child = Some(child);
                    return;
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = child.kill().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
        }
    }

    pub fn signal(&self, signal: &str) {
        if let Some(pid) = self.child.as_ref().and_then(|c| c.id()) {
            std::process::Command::new("kill").args([signal, &pid.to_string()]).status().unwrap();
        }
    }
}

/// The edge's wall clock, stepped through libfaketime (Debian's `libfaketime`, which
/// scripts/services.sh installs): the offset is read from a file the nemesis rewrites.
/// The monotonic clock (timers, time-outs) runs on, as under an NTP step.
pub struct EdgeClock {
    offset: std::path::PathBuf,
}

impl EdgeClock {
    pub fn new() -> Self {
        let offset = std::env::temp_dir().join(format!("nemesis-clock-{:08x}", rand::random::<u32>()));
        let clock = EdgeClock { offset };
        clock.step(0);
        clock
    }

    /// What the edge's process needs to run on this clock.
    pub fn env(&self) -> Vec<(String, String)> {
        let library = glob_one("/usr/lib/*/faketime/libfaketime.so.1")
            .expect("libfaketime (Debian's libfaketime; scripts/services.sh up installs it)");
        [
            ("LD_PRELOAD", library),
            ("FAKETIME_TIMESTAMP_FILE", self.offset.display().to_string()),
            ("FAKETIME_CACHE_DURATION", "1".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// From within a second on, the edge's clock reads `secs` off the true time.
    pub fn step(&self, secs: i64) {
        std::fs::write(&self.offset, format!("{secs:+}\n")).unwrap();
    }
}

impl Drop for EdgeClock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.offset);
    }
}

/// The one path matching `pattern` (`*` in one component), if any.
fn glob_one(pattern: &str) -> Option<String> {
    let (head, tail) = pattern.split_once("/*/")?;
    std::fs::read_dir(head)
        .ok()?
        .flatten()
        .map(|e| e.path().join(tail))
        .find(|p| p.exists())
        .map(|p| p.display().to_string())
}
