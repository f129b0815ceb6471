//! DEL: idempotent; also cleans up after an ADD that failed or was interrupted half-way.

use super::Context;
use crate::endpoint;
use crate::ipam;
use crate::net;
use crate::spec::{CniError, Code};

/// Runs DEL: the endpoint deleted, the veth deleted, the handle's addresses released —
/// each only if there, so a second DEL (or one after a half-done ADD) succeeds too.
pub async fn del(ctx: &Context) -> Result<(), CniError> {
    let wep = endpoint::build(
        &ctx.conf,
        &ctx.identity,
        &ctx.node,
        &ctx.host_ifname,
        None,
        &[],
    );
    endpoint::remove(&ctx.writer, &wep).await?;
    net::teardown(&ctx.host_ns, &ctx.host_ifname).map_err(|e| {
        CniError::new(
            Code::Netlink,
            format!("delete {}: {e}", ctx.host_ifname),
            "",
        )
    })?;
    ipam::release(&ctx.ipam, &ctx.handle).await?;
    Ok(())
}
