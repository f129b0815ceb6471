//! `/proc/sys/net` writes for the calling thread's network namespace.

use std::path::PathBuf;

use super::NetError;

/// Writes `value` to `/proc/sys/net/<key>` (the calling thread's namespace's).
pub fn write(key: &str, value: &str) -> Result<(), NetError> {
    let path = PathBuf::from("/proc/sys/net").join(key);
    std::fs::write(&path, value).map_err(|e| NetError::Sysctl {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

/// Reads `/proc/sys/net/<key>`, trimmed; `None` if it cannot be read.
pub fn read(key: &str) -> Option<String> {
    std::fs::read_to_string(PathBuf::from("/proc/sys/net").join(key))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Whether IPv6 is available in the calling thread's namespace.
pub fn ipv6_enabled() -> bool {
    read("ipv6/conf/all/disable_ipv6").is_some_and(|v| v == "0")
}
