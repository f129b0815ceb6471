//! The CNI specification (1.0, with 0.3.x and 0.4.0 results): the runtime's environment,
//! the network configuration, the result, and the error object.

pub mod config;
pub mod env;
pub mod error;
pub mod result;

pub use config::{version_json, version_of, NetConf, NEWEST_VERSION, SUPPORTED_VERSIONS};
pub use env::{Command, RuntimeEnv};
pub use error::{CniError, Code};
pub use result::{CniResult, Interface, IpConfig, Route};
