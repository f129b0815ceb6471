//! ACLs on nftables: the compiler's IR programmed into one agent-owned `inet` table.
//!
//! [`LinuxAcl`] implements [`AclBackend`]: each change set becomes one nf_tables
//! transaction (so no packet ever meets a half-applied policy), and [`AclBackend::dump`]
//! reads the table back from the kernel (chains, rules, sets with their elements, verdict
//! maps) so resync can repair drift. Nothing outside the table is touched, and the table
//! itself only if it carries the agent's mark ([`TABLE_MARK`], its nft comment): a table of
//! the same name that lacks it is someone else's and is refused with [`ForeignTable`].
//!
//! ```no_run
//! # async fn demo(changes: calico_core::dataplane::ChangeSet) -> Result<(), calico_core::dataplane::BackendError> {
//! use calico_core::dataplane::AclBackend;
//! use calico_linux::acl::LinuxAcl;
//! let acl = LinuxAcl::new("calico")?;
//! acl.apply(&changes).await?;
//! let programmed = acl.dump().await?;
//! # Ok(()) }
//! ```

pub(crate) mod batch;
mod drift;
mod nft_text;
pub(crate) mod ownership;
pub(crate) mod readback;
pub(crate) mod rule_codec;
mod rule_udata;
mod set_udata;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::ChangeSet;
use calico_core::dataplane::{AclBackend, BackendError};

use batch::TableAccess;
use ownership::TableState;
pub use ownership::{ForeignTable, TABLE_MARK};
pub use readback::FOREIGN_RULE;

use crate::events::DriftListener;
use crate::nft::proto::{NFTA_TABLE_NAME, NFT_MSG_DELTABLE};
use crate::nft::socket::{NfSocket, NlError};

/// Programs the ACL IR into the nftables table it owns.
#[derive(Clone, Debug)]
pub struct LinuxAcl {
    table: String,
    socket: Arc<Mutex<NfSocket>>,
    /// The table was last seen with the agent's mark: transactions skip the ownership check
    /// (one table dump) until a failure, a dump finding it gone, or an uninstall.
    known_ours: Arc<AtomicBool>,
    /// nf_tables notifications about the table not caused by `socket` (see
    /// [`AclBackend::drift`]); opened with the socket, in its namespace.
    drift: Arc<DriftListener>,
}

impl LinuxAcl {
    /// An ACL backend for table `table` (family `inet`) in the caller's network namespace.
    pub fn new(table: &str) -> Result<LinuxAcl, BackendError> {
        Self::with_socket(table, open_here(table))
    }

    /// An ACL backend for table `table` in the network namespace at `netns` (such as
    /// `/var/run/netns/NAME`).
    pub fn in_netns(netns: &Path, table: &str) -> Result<LinuxAcl, BackendError> {
        let opened = calico_netns::enter_path(netns, || open_here(table)).map_err(|e| {
            BackendError::Unavailable(format!("nftables in {}: {e}", netns.display()))
        })?;
        Self::with_socket(table, opened)
    }

    fn with_socket(
        table: &str,
        (socket, drift): (Result<NfSocket, NlError>, Option<DriftListener>),
    ) -> Result<LinuxAcl, BackendError> {
        if table.is_empty() || table.len() > 255 {
            return Err(BackendError::Unsupported(format!(
                "nftables table name {table:?}: must be 1 to 255 bytes"
            )));
        }
        let socket =
            socket.map_err(|e| BackendError::Unavailable(format!("nftables netlink: {e}")))?;
        Ok(LinuxAcl {
            table: table.to_string(),
            socket: Arc::new(Mutex::new(socket)),
            known_ours: Arc::new(AtomicBool::new(false)),
            drift: Arc::new(drift.unwrap_or_else(|| {
                DriftListener::unavailable("nf_tables", "no transaction socket".into())
            })),
        })
    }

