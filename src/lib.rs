//! oxmalloc: a malloc replacement on jemalloc's anti-fragmentation design (size-class slabs
//! filled fullest-first, best-fit extents that split and coalesce, per-thread caches), written
//! in Rust.
//!
//! # Rust programs
//!
//! [`OxMalloc`] is a global allocator; [`ctl`] reads the allocator's statistics and drives it
//! (`tikv-jemalloc-ctl`'s common calls, typed):
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: oxmalloc::OxMalloc = oxmalloc::OxMalloc;
//!
//! fn main() {
//!     let v: Vec<String> = std::hint::black_box((0..1000).map(|i| i.to_string()).collect());
//!     let s = oxmalloc::ctl::stats::summary();
//!     assert!(s.allocated >= 1000 * 8);
//!     drop(v);
//! }
//! ```
//!
//! With default features the crate exports no C symbol and builds without a C compiler: C
//! code in the same process (C libraries the program links) keeps the C library's `malloc`,
//! and the Rust heap is oxmalloc's. Feature `export` exports the whole C ABI (`malloc`,
//! `free`, `operator new`, jemalloc's `mallocx` and `mallctl` ...) from the program, so its
//! C and C++ libraries allocate from oxmalloc too; it compiles one C file, so it needs a C
//! compiler. Options come from `OXMALLOC_CONF` (or `MALLOC_CONF`) in the environment, in
//! jemalloc's `key:value,...` form (README, "Behaviour").
//!
//! # Layers
//!
//! The rest of the crate is the allocator itself (hidden from this documentation: not a
//! stable interface). Layers, one folder each; a module calls only its own layer or lower
//! ones, and modules of one layer call each other in one direction only (`tests/layers.rs`
//! checks both):
//!
//! | layer | folder | modules | role |
//! |---|---|---|---|
//! | 7 Rust API | `rust` | `global`, `ctl` | `OxMalloc` (GlobalAlloc over `front::global`), typed mallctl |
//! | 6 C ABI | `ffi` | `libc`, `jemalloc`, `cxx`, `glibc` | `#[no_mangle]` shims, nothing else |
//! | 5 front end | `front` | `alloc`, `xalloc`, `global`, `ctl`, `conf`, `init`, `fork`, `malloc_conf`, `background` | C, jemalloc and GlobalAlloc entry points, mallctl, options, bootstrap, fork, background purge threads |
//! | 4 thread caches | `tcache` | `small`, `large`, `flush`, `gc`, `cache_bin`, `tsd` | per-thread caches, initial-exec TLS slot |
//! | 3 objects | `objects` | `arena` → `bin` → `slab` | arenas, size-class slabs, fullest-first placement |
//! | 2 pages | `pages` | `pac` → `eset`, `slab_map`; `purge` → `decay` | best-fit extents, split/coalesce; time-based decay and purging; slab page-map entries |
//! | 1 metadata | `metadata` | `rtree`, `extent`, `base`, `size_class`, `bitmap` | page map, descriptors, metadata memory, classes |
//! | 0 foundations | `foundation` | `sys`, `sync`, `report`, `util` | OS calls, futex lock, fatal lines, bit tricks |
//!
//! Rules every module keeps: nothing on an allocation path allocates (metadata comes from
//! `metadata::base`), panics never happen on hot paths (`panic = "abort"` anyway), every
//! `unsafe` block says why it is sound, every shared field says how it is synchronized.
#![deny(missing_docs)]

#[doc(hidden)]
pub mod foundation;
#[doc(hidden)]
pub mod metadata;
#[doc(hidden)]
pub mod pages;
#[doc(hidden)]
pub mod objects;
#[doc(hidden)]
pub mod tcache;
#[doc(hidden)]
pub mod front;
#[doc(hidden)]
pub mod ffi;
mod rust;

pub use rust::ctl;
pub use rust::global::OxMalloc;
