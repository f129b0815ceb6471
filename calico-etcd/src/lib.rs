//! # calico-etcd
//!
//! calico-rs's cluster datastore on etcd v3, in Calico's own key layout, so a cluster that
//! `calicoctl` set up in etcd can be served by calico-rs agents unchanged. It implements
//! calico-core's [`ResourceSource`](calico_core::datastore::ResourceSource)
//! ([`EtcdSource`]) and [`ResourceWriter`](calico_core::datastore::ResourceWriter)
//! ([`EtcdWriter`]); the gRPC client stays out of calico-core.
//!
//! ```no_run
//! use calico_core::datastore::{ResourceSource, ResourceWriter};
//! use calico_etcd::{EtcdConfig, EtcdSource, EtcdWriter};
//!
//! # async fn demo() -> Result<(), calico_core::datastore::DatastoreError> {
//! let config = EtcdConfig::new(["http://127.0.0.1:2379"]);
//! let mut source: Box<dyn ResourceSource> = Box::new(EtcdSource::new(config.clone())?);
//! let writer: Box<dyn ResourceWriter> = Box::new(EtcdWriter::connect(&config).await?);
//! let first = source.next().await?; // a Snapshot, or Unavailable while etcd is away
//! # let _ = (first, writer); Ok(()) }
//! ```
//!
//! ## Layout ([`layout`])
//!
//! `<prefix>/resources/v3/projectcalico.org/<plural>/[<namespace>/]<name>`, `<prefix>`
//! `/calico` by default; names unescaped; workload endpoints named
//! `<node>-<orchestrator>-<workload>-<endpoint>` with each part's `-` doubled; default-tier
//! policies read as Calico 3.30 reads them (the `projectcalico.org/metadata` annotation's
//! name, else the stored name without `default.`) and written in the 3.30 form.
//!
//! ## Kinds ([`codec`])
//!
//! Read: NetworkPolicy, GlobalNetworkPolicy, Tier, NetworkSet, GlobalNetworkSet, Profile,
//! HostEndpoint, IPPool, BGPConfiguration, BGPPeer, BGPFilter, Node, WorkloadEndpoint — each value is checked against its key
//! (kind, name, namespace) and read by calico-core's `projectcalico.org/v3` reader; a value
//! that fails is refused alone, with its key and field, and everything else proceeds.
//! Reported as unsupported and ignored (a debug log and a count,
//! [`EtcdSource::unsupported`], never a refusal): ClusterInformation, FelixConfiguration,
//! KubeControllersConfiguration, the staged policies,
//! IPReservation, CalicoNodeStatus, IPAMConfiguration/IPAMConfig, BlockAffinity
//! (under the resources path), LiveMigration, the Kubernetes-backed kinds, and any plural
//! Calico does not register.
//!
//! ## Watch, resume, compaction ([`source`])
//!
//! A snapshot at one revision (paginated ranges pinned to it), then a watch from its
//! revision + 1, one [`Changes`](calico_core::datastore::Changes) per watch response. A lost
//! connection, an ended stream or a liveness probe left unanswered (a frozen etcd) is
//! announced once as `Unavailable`; the source retries with back-off (100 ms .. 5 s,
//! jitter) and resumes from the last revision delivered + 1, so nothing is lost or applied
//! twice; an empty `Changes` says it is back. A compacted history brings a new `Snapshot`
//! (diffed by the follower, never a flush). Other key prefixes (IPAM) plug in through
//! [`decode`] and [`EtcdSource::with_decoder`].
//!
//! ## Writes ([`writer`])
//!
//! Transactions comparing `create_revision == 0` (create) or `mod_revision == expected`
//! (update, delete); the else-branch's read tells a conflict from a missing entry. Values
//! carry `uid` and `creationTimestamp` like calicoctl's, never `resourceVersion`.
#![warn(missing_docs)]

pub mod codec;
pub mod config;
pub mod decode;
pub mod ipam;
pub mod layout;
pub mod source;
pub mod status;
pub mod writer;

#[cfg(feature = "fixtures")]
pub mod testing;

pub use config::{ConfigError, Connection, EtcdConfig};
pub use source::EtcdSource;
pub use status::{EtcdStatus, EtcdStatusOptions};
pub use writer::EtcdWriter;
