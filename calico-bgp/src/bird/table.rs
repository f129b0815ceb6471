//! The kernel table BIRD writes its best routes to, as the driver reads it back.
//!
//! Reading a kernel routing table is the dataplane's business: the driver is handed a
//! [`KernelTable`], which the embedder fills with its FIB backend opened on BIRD's table
//! (on Linux, calico-linux's `LinuxFib` with protocol [`super::RTPROT_BIRD`] and table
//! [`super::BirdConfig::kernel_table`], in [`super::BirdConfig::netns`]). Every
//! [`FibBackend`] is one: its [`FibBackend::dump`] is the read.

use async_trait::async_trait;
use calico_core::dataplane::{BackendError, FibBackend, Route};

/// Reads the routes BIRD installed in its kernel table.
#[async_trait]
pub trait KernelTable: Send + Sync {
    /// The routes in BIRD's kernel table (those of BIRD's route protocol only).
    async fn routes(&self) -> Result<Vec<Route>, BackendError>;
}

#[async_trait]
impl<F: FibBackend + ?Sized> KernelTable for F {
    async fn routes(&self) -> Result<Vec<Route>, BackendError> {
        self.dump().await
    }
}
