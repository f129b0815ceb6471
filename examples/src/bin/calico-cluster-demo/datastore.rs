//! `--datastore etcd` (the default): a real etcd in the fabric namespace, the demo as the
//! orchestrator writing the cluster and the policy edit into it through the datastore API
//! (`EtcdWriter`, Calico's v3 layout), and the write → programmed-on-every-host latency read
//! from each agent's `/status`.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use std::time::{Duration, Instant};

use calico_core::datastore::status::StatusStore;
use calico_core::datastore::{ResourceWriter, Revision};
use calico_core::model::{parse_resources, Resource};
use calico_etcd::ipam::{affinity_key, block_key, AffinityState, AffinityValue, AllocationBlock};
use calico_etcd::testing::{etcd_available, etcd_binary, EtcdServer};
use calico_etcd::{Connection, EtcdConfig, EtcdStatus, EtcdStatusOptions, EtcdWriter};
use calico_netns::fixtures::Netns;
use ipnet::IpNet;

use crate::scenario::{HOSTS, WORKLOADS};

/// Where etcd listens: the fabric's own address on plane 1, which every host reaches.
pub const ETCD_IP: &str = "10.1.0.254";

/// Where each agent serves `/status`, inside its host's namespace.
const AGENT_HTTP: &str = "127.0.0.1:9091";

/// Which datastore the agents follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// etcd, written by the demo as an orchestrator would.
    Etcd,
    /// A directory of resource files per host (the demo rewrites them).
    Dir,
}

/// etcd running in the fabric namespace; killed and its data removed when dropped.
pub struct Etcd {
    server: EtcdServer,
    fabric: String,
}

impl Etcd {
    /// Starts etcd on [`ETCD_IP`]:2379 inside `fabric`; a clear error if etcd is not
    /// installed.
    pub fn start(fabric: &Netns) -> Result<Etcd, String> {
        if !etcd_available() {
            return Err(format!(
                "--datastore etcd needs the etcd binary ({} cannot run): `make deps` installs \
                 Debian's etcd-server; or run with --datastore dir",
                etcd_binary().display()
            ));
        }
        fabric
            .run(&["ip", "link", "set", "lo", "up"])
            .map_err(|e| e.to_string())?;
        let ip = ETCD_IP.parse().expect("a valid address");
        let server = EtcdServer::start_in_netns(fabric.name(), ip)?;
        Ok(Etcd {
            server,
            fabric: fabric.path(),
        })
    }

