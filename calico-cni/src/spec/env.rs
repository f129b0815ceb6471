//! The runtime's environment variables: `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`,
//! `CNI_IFNAME`, `CNI_ARGS`, `CNI_PATH`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::error::{CniError, Code};

/// A CNI command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `ADD`: attach the container to the network.
    Add,
    /// `DEL`: detach it (idempotent).
    Del,
    /// `CHECK`: verify the attachment.
    Check,
    /// `VERSION`: report the supported spec versions.
    Version,
}

/// The runtime's request, from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeEnv {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (empty for `VERSION`).
    pub container_id: String,
    /// `CNI_NETNS`: the container's network namespace path (may be absent for `DEL`).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`: the interface to create inside the container.
    pub ifname: String,
    /// `CNI_ARGS`: `KEY=VALUE` pairs separated by `;`.
    pub args: BTreeMap<String, String>,
    /// `CNI_PATH`: where to look for plugins (kept for delegation; unused here).
    pub path: Vec<PathBuf>,
}

fn env_error(var: &str, reason: impl Into<String>) -> CniError {
    CniError::new(Code::InvalidEnv, format!("{var}: {}", reason.into()), "")
}

/// The longest interface name Linux accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

impl RuntimeEnv {
    /// Reads the request from `get` (e.g. `|k| std::env::var(k).ok()`); a missing or bad
    /// variable is [`Code::InvalidEnv`] naming it.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<RuntimeEnv, CniError> {
        let command = match get("CNI_COMMAND").as_deref() {
            Some("ADD") => Command::Add,
            Some("DEL") => Command::Del,
            Some("CHECK") => Command::Check,
            Some("VERSION") => Command::Version,
            Some(other) => {
                return Err(env_error(
                    "CNI_COMMAND",
                    format!("{other:?} is not ADD, DEL, CHECK or VERSION"),
                ))
            }
            None => return Err(env_error("CNI_COMMAND", "missing")),
        };
        let nonempty = |k: &str| get(k).filter(|v| !v.is_empty());
        let path = get("CNI_PATH")
            .map(|p| {
                p.split(':')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        if command == Command::Version {
            return Ok(RuntimeEnv {
                command,
                container_id: String::new(),
                netns: None,
                ifname: String::new(),
                args: BTreeMap::new(),
                path,
            });
        }
        let container_id =
            nonempty("CNI_CONTAINERID").ok_or_else(|| env_error("CNI_CONTAINERID", "missing"))?;
        check_container_id(&container_id)?;
        let netns = nonempty("CNI_NETNS").map(PathBuf::from);
        if netns.is_none() && command != Command::Del {
            return Err(env_error("CNI_NETNS", "missing"));
        }
        let ifname = nonempty("CNI_IFNAME").ok_or_else(|| env_error("CNI_IFNAME", "missing"))?;
        check_ifname("CNI_IFNAME", &ifname).map_err(|r| env_error("CNI_IFNAME", r))?;
        let args = parse_args(get("CNI_ARGS").as_deref().unwrap_or(""))?;
        Ok(RuntimeEnv {
            command,
            container_id,
            netns,
            ifname,
            args,
            path,
        })
    }

    /// A `CNI_ARGS` value.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// The spec: a container id is alphanumeric plus `_`, `.` and `-`, starting alphanumeric.
fn check_container_id(id: &str) -> Result<(), CniError> {
    let ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(env_error(
            "CNI_CONTAINERID",
            format!(
                "{id:?}: only letters, digits, '_', '.' and '-', starting with a letter or digit"
            ),
        ))
    }
}

/// Whether `name` is a Linux interface name (1–15 bytes, no `/`, `:` or whitespace, not
/// `.` or `..`); the reason otherwise.
pub fn check_ifname(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_IFNAME {
        return Err(format!("{what} {name:?}: 1 to {MAX_IFNAME} bytes"));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(format!("{what} {name:?}: not an interface name"));
    }
    Ok(())
}

/// `KEY=VALUE;KEY=VALUE`; a pair without `=` is [`Code::InvalidEnv`] naming `CNI_ARGS`.
fn parse_args(s: &str) -> Result<BTreeMap<String, String>, CniError> {
    let mut out = BTreeMap::new();
    for pair in s.split(';').filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(env_error("CNI_ARGS", format!("{pair:?} is not KEY=VALUE")));
        };
        if k.is_empty() {
            return Err(env_error("CNI_ARGS", format!("{pair:?} has an empty key")));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<RuntimeEnv, CniError> {
        let map: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RuntimeEnv::from_vars(|k| map.get(k).cloned())
    }

    const ADD: [(&str, &str); 4] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/var/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
    ];

    #[test]
    fn a_full_add_request_is_read() {
        let mut vars = ADD.to_vec();
        vars.push((
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0",
        ));
        vars.push(("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"));
        let e = env(&vars).unwrap();
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.arg("K8S_POD_NAME"), Some("web-0"));
        assert_eq!(e.path.len(), 2);
        assert_eq!(
            e.netns.as_deref(),
            Some(std::path::Path::new("/var/run/netns/x"))
        );
    }

    #[test]
    fn each_bad_variable_is_code_4_naming_it() {
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![], "CNI_COMMAND"),
            (vec![("CNI_COMMAND", "GO")], "CNI_COMMAND"),
            (ADD[..1].to_vec(), "CNI_CONTAINERID"),
            (
                vec![ADD[0], ("CNI_CONTAINERID", "-x"), ADD[2], ADD[3]],
                "CNI_CONTAINERID",
            ),
            (vec![ADD[0], ADD[1], ADD[3]], "CNI_NETNS"),
            (ADD[..3].to_vec(), "CNI_IFNAME"),
            (
                vec![ADD[0], ADD[1], ADD[2], ("CNI_IFNAME", "a-very-long-name0")],
                "CNI_IFNAME",
            ),
            ([&ADD[..], &[("CNI_ARGS", "novalue")]].concat(), "CNI_ARGS"),
        ];
        for (vars, var) in cases {
            let err = env(&vars).unwrap_err();
            assert_eq!(err.code, Code::InvalidEnv, "{vars:?}");
            assert!(err.msg.starts_with(var), "{vars:?}: {}", err.msg);
        }
    }

    #[test]
    fn del_needs_no_netns_and_version_needs_nothing() {
        let del = env(&[("CNI_COMMAND", "DEL"), ADD[1], ADD[3]]).unwrap();
        assert_eq!((del.command, del.netns), (Command::Del, None));
        assert_eq!(
            env(&[("CNI_COMMAND", "VERSION")]).unwrap().command,
            Command::Version
        );
    }
}
