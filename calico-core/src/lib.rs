//! # calico-core
//!
//! The heart of calico-rs: the part of Project Calico's *Felix* agent that does not depend on a
//! dataplane. It holds
//!
//! * [`model`]: the typed resources an orchestrator hands us (workload and host endpoints,
//!   policies, profiles, IP pools, BGP settings), validated on entry;
//! * [`selector`]: the Calico label-selector language (parse, print, evaluate);
//! * [`eval`]: the reference semantics: a packet and a model in, a verdict and a trace out;
//! * [`calc`]: endpoints' effective labels and rules' effective selectors, and the
//!   incremental index of which endpoints each selector matches;
//! * [`compile`]: the rule compiler (model → dataplane-neutral IR, incremental, with
//!   minimal ordered change sets);
//! * [`routes`]: the desired FIB (local workload routes, blackholes, learned routes);
//! * [`agent`]: the engine that keeps a dataplane and a BGP speaker in line with the model;
//! * [`datastore`]: where resources come from and where orchestrators write them: the
//!   source and writer traits, the follower that feeds an agent, an in-memory store;
//! * [`dataplane`]: the contract with every backend: the traits a dataplane (Linux, the mock)
//!   and a BGP speaker implement, the ACL IR, change sets, diff and the one IR validator;
//! * `integrations`: Kubernetes, OpenStack Neutron and Calico v3 resources translated
//!   (features `kubernetes`, `neutron`, `calico-v3`);
//! * `scale` (hidden from the docs, kept public for the benchmarks of every crate):
//!   deterministic models of a chosen size.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod agent;
#[cfg(any(test, feature = "arbitrary"))]
pub mod arbitrary;
pub mod calc;
pub mod compile;
pub mod dataplane;
pub mod datastore;
pub mod eval;
#[cfg(any(feature = "kubernetes", feature = "neutron", feature = "calico-v3"))]
pub mod integrations;
mod labels;
pub mod model;
mod naming;
pub mod routes;
#[doc(hidden)]
pub mod scale;
pub mod selector;
#[cfg(test)]
mod test_log;
mod wire;