    /// The client URL the agents get.
    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// Runs `work` on a thread inside the fabric namespace (the only place etcd is reachable
    /// from), on a current-thread runtime.
    fn in_fabric<T, F>(&self, work: impl FnOnce() -> F + Send) -> Result<T, String>
    where
        T: Send,
        F: Future<Output = Result<T, String>>,
    {
        calico_netns::enter_path(Path::new(&self.fabric), move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("tokio runtime: {e}"))?;
            rt.block_on(work())
        })
        .map_err(|e| format!("entering the fabric namespace: {e}"))?
    }

    /// Runs `work` with a writer and a raw connection, inside the fabric namespace.
    fn with<T, F>(&self, work: impl FnOnce(EtcdWriter, Connection) -> F + Send) -> Result<T, String>
    where
        T: Send,
        F: Future<Output = Result<T, String>>,
    {
        let config = EtcdConfig::new([self.endpoint()]);
        self.in_fabric(move || async move {
            let writer = EtcdWriter::connect(&config)
                .await
                .map_err(|e| e.to_string())?;
            let conn = Connection::connect(&config)
                .await
                .map_err(|e| e.to_string())?;
            work(writer, conn).await
        })
    }

    /// What the hosts report back through etcd (read as the orchestrator's plug-in reads it,
    /// `StatusStore`): one line per host, its liveness and its endpoints' states. Waits up to
    /// `patience` for every workload to be reported.
    pub fn status_back(&self, patience: Duration) -> Result<Vec<String>, String> {
        let endpoints = vec![self.endpoint()];
        self.in_fabric(move || async move {
            let store = EtcdStatus::connect(&endpoints, EtcdStatusOptions::default())
                .await
                .map_err(|e| format!("status store: {e}"))?;
            let start = Instant::now();
            loop {
                let (lines, reported) = read_status(&store).await?;
                if reported == WORKLOADS.len() || start.elapsed() > patience {
                    return Ok(lines);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    }

    /// Writes the resources in `yaml` (calico-rs native YAML); the revision of the last
    /// write. Each host's `BlockAffinity` becomes Calico's IPAM affinity (confirmed) and its
    /// block, as IPAM's claim leaves them: it is not a v3 resource.
    pub fn write(&self, yaml: &str) -> Result<Revision, String> {
        let resources = parse_resources(yaml).map_err(|e| format!("demo resources: {e}"))?;
        self.with(move |writer, conn| async move {
            let mut last = 0;
            for r in resources {
                last = match r {
                    Resource::BlockAffinity(b) => put_affinity(&conn, &b.node, b.cidr).await?,
                    Resource::BgpPeer(mut p) => {
                        // A v3 BGPPeer has no hold-time field (to_v3 refuses one): in etcd
                        // the peers keep BGP's default 90 s hold time, which only slows
                        // noticing a dead peer, not converging.
                        p.hold_time = None;
                        upsert(&writer, &Resource::BgpPeer(p)).await?
                    }
                    other => upsert(&writer, &other).await?,
                };
            }
            Ok(last)
        })
    }
}

/// One line per host and how many endpoint reports there are.
async fn read_status(store: &EtcdStatus) -> Result<(Vec<String>, usize), String> {
    let mut lines = Vec::new();
    let mut reported = 0;
    for (host, _) in HOSTS {
        let err = |e: calico_core::datastore::DatastoreError| format!("{host}'s status: {e}");
        let alive = match store.host_status(host).await.map_err(err)? {
            Some(h) => format!("alive (liveness reported at {})", h.time),
            None => "no liveness report".to_string(),
        };
        let eps = store.endpoints(host).await.map_err(err)?;
        reported += eps.len();
        let eps: Vec<String> = eps
            .iter()
            .map(|(id, r)| format!("{} {}", id.workload, r.status_word()))
            .collect();
        lines.push(format!("{host}: {alive}; {}", eps.join(", ")));
    }
    Ok((lines, reported))
}

async fn upsert(writer: &EtcdWriter, r: &Resource) -> Result<Revision, String> {
    writer
        .upsert(r)
        .await
        .map_err(|e| format!("writing {:?} to etcd: {e}", r.key()))
}

/// Puts the confirmed affinity of `cidr` to `host` and the empty block affine to it.
async fn put_affinity(conn: &Connection, host: &str, cidr: IpNet) -> Result<Revision, String> {
    let affinity = AffinityValue::new(AffinityState::Confirmed).to_json();
    let block = AllocationBlock::new(cidr, host).to_json();
    let mut last = 0;
    for (key, value) in [
        (affinity_key(host, cidr), affinity),
        (block_key(cidr), block),
    ] {
        let mut client = conn.client();
        let put = conn
            .call("put", client.put(key.clone(), value, None))
            .await
            .map_err(|e| format!("writing {key}: {e}"))?;
        last = put.header().map_or(0, |h| h.revision()) as Revision;
    }
    Ok(last)
}

/// The datastore revision the agent in the current namespace has programmed (0 while it
/// cannot tell).
fn programmed_here() -> Revision {
    let get = || -> Option<Revision> {
        let addr: SocketAddr = AGENT_HTTP.parse().ok()?;
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut page = String::new();
        s.read_to_string(&mut page).ok()?;
        let body = page.split("\r\n\r\n").nth(1)?;
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        v["datastore"]["programmed_revision"].as_u64()
    };
    get().unwrap_or(0)
}

/// Waits until every host's agent has programmed `revision`; how long after `since` each
/// did (host order), polling every 2 ms from inside each host's namespace.
pub fn wait_programmed(
    hosts: &[Netns],
    revision: Revision,
    since: Instant,
    deadline: Duration,
) -> Result<Vec<Duration>, String> {
    std::thread::scope(|s| {
        let waits: Vec<_> = hosts
            .iter()
            .map(|ns| {
                s.spawn(move || {
                    ns.enter(|| loop {
                        if programmed_here() >= revision {
                            return Some(since.elapsed());
                        }
                        if since.elapsed() > deadline {
                            return None;
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    })
                })
            })
            .collect();
        waits
            .into_iter()
            .zip(HOSTS)
            .map(|(w, (host, _))| match w.join() {
                Ok(Ok(Some(took))) => Ok(took),
                Ok(Ok(None)) => Err(format!(
                    "{host}'s agent did not program revision {revision} within {deadline:?}"
                )),
                Ok(Err(e)) => Err(format!("{host}: {e}")),
                Err(_) => Err(format!("{host}: the status poller panicked")),
            })
            .collect()
    })
}

/// "host-a 12 ms, host-b 14 ms, host-c 11 ms; all three 14 ms".
pub fn latency_line(took: &[Duration]) -> String {
    let ms = |d: &Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let each: Vec<String> = HOSTS
        .iter()
        .zip(took)
        .map(|((host, _), d)| format!("{host} {}", ms(d)))
        .collect();
    let all = took.iter().max().copied().unwrap_or_default();
    format!("{}; all three {}", each.join(", "), ms(&all))
}
