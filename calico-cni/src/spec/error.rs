//! CNI errors: the spec's JSON error object and its well-known codes.

use serde::Serialize;

/// The error codes the CNI specification reserves (1–99), and the plugin's own (100+).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// 1: incompatible CNI version.
    IncompatibleVersion,
    /// 2: unsupported field in the network configuration.
    UnsupportedField,
    /// 3: container unknown or does not exist.
    UnknownContainer,
    /// 4: invalid necessary environment variables.
    InvalidEnv,
    /// 5: I/O failure.
    Io,
    /// 6: failed to decode content.
    Decode,
    /// 7: invalid network configuration.
    InvalidConfig,
    /// 11: try again later.
    TryAgainLater,
    /// 100: the datastore (etcd) failed or refused.
    Datastore,
    /// 101: IPAM could not assign or release addresses.
    Ipam,
    /// 102: the kernel refused a network change (netlink, sysctl).
    Netlink,
    /// 103: CHECK found the container's networking not as ADD left it.
    CheckFailed,
}

impl Code {
    /// The number printed in the error object.
    pub fn number(self) -> u32 {
        match self {
            Code::IncompatibleVersion => 1,
            Code::UnsupportedField => 2,
            Code::UnknownContainer => 3,
            Code::InvalidEnv => 4,
            Code::Io => 5,
            Code::Decode => 6,
            Code::InvalidConfig => 7,
            Code::TryAgainLater => 11,
            Code::Datastore => 100,
            Code::Ipam => 101,
            Code::Netlink => 102,
            Code::CheckFailed => 103,
        }
    }
}

/// A CNI error: what the plugin prints on stdout (with a non-zero exit status) when a command
/// fails. `msg` says what failed, naming the field or variable where there is one; `details`
/// says why at length.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("CNI error {} : {msg}{}", code.number(), if details.is_empty() { String::new() } else { format!(": {details}") })]
pub struct CniError {
    /// The error's code.
    pub code: Code,
    /// A short message.
    pub msg: String,
    /// The longer explanation (may be empty).
    pub details: String,
}

#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: &'a str,
    code: u32,
    msg: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    details: &'a str,
}

impl CniError {
    /// An error with `code`, `msg` and `details`.
    pub fn new(code: Code, msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// The spec's error object `{cniVersion, code, msg, details}` as JSON, for `version`
    /// (the configuration's, or the newest supported when it could not be read).
    pub fn to_json(&self, version: &str) -> String {
        serde_json::to_string(&Wire {
            cni_version: version,
            code: self.code.number(),
            msg: &self.msg,
            details: &self.details,
        })
        .unwrap_or_else(|_| format!("{{\"code\":{}}}", self.code.number()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_object_has_the_specs_fields_and_codes() {
        let e = CniError::new(Code::InvalidEnv, "CNI_NETNS: missing", "ADD needs it");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("1.0.0")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cniVersion": "1.0.0", "code": 4, "msg": "CNI_NETNS: missing", "details": "ADD needs it"})
        );
        let codes: Vec<u32> = [
            Code::IncompatibleVersion,
            Code::UnsupportedField,
            Code::UnknownContainer,
            Code::InvalidEnv,
            Code::Io,
            Code::Decode,
            Code::InvalidConfig,
            Code::TryAgainLater,
            Code::Datastore,
        ]
        .iter()
        .map(|c| c.number())
        .collect();
        assert_eq!(codes, [1, 2, 3, 4, 5, 6, 7, 11, 100]);
        let short = CniError::new(Code::Io, "x", "");
        assert!(!short.to_json("0.4.0").contains("details"));
    }
}
