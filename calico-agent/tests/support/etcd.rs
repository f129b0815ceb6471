//! etcd for the daemon's tests and benches: etcd in a fabric namespace the hosts are
//! plugged into, written as `calicoctl` writes (`projectcalico.org/v3` JSON under Calico's
//! keys), and the agent's view of it read from its HTTP server.

use std::future::Future;
use std::path::Path;

use calico_etcd::testing::EtcdServer;
use calico_netns::fixtures::{privileged, Netns};

use super::{fabric, http_get, Host};

pub const PREFIX: &str = "/calico/resources/v3/projectcalico.org";
pub const ETCD_IP: &str = "10.88.0.254";

/// A fabric namespace with etcd on its bridge.
pub struct Datastore {
    pub fabric: Netns,
    pub etcd: EtcdServer,
}

impl Datastore {
    pub fn start(test: &str, prefix: &str) -> Option<Datastore> {
        if !privileged(test) {
            return None;
        }
        if !EtcdServer::usable_or_skip(test) {
            return None;
        }
        let fabric = fabric(prefix);
        fabric.run(&["ip", "link", "set", "lo", "up"]).unwrap();
        fabric
            .run(&["ip", "addr", "add", &format!("{ETCD_IP}/24"), "dev", "br0"])
            .unwrap();
        let etcd = EtcdServer::start_in_netns(fabric.name(), ETCD_IP.parse().unwrap()).unwrap();
        Some(Datastore { fabric, etcd })
    }

    /// Runs `work` with an etcd client, on a thread inside the fabric namespace.
    pub fn with<T: Send, F: Future<Output = T>>(
        &self,
        work: impl FnOnce(etcd_client::Client) -> F + Send,
    ) -> T {
        let endpoint = self.etcd.endpoint();
        calico_netns::enter_path(Path::new(&self.fabric.path()), move || {
            calico_etcd::testing::with_client(endpoint, work)
        })
        .unwrap()
    }

    /// Puts `(key, value)` pairs; the revision of the last.
    pub fn put(&self, entries: Vec<(String, String)>) -> i64 {
        self.with(|mut c| async move {
            let mut revision = 0;
            for (k, v) in entries {
                revision = c
                    .put(k, v, None)
                    .await
                    .unwrap()
                    .header()
                    .unwrap()
                    .revision();
            }
            revision
        })
    }

    pub fn delete(&self, key: String) -> i64 {
        self.with(|mut c| async move {
            c.delete(key, None)
                .await
                .unwrap()
                .header()
                .unwrap()
                .revision()
        })
    }
}

/// A `WorkloadEndpoint` as calicoctl stores it: its key and JSON value.
pub fn wep(node: &str, workload: &str, iface: &str, ip: &str, role: &str) -> (String, String) {
    let name = format!(
        "{}-k8s-{}-eth0",
        node.replace('-', "--"),
        workload.replace('-', "--")
    );
    let value = serde_json::json!({
        "apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
        "metadata": {"name": name, "namespace": "shop", "labels": {"role": role}},
        "spec": {"orchestrator": "k8s", "workload": workload, "endpoint": "eth0", "node": node,
                 "interfaceName": iface, "ipNetworks": [format!("{ip}/32")], "profiles": ["kns.shop"]},
    });
    (
        format!("{PREFIX}/workloadendpoints/shop/{name}"),
        value.to_string(),
    )
}

pub fn profile() -> (String, String) {
    let value = serde_json::json!({
        "apiVersion": "projectcalico.org/v3", "kind": "Profile",
        "metadata": {"name": "kns.shop"},
        "spec": {"egress": [{"action": "Allow"}]},
    });
    (format!("{PREFIX}/profiles/kns.shop"), value.to_string())
}

/// A policy admitting TCP `port` to `role` from `from`.
pub fn policy(name: &str, role: &str, from: &str, port: u16) -> (String, String) {
    let value = serde_json::json!({
        "apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"selector": format!("role == '{role}'"), "types": ["Ingress"],
                 "ingress": [{"action": "Allow", "protocol": "TCP",
                              "source": {"selector": format!("role == '{from}'")},
                              "destination": {"ports": [port]}}]},
    });
    (
        format!("{PREFIX}/networkpolicies/shop/{name}"),
        value.to_string(),
    )
}

pub fn start_agent(host: &mut Host, endpoint: &str) {
    let lock = host.dir.join("lock");
    let uplink = host.uplink.clone();
    host.start_agent_with(&[
        "--datastore",
        "etcd",
        "--etcd-endpoints",
        endpoint,
        "--no-bgp",
        "--http",
        "127.0.0.1:9091",
        "--resync-secs",
        "3600",
        "--lock-dir",
        lock.to_str().unwrap(),
        "--node-ipv4",
        &uplink,
    ]);
}

pub fn ready(host: &Host) -> bool {
    http_get(host, "/readiness").starts_with("HTTP/1.1 200")
}

/// The datastore revision the host's agent has programmed.
pub fn programmed(host: &Host) -> i64 {
    let page = http_get(host, "/status");
    let body = page.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["datastore"]["programmed_revision"].as_i64())
        .unwrap_or(0)
}
