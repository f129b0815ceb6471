//! The command line: every option also has an environment variable (`CALICO_AGENT_*`), as
//! container and systemd deployments expect.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use calico_core::compile::{
    parse_failsafe_list, EndpointToHostAction, FailsafeError, FailsafePort, HostConfig,
};
use calico_ebpf::tc::Blocks;
use clap::{Parser, ValueEnum};

/// Which BGP backend the agent runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BgpChoice {
    /// calico-bgp's native speaker, in this process.
    Native,
    /// A BIRD 2 daemon driven through `--bird-dir`.
    Bird,
    /// FRR's zebra, bfdd and bgpd, run as user `frr` and driven through `--frr-dir`.
    Frr,
    /// No BGP: routes to other hosts come from elsewhere.
    None,
}

/// Which dataplane programs the ACLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DataplaneChoice {
    /// nftables: one table the agent owns (the default).
    Nft,
    /// eBPF programs on the interfaces (calico-ebpf). A subset of the policy features: what
    /// it cannot enforce is refused by name (see calico-ebpf's README).
    Bpf,
}

/// Where the agent's resources come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DatastoreChoice {
    /// A directory of resource files on this host (`--resources`): the single-host default.
    Dir,
    /// etcd v3 in Calico's key layout (`--etcd-endpoints`), shared by every host's agent.
    Etcd,
}

/// calico-agent: keeps one host's routes and policy in line with its datastore (a
/// directory of resource files, or etcd), and spreads the host's routes over BGP.
#[derive(Clone, Debug, Parser)]
#[command(name = "calico-agent", version, about, long_about = None)]
pub struct Options {
    /// The name of this host (node), as resources name it.
    #[arg(long, env = "CALICO_AGENT_NODE")]
    pub node: String,

