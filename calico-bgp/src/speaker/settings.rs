//! Checks and comparisons of the speaker's settings: what [`super::state::SpeakerState`]
//! refuses before applying them, and which changes keep a peering's session.

use std::collections::BTreeSet;

use calico_core::dataplane::{BackendError, BgpSettings, PeerConfig};

use super::{md5, SpeakerOptions};

/// Checks settings before they are applied: graceful restart options, BFD, TCP MD5
/// passwords, session options, route policy, no peer twice.
pub(crate) fn validate(
    options: &SpeakerOptions,
    settings: &BgpSettings,
) -> Result<(), BackendError> {
    if let Some(gr) = &options.graceful_restart {
        gr.validate()
            .map_err(|e| BackendError::Unsupported(e.to_string()))?;
    }
    for p in &settings.peers {
        if let Some(Err((field, why))) = p
            .bfd
            .as_ref()
            .map(calico_core::dataplane::BfdConfig::validate)
        {
            let address = p.address;
            return Err(BackendError::Unsupported(format!(
                "peer {address}: {field}: {why}"
            )));
        }
        if let Some(password) = &p.password {
            md5::validate(p.address, password)
                .map_err(|e| BackendError::Unsupported(e.to_string()))?;
        }
        if let Err((field, why)) = p.session.validate(p.hold_time) {
            let address = p.address;
            return Err(BackendError::Unsupported(format!(
                "peer {address}: {field}: {why}"
            )));
        }
    }
    settings
        .policy
        .validate()
        .map_err(|e| BackendError::Unsupported(e.to_string()))?;
    let mut seen = BTreeSet::new();
    if let Some(p) = settings.peers.iter().find(|p| !seen.insert(p.address)) {
        return Err(BackendError::Unsupported(format!(
            "peer {} is configured twice",
            p.address
        )));
    }
    Ok(())
}

/// Whether two configurations of a peering give the same BGP session (they may differ in
/// BFD, which runs beside it).
pub(crate) fn same_session(a: &PeerConfig, b: &PeerConfig) -> bool {
    PeerConfig {
        bfd: None,
        ..a.clone()
    } == PeerConfig {
        bfd: None,
        ..b.clone()
    }
}
