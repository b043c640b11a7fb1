//! A front for moto that fails requests on purpose (`aws_fault_front.py`):
//! at random (a 503 before the request reaches moto) or by rule, including
//! answers lost after moto acted on the request. Point the SDK at
//! [`FaultFront::endpoint`] instead of moto's.

use std::process::{Child, Command, Stdio};

use crate::moto::{free_port, http_control, venv_python, wait_listening};

/// A running fault front, stopped on drop.
pub struct FaultFront {
    /// `http://127.0.0.1:PORT`: an AWS endpoint that forwards to moto.
    pub endpoint: String,
    port: u16,
    child: Child,
}

impl FaultFront {
    /// A front for the emulator at `upstream` that fails `rate` of all
    /// requests at random (0 for none), with a fixed seed.
    pub fn start(upstream: &str, rate: f64) -> FaultFront {
        Self::spawn(upstream, rate, false)
    }

    /// A front that also refuses every request whose SigV4 signature
    /// botocore's signer does not reproduce for the test credentials
    /// (`testing`/`testing`), answering 403; see [`FaultFront::refused`].
    pub fn start_verifying_signatures(upstream: &str) -> FaultFront {
        Self::spawn(upstream, 0.0, true)
    }

    fn spawn(upstream: &str, rate: f64, verify: bool) -> FaultFront {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/aws_fault_front.py");
        let port = free_port();
        let child = Command::new(venv_python())
            .arg(script)
            .args(["--port", &port.to_string(), "--upstream", upstream])
            .args(["--rate", &rate.to_string()])
            .args(verify.then_some("--verify-sigv4"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {script}: {e}"));
        let front = FaultFront {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            child,
        };
        wait_listening(port, "aws_fault_front.py");
        front
    }

    /// Replaces the rules (see the script's header): each a JSON object with
    /// `method`, `path` (a substring), `target`, `when` (`before`/`after`),
    /// `status` and `times`.
    pub fn set_rules(&self, rules: serde_json::Value) {
        self.control("POST", &rules.to_string());
    }

    /// How many requests were failed so far.
    pub fn injected(&self) -> u64 {
        let reply: serde_json::Value =
            serde_json::from_str(&self.control("GET", "")).expect("its count");
        reply["injected"].as_u64().expect("a count")
    }

    /// How many requests were refused for a wrong signature so far.
    pub fn refused(&self) -> u64 {
        let reply: serde_json::Value =
            serde_json::from_str(&self.control("GET", "")).expect("its count");
        reply["refused"].as_u64().expect("a count")
    }

    fn control(&self, method: &str, body: &str) -> String {
        http_control(self.port, method, "/_faults", body)
    }
}

impl Drop for FaultFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