    /// Where the resources come from.
    #[arg(
        long,
        value_enum,
        default_value = "dir",
        env = "CALICO_AGENT_DATASTORE"
    )]
    pub datastore: DatastoreChoice,

    /// The directory of `*.yaml`/`*.yml` resource files to follow (`--datastore dir`).
    #[arg(
        long,
        env = "CALICO_AGENT_RESOURCES",
        required_if_eq("datastore", "dir")
    )]
    pub resources: Option<PathBuf>,

    /// etcd's client URLs, comma-separated (`--datastore etcd`), e.g.
    /// `https://10.0.0.1:2379,https://10.0.0.2:2379`.
    #[arg(
        long,
        env = "CALICO_AGENT_ETCD_ENDPOINTS",
        value_delimiter = ',',
        required_if_eq("datastore", "etcd")
    )]
    pub etcd_endpoints: Vec<String>,

    /// The CA certificate (PEM) that signed etcd's server certificates.
    #[arg(long, env = "CALICO_AGENT_ETCD_CA_CERT_FILE")]
    pub etcd_ca_cert_file: Option<PathBuf>,

    /// This agent's client certificate (PEM) for etcd.
    #[arg(long, env = "CALICO_AGENT_ETCD_CERT_FILE", requires = "etcd_key_file")]
    pub etcd_cert_file: Option<PathBuf>,

    /// The key (PEM) of `--etcd-cert-file`.
    #[arg(long, env = "CALICO_AGENT_ETCD_KEY_FILE", requires = "etcd_cert_file")]
    pub etcd_key_file: Option<PathBuf>,

    /// `--datastore etcd`: this host's BGP IPv4 address, registered in its `Node` resource
    /// (fields an operator set there and this agent does not are kept).
    #[arg(long, env = "CALICO_AGENT_NODE_IPV4")]
    pub node_ipv4: Option<std::net::Ipv4Addr>,

    /// `--datastore etcd`: this host's BGP IPv6 address, registered in its `Node`.
    #[arg(long, env = "CALICO_AGENT_NODE_IPV6")]
    pub node_ipv6: Option<std::net::Ipv6Addr>,

    /// `--datastore etcd`: this host's own AS number, registered in its `Node`.
    #[arg(long, env = "CALICO_AGENT_NODE_AS")]
    pub node_as: Option<u32>,

    /// `--datastore etcd`: while the watch is quiet, etcd is asked for its status this often,
    /// so a frozen etcd is noticed within about this time. Each agent costs etcd one small
    /// request per period: raise it on large clusters (see the README's layout).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=300),
          env = "CALICO_AGENT_ETCD_PROBE_SECS")]
    pub etcd_probe_secs: u64,

    /// `--datastore etcd`: seconds a dead host's status reports outlive it (the lease).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..=3600),
          env = "CALICO_AGENT_STATUS_TTL_SECS")]
    pub status_ttl_secs: u64,

    /// The BGP backend.
    #[arg(long, value_enum, default_value = "bird", env = "CALICO_AGENT_BGP")]
    pub bgp: BgpChoice,

    /// Same as `--bgp none`.
    #[arg(long, env = "CALICO_AGENT_NO_BGP")]
    pub no_bgp: bool,

    /// Address of the HTTP server (`/metrics`, `/status`, `/liveness`, `/readiness`).
    /// Port 0 picks a free port (logged).
    #[arg(long, default_value = "127.0.0.1:9091", env = "CALICO_AGENT_HTTP")]
    pub http: SocketAddr,

    /// Most HTTP connections served at once; more wait in the listen backlog.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096),
          env = "CALICO_AGENT_HTTP_MAX_CONNECTIONS")]
    pub http_max_connections: u32,

    /// The directory for BIRD's configuration and control socket (`--bgp bird`).
    #[arg(
        long,
        default_value = "/run/calico-rs/bird",
        env = "CALICO_AGENT_BIRD_DIR"
    )]
    pub bird_dir: PathBuf,

    /// The directory for FRR's configuration, pid files and vty sockets (`--bgp frr`); the
    /// host's own FRR (`/etc/frr`) is left alone.
    #[arg(
        long,
        default_value = "/run/calico-rs/frr",
        env = "CALICO_AGENT_FRR_DIR"
    )]
    pub frr_dir: PathBuf,

    /// Which dataplane programs the ACLs: `nft` (one nftables table) or `bpf` (eBPF
    /// programs on the interfaces; calico-ebpf's README says what it supports).
    #[arg(
        long,
        value_enum,
        default_value = "nft",
        env = "CALICO_AGENT_DATAPLANE"
    )]
    pub dataplane: DataplaneChoice,

    /// With `--dataplane bpf`: the license the generated eBPF programs declare. The kernel
    /// lets only programs declaring a GPL-compatible license use the route lookup they
    /// need, so there is no default: the operator states it.
    #[arg(long, env = "CALICO_AGENT_BPF_LICENSE")]
    pub bpf_license: Option<String>,

    /// With `--dataplane bpf`: host interfaces to filter besides those of workloads and
    /// named host endpoints (the uplinks), comma-separated.
    #[arg(long, value_delimiter = ',', env = "CALICO_AGENT_BPF_HOST_INTERFACES")]
    pub bpf_host_interfaces: Vec<String>,

    /// With `--dataplane bpf`: the indexes of the two shared tc blocks, `INGRESS,EGRESS`
    /// (decimal or `0x` hex), that every filtered interface's clsact qdisc is bound to.
    /// Change them only when another program on the host binds qdiscs to
    /// `0xca1e0001,0xca1e0002`, the default.
    #[arg(long, value_parser = tc_blocks, env = "CALICO_AGENT_BPF_TC_BLOCKS")]
    pub bpf_tc_blocks: Option<Blocks>,

    /// The nftables table (family inet) the agent owns.
    #[arg(long, default_value = "calico", env = "CALICO_AGENT_NFT_TABLE")]
    pub nft_table: String,

    /// The directory of the lock that keeps a second agent off the same table in the same
    /// network namespace.
    #[arg(long, default_value = "/run/calico-rs", env = "CALICO_AGENT_LOCK_DIR")]
    pub lock_dir: PathBuf,

    /// Seconds between full resyncs of the dataplane (kernel events repair drift at once;
    /// this is the backstop).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..),
          env = "CALICO_AGENT_RESYNC_SECS")]
    pub resync_secs: u64,

    /// Do not listen for changes made to the ACL table behind the agent's back: such drift is
    /// then repaired only by the periodic resync (`--resync-secs`), not within milliseconds.
    /// For seeing drift with `calico-rs trace` and testing it; not for production.
    #[arg(long, env = "CALICO_AGENT_NO_ACL_DRIFT_WATCH")]
    pub no_acl_drift_watch: bool,

    /// Seconds between full re-reads of the resource directory (inotify reports changes at
    /// once; this is the backstop).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..),
          env = "CALICO_AGENT_RESCAN_SECS")]
    pub rescan_secs: u64,

    /// Milliseconds a changed or removed resource file must stay unchanged before it counts
    /// (a file being written is not read as deleted resources).
    #[arg(long, default_value_t = 500, env = "CALICO_AGENT_SETTLE_MS")]
    pub settle_ms: u64,

    /// A change removing more than this fraction of the applied resources (and at least
    /// `--delete-guard-min` of them), or all of them, is held until confirmed by creating
    /// `.calico-confirm-deletions` in the resource directory.
    #[arg(long, default_value_t = 0.5, value_parser = fraction, env = "CALICO_AGENT_MAX_DELETE_FRACTION")]
    pub max_delete_fraction: f64,

    /// Removals of fewer resources than this are never held (unless they remove all).
    #[arg(long, default_value_t = 10, env = "CALICO_AGENT_DELETE_GUARD_MIN")]
    pub delete_guard_min: usize,

    /// Largest resource file read, in bytes.
    #[arg(long, default_value_t = 64 << 20, env = "CALICO_AGENT_MAX_FILE_BYTES")]
    pub max_file_bytes: u64,

    /// Native speaker: the graceful-restart time (RFC 4724) in seconds.
    #[arg(
        long,
        default_value_t = 120,
        conflicts_with = "no_graceful_restart",
        env = "CALICO_AGENT_GRACEFUL_RESTART_SECS"
    )]
    pub graceful_restart_secs: u64,

    /// Native speaker: no graceful restart (peers withdraw our routes as soon as we stop).
    #[arg(long, env = "CALICO_AGENT_NO_GRACEFUL_RESTART")]
    pub no_graceful_restart: bool,

    /// Seconds to wait at SIGTERM for the reconciliation pass in progress before exiting
    /// anyway (the dataplane stays consistent: nftables changes are atomic).
    #[arg(long, default_value_t = 5, env = "CALICO_AGENT_SHUTDOWN_TIMEOUT_SECS")]
    pub shutdown_timeout_secs: u64,

    /// Flow logs: the ACLs log allowed connections and (rate-limited) denied packets to a
    /// netlink log group; the agent aggregates them per interval, named by policy and rule,
    /// and serves them at `GET /flows`, as metrics and optionally into a file. Staged
    /// policies are evaluated in the kernel only with flow logs: they report what they would
    /// deny through them (`staged-deny` records, `calico_agent_staged_policy_denied_packets`).
    #[arg(long, env = "CALICO_AGENT_FLOW_LOGS")]
    pub flow_logs: bool,

    /// Flow logs: seconds per aggregation interval (records appear after one).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..3600),
          env = "CALICO_AGENT_FLOW_LOG_INTERVAL_SECS")]
    pub flow_log_interval_secs: u64,

    /// Flow logs: the netlink log (NFLOG) group the rules log to.
    #[arg(long, default_value_t = 20, env = "CALICO_AGENT_FLOW_LOG_GROUP")]
    pub flow_log_group: u16,

    /// Flow logs: distinct flows recorded per interval at most (more are counted as dropped).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000),
          env = "CALICO_AGENT_FLOW_LOG_MAX_FLOWS")]
    pub flow_log_max_flows: u64,

    /// Flow logs: a file the records are appended to, one JSON object a line.
    #[arg(long, env = "CALICO_AGENT_FLOW_LOG_FILE")]
    pub flow_log_file: Option<PathBuf>,

    /// Traffic from a workload to the host itself, once the workload's egress policy
    /// allowed it: Drop (Felix's default), Accept, or Return (Accept: nftables cannot hand
    /// a packet back to another table's rules). IPv6 neighbour discovery always passes.
    #[arg(long, default_value = "Drop", value_parser = endpoint_to_host,
          env = "CALICO_AGENT_DEFAULT_ENDPOINT_TO_HOST_ACTION")]
    pub default_endpoint_to_host_action: EndpointToHostAction,

    /// Ports to the host no host-endpoint policy can close, comma-separated, or `none`
    /// (Felix's FailsafeInboundHostPorts and notation; its default): `tcp:22`, a bare port
    /// (TCP), or with the network the source must be in, `tcp:10.0.0.0/8:22` or
    /// `tcp:[fd00::/8]:22` (an IPv4 network opens nothing to IPv6, and the reverse).
    #[arg(long, default_value = DEFAULT_INBOUND, value_parser = failsafe_ports,
          env = "CALICO_AGENT_FAILSAFE_INBOUND_HOST_PORTS")]
    pub failsafe_inbound_host_ports: FailsafePorts,

    /// Ports the host may always reach out to, whatever its host-endpoint policy
    /// (Felix's FailsafeOutboundHostPorts; its default), as the inbound list writes them;
    /// a network is the one the destination must be in (`udp:10.0.0.0/8:53`).
    #[arg(long, default_value = DEFAULT_OUTBOUND, value_parser = failsafe_ports,
          env = "CALICO_AGENT_FAILSAFE_OUTBOUND_HOST_PORTS")]
    pub failsafe_outbound_host_ports: FailsafePorts,

    /// OpenStack's special cases: workloads may always reach the host's DHCP (UDP 67,
    /// 547) and DNS (UDP 53), before their egress policy.
    #[arg(long, env = "CALICO_AGENT_OPENSTACK_SPECIAL_CASES")]
    pub openstack_special_cases: bool,

    /// Workloads may send from the networks their endpoints list in
    /// `allowSpoofedSourcePrefixes` (`Any`), or not (`Disabled`, the default): Felix's
    /// WorkloadSourceSpoofing. With `Any` their interfaces get no strict reverse-path
    /// filter; the host's `net.ipv4.conf.all.rp_filter` must then not be 1.
    #[arg(
        long,
        value_enum,
        default_value = "Disabled",
        env = "CALICO_AGENT_WORKLOAD_SOURCE_SPOOFING"
    )]
    pub workload_source_spoofing: SourceSpoofing,

    /// Workloads' floating IPs (`ipNATs`) are in effect (`Enabled`) or not (`Disabled`, the
    /// default): Felix's FloatingIPs. An OpenStack endpoint's are in effect either way.
    #[arg(
        long,
        value_enum,
        default_value = "Disabled",
        env = "CALICO_AGENT_FLOATING_IPS"
    )]
    pub floating_ips: FloatingIps,
}

