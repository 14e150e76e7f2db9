//! Layer 7, the Rust API: what a Rust program that depends on the crate uses. `OxMalloc`
//! (`global`) is a `GlobalAlloc` over `front::global`; `ctl` is jemalloc's control namespace
//! with Rust types (`tikv-jemalloc-ctl`'s common calls) over `front::ctl`. Both are
//! re-exported at the crate root (`oxmalloc::OxMalloc`, `oxmalloc::ctl`).
//!
//! Nothing here exports a C symbol: with default features a program gets oxmalloc as its
//! Rust heap only (see the crate documentation for the `export` feature).

pub mod ctl;
pub mod global;
