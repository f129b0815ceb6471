//! The CNI commands. [`run`] is the whole plugin: environment and stdin in, stdout and
//! exit status out.

mod add;
mod check;
mod context;
mod del;

use std::fs::File;

use crate::spec::{
    version_json, version_of, CniError, Code, Command, NetConf, RuntimeEnv, NEWEST_VERSION,
};

pub use context::{node_name, Context};

/// What the plugin prints and how it exits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Stdout: the result, VERSION's answer, the error object, or nothing (DEL, CHECK).
    pub stdout: String,
    /// The exit status: 0 on success, 1 on an error (the object says which).
    pub status: i32,
}

/// Runs one CNI invocation: the variables from `get` (e.g. `|k| std::env::var(k).ok()`),
/// the configuration from `stdin`. The calling thread's network namespace is the host's.
pub fn run(get: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Outcome {
    let version = || {
        serde_json::from_slice::<serde_json::Value>(stdin)
            .ok()
            .and_then(|v| version_of(&v).ok())
            .unwrap_or_else(|| NEWEST_VERSION.to_string())
    };
    match RuntimeEnv::from_vars(get).and_then(|env| execute(&env, stdin)) {
        Ok(out) => Outcome {
            stdout: out.unwrap_or_default(),
            status: 0,
        },
        Err(e) => Outcome {
            stdout: e.to_json(&version()),
            status: 1,
        },
    }
}

/// Runs the command of `env` with the configuration `stdin`; what to print (nothing for
/// DEL and CHECK). The calling thread's network namespace is the host's.
pub fn execute(env: &RuntimeEnv, stdin: &[u8]) -> Result<Option<String>, CniError> {
    if env.command == Command::Version {
        let v = match serde_json::from_slice::<serde_json::Value>(stdin) {
            Ok(raw) if raw.get("cniVersion").is_some() => version_of(&raw)?,
            _ => NEWEST_VERSION.to_string(),
        };
        return Ok(Some(version_json(&v)));
    }
    let conf = NetConf::parse(stdin)?;
    if env.command == Command::Check && conf.cni_version.starts_with("0.3") {
        return Err(CniError::new(
            Code::IncompatibleVersion,
            format!(
                "field cniVersion: CHECK needs 0.4.0 or later, not {}",
                conf.cni_version
            ),
            "",
        ));
    }
    let host_ns = File::open("/proc/thread-self/ns/net").map_err(|e| {
        CniError::new(
            Code::Io,
            format!("open this thread's network namespace: {e}"),
            "",
        )
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CniError::new(Code::Io, format!("runtime: {e}"), ""))?;
    rt.block_on(async {
        let ctx = Context::connect(conf, env.clone(), host_ns).await?;
        match env.command {
            Command::Add => add::add(&ctx).await.map(Some),
            Command::Del => del::del(&ctx).await.map(|()| None),
            Command::Check => check::check(&ctx).await.map(|()| None),
            Command::Version => unreachable!("answered above"),
        }
    })
}
