//! Status back to the orchestrator (`--datastore etcd`): this host's `Node` registered, its
//! liveness and each local endpoint's state (up, down, error and why) written under a lease
//! where Felix writes them, so networking-calico marks Neutron ports ACTIVE and a dead
//! host's reports expire by themselves.

use std::time::Duration;

use calico_core::agent::AgentHandle;
use calico_core::dataplane::AsNumber;
use calico_core::datastore::status::{StatusReporter, StatusStore};
use calico_core::model::{Node, NodeBgp};
use calico_etcd::{Connection, EtcdConfig, EtcdStatus, EtcdStatusOptions};
use tracing::{info, warn};

use crate::cli::Options;

/// The `Node` this agent registers: its name and the BGP identity given on the command line.
pub fn node_of(o: &Options) -> Node {
    let bgp =
        (o.node_ipv4.is_some() || o.node_ipv6.is_some() || o.node_as.is_some()).then(|| NodeBgp {
            ipv4_address: o.node_ipv4,
            ipv6_address: o.node_ipv6,
            as_number: o.node_as.map(AsNumber),
            route_reflector_cluster_id: None,
        });
    Node {
        name: o.node.clone(),
        labels: Default::default(),
        bgp,
    }
}

/// Connects (retrying with back-off while etcd is away), registers the node, then reports
/// every change of the agent's status until the agent stops.
pub async fn run(config: EtcdConfig, node: Node, ttl: Duration, handle: AgentHandle) {
    let mut wait = Duration::from_millis(200);
    let store = loop {
        match connect(&config, &node, ttl).await {
            Ok(store) => break store,
            Err(e) => {
                warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "status reporting to etcd not started; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    };
    info!(node = %node.name, "node registered; reporting endpoint status to etcd under a lease");
    StatusReporter::new(store, node.name.clone())
        .run(handle)
        .await;
}

async fn connect(config: &EtcdConfig, node: &Node, ttl: Duration) -> Result<EtcdStatus, String> {
    let conn = Connection::connect(config)
        .await
        .map_err(|e| e.to_string())?;
    let options = EtcdStatusOptions {
        prefix: config.prefix.clone(),
        ttl,
        request_timeout: config.request_timeout,
        ..EtcdStatusOptions::default()
    };
    let store = EtcdStatus::new(conn.client(), config.describe(), options)
        .await
        .map_err(|e| e.to_string())?;
    store
        .register_node(node)
        .await
        .map_err(|e| format!("registering Node {}: {e}", node.name))?;
    Ok(store)
}
