//! Where etcd is and how to reach it: [`EtcdConfig`], its validation, and the connection.
//!
//! The options mirror Calico's `etcdEndpoints`, `etcdCACertFile`, `etcdCertFile` and
//! `etcdKeyFile`. Every network call made through [`Connection`] has a timeout: a dead or
//! frozen etcd is an error within `request_timeout`, never a hang.

use std::path::PathBuf;
use std::time::Duration;

use calico_core::datastore::DatastoreError;
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

/// How to reach etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Client URLs, `http://host:2379` or `https://host:2379` (Calico's `etcdEndpoints`).
    pub endpoints: Vec<String>,
    /// CA certificate file to verify etcd with (Calico's `etcdCACertFile`).
    pub ca: Option<PathBuf>,
    /// Client certificate file (Calico's `etcdCertFile`); needs `key`.
    pub cert: Option<PathBuf>,
    /// Client private key file (Calico's `etcdKeyFile`); needs `cert`.
    pub key: Option<PathBuf>,
    /// How long establishing a connection may take.
    pub dial_timeout: Duration,
    /// How long one request (a read, a write, a liveness probe) may take.
    pub request_timeout: Duration,
    /// The key prefix Calico's data lives under (`/calico`).
    pub prefix: String,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            ca: None,
            cert: None,
            key: None,
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(2),
            prefix: "/calico".into(),
        }
    }
}

/// A configuration that cannot be used; names the option.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("etcd option {option}: {reason}")]
pub struct ConfigError {
    /// The option (`endpoints`, `etcdCACertFile`, ...).
    pub option: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn bad(option: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        option,
        reason: reason.into(),
    }
}

impl EtcdConfig {
    /// A configuration for `endpoints` with the defaults otherwise.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> EtcdConfig {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            ..EtcdConfig::default()
        }
    }

    /// Checks every option; the first problem found names its option.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.endpoints.is_empty() {
            return Err(bad("etcdEndpoints", "no endpoint given"));
        }
        let tls = self.ca.is_some() || self.cert.is_some();
        for e in &self.endpoints {
            let scheme_ok = e.starts_with("http://") || e.starts_with("https://");
            if !scheme_ok || e.split("://").nth(1).is_none_or(str::is_empty) {
                return Err(bad(
                    "etcdEndpoints",
                    format!("{e:?} is not an http:// or https:// URL"),
                ));
            }
            if tls && e.starts_with("http://") {
                return Err(bad(
                    "etcdEndpoints",
                    format!("{e:?} is plain http but TLS files are configured: use https://"),
                ));
            }
        }
        for (option, path) in [
            ("etcdCACertFile", &self.ca),
            ("etcdCertFile", &self.cert),
            ("etcdKeyFile", &self.key),
        ] {
            if let Some(p) = path {
                if !p.is_file() {
                    return Err(bad(
                        option,
                        format!("{} is not a readable file", p.display()),
                    ));
                }
            }
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => return Err(bad("etcdKeyFile", "etcdCertFile is set without it")),
            (None, Some(_)) => return Err(bad("etcdCertFile", "etcdKeyFile is set without it")),
            _ => {}
        }
        if self.dial_timeout.is_zero() {
            return Err(bad("dial_timeout", "must be above zero"));
        }
        if self.request_timeout.is_zero() {
            return Err(bad("request_timeout", "must be above zero"));
        }
        if !self.prefix.starts_with('/') || self.prefix.len() < 2 {
            return Err(bad(
                "prefix",
                format!(
                    "{:?} must be an absolute key prefix like /calico",
                    self.prefix
                ),
            ));
        }
        Ok(())
    }

    /// The endpoints, for messages.
    pub fn describe(&self) -> String {
        self.endpoints.join(",")
    }

    fn tls(&self) -> Result<Option<TlsOptions>, ConfigError> {
        if self.ca.is_none() && self.cert.is_none() {
            return Ok(None);
        }
        let read = |option, p: &PathBuf| {
            std::fs::read(p).map_err(|e| bad(option, format!("{}: {e}", p.display())))
        };
        let mut tls = TlsOptions::new();
        if let Some(ca) = &self.ca {
            tls = tls.ca_certificate(Certificate::from_pem(read("etcdCACertFile", ca)?));
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            tls = tls.identity(Identity::from_pem(
                read("etcdCertFile", cert)?,
                read("etcdKeyFile", key)?,
            ));
        }
        Ok(Some(tls))
    }

    fn options(&self) -> Result<ConnectOptions, ConfigError> {
        // gRPC keep-alive as a second line of defence; etcd refuses pings more often than
        // every 5 s (its grpc-keepalive-min-time), so the prompt detection of a frozen
        // member is the source's liveness probe, not this.
        let mut options = ConnectOptions::new()
            .with_connect_timeout(self.dial_timeout)
            .with_keep_alive(
                Duration::from_secs(10),
                self.request_timeout.max(Duration::from_secs(1)),
            )
            .with_keep_alive_while_idle(true);
        if let Some(tls) = self.tls()? {
            options = options.with_tls(tls);
        }
        Ok(options)
    }
}