/// Felix's `FloatingIPs` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FloatingIps {
    /// Only OpenStack endpoints' `ipNATs` are in effect.
    #[value(name = "Disabled")]
    Disabled,
    /// Every endpoint's `ipNATs` are in effect.
    #[value(name = "Enabled")]
    Enabled,
}

/// Felix's `WorkloadSourceSpoofing` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SourceSpoofing {
    /// `allowSpoofedSourcePrefixes` is ignored.
    #[value(name = "Disabled")]
    Disabled,
    /// `allowSpoofedSourcePrefixes` is honoured.
    #[value(name = "Any")]
    Any,
}

/// Felix's default inbound failsafe ports, as the flag takes them.
const DEFAULT_INBOUND: &str =
    "tcp:22,udp:68,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667";
/// Felix's default outbound failsafe ports.
const DEFAULT_OUTBOUND: &str =
    "udp:53,udp:67,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667";

/// A list of failsafe ports (a type of its own so that clap takes the list whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailsafePorts(pub Vec<FailsafePort>);

fn failsafe_ports(s: &str) -> Result<FailsafePorts, FailsafeError> {
    parse_failsafe_list(s).map(FailsafePorts)
}

fn endpoint_to_host(s: &str) -> Result<EndpointToHostAction, String> {
    s.parse()
}

