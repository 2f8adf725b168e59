//! A moto server as a child process, bound to 127.0.0.1 on a free port.
//!
//! moto is started through a small `sh` watchdog that holds the read end of a pipe from this
//! process: when the [`MotoServer`] is dropped (also while a panic unwinds) the pipe closes and
//! the watchdog stops moto; the same happens if this process dies without running destructors
//! (a `static` shared by tests, SIGKILL), so no moto outlives its owner.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long moto may take to answer after starting (it usually needs well under a second).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping moto may take before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts with a fresh port if another process took the probed one meanwhile.
const START_ATTEMPTS: u32 = 3;

/// Runs moto on `$2`, prints its pid, and stops it when stdin closes (EOF from `read`) or the
/// shell is signalled.
const WATCHDOG: &str = r#"
"$1" -H 127.0.0.1 -p "$2" >/dev/null 2>&1 &
pid=$!
echo "$pid"
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; exit 0' TERM INT HUP
while read -r _; do :; done
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
exit 0
"#;

#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    #[error("no moto_server found (set MOTO_SERVER, run `make setup`, or put it on PATH)")]
    NotInstalled,
    #[error("cannot start moto")]
    Spawn(#[source] std::io::Error),
    #[error("cannot find a free port")]
    Port(#[source] std::io::Error),
    #[error("moto did not answer on port {port} within {timeout:?}")]
    NotReady { port: u16, timeout: Duration },
    #[error("moto exited while starting ({status})")]
    Exited { status: std::process::ExitStatus },
    #[error("request to moto failed")]
    Http(#[source] reqwest::Error),
}

/// A running moto server; stopped on drop.
#[derive(Debug)]
pub struct MotoServer {
    /// The watchdog shell; its stdin is the pipe whose closing stops moto.
    watchdog: Option<Child>,
    /// moto itself, killed directly if the watchdog does not stop it in time.
    moto_pid: Option<u32>,
    port: u16,
    endpoint: String,
}

impl MotoServer {
    /// Starts moto and waits until it answers.
    pub async fn start() -> Result<Self, MotoError> {
        let binary = moto_binary().ok_or(MotoError::NotInstalled)?;
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            match Self::start_on(&binary, port).await {
                Ok(server) => return Ok(server),
                // A lost port race ends in an early exit; anything else will not improve.
                Err(err @ MotoError::Exited { .. }) => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or(MotoError::NotInstalled))
    }

    async fn start_on(binary: &std::path::Path, port: u16) -> Result<Self, MotoError> {
        use std::os::unix::process::CommandExt as _;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("moto-watchdog")
            .arg(binary)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own process group: a terminal's Ctrl-C reaches only the owner, which then stops
            // moto in order (closing the pipe); the shell never sits in its INT trap meanwhile.
            .process_group(0)
            .spawn()
            .map_err(MotoError::Spawn)?;
        let moto_pid = child.stdout.take().and_then(|out| {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).ok()?;
            line.trim().parse().ok()
        });
        let mut server = Self {
            watchdog: Some(child),
            moto_pid,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        server.wait_until_ready().await?;
        tracing::debug!(port, "moto started");
        Ok(server)
    }

    async fn wait_until_ready(&mut self) -> Result<(), MotoError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let probe = format!("{}/moto-api/data.json", self.endpoint);
        let http = http_client()?;
        loop {
            if let Some(child) = self.watchdog.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(MotoError::Exited { status });
                }
            }
            if let Ok(response) = http.get(&probe).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(MotoError::NotReady {
                    port: self.port,
                    timeout: STARTUP_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The watchdog's process id (moto is its child).
    pub fn pid(&self) -> Option<u32> {
        self.watchdog.as_ref().map(Child::id)
    }

    /// Forgets every resource (tables, queues, messages).
    pub async fn reset(&self) -> Result<(), MotoError> {
        http_client()?
            .post(format!("{}/moto-api/reset", self.endpoint))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(MotoError::Http)?;
        Ok(())
    }

    /// Stops moto and waits for it to exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.watchdog.take() else {
            return;
        };
        // Closing the pipe makes the watchdog stop moto and exit.
        drop(child.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => break,
            }
        }
        tracing::warn!(
            pid = child.id(),
            "moto watchdog did not stop; killing it and moto"
        );
        if let Some(pid) = self.moto_pid {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `MOTO_SERVER`, else `<workspace>/.venv/bin/moto_server`, else `moto_server` on PATH.
pub fn moto_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MOTO_SERVER").map(PathBuf::from) {
        if path.is_file() {
            return Some(path);
        }
    }
    let venv = workspace_root().join(".venv/bin/moto_server");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("moto_server"))
            .find(|candidate| candidate.is_file())
    })
}

/// The workspace root (this crate lives in `<root>/tools/local-stack`).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(std::path::Path::parent)
        .map(PathBuf::from)
        .unwrap_or(manifest)
}

/// A client per call: a `MotoServer` may outlive the async runtime that started it (a shared
/// server in tests), and a client's pooled connections belong to one runtime.
fn http_client() -> Result<reqwest::Client, MotoError> {
    shared::https::reqwest_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(MotoError::Http)
}

fn free_port() -> Result<u16, MotoError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(MotoError::Port)?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(MotoError::Port)
}
