//! IPAM's typed errors: each names the etcd key (or the host, handle or pool) and why.

use std::time::Duration;

use ipnet::IpNet;

use super::pools::Family;

/// Why an IPAM operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// No enabled pool of the family (or among the requested pools) to assign from.
    #[error("no enabled IPv{} pool{} for host {host}", family.number(), requested_suffix(requested))]
    NoPool {
        /// The address family asked for.
        family: Family,
        /// The pools the request was limited to (empty: any).
        requested: Vec<IpNet>,
        /// The host asking.
        host: String,
    },
    /// Every address of the eligible pools is in use (after borrowing, unless strict affinity
    /// forbids it).
    #[error("pool exhausted: no free IPv{} address for host {host} in {pools:?}{}", family.number(), if *strict { " (strict affinity: no borrowing)" } else { "" })]
    PoolExhausted {
        /// The address family asked for.
        family: Family,
        /// The pools searched.
        pools: Vec<IpNet>,
        /// The host asking.
        host: String,
        /// Whether strict affinity kept the host from borrowing another host's block.
        strict: bool,
    },
    /// The host owns `limit` blocks, all full, and may not claim another.
    #[error("host {host} owns {limit} blocks, all full: limit of blocks per host reached")]
    BlockLimit {
        /// The host asking.
        host: String,
        /// The configured limit.
        limit: usize,
    },
    /// A compare-and-swap on `key` lost to other writers `attempts` times in a row.
    #[error("{key}: gave up after {attempts} conflicting concurrent writes")]
    Conflict {
        /// The contended key.
        key: String,
        /// How many times the write was tried.
        attempts: usize,
    },
    /// A stored value is not what Calico writes there.
    #[error("{key}: bad stored value: {reason}")]
    BadValue {
        /// The etcd key.
        key: String,
        /// What is wrong, naming the field where there is one.
        reason: String,
    },
    /// etcd answered with an error.
    #[error("{op} {key}: etcd: {source}")]
    Etcd {
        /// The operation (get, list, txn).
        op: &'static str,
        /// The key (or prefix) concerned.
        key: String,
        /// etcd-client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// etcd did not answer in time.
    #[error("{op} {key}: etcd did not answer within {} ms", after.as_millis())]
    Timeout {
        /// The operation (get, list, txn).
        op: &'static str,
        /// The key (or prefix) concerned.
        key: String,
        /// The time waited.
        after: Duration,
    },
    /// A host name Calico's key layout cannot hold.
    #[error("host name {host:?}: {reason}")]
    InvalidHost {
        /// The name given.
        host: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// A handle id Calico's key layout cannot hold.
    #[error("handle id {handle:?}: {reason}")]
    InvalidHandle {
        /// The id given.
        handle: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// A pool that cannot be cut into blocks.
    #[error("pool {pool} ({cidr}): {reason}")]
    InvalidPool {
        /// The pool's name.
        pool: String,
        /// The pool's range.
        cidr: IpNet,
        /// What is wrong (the field `blockSize` or `cidr`).
        reason: String,
    },
}

fn requested_suffix(requested: &[IpNet]) -> String {
    if requested.is_empty() {
        String::new()
    } else {
        format!(" among {requested:?}")
    }
}
