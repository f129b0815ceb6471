//! Host-side interface names, as Calico names them.

/// The prefix of every host-side workload interface (Felix's default `InterfacePrefix`).
pub const PREFIX: &str = "cali";

/// The host-side veth's name: for a Kubernetes pod, `cali` + the first 11 hex digits of
/// SHA-1(`<namespace>.<pod>`) (libcalico-go's `VethNameForWorkload`); otherwise `cali` + the
/// first 11 characters of the container id (Calico's CNI plugin for other orchestrators).
pub fn host_veth_name(container_id: &str, pod: Option<(&str, &str)>) -> String {
    match pod {
        Some((namespace, name)) => {
            let digest = sha1_smol::Sha1::from(format!("{namespace}.{name}"))
                .digest()
                .to_string();
            format!("{PREFIX}{}", &digest[..11])
        }
        None => {
            let end = container_id
                .char_indices()
                .nth(11)
                .map_or(container_id.len(), |(i, _)| i);
            format!("{PREFIX}{}", &container_id[..end])
        }
    }
}

/// A temporary name for the container's end while it is still on the host (unique per
/// host-side name: `ctmp` + its last 11 characters).
pub fn temporary_peer_name(host: &str) -> String {
    let tail = host.strip_prefix(PREFIX).unwrap_or(host);
    format!("ctmp{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_calico() {
        // `printf default.nginx | sha1sum` = c440f455693b69cd…
        assert_eq!(
            host_veth_name("ignored", Some(("default", "nginx"))),
            "calic440f455693"
        );
        assert_eq!(host_veth_name("0123456789abcdef", None), "cali0123456789a");
        assert_eq!(host_veth_name("abc", None), "caliabc");
        assert_eq!(host_veth_name("abc", Some(("a", "b"))).len(), 15);
        assert_eq!(temporary_peer_name("cali0123456789a"), "ctmp0123456789a");
    }
}
