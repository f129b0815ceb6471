//! The IPAM test: 8 OS processes (this test binary, re-executed as workers) assign
//! addresses concurrently against one etcd. No address may be given twice, every block must
//! be owned by exactly one host, and releasing everything must leave every block empty and
//! no handle behind (blocks stay affine to their host, as in Calico).
//!
//! Each worker assigns its addresses (one handle each), reports them in a file, waits for
//! the parent's word, then releases half by address and half by handle, all workers at once.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use calico_core::model::IpPool;
use calico_etcd::ipam::{
    AffinityEntry, AllocationBlock, AssignRequest, Family, Ipam, IpamConfig, HANDLE_PREFIX,
    HOST_AFFINITY_PREFIX,
};
use calico_etcd::testing::EtcdServer;
use etcd_client::{Client, GetOptions};

const WORKER: &str = "worker_process";
const HOSTS: usize = 8;

#[test]
fn eight_processes_assign_1000_addresses_each_from_a_large_pool() {
    run(
        "eight_processes_assign_1000_addresses_each_from_a_large_pool",
        "10.128.0.0/16",
        1000,
        false,
        HOSTS,
    );
}

#[test]
fn eight_processes_share_four_blocks_by_borrowing() {
    // 4 blocks of 64 for 8 hosts wanting 30 each: at least 4 hosts own no block.
    run(
        "eight_processes_share_four_blocks_by_borrowing",
        "10.200.0.0/24",
        30,
        true,
        HOSTS,
    );
}

#[test]
fn eight_processes_on_four_hosts_assign_from_the_same_blocks() {
    // Two processes per host: they claim, fill and release the same blocks at once.
    run(
        "eight_processes_on_four_hosts_assign_from_the_same_blocks",
        "10.64.0.0/16",
        300,
        false,
        4,
    );
}

