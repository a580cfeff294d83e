//! Placeholder, replaced by the sender benchmark.
fn main() {}
