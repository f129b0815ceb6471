//! Reference semantics: packet + model → verdict with a trace.
//!
//! PLACEHOLDER: being implemented.
