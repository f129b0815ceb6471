//! calico-bgp (being built).
