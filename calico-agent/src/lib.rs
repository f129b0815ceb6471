//! `calico-agent`, the calico-rs daemon for one host: the agent (calico-core) with the Linux
//! backends (routes over rtnetlink, ACLs in nftables) and BGP (the native speaker or BIRD 2),
//! following a directory of resource files, with HTTP status, health and metrics.
//!
//! The binary is a thin `main` over [`daemon::run`]; its parts are here so that they are
//! tested on their own:
//!
//! * [`cli`]: the command line (clap; an environment variable for every option);
//! * [`resource_dir`]: reading the resource directory safely (settle time, last good
//!   version per file, the mass-deletion guard, regular files only);
//! * [`http`]: `/metrics`, `/status`, `/liveness`, `/readiness` (hyper; timeouts and a
//!   connection cap), and the API and page of [`daemon::api`];
//! * [`explain`]: the policy trace (model, compiled IR, kernel IR, drift), the endpoints
//!   and the connectivity matrix, as JSON types shared with the `calico-rs` tool;
//! * [`web`]: the agent's page;
//! * [`tool`]: the `calico-rs` command-line tool (`trace`, `flows`, `status`);
//! * [`metrics`]: the Prometheus registry (prometheus-client);
//! * [`lock`]: one agent per nftables table per network namespace;
//! * [`bird_on_linux`]: the BIRD driver wired to the kernel table BIRD writes.

#![warn(missing_docs)]

pub mod bird_on_linux;
pub mod bpf_metrics;
pub mod cli;
pub mod daemon;
pub mod explain;
pub mod flows;
pub mod http;
pub mod lock;
pub mod metrics;
pub mod peer_metrics;
pub mod resource_dir;
pub mod tool;
pub mod web;
