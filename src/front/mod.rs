//! Layer 5, the front end: the C and jemalloc APIs in Rust, Rust's `GlobalAlloc` entry points,
//! mallctl, options, bootstrap and fork handling.
pub mod alloc;
pub mod background;
pub mod conf;
pub mod ctl;
pub mod fork;
pub mod global;
pub mod init;
pub mod malloc_conf;
pub mod xalloc;