/// A connected client with the configuration's timeouts.
#[derive(Clone)]
pub struct Connection {
    client: Client,
    config: EtcdConfig,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connection({})", self.config.describe())
    }
}

impl Connection {
    /// Validates `config` and connects (within `dial_timeout`). A configuration error is
    /// [`DatastoreError::Invalid`] naming the option; an unreachable etcd is
    /// [`DatastoreError::Unavailable`].
    pub async fn connect(config: &EtcdConfig) -> Result<Connection, DatastoreError> {
        config.validate().map_err(config_error)?;
        let options = config.options().map_err(config_error)?;
        let connect = Client::connect(config.endpoints.clone(), Some(options));
        let client = match tokio::time::timeout(config.dial_timeout, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(unavailable(config, &e.to_string())),
            Err(_) => return Err(unavailable(config, "connection timed out")),
        };
        Ok(Connection {
            client,
            config: config.clone(),
        })
    }

    /// The configuration connected with.
    pub fn config(&self) -> &EtcdConfig {
        &self.config
    }

    /// A handle on the client for one call (clones share the connection).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Runs one request with the request timeout; errors become
    /// [`DatastoreError::Unavailable`] naming the endpoints.
    pub async fn call<T, F>(&self, what: &str, f: F) -> Result<T, DatastoreError>
    where
        F: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        match tokio::time::timeout(self.config.request_timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(unavailable(
                &self.config,
                &format!("{what}: {}", describe_error(&e)),
            )),
            Err(_) => Err(unavailable(
                &self.config,
                &format!("{what}: no answer within {:?}", self.config.request_timeout),
            )),
        }
    }
}

/// An etcd-client error in one line (gRPC status code and message where there is one).
pub fn describe_error(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => format!("{:?}: {}", s.code(), s.message()),
        other => other.to_string(),
    }
}

/// Whether an error says the revision asked for was compacted.
pub fn is_compacted(e: &DatastoreError) -> bool {
    matches!(e, DatastoreError::Unavailable { reason, .. } if reason.contains("required revision has been compacted"))
}

fn config_error(e: ConfigError) -> DatastoreError {
    DatastoreError::Invalid {
        key: format!("etcd option {}", e.option),
        reason: e.reason,
    }
}

fn unavailable(config: &EtcdConfig, reason: &str) -> DatastoreError {
    DatastoreError::Unavailable {
        endpoint: config.describe(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_and_bad_endpoints_name_their_option() {
        let mut c = EtcdConfig::new(["https://127.0.0.1:2379"]);
        c.ca = Some("/nonexistent/ca.pem".into());
        assert_eq!(c.validate().unwrap_err().option, "etcdCACertFile");
        c.ca = None;
        c.cert = Some("/nonexistent/cert.pem".into());
        assert_eq!(c.validate().unwrap_err().option, "etcdCertFile");
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "x").unwrap();
        c.cert = Some(cert);
        assert_eq!(c.validate().unwrap_err().option, "etcdKeyFile");
        c.key = Some("/nonexistent/key.pem".into());
        let e = c.validate().unwrap_err();
        assert_eq!(e.option, "etcdKeyFile");
        assert!(e.to_string().contains("/nonexistent/key.pem"), "{e}");
        assert_eq!(
            EtcdConfig::new(Vec::<String>::new())
                .validate()
                .unwrap_err()
                .option,
            "etcdEndpoints"
        );
        assert_eq!(
            EtcdConfig::new(["127.0.0.1:2379"])
                .validate()
                .unwrap_err()
                .option,
            "etcdEndpoints"
        );
        let mut plain = EtcdConfig::new(["http://127.0.0.1:2379"]);
        assert_eq!(plain.validate(), Ok(()));
        plain.prefix = "calico".into();
        assert_eq!(plain.validate().unwrap_err().option, "prefix");
    }

    #[tokio::test]
    async fn connect_refuses_an_invalid_configuration_without_dialing() {
        let mut c = EtcdConfig::new(["https://127.0.0.1:1"]);
        c.ca = Some("/nonexistent/ca.pem".into());
        let e = Connection::connect(&c).await.unwrap_err();
        assert!(
            matches!(&e, DatastoreError::Invalid { key, .. } if key.contains("etcdCACertFile")),
            "{e}"
        );
    }
}
