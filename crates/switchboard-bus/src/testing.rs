//! For tests of the fleet (this crate's, the server's, the binary's): a `nats-server` of the
//! test's own on a free loopback port, so stopping or restarting it touches nothing shared.
//! The binary is Debian's package (`/usr/sbin/nats-server`) unless `SWITCHBOARD_NATS_SERVER`
//! names another.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// What a test that needs NATS says when it cannot run.
pub const NEEDS_NATS: &str = "needs nats-server (Debian package nats-server): run with --include-ignored";

/// A NATS server of the test's own; killed when dropped.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    /// The certificate and key files it serves TLS with (clients must use TLS).
    tls: Option<(PathBuf, PathBuf)>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("its address").port()
}

impl NatsServer {
    /// Starts one on a free port; panics (naming what is needed) if it cannot.
    pub fn start() -> NatsServer {
        NatsServer::start_on(free_port())
    }

    /// Starts one on `port` (again, after [`NatsServer::stop`]).
    pub fn start_on(port: u16) -> NatsServer {
        let mut server = NatsServer { child: None, port, tls: None };
        server.restart();
        server
    }

    /// Starts one on a free port that speaks only TLS, with the certificate (chain) and key
    /// in these PEM files; its [`NatsServer::url`] is `tls://…`.
    pub fn start_tls(certificate: PathBuf, key: PathBuf) -> NatsServer {
        let mut server = NatsServer { child: None, port: free_port(), tls: Some((certificate, key)) };
        server.restart();
        server
    }

    /// Starts the stopped server again on its port.
    pub fn restart(&mut self) {
        self.stop();
        let binary = std::env::var("SWITCHBOARD_NATS_SERVER").unwrap_or_else(|_| {
            ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
                .into_iter()
                .find(|path| std::path::Path::new(path).exists())
                .unwrap_or("nats-server")
                .to_owned()
        });
        let port = self.port;
        let mut command = Command::new(&binary);
        command.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
        if let Some((certificate, key)) = &self.tls {
            command.arg("--tls").arg("--tlscert").arg(certificate).arg("--tlskey").arg(key);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {binary} ({error}): {NEEDS_NATS}"));
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                self.child = Some(child);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("{binary} did not listen on port {port} within 5 s");
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address for `join_fleet` / `--nats-url`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "tls" } else { "nats" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Kills it (NATS down until [`NatsServer::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
