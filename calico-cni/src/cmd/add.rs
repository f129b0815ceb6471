//! ADD: addresses, veth, endpoint — all or nothing.

use std::collections::BTreeMap;
use std::net::IpAddr;

use calico_core::model::MacAddr;
use ipnet::IpNet;

use super::Context;
use crate::endpoint;
use crate::ipam;
use crate::net::{self, VethPlan};
use crate::spec::{CniError, CniResult, Code, Interface, IpConfig, Route};

/// What ADD has done so far, to undo on a failure.
#[derive(Default)]
struct Done {
    ips: bool,
    veth: bool,
    endpoint: Option<calico_core::model::WorkloadEndpoint>,
}

/// Runs ADD; the result JSON in the configuration's version. On any failure everything done
/// is undone (addresses released, veth deleted, endpoint deleted) before the error returns.
pub async fn add(ctx: &Context) -> Result<String, CniError> {
    let mut done = Done::default();
    match attach(ctx, &mut done).await {
        Ok(result) => Ok(result.to_json(&ctx.conf.cni_version)),
        Err(e) => {
            let undo = undo(ctx, &done).await;
            Err(match undo {
                Ok(()) => e,
                Err(u) => CniError {
                    details: format!("{}; undoing it also failed: {}", e.details, u.msg),
                    ..e
                },
            })
        }
    }
}

async fn attach(ctx: &Context, done: &mut Done) -> Result<CniResult, CniError> {
    let netns = ctx
        .env
        .netns
        .clone()
        .ok_or_else(|| CniError::new(Code::InvalidEnv, "CNI_NETNS: missing", ""))?;
    if !netns.exists() {
        return Err(CniError::new(
            Code::UnknownContainer,
            format!("CNI_NETNS {}: no such namespace", netns.display()),
            "",
        ));
    }
    let mut attrs = BTreeMap::new();
    if let Some((ns, pod)) = &ctx.identity.pod {
        attrs.insert("namespace".to_string(), ns.clone());
        attrs.insert("pod".to_string(), pod.clone());
    }
    attrs.insert(
        "timestamp".to_string(),
        calico_core::datastore::status::rfc3339_now(),
    );
    done.ips = true;
    let assigned = ipam::assign(&ctx.ipam, &ctx.conf, &ctx.handle, &attrs).await?;
    let addrs: Vec<IpAddr> = assigned.iter().map(|a| a.addr).collect();
    let plan = VethPlan {
        host_ifname: ctx.host_ifname.clone(),
        container_ifname: ctx.env.ifname.clone(),
        container_netns: netns.clone(),
        mtu: ctx.conf.mtu.unwrap_or(1500),
        addrs: addrs.clone(),
    };
    done.veth = true;
    let mac = net::setup(&ctx.host_ns, &plan).map_err(|e| {
        CniError::new(
            Code::Netlink,
            format!("set up {}: {e}", plan.host_ifname),
            "",
        )
    })?;
    let wep = endpoint::build(
        &ctx.conf,
        &ctx.identity,
        &ctx.node,
        &ctx.host_ifname,
        mac.parse::<MacAddr>().ok(),
        &addrs,
    );
    done.endpoint = Some(wep.clone());
    endpoint::write(&ctx.writer, &wep).await?;
    let ours = result_of(ctx, &netns.display().to_string(), &mac, &addrs);
    Ok(match ctx.conf.prev_result() {
        Some(prev) => ours.after(prev),
        None => ours,
    })
}

fn result_of(ctx: &Context, sandbox: &str, mac: &str, addrs: &[IpAddr]) -> CniResult {
    let mut routes = Vec::new();
    if addrs.iter().any(IpAddr::is_ipv4) {
        routes.push(Route {
            dst: "0.0.0.0/0".parse().expect("a network"),
            gw: Some(IpAddr::V4(net::GATEWAY_V4)),
        });
    }
    if addrs.iter().any(IpAddr::is_ipv6) {
        routes.push(Route {
            dst: "::/0".parse().expect("a network"),
            gw: Some(IpAddr::V6(net::GATEWAY_V6)),
        });
    }
    CniResult {
        interfaces: vec![
            Interface {
                name: ctx.host_ifname.clone(),
                mac: Some("ee:ee:ee:ee:ee:ee".into()),
                sandbox: None,
            },
            Interface {
                name: ctx.env.ifname.clone(),
                mac: Some(mac.to_string()),
                sandbox: Some(sandbox.to_string()),
            },
        ],
        ips: addrs
            .iter()
            .map(|a| IpConfig {
                address: IpNet::from(*a),
                gateway: None,
                interface: Some(1),
            })
            .collect(),
        routes,
        dns: serde_json::Value::Null,
    }
}

/// Undoes what `done` records, in reverse; the first failure (after trying every step).
async fn undo(ctx: &Context, done: &Done) -> Result<(), CniError> {
    let mut first = None;
    if let Some(wep) = &done.endpoint {
        if let Err(e) = endpoint::remove(&ctx.writer, wep).await {
            first.get_or_insert(e);
        }
    }
    if done.veth {
        if let Err(e) = net::teardown(&ctx.host_ns, &ctx.host_ifname) {
            first.get_or_insert(CniError::new(Code::Netlink, e.to_string(), ""));
        }
    }
    if done.ips {
        if let Err(e) = ipam::release(&ctx.ipam, &ctx.handle).await {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}
