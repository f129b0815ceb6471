//! Entry points for the cargo-fuzz targets in fuzz/ (feature `fuzzing`).

/// Parses `data` as a network configuration and, when it parses, writes its result back
/// out: must never panic or hang.
pub fn config(data: &[u8]) {
    if let Ok(conf) = crate::spec::NetConf::parse(data) {
        let _ = (
            conf.endpoints(),
            conf.prev_result().map(|r| r.to_json(&conf.cni_version)),
        );
    }
    let _ = crate::spec::env::check_ifname("x", &String::from_utf8_lossy(data));
}
