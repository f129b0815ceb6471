//! A host namespace wired to etcd (running in a fabric namespace), IP pools written as
//! calicoctl writes them, container namespaces, and the plugin run inside the host
//! namespace through the library.

#![allow(dead_code)]

use std::future::Future;
use std::path::Path;

use calico_cni::Outcome;
use calico_etcd::testing::EtcdServer;
use calico_netns::fixtures::{privileged, veth, Netns};
use serde_json::{json, Value};

pub const ETCD_IP: &str = "10.77.0.254";
pub const HOST_IP: &str = "10.77.0.1";
pub const POOLS: &str = "/calico/resources/v3/projectcalico.org/ippools/";

pub struct Lab {
    pub host: Netns,
    pub fabric: Netns,
    pub etcd: EtcdServer,
}

impl Lab {
    /// The lab, or `None` after saying why the test skips.
    pub fn start(test: &str) -> Option<Lab> {
        if !privileged(test) || !EtcdServer::usable_or_skip(test) {
            return None;
        }
        let fabric = Netns::create("cnifab").unwrap();
        let host = Netns::create("cnihost").unwrap();
        veth(&host, "up0", &fabric, "etcd0").unwrap();
        host.run(&["ip", "addr", "add", &format!("{HOST_IP}/24"), "dev", "up0"])
            .unwrap();
        // A default route, as every Calico host has: proxy ARP answers for 169.254.1.1 only
        // when the host routes it elsewhere than back to the container.
        host.run(&["ip", "route", "add", "default", "dev", "up0"])
            .unwrap();
        fabric
            .run(&[
                "ip",
                "addr",
                "add",
                &format!("{ETCD_IP}/24"),
                "dev",
                "etcd0",
            ])
            .unwrap();
        let etcd = EtcdServer::start_in_netns(fabric.name(), ETCD_IP.parse().unwrap()).unwrap();
        Some(Lab { host, fabric, etcd })
    }

    /// Runs `work` with an etcd client on a thread inside the host namespace.
    pub fn with<T: Send, F: Future<Output = T>>(
        &self,
        work: impl FnOnce(etcd_client::Client) -> F + Send,
    ) -> T {
        let endpoint = self.etcd.endpoint();
        self.host
            .enter(move || calico_etcd::testing::with_client(endpoint, work))
            .unwrap()
    }

    /// Writes an IPPool (as calicoctl stores it).
    pub fn pool(&self, name: &str, cidr: &str, block: u8) {
        let value = json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
            "metadata": {"name": name}, "spec": {"cidr": cidr, "blockSize": block}});
        let key = format!("{POOLS}{name}");
        self.with(|mut c| async move { c.put(key, value.to_string(), None).await.unwrap() });
    }

    /// Keys under `prefix`, with their values.
    pub fn keys(&self, prefix: &str) -> Vec<(String, String)> {
        let prefix = prefix.to_string();
        self.with(|mut c| async move {
            let opts = etcd_client::GetOptions::new().with_prefix();
            let r = c.get(prefix, Some(opts)).await.unwrap();
            r.kvs()
                .iter()
                .map(|kv| {
                    (
                        kv.key_str().unwrap().to_string(),
                        kv.value_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
    }

    /// Addresses allocated in every IPAM block (Calico's `allocations` not null).
    pub fn allocated(&self) -> usize {
        self.keys("/calico/ipam/v2/assignment/")
            .iter()
            .map(|(_, v)| {
                let v: Value = serde_json::from_str(v).unwrap();
                v["allocations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|a| !a.is_null())
                    .count()
            })
            .sum()
    }

    /// A network configuration for this lab.
    pub fn conf(&self, name: &str, extra: Value) -> Value {
        let mut c = json!({"cniVersion": "1.0.0", "name": name, "type": "calico-rs-cni",
            "nodename": "cni-host-1", "etcd_endpoints": self.etcd.endpoint(),
            "ipam": {"type": "calico-ipam"}});
        merge(&mut c, extra);
        c
    }

    /// Runs the plugin inside the host namespace.
    pub fn cni(
        &self,
        command: &str,
        id: &str,
        netns: Option<&Netns>,
        ifname: &str,
        conf: &Value,
    ) -> Outcome {
        let mut vars = vec![
            ("CNI_COMMAND".to_string(), command.to_string()),
            ("CNI_CONTAINERID".to_string(), id.to_string()),
            ("CNI_IFNAME".to_string(), ifname.to_string()),
            ("CNI_PATH".to_string(), "/usr/lib/cni".to_string()),
        ];
        if let Some(ns) = netns {
            vars.push(("CNI_NETNS".to_string(), ns.path()));
        }
        let stdin = conf.to_string();
        self.host
            .enter(move || {
                calico_cni::run(
                    |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
                    stdin.as_bytes(),
                )
            })
            .unwrap()
    }

    /// `ip -br link` in the host namespace.
    pub fn host_links(&self) -> String {
        self.host.run(&["ip", "-br", "link"]).unwrap()
    }
}

fn merge(into: &mut Value, extra: Value) {
    match (into, extra) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The plugin's stdout as JSON, after checking the exit status.
pub fn ok(o: &Outcome) -> Value {
    assert_eq!(o.status, 0, "plugin failed: {}", o.stdout);
    if o.stdout.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&o.stdout).unwrap()
    }
}

/// Whether `path` exists (a sysctl, a netns).
pub fn exists(path: &str) -> bool {
    Path::new(path).exists()
}
