//! The C ABI: the only place with `extern "C"` exports. Each export is a one-line shim over
//! `front::alloc` (so exported→exported calls never go through the GOT) and validates nothing
//! itself beyond what C's signature forces (alignment arguments, out-parameters).
//!
//! The whole module is behind the `export` feature: on for the shared library `make` builds;
//! off by default, so that a Rust program using the crate exports nothing; off for unit tests,
//! so that the test harness does not run on the allocator under test.
#![cfg(feature = "export")]

pub mod cxx;
pub mod glibc;
pub mod jemalloc;
pub mod libc;