/// The worker's side, run in a child process (a no-op when the environment does not name
/// a worker: `cargo test` runs it too).
#[test]
fn worker_process() {
    let Ok(dir) = std::env::var("IPAM_WORKER_DIR") else {
        return;
    };
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("worker: {k} unset"));
    let (endpoint, host) = (env("IPAM_WORKER_ENDPOINT"), env("IPAM_WORKER_HOST"));
    let id = env("IPAM_WORKER_ID");
    let count: usize = env("IPAM_WORKER_COUNT").parse().unwrap();
    let pool = ip_pool(&env("IPAM_WORKER_POOL"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(worker(
        Path::new(&dir),
        &endpoint,
        (&id, &host),
        count,
        pool,
    ));
}

/// One worker: `id` names its handles (`<id>.<i>`) and files, `host` is the host it
/// assigns for.
async fn worker(dir: &Path, endpoint: &str, (id, host): (&str, &str), count: usize, pool: IpPool) {
    let client = Client::connect([endpoint], None).await.unwrap();
    let config = IpamConfig {
        pools: vec![pool],
        ..IpamConfig::default()
    };
    let ipam = Ipam::new(&client, host, config).unwrap();
    let mut lines = String::new();
    let mut got = Vec::new();
    for i in 0..count {
        let a = ipam
            .assign(&AssignRequest::new(format!("{id}.{i}"), Family::V4))
            .await
            .unwrap_or_else(|e| panic!("{id}: assignment {i}: {e}"));
        lines.push_str(&format!("{} {} {}\n", a.addr, a.block, a.borrowed));
        got.push(a.addr);
    }
    write_atomically(&dir.join(format!("{id}.assigned")), &lines);
    wait_for(&dir.join("release"), Duration::from_secs(120));
    for (i, addr) in got.iter().enumerate() {
        if i % 2 == 0 {
            assert!(
                ipam.release(*addr).await.unwrap(),
                "{id}: {addr} was not assigned"
            );
        } else {
            let handle = format!("{id}.{i}");
            assert_eq!(
                ipam.release_by_handle(&handle).await.unwrap(),
                vec![*addr],
                "{handle}"
            );
        }
    }
}

/// Runs `HOSTS` worker processes for `hosts` hosts (several processes per host if fewer),
/// each assigning `count` addresses from `pool`, then releasing them.
fn run(test: &str, pool: &str, count: usize, must_borrow: bool, hosts: usize) {
    let Some(etcd) = EtcdServer::start_or_skip(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let mut children: Vec<(String, Child)> = (0..HOSTS)
        .map(|k| {
            let host = format!("host-{}", k % hosts);
            let id = if hosts == HOSTS {
                host.clone()
            } else {
                format!("{host}.p{k}")
            };
            spawn(dir.path(), &etcd.endpoint(), (&id, &host), pool, count)
        })
        .collect();
    let assigned = collect(dir.path(), &mut children, count);
    let assign_time = start.elapsed();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt
        .block_on(Client::connect([etcd.endpoint()], None))
        .unwrap();
    let state = rt.block_on(read_state(&client));
    check_assigned(&assigned, &state, must_borrow);

    std::fs::write(dir.path().join("release"), "").unwrap();
    for (host, child) in &mut children {
        let status = wait_child(child, Duration::from_secs(120));
        assert!(status, "{host} failed:\n{}", output(dir.path(), host));
    }
    let after = rt.block_on(read_state(&client));
    check_released(&state, &after);
    eprintln!(
        "{test}: {} addresses assigned by {HOSTS} processes in {:.1} s, all released in {:.1} s total",
        HOSTS * count,
        assign_time.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
}

/// What etcd holds under `/calico/ipam/v2/`.
struct State {
    blocks: BTreeMap<ipnet::IpNet, AllocationBlock>,
    affinities: Vec<AffinityEntry>,
    handles: Vec<String>,
}

async fn read_state(client: &Client) -> State {
    let mut kv = client.kv_client();
    let list = |prefix: &str| {
        let mut kv = kv.clone();
        let prefix = prefix.to_string();
        async move {
            kv.get(prefix, Some(GetOptions::new().with_prefix()))
                .await
                .unwrap()
        }
    };
    let blocks = list("/calico/ipam/v2/assignment/").await;
    let blocks = blocks
        .kvs()
        .iter()
        .map(|kv| {
            let b = AllocationBlock::parse(kv.key_str().unwrap(), kv.value()).unwrap();
            (b.cidr, b)
        })
        .collect();
    let affinities = list(HOST_AFFINITY_PREFIX).await;
    let affinities = affinities
        .kvs()
        .iter()
        .map(|kv| AffinityEntry::parse(kv.key_str().unwrap(), kv.value()).unwrap())
        .collect();
    let handles = kv
        .get(
            HANDLE_PREFIX,
            Some(GetOptions::new().with_prefix().with_keys_only()),
        )
        .await
        .unwrap();
    let handles = handles
        .kvs()
        .iter()
        .map(|kv| kv.key_str().unwrap().to_string())
        .collect();
    State {
        blocks,
        affinities,
        handles,
    }
}

/// Worker id (`<host>` or `<host>.p<k>`) → (address, block, borrowed) in assignment order.
type Assigned = BTreeMap<String, Vec<(IpAddr, ipnet::IpNet, bool)>>;

fn check_assigned(assigned: &Assigned, state: &State, must_borrow: bool) {
    // No address given twice, and etcd records exactly what the workers were given.
    let mut given = BTreeMap::new();
    for (host, list) in assigned {
        for (i, (addr, _, _)) in list.iter().enumerate() {
            if let Some(other) = given.insert(*addr, format!("{host}.{i}")) {
                panic!("{addr} given twice: {other} and {host}.{i}");
            }
        }
    }
    let in_etcd: BTreeMap<IpAddr, String> = state
        .blocks
        .values()
        .flat_map(|b| {
            b.allocated()
                .map(|(a, h)| (a, h.unwrap().to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        in_etcd, given,
        "etcd's allocations differ from what the workers were given"
    );
    assert_eq!(state.handles.len(), given.len(), "one handle per address");
    // Every block owned by exactly one host: one affinity, confirmed, the block's own.
    let mut owners: BTreeMap<ipnet::IpNet, Vec<&AffinityEntry>> = BTreeMap::new();
    for a in &state.affinities {
        owners.entry(a.block).or_default().push(a);
    }
    for (cidr, block) in &state.blocks {
        let affs = owners.remove(cidr).unwrap_or_default();
        assert!(
            affs.len() == 1 && affs[0].value.owns() && Some(affs[0].host.as_str()) == block.host(),
            "block {cidr} (affinity {:?}) has affinities {affs:?}",
            block.affinity
        );
    }
    assert!(owners.is_empty(), "affinities without a block: {owners:?}");
    // Borrowed means from a block another host owns.
    let mut borrowed = 0;
    for (id, list) in assigned {
        let host = id.split('.').next().unwrap();
        for (addr, cidr, was_borrowed) in list {
            let owner = state.blocks[cidr].host();
            assert!(cidr.contains(addr));
            assert_eq!(
                *was_borrowed,
                owner != Some(host),
                "{host} {addr} in {cidr} of {owner:?}"
            );
            borrowed += usize::from(*was_borrowed);
        }
    }
    assert!(!must_borrow || borrowed > 0, "no host borrowed");
    eprintln!(
        "{} blocks, {borrowed} addresses borrowed",
        state.blocks.len()
    );
}

fn check_released(before: &State, after: &State) {
    assert_eq!(after.handles, Vec::<String>::new(), "handles left behind");
    assert_eq!(
        after.blocks.keys().collect::<Vec<_>>(),
        before.blocks.keys().collect::<Vec<_>>()
    );
    for (cidr, b) in &after.blocks {
        let leaked: Vec<_> = b.allocated().collect();
        assert!(leaked.is_empty(), "{cidr} still holds {leaked:?}");
        assert!(
            b.attributes.is_empty(),
            "{cidr} keeps attributes {:?}",
            b.attributes
        );
        assert_eq!(
            b.free(),
            1 << (32 - cidr.prefix_len()),
            "{cidr} lost free addresses"
        );
        assert_eq!(b.host(), before.blocks[cidr].host(), "{cidr} changed hands");
    }
    assert_eq!(
        after.affinities, before.affinities,
        "affinities changed by releases"
    );
}

fn spawn(
    dir: &Path,
    endpoint: &str,
    (id, host): (&str, &str),
    pool: &str,
    count: usize,
) -> (String, Child) {
    let out = std::fs::File::create(dir.join(format!("{id}.out"))).unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", WORKER, "--nocapture", "--test-threads=1"])
        .env("IPAM_WORKER_DIR", dir)
        .env("IPAM_WORKER_ENDPOINT", endpoint)
        .env("IPAM_WORKER_HOST", host)
        .env("IPAM_WORKER_ID", id)
        .env("IPAM_WORKER_COUNT", count.to_string())
        .env("IPAM_WORKER_POOL", pool)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    (id.to_string(), child)
}

/// Waits for every worker's report of its addresses (failing on a worker that died).
fn collect(dir: &Path, children: &mut [(String, Child)], count: usize) -> Assigned {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut assigned = Assigned::new();
    while assigned.len() < children.len() {
        for (host, child) in children.iter_mut() {
            if assigned.contains_key(host) {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(dir.join(format!("{host}.assigned"))) {
                let list: Vec<_> = text.lines().map(parse_line).collect();
                assert_eq!(list.len(), count, "{host}");
                assigned.insert(host.clone(), list);
            } else if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{host} exited ({status}) before assigning:\n{}",
                    output(dir, host)
                );
            }
        }
        assert!(
            Instant::now() < deadline,
            "workers did not finish assigning within 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assigned
}

fn parse_line(line: &str) -> (IpAddr, ipnet::IpNet, bool) {
    let f: Vec<&str> = line.split(' ').collect();
    (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2] == "true")
}

fn wait_child(child: &mut Child, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.success();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

fn wait_for(path: &Path, within: Duration) {
    let deadline = Instant::now() + within;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn output(dir: &Path, host: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{host}.out"))).unwrap_or_default()
}

fn ip_pool(cidr: &str) -> IpPool {
    IpPool {
        name: "pool".into(),
        cidr: cidr.parse().unwrap(),
        block_size: None,
        disabled: false,
    }
}