/// Two tc block indexes, `INGRESS,EGRESS`, each decimal or `0x` hex, nonzero and
/// different.
fn tc_blocks(s: &str) -> Result<Blocks, String> {
    let index = |v: &str| {
        let v = v.trim();
        let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
            Some(hex) => u32::from_str_radix(hex, 16),
            None => v.parse(),
        };
        parsed.map_err(|_| format!("{v:?} is not a tc block index (a u32, decimal or 0x hex)"))
    };
    let Some((ingress, egress)) = s.split_once(',') else {
        return Err(format!("{s:?}: want two block indexes, INGRESS,EGRESS"));
    };
    let blocks = Blocks {
        ingress: index(ingress)?,
        egress: index(egress)?,
    };
    blocks.check()?;
    Ok(blocks)
}

fn fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number between 0 and 1"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 1"))
    }
}

impl Options {
    /// The BGP backend, `--no-bgp` taken into account.
    pub fn bgp_choice(&self) -> BgpChoice {
        if self.no_bgp {
            BgpChoice::None
        } else {
            self.bgp
        }
    }

    /// The host's protection settings.
    pub fn host_config(&self) -> HostConfig {
        HostConfig {
            endpoint_to_host: self.default_endpoint_to_host_action,
            failsafe_inbound: self.failsafe_inbound_host_ports.0.clone(),
            failsafe_outbound: self.failsafe_outbound_host_ports.0.clone(),
            openstack_special_cases: self.openstack_special_cases,
            ..HostConfig::default()
        }
    }

