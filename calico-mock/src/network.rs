//! [`MockNetwork`]: several hosts, each with its own FIB, ACLs and BGP speaker, joined by a
//! routed fabric; packets sent between workloads are routed and filtered hop by hop exactly
//! as the compiled IR says.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use calico_core::compile::{describe, CompileConfig, Compiler};
use calico_core::dataplane::diff;
use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::RouteTarget;
use calico_core::eval::Packet;
use calico_core::model::{Model, Update, ValidationError, WorkloadEndpoint};
use calico_core::routes::{desired_routes, fib_diff, local_exports};

use crate::acl::MockAcl;
use crate::bgp::{MockBgp, MockBgpFabric};
use crate::fib::MockFib;
use crate::interpreter::{ConnState, PacketContext};

/// Name of every host's interface to the fabric.
pub const FABRIC_INTERFACE: &str = "fabric0";

/// One simulated host.
#[derive(Debug)]
pub struct MockHost {
    /// Host (node) name.
    pub name: String,
    /// Address on the fabric (its BGP next hop).
    pub address: IpAddr,
    /// Its forwarding table.
    pub fib: MockFib,
    /// Its ACL table.
    pub acl: MockAcl,
    /// Its BGP speaker.
    pub bgp: MockBgp,
    compiler: Compiler,
}

impl MockHost {
    /// The compiler that programs its ACL table: the rules it compiled from the model (with
    /// the host's settings), as an agent's [`calico_core::agent::AgentHandle::compiled`]
    /// hands them out.
    pub fn compiler(&self) -> &Compiler {
        &self.compiler
    }
}

/// What happened to a packet at one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// The host.
    pub host: String,
    /// Interface it came in on.
    pub iif: String,
    /// Interface it was routed to (empty when there was no route).
    pub oif: String,
    /// Whether the host's ACLs let it through.
    pub accepted: bool,
    /// The ACL rules that matched (`chain#index`).
    pub trace: Vec<String>,
    /// The packet as it arrived and as it left, when the host translated it (NAT, or
    /// conntrack reversing a NAT on a reply).
    pub nat: Option<(Packet, Packet)>,
}