    /// The table this backend owns.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Applies a change set synchronously (what [`AclBackend::apply`] runs on a blocking
    /// thread). Refuses, changing nothing, if the table exists without the agent's mark.
    pub fn apply_blocking(&self, changes: &ChangeSet) -> Result<(), BackendError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut sock = self.socket.lock().unwrap_or_else(|p| p.into_inner());
        let access = self.table_access(&mut sock)?;
        let mut w = sock.transaction();
        let origins = batch::write(&mut w, &self.table, access, changes)
            .map_err(|e| BackendError::Unsupported(e.0))?;
        let bytes = w.len();
        if let Err(e) = sock.commit(w) {
            // Whatever happened to the table, look at it again before the next transaction.
            self.known_ours.store(false, Ordering::Relaxed);
            return Err(self.refused(changes, &origins, e));
        }
        self.known_ours.store(true, Ordering::Relaxed);
        tracing::debug!(table = %self.table, changes = changes.len(), bytes, "nftables transaction committed");
        Ok(())
    }

    /// How the next transaction may meet the table: checked against the kernel unless the
    /// table is known to be the agent's.
    fn table_access(&self, sock: &mut NfSocket) -> Result<TableAccess, BackendError> {
        if self.known_ours.load(Ordering::Relaxed) {
            return Ok(TableAccess::Ours);
        }
        let state =
            ownership::table_state(sock, &self.table).map_err(|e| BackendError::Dataplane {
                op: format!("look up table inet {}", self.table),
                reason: e.to_string(),
            })?;
        match state {
            TableState::Ours => {
                self.known_ours.store(true, Ordering::Relaxed);
                Ok(TableAccess::Ours)
            }
            TableState::Absent => Ok(TableAccess::Create),
            TableState::Foreign => Err(self.foreign()),
        }
    }

    /// The error for a table of our name that lacks the mark (logged: the agent stops
    /// programming ACLs until the operator acts).
    fn foreign(&self) -> BackendError {
        let e = ForeignTable {
            table: self.table.clone(),
        };
        tracing::error!(table = %self.table, "{e}");
        BackendError::Dataplane {
            op: format!("use table inet {}", self.table),
            reason: e.to_string(),
        }
    }

    /// The error for a transaction the kernel refused, naming the change it refused.
    fn refused(&self, changes: &ChangeSet, origins: &batch::Origins, e: NlError) -> BackendError {
        let what = match &e {
            NlError::Refused { seq, .. } => {
                let i = origins.change_of(*seq);
                match i.and_then(|i| Some((i, changes.changes.get(i)?))) {
                    Some((i, change)) => format!("change #{i} ({})", describe(change)),
                    None => "creating the table".to_string(),
                }
            }
            _ => "the transaction".to_string(),
        };
        tracing::warn!(table = %self.table, error = %e, %what, "nftables refused a change set; nothing of it was applied");
        BackendError::Dataplane {
            op: format!(
                "nftables transaction on table inet {} at {what}",
                self.table
            ),
            reason: e.to_string(),
        }
    }

    /// Reads the table back synchronously (what [`AclBackend::dump`] runs on a blocking
    /// thread). A table without the agent's mark is not read: an error.
    pub fn dump_blocking(&self) -> Result<Ruleset, BackendError> {
        let mut sock = self.socket.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = None;
        for _ in 0..3 {
            match readback::read(&mut sock, &self.table) {
                Ok((state, r)) => {
                    self.known_ours
                        .store(state == TableState::Ours, Ordering::Relaxed);
                    return Ok(r);
                }
                Err(readback::ReadError::Netlink(NlError::Interrupted)) => {
                    last = Some("the ruleset kept changing during the dump".to_string())
                }
                Err(readback::ReadError::NotOurs(_)) => {
                    self.known_ours.store(false, Ordering::Relaxed);
                    return Err(self.foreign());
                }
                Err(e) => {
                    return Err(BackendError::Dataplane {
                        op: format!("read back table inet {}", self.table),
                        reason: e.to_string(),
                    })
                }
            }
        }
        Err(BackendError::Dataplane {
            op: format!("read back table inet {}", self.table),
            reason: last.unwrap_or_default(),
        })
    }

    /// Deletes the whole table (uninstall). Absent already: fine. A table without the
    /// agent's mark is left alone: an error.
    pub fn delete_table_blocking(&self) -> Result<(), BackendError> {
        let mut sock = self.socket.lock().unwrap_or_else(|p| p.into_inner());
        self.known_ours.store(false, Ordering::Relaxed);
        match self.table_access(&mut sock)? {
            TableAccess::Create => return Ok(()),
            TableAccess::Ours => self.known_ours.store(false, Ordering::Relaxed),
        }
        let mut w = sock.transaction();
        w.begin_nft(NFT_MSG_DELTABLE, 0);
        w.string(NFTA_TABLE_NAME, &self.table);
        w.end();
        match sock.commit(w) {
            Ok(())
            | Err(NlError::Refused {
                errno: libc::ENOENT,
                ..
            }) => Ok(()),
            Err(e) => Err(BackendError::Dataplane {
                op: format!("delete table inet {}", self.table),
                reason: e.to_string(),
            }),
        }
    }
}

/// Opens the transaction socket and the event listener in the calling thread's namespace.
fn open_here(table: &str) -> (Result<NfSocket, NlError>, Option<DriftListener>) {
    let socket = NfSocket::open();
    let drift = socket.as_ref().ok().map(|s| drift::listener(s, table));
    (socket, drift)
}

/// The whole `ruleset` as the `nft -f` script an operator would write to get the same
/// table `inet <table>`: a readable view of a ruleset, and the baseline the benchmarks
/// compare [`LinuxAcl`] with.
pub fn nft_script(ruleset: &Ruleset, table: &str) -> String {
    nft_text::render(ruleset, table)
}

fn describe(c: &calico_core::dataplane::Change) -> String {
    use calico_core::dataplane::Change::*;
    match c {
        AddSet { name, .. } => format!("add set {name}"),
        AddElements { set, elements } => format!("add {} elements to set {set}", elements.len()),
        AddMap { name } => format!("add map {name}"),
        AddChain { name, .. } => format!("add chain {name}"),
        SetRules { chain, rules } => format!("set {} rules of chain {chain}", rules.len()),
        DelMapElements { map, keys } => format!("delete {} elements of map {map}", keys.len()),
        AddMapElements { map, elements } => format!("add {} elements to map {map}", elements.len()),
        DelChain { name } => format!("delete chain {name}"),
        DelMap { name } => format!("delete map {name}"),
        DelElements { set, elements } => format!("delete {} elements of set {set}", elements.len()),
        DelSet { name } => format!("delete set {name}"),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError::Unavailable(format!("nftables worker thread: {e}")))?
}

#[async_trait]
impl AclBackend for LinuxAcl {
    async fn apply(&self, changes: &ChangeSet) -> Result<(), BackendError> {
        let this = self.clone();
        let changes = changes.clone();
        blocking(move || this.apply_blocking(&changes)).await
    }

    async fn dump(&self) -> Result<Ruleset, BackendError> {
        let this = self.clone();
        blocking(move || this.dump_blocking()).await
    }

    /// Bumped by nf_tables notifications about the table (deleted, or anything in it added,
    /// changed or removed) caused by anyone but this backend's own transactions. Listens
    /// from the first call on, in the namespace the backend was created in.
    fn drift(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.drift.drift()
    }
}
