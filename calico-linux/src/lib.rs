//! calico-linux (being built).