    /// The flow-log settings; `None` without `--flow-logs`.
    pub fn flow_settings(&self) -> Option<crate::flows::FlowSettings> {
        self.flow_logs.then(|| crate::flows::FlowSettings {
            group: self.flow_log_group,
            interval: Duration::from_secs(self.flow_log_interval_secs),
            max_flows: self.flow_log_max_flows as usize,
            recent: 1000,
            file: self.flow_log_file.clone(),
        })
    }

    /// The graceful-restart time of the native speaker; `None`: off.
    pub fn graceful_restart(&self) -> Option<Duration> {
        (!self.no_graceful_restart).then(|| Duration::from_secs(self.graceful_restart_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Options::try_parse_from(
            ["calico-agent", "--node", "a"].iter().chain(
                if args.iter().any(|a| a.starts_with("--datastore")) {
                    &[][..]
                } else {
                    &["--resources", "/tmp/r"][..]
                }
                .iter()
                .chain(args),
            ),
        )
    }

    #[test]
    fn defaults_and_switches() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.bgp_choice(), BgpChoice::Bird);
        assert_eq!(o.graceful_restart(), Some(Duration::from_secs(120)));
        let o = parse(&["--bgp", "frr", "--frr-dir", "/run/x"]).unwrap();
        assert_eq!(
            (o.bgp_choice(), o.frr_dir.to_str()),
            (BgpChoice::Frr, Some("/run/x"))
        );
        let o = parse(&["--no-bgp", "--no-graceful-restart"]).unwrap();
        assert_eq!(o.bgp_choice(), BgpChoice::None);
        assert_eq!(o.graceful_restart(), None);
    }