/// The fate of a packet sent with [`MockNetwork::send`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Whether it reached its destination workload.
    pub delivered: bool,
    /// Each host it crossed.
    pub hops: Vec<Hop>,
    /// Why it was not delivered.
    pub reason: Option<String>,
    /// The packet as the destination workload received it (its addresses translated by
    /// the NATs on the way), when delivered.
    pub received: Option<Packet>,
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.reason, self.delivered) {
            (_, true) => write!(f, "delivered")?,
            (Some(r), false) => write!(f, "dropped: {r}")?,
            (None, false) => write!(f, "dropped")?,
        }
        for h in &self.hops {
            write!(
                f,
                "\n  {} {} -> {}: {} [{}]",
                h.host,
                h.iif,
                if h.oif.is_empty() {
                    "(no route)"
                } else {
                    &h.oif
                },
                if h.accepted { "accepted" } else { "dropped" },
                h.trace.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Why a packet could not be sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The source address is not a workload of the network.
    #[error("{0} is not the address of any workload")]
    UnknownSource(IpAddr),
    /// A reply to a packet that was not delivered: there is no connection to reply on.
    #[error("the packet was not delivered: there is no connection to reply on")]
    NotDelivered,
    /// The workload's host is not part of the network.
    #[error("workload {workload} is on node {node}, which is not a host of the network")]
    UnknownHost {
        /// The workload.
        workload: String,
        /// Its node.
        node: String,
    },
}

/// A simulated multi-host Calico network: the backend orchestrator authors use in their own
/// tests. Feed it the same [`Update`]s you would send to the agents; each host compiles its
/// ACLs and routes for itself, hosts exchange workload routes through [`MockBgp`], and
/// [`MockNetwork::send`] tells whether a packet is delivered, and if not, where and why it
/// was dropped.
///
/// ```
/// use calico_core::eval::Packet;
/// use calico_core::model::{parse_resources, Update};
/// use calico_mock::MockNetwork;
///
/// let mut net = MockNetwork::new();
/// net.add_host("h1", "192.0.2.1".parse().unwrap());
/// net.add_host("h2", "192.0.2.2".parse().unwrap());
/// for r in parse_resources(r#"
/// kind: WorkloadEndpoint
/// orchestrator: k8s
/// workload: web
/// endpoint: eth0
/// node: h1
/// interfaceName: cali-web
/// ipNetworks: [10.65.0.1/32]
/// labels: {app: web}
/// profiles: [open]
/// ---
/// kind: WorkloadEndpoint
/// orchestrator: k8s
/// workload: db
/// endpoint: eth0
/// node: h2
/// interfaceName: cali-db
/// ipNetworks: [10.65.1.1/32]
/// labels: {app: db}
/// profiles: [open]
/// ---
/// kind: Profile
/// name: open
/// ingress: [{action: Allow}]
/// egress: [{action: Allow}]
/// ---
/// kind: Policy
/// name: db
/// selector: app == 'db'
/// ingress: [{action: Allow, protocol: TCP, source: {selector: app == 'web'}, destination: {ports: [5432]}}]
/// "#).unwrap() {
///     net.apply(Update::Upsert(r)).unwrap();
/// }
/// let (web, db) = ("10.65.0.1".parse().unwrap(), "10.65.1.1".parse().unwrap());
/// assert!(net.send(&Packet::tcp(web, 40000, db, 5432)).unwrap().delivered);
/// let denied = net.send(&Packet::tcp(web, 40000, db, 22)).unwrap();
/// assert!(!denied.delivered);
/// assert_eq!(denied.hops.last().unwrap().host, "h2");
/// ```
#[derive(Debug, Default)]
pub struct MockNetwork {
    hosts: BTreeMap<String, MockHost>,
    fabric: MockBgpFabric,
    model: Model,
    floating_ips: bool,
}

impl MockNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty network whose hosts put workloads' floating IPs (`ipNATs`) in effect, as
    /// agents with `AgentBuilder::floating_ips(true)` (Felix's `FloatingIPs: Enabled`) do.
    /// Without it, only OpenStack endpoints' floating IPs are.
    pub fn with_floating_ips() -> Self {
        MockNetwork {
            floating_ips: true,
            ..Self::default()
        }
    }

    /// Adds a host with its fabric address.
    pub fn add_host(&mut self, name: &str, address: IpAddr) {
        let config = CompileConfig {
            floating_ips: self.floating_ips,
            ..CompileConfig::new(name)
        };
        let mut compiler = Compiler::from_model(config, &self.model);
        let acl = MockAcl::new();
        // Program the fresh table as the agent would: one transaction, checked as the
        // kernel checks it.
        acl.apply_now(&diff(&Ruleset::default(), compiler.ruleset()))
            .expect("a compiled ruleset commits on an empty table");
        compiler.take_changes();
        self.hosts.insert(
            name.to_string(),
            MockHost {
                name: name.to_string(),
                address,
                fib: MockFib::new(),
                acl,
                bgp: self.fabric.speaker(address),
                compiler,
            },
        );
        self.sync();
    }

    /// The hosts.
    pub fn hosts(&self) -> impl Iterator<Item = &MockHost> {
        self.hosts.values()
    }

    /// The BGP fabric (to take a host's speaker down, for instance).
    pub fn fabric(&self) -> &MockBgpFabric {
        &self.fabric
    }

    /// The model as fed so far.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Applies an update on every host. Invalid resources are rejected and change nothing.
    pub fn apply(&mut self, update: Update) -> Result<(), ValidationError> {
        if let Update::Upsert(r) = &update {
            r.validate()?;
        }
        let applied = self.model.apply_valid(update);
        for host in self.hosts.values_mut() {
            host.compiler.apply(&self.model, &applied);
            let changes = host.compiler.take_changes();
            // A refusal here is a compiler bug (its change sets are computed against the
            // state it programmed), not bad input: the update itself was validated above.
            host.acl
                .apply_now(&changes)
                .expect("compiler change sets commit on the state they were computed against");
        }
        self.sync();
        Ok(())
    }

    /// Re-exports every host's workload routes and reprograms every FIB.
    pub fn sync(&mut self) {
        for host in self.hosts.values() {
            host.bgp.export(
                &local_exports(&host.name, &self.model, self.floating_ips)
                    .into_keys()
                    .collect(),
            );
            for ep in self.model.workload_endpoints.values() {
                if ep.node == host.name {
                    host.fib.add_interface(&ep.interface_name);
                }
            }
        }
        for host in self.hosts.values() {
            let learned = self.fabric.learned_by(host.address);
            let desired = desired_routes(&host.name, &self.model, &learned, self.floating_ips);
            let current: Vec<_> = host
                .fib
                .routes()
                .into_iter()
                .map(|(dst, target)| calico_core::dataplane::Route { dst, target })
                .collect();
            let changes = fib_diff(&desired, &current);
            host.fib.apply_changes(&changes);
        }
    }

    /// Rule `index` of `chain` on `host`, named as the user wrote it (the policy or profile
    /// and the user's rule index, or what the rule is for); the IR's `chain#index` only for a
    /// rule the model does not explain.
    fn rule_named(&self, host: &MockHost, chain: &str, index: usize) -> String {
        describe(&self.model, &host.name, &host.acl.ruleset())
            .rule(chain, index)
            .map_or_else(|| format!("rule {chain}#{index}"), |r| r.to_string())
    }

    fn owner(&self, addr: IpAddr) -> Option<&WorkloadEndpoint> {
        self.model
            .workload_endpoints
            .values()
            .find(|ep| ep.ip_networks.iter().any(|n| n.addr() == addr))
    }

    /// Sends the first packet of a flow from the workload owning `packet.src`.
    pub fn send(&self, packet: &Packet) -> Result<Delivery, SendError> {
        self.send_with_state(packet, ConnState::New)
    }

    /// Sends a packet with a given conntrack state.
    pub fn send_with_state(&self, packet: &Packet, ct: ConnState) -> Result<Delivery, SendError> {
        self.carry(packet.clone(), ct, &[])
    }

    /// Sends the reply to a delivered packet, from the workload that received it, as a
    /// packet of the established connection: each host that translated the original
    /// reverses it, as conntrack does (a floating IP's replies come back from the floating
    /// IP).
    pub fn reply(&self, original: &Delivery) -> Result<Delivery, SendError> {
        let received = original.received.as_ref().ok_or(SendError::NotDelivered)?;
        self.carry(reply_to(received), ConnState::Established, &original.hops)
    }

    /// Routes and filters `packet` from the workload owning its source, hop by hop;
    /// `connection`: the original's hops, when `packet` is a reply.
    fn carry(
        &self,
        mut packet: Packet,
        ct: ConnState,
        connection: &[Hop],
    ) -> Result<Delivery, SendError> {
        let src = self
            .owner(packet.src)
            .ok_or(SendError::UnknownSource(packet.src))?;
        let mut host = self
            .hosts
            .get(&src.node)
            .ok_or_else(|| SendError::UnknownHost {
                workload: src.id.to_string(),
                node: src.node.clone(),
            })?;
        let mut iif = src.interface_name.clone();
        let mut hops = Vec::new();
        let delivery = |delivered: bool, hops, reason: Option<String>, packet: Option<Packet>| {
            Ok(Delivery {
                delivered,
                hops,
                reason,
                received: packet.filter(|_| delivered),
            })
        };
        for _ in 0..8 {
            let arrived = packet.clone();
            // Conntrack's reversal of the original's translations on this host: its source
            // NAT before routing, its destination NAT after.
            let undo = connection
                .iter()
                .find(|h| h.host == host.name)
                .and_then(|h| h.nat.as_ref());
            if let Some((before, after)) = undo {
                if packet.dst == after.src {
                    packet.dst = before.src;
                }
            }
            let pre = host.acl.prerouting(&PacketContext {
                packet: &packet,
                iif: &iif,
                oif: "",
                ct,
            });
            packet = pre.packet.clone();
            let route = host.fib.lookup(packet.dst);
            let (oif, next) = match route.map(|(_, t)| t) {
                Some(RouteTarget::Workload { interface }) => (interface, None),
                Some(RouteTarget::Via(hops_)) => {
                    let gw = flow_hash_pick(&packet, hops_.iter().map(|h| h.gateway).collect());
                    (FABRIC_INTERFACE.to_string(), Some(gw))
                }
                Some(RouteTarget::Blackhole) | None if pre.accepted => {
                    hops.push(Hop {
                        host: host.name.clone(),
                        iif: iif.clone(),
                        oif: String::new(),
                        accepted: false,
                        trace: pre.trace,
                        nat: None,
                    });
                    let reason = format!("{}: no route to {}", host.name, packet.dst);
                    return delivery(false, hops, Some(reason), None);
                }
                Some(RouteTarget::Blackhole) | None => (String::new(), None),
            };
            let outcome = if pre.accepted {
                let ctx = PacketContext {
                    packet: &packet,
                    iif: &iif,
                    oif: &oif,
                    ct,
                };
                host.acl.forwarding(&ctx, pre.mark)
            } else {
                pre
            };
            packet = outcome.packet.clone();
            if let Some((before, after)) = undo {
                if packet.src == after.dst {
                    packet.src = before.dst;
                }
            }
            hops.push(Hop {
                host: host.name.clone(),
                iif: iif.clone(),
                oif: oif.clone(),
                accepted: outcome.accepted,
                trace: outcome.trace.clone(),
                nat: (packet != arrived).then(|| (arrived, packet.clone())),
            });
            if !outcome.accepted {
                let at = outcome
                    .decided_by
                    .map(|(c, i)| format!(": {}", self.rule_named(host, &c, i)))
                    .unwrap_or_default();
                let reason = format!("{}: dropped by policy{at}", host.name);
                return delivery(false, hops, Some(reason), None);
            }
            let Some(gw) = next else {
                return delivery(true, hops, None, Some(packet));
            };
            match self.hosts.values().find(|h| h.address == gw) {
                Some(h) => host = h,
                None => {
                    let reason = format!("next hop {gw} is not a host of the network");
                    return delivery(false, hops, Some(reason), None);
                }
            }
            iif = FABRIC_INTERFACE.to_string();
        }
        delivery(false, hops, Some("routing loop".into()), None)
    }
}

/// The reply to `p`: addresses and ports swapped; an echo request answered by an echo reply.
fn reply_to(p: &Packet) -> Packet {
    let icmp_type = match (p.is_ipv4(), p.icmp_type) {
        (true, Some(8)) => Some(0),
        (false, Some(128)) => Some(129),
        (_, t) => t,
    };
    Packet {
        src: p.dst,
        dst: p.src,
        src_port: p.dst_port,
        dst_port: p.src_port,
        icmp_type,
        ..p.clone()
    }
}

/// Picks one next hop of an ECMP route by hashing the flow, as the kernel does.
fn flow_hash_pick(p: &Packet, hops: Vec<IpAddr>) -> IpAddr {
    let key = format!("{}{}{:?}{:?}", p.src, p.dst, p.src_port, p.dst_port);
    let h = key
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    hops[h as usize % hops.len()]
}
