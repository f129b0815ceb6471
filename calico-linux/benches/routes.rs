//! Placeholder until the route-programming benchmark lands.
fn main() {}