    #[test]
    fn tc_blocks_are_two_different_nonzero_indexes() {
        let o = parse(&["--bpf-tc-blocks", "0x10,17"]).unwrap();
        assert_eq!(
            o.bpf_tc_blocks,
            Some(Blocks {
                ingress: 16,
                egress: 17
            })
        );
        assert_eq!(parse(&[]).unwrap().bpf_tc_blocks, None);
        for (bad, why) in [
            ("7", "two block indexes"),
            ("0,1", "nonzero"),
            ("5,5", "must differ"),
            ("1,0xg", "not a tc block index"),
            ("1,4294967296", "not a tc block index"),
        ] {
            let e = parse(&["--bpf-tc-blocks", bad]).unwrap_err().to_string();
            assert!(
                e.contains("--bpf-tc-blocks") && e.contains(why),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn bad_values_name_the_option() {
        let e = parse(&["--max-delete-fraction", "1.5"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--max-delete-fraction") && e.contains("between 0 and 1"),
            "{e}"
        );
        let e = parse(&["--http", "nowhere"]).unwrap_err().to_string();
        assert!(e.contains("--http"), "{e}");
        let e = parse(&["--bgp", "quagga"]).unwrap_err().to_string();
        assert!(e.contains("native") && e.contains("bird"), "{e}");
    }

    #[test]
    fn each_datastore_needs_its_own_options() {
        let e = parse(&["--datastore", "etcd"]).unwrap_err().to_string();
        assert!(e.contains("--etcd-endpoints"), "{e}");
        let e = parse(&["--datastore", "dir"]).unwrap_err().to_string();
        assert!(e.contains("--resources"), "{e}");
        let o = parse(&[
            "--datastore",
            "etcd",
            "--etcd-endpoints",
            "http://a:2379,http://b:2379",
        ])
        .unwrap();
        assert_eq!(o.etcd_endpoints, ["http://a:2379", "http://b:2379"]);
        let e = parse(&[
            "--datastore=etcd",
            "--etcd-endpoints=http://a:2379",
            "--etcd-cert-file=/c.pem",
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("--etcd-key-file"), "{e}");
    }

    #[test]
    fn host_protection_takes_felixs_defaults_and_notation() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.host_config(), HostConfig::default());
        let o = parse(&[
            "--default-endpoint-to-host-action",
            "Accept",
            "--failsafe-inbound-host-ports",
            "tcp:22, udp:68",
            "--failsafe-outbound-host-ports",
            "none",
            "--openstack-special-cases",
        ])
        .unwrap();
        let h = o.host_config();
        assert_eq!(o.workload_source_spoofing, SourceSpoofing::Disabled);
        assert_eq!(h.endpoint_to_host, EndpointToHostAction::Accept);
        let inbound: Vec<String> = h.failsafe_inbound.iter().map(|p| p.to_string()).collect();
        assert_eq!(inbound, ["tcp:22", "udp:68"]);
        assert!(h.failsafe_outbound.is_empty() && h.openstack_special_cases);
        let e = parse(&["--failsafe-inbound-host-ports", "tcp:22,ssh"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--failsafe-inbound-host-ports") && e.contains("ssh"),
            "{e}"
        );
        // With networks, as Felix writes them; a bad one named with its reason.
        let o = parse(&[
            "--failsafe-inbound-host-ports",
            "tcp:10.0.0.0/8:22,udp:[fd00::/8]:68,179",
            "--failsafe-outbound-host-ports",
            "udp:192.0.2.53:53",
        ])
        .unwrap();
        let h = o.host_config();
        let inbound: Vec<String> = h.failsafe_inbound.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            inbound,
            ["tcp:10.0.0.0/8:22", "udp:[fd00::/8]:68", "tcp:179"]
        );
        assert_eq!(h.failsafe_outbound[0].to_string(), "udp:192.0.2.53/32:53");
        let e = parse(&["--failsafe-outbound-host-ports", "udp:10.0.0.0/33:53"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("udp:10.0.0.0/33:53") && e.contains("not a CIDR"),
            "{e}"
        );
        let o = parse(&["--workload-source-spoofing", "Any"]).unwrap();
        assert_eq!(o.workload_source_spoofing, SourceSpoofing::Any);
        assert_eq!(o.floating_ips, FloatingIps::Disabled);
        let o = parse(&["--floating-ips", "Enabled"]).unwrap();
        assert_eq!(o.floating_ips, FloatingIps::Enabled);
        let e = parse(&["--default-endpoint-to-host-action", "Allow"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("Drop, Accept or Return"), "{e}");
    }
}
