//! # calico-core
//!
//! The heart of calico-rs: the part of Project Calico's *Felix* agent that does not depend on a
//! dataplane. It holds
//!
//! * [`model`]: the typed resources an orchestrator hands us (workload and host endpoints,
//!   policies, profiles, IP pools, BGP settings), validated on entry;
//! * [`selector`]: the Calico label-selector language (parse, print, evaluate);
//! * [`eval`]: the reference semantics: a packet and a model in, a verdict and a trace out;
//! * [`calc`]: the incremental index of which endpoints each selector matches;
//! * [`compile`]: the rule compiler (model → dataplane-neutral IR, incremental, with
//!   minimal ordered change sets);
//! * [`routes`]: the desired FIB (local workload routes, blackholes, learned routes);
//! * [`agent`]: the engine that keeps a dataplane and a BGP speaker in line with the model;
//! * [`backend`]: the traits a dataplane (Linux, the mock) and a BGP speaker implement;
//! * `integrations`: Kubernetes, OpenStack Neutron and Calico v3 resources translated
//!   (features `kubernetes`, `neutron`, `calico-v3`);
//! * [`scale`]: deterministic models of a chosen size, for benchmarks.
#![warn(missing_docs)]

pub mod agent;
#[cfg(any(test, feature = "arbitrary"))]
pub mod arbitrary;
pub mod backend;
pub mod calc;
pub mod compile;
pub mod eval;
#[cfg(any(feature = "kubernetes", feature = "neutron", feature = "calico-v3"))]
pub mod integrations;
pub mod model;
pub mod routes;
pub mod scale;
pub mod selector;
