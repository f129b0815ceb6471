//! What every command needs: the configuration, the request, this host's name, the host's
//! network namespace, and one etcd connection shared by IPAM and the endpoint writer.

use std::fs::File;
use std::path::PathBuf;
use std::time::Duration;

use calico_etcd::ipam::{Ipam, IpamConfig};
use calico_etcd::{Connection, EtcdConfig, EtcdWriter};

use crate::endpoint::{datastore_error, Identity};
use crate::ipam::{handle_id, ipam_error, stored_pools};
use crate::spec::{CniError, Code, Command, NetConf, RuntimeEnv};

/// A command's context (see the module documentation).
pub struct Context {
    /// The network configuration.
    pub conf: NetConf,
    /// The runtime's request.
    pub env: RuntimeEnv,
    /// This host's name in the datastore.
    pub node: String,
    /// Who the container is.
    pub identity: Identity,
    /// The host end's name.
    pub host_ifname: String,
    /// The IPAM handle.
    pub handle: String,
    /// The host's network namespace (the caller's).
    pub host_ns: File,
    /// IPAM over the shared connection.
    pub ipam: Ipam,
    /// The endpoint writer over the shared connection.
    pub writer: EtcdWriter,
}

/// This host's name: the configuration's `nodename`, else `/var/lib/calico/nodename` (what
/// calico/node writes), else the kernel's host name.
pub fn node_name(conf: &NetConf) -> Result<String, CniError> {
    if let Some(n) = conf.nodename.as_deref().filter(|n| !n.is_empty()) {
        return Ok(n.to_string());
    }
    for path in ["/var/lib/calico/nodename", "/proc/sys/kernel/hostname"] {
        if let Ok(s) = std::fs::read_to_string(path) {
            let s = s.trim();
            if !s.is_empty() {
                return Ok(s.to_string());
            }
        }
    }
    Err(CniError::new(
        Code::InvalidConfig,
        "field nodename: not set and no host name found",
        "",
    ))
}

impl Context {
    /// Connects to etcd and reads the IP pools.
    pub async fn connect(
        conf: NetConf,
        env: RuntimeEnv,
        host_ns: File,
    ) -> Result<Context, CniError> {
        let node = node_name(&conf)?;
        let mut config = EtcdConfig::new(conf.endpoints());
        config.ca = conf.etcd_ca_cert_file.as_ref().map(PathBuf::from);
        config.cert = conf.etcd_cert_file.as_ref().map(PathBuf::from);
        config.key = conf.etcd_key_file.as_ref().map(PathBuf::from);
        if let Some(p) = &conf.etcd_prefix {
            config.prefix = p.clone();
        }
        let conn = Connection::connect(&config)
            .await
            .map_err(|e| datastore_error("connect to etcd", e))?;
        let client = conn.client();
        // DEL frees by handle and needs no pools: a bad pool must not keep it from cleaning up.
        let pools = match env.command {
            Command::Del => Vec::new(),
            _ => stored_pools(&client, &config.prefix, config.request_timeout).await?,
        };
        let ipam_config = IpamConfig {
            pools,
            request_timeout: Duration::from_secs(5),
            ..IpamConfig::default()
        };
        let ipam = Ipam::new(&client, &node, ipam_config).map_err(|e| ipam_error("setup", e))?;
        let identity = Identity::of(&conf, &env);
        let host_ifname = identity.host_ifname(&env.container_id);
        let handle = handle_id(&conf.name, &env.container_id);
        Ok(Context {
            conf,
            env,
            node,
            identity,
            host_ifname,
            handle,
            host_ns,
            ipam,
            writer: EtcdWriter::from_connection(conn),
        })
    }
}
