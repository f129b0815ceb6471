//! calico-mock (being built).
