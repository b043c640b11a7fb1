//! A real Iceberg REST catalog for tests, and a front door that checks how
//! requests to it are authenticated.
//!
//! [`Rustberg`] runs the `rustberg` server (crates.io; `scripts/test.sh`
//! builds it once into `~/.cache/otlp2parquet/rustberg`) over a warehouse
//! directory of its own. [`FrontDoor`] runs `catalog_front_door.py` in front
//! of it: SigV4 verified by botocore's signer, or an OAuth2 token endpoint
//! (see the script).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::moto::{free_port, http_control, venv_python, wait_listening};

/// A running rustberg, stopped on drop.
pub struct Rustberg {
    /// `http://127.0.0.1:PORT`.
    pub uri: String,
    /// The bearer token it wants, if any.
    pub token: Option<String>,
    /// Its warehouse, `file://` + this directory.
    pub warehouse: tempfile::TempDir,
    child: Child,
}

impl Rustberg {
    /// A catalog that admits anyone.
    pub fn open() -> Rustberg {
        Self::start(None, None)
    }

    /// A catalog that admits only `Authorization: Bearer <token>`.
    pub fn with_token(token: &str) -> Rustberg {
        Self::start(Some(token), None)
    }

    /// A catalog whose tables live in `s3://bucket/warehouse` on the S3 at
    /// `endpoint` (moto, path style, its test credentials); it admits only
    /// its own random bearer token ([`Rustberg::token`]).
    pub fn on_s3(endpoint: &str, bucket: &str) -> Rustberg {
        let token = format!("rb_test_{}", uuid::Uuid::new_v4().simple());
        Self::start(Some(&token), Some((endpoint, bucket)))
    }

    fn start(token: Option<&str>, s3: Option<(&str, &str)>) -> Rustberg {
        let binary = std::env::var("RUSTBERG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default())
                    .join(".cache/otlp2parquet/rustberg/bin/rustberg")
            });
        assert!(
            binary.exists(),
            "no rustberg at {}: run scripts/test.sh once (it builds it), or set RUSTBERG_BIN",
            binary.display()
        );
        let warehouse = tempfile::tempdir().expect("a warehouse directory");
        let port = free_port();
        let location = match s3 {
            Some((_, bucket)) => format!("s3://{bucket}/warehouse"),
            None => format!("file://{}", warehouse.path().display()),
        };
        // Its S3 settings come only from the configuration file.
        let s3_properties = s3.map_or(String::new(), |(endpoint, _)| {
            format!(
                "\n[storage.properties]\n\"s3.endpoint\" = \"{endpoint}\"\n\
                 \"s3.path-style-access\" = \"true\"\n\"s3.region\" = \"us-east-1\"\n\
                 \"s3.access-key-id\" = \"testing\"\n\"s3.secret-access-key\" = \"testing\"\n"
            )
        });
        let mut command = Command::new(&binary);
        command
            .arg("--insecure-http")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match token {
            None => {
                command.args(["--dev", "--no-auth", "--host", "127.0.0.1", "--port"]);
                command.arg(port.to_string());
                command.args(["--catalog-url", "memory://", "--warehouse", &location]);
            }
            Some(token) => {
                // Keys come only from a configuration file, which names the
                // variable holding the key.
                let config = warehouse.path().join("rustberg.toml");
                std::fs::write(
                    &config,
                    format!(
                        "[server]\nhost = \"127.0.0.1\"\nport = {port}\n\n\
                         [[server.auth.api_keys]]\nname = \"tests\"\ntenant = \"default\"\n\
                         roles = [\"admin\"]\nkey_env = \"RUSTBERG_TEST_KEY\"\n\n\
                         [storage]\ncatalog_url = \"memory://\"\nwarehouse_location = \"{location}\"\n\n\
                         [audit]\nsink = \"none\"\n{s3_properties}"
                    ),
                )
                .expect("writing rustberg's configuration");
                command.arg("--config").arg(&config);
                command.env("RUSTBERG_TEST_KEY", token);
            }
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let rustberg = Rustberg {
            uri: format!("http://127.0.0.1:{port}"),
            token: token.map(str::to_string),
            warehouse,
            child,
        };
        wait_listening(port, "rustberg");
        rustberg
    }
}

impl Drop for Rustberg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `catalog_front_door.py` in front of a catalog, stopped on drop.
pub struct FrontDoor {
    /// Where clients connect: `http://127.0.0.1:PORT` plus the base path.
    pub uri: String,
    port: u16,
    child: Child,
}

/// The test credentials the SigV4 front door expects (moto's).
pub const ACCESS_KEY: &str = "testing";
/// See [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "testing";
/// The OAuth2 client the OAuth2 front door knows.
pub const CLIENT_ID: &str = "otlp2parquet";
/// See [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "front-door-secret";

impl FrontDoor {
    /// S3 Tables' Iceberg endpoint as it looks to a client: under `/iceberg`,
    /// requests signed for `service` in `us-east-1` with [`ACCESS_KEY`],
    /// warehouse `warehouse` answered as the URL-encoded path prefix.
    pub fn sigv4(catalog: &Rustberg, service: &str, warehouse: &str) -> FrontDoor {
        let mut args = vec![
            "--auth",
            "sigv4",
            "--base",
            "/iceberg",
            "--service",
            service,
        ];
        args.extend(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY]);
        args.extend(["--warehouse", warehouse]);
        Self::start(catalog, &args, "/iceberg")
    }

    /// A catalog behind OAuth2 client credentials ([`CLIENT_ID`],
    /// [`CLIENT_SECRET`]); the token endpoint is the spec's default,
    /// `<uri>/v1/oauth/tokens`.
    pub fn oauth2(catalog: &Rustberg) -> FrontDoor {
        let args = ["--auth", "oauth2", "--client-id", CLIENT_ID];
        let mut args = args.to_vec();
        args.extend(["--client-secret", CLIENT_SECRET]);
        Self::start(catalog, &args, "")
    }

    fn start(catalog: &Rustberg, args: &[&str], base: &str) -> FrontDoor {
        let python = venv_python();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/catalog_front_door.py");
        let port = free_port();
        let mut command = Command::new(&python);
        command
            .arg(script)
            .args(["--port", &port.to_string(), "--upstream", &catalog.uri])
            .args(args)
            .stdout(Stdio::null());
        if let Some(token) = &catalog.token {
            command.args(["--upstream-token", token]);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {script} with {python}: {e}"));
        let door = FrontDoor {
            uri: format!("http://127.0.0.1:{port}{base}"),
            port,
            child,
        };
        wait_listening(port, "catalog_front_door.py");
        door
    }

    /// How many requests it refused so far.
    pub fn refused(&self) -> u64 {
        let reply: serde_json::Value =
            serde_json::from_str(&self.control("GET", "/_refused")).expect("its count");
        reply["refused"].as_u64().expect("a count")
    }

    /// Forgets every OAuth2 token it issued, as if they had expired.
    pub fn revoke_tokens(&self) {
        self.control("POST", "/_revoke");
    }

    /// One request to the door's own control paths; the body.
    fn control(&self, method: &str, path: &str) -> String {
        http_control(self.port, method, path, "")
    }
}

impl Drop for FrontDoor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
