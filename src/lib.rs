//! oxmalloc: a malloc replacement on jemalloc's anti-fragmentation design.
//!
//! Layers, one folder each; a module calls only its own layer or lower ones, and modules of
//! one layer call each other in one direction only (`tests/layers.rs` checks both):
//!
//! | layer | folder | modules | role |
//! |---|---|---|---|
//! | 6 C ABI | `ffi` | `libc`, `jemalloc`, `cxx`, `glibc` | `#[no_mangle]` shims, nothing else |
//! | 5 front end | `front` | `alloc`, `xalloc`, `ctl`, `conf`, `init`, `fork`, `malloc_conf` | C and jemalloc APIs, mallctl, options, bootstrap, fork |
//! | 4 thread caches | `tcache` | `small`, `large`, `flush`, `gc`, `cache_bin`, `tsd` | per-thread caches, initial-exec TLS slot |
//! | 3 objects | `objects` | `arena` → `bin` → `slab` | arenas, size-class slabs, fullest-first placement |
//! | 2 pages | `pages` | `pac` → `eset`, `slab_map` | best-fit extents, split/coalesce, purge; slab page-map entries |
//! | 1 metadata | `metadata` | `rtree`, `extent`, `base`, `size_class`, `bitmap` | page map, descriptors, metadata memory, classes |
//! | 0 foundations | `foundation` | `sys`, `sync`, `report`, `util` | OS calls, futex lock, fatal lines, bit tricks |
//!
//! Rules every module keeps: nothing on an allocation path allocates (metadata comes from
//! `metadata::base`), panics never happen on hot paths (`panic = "abort"` anyway), every
//! `unsafe` block says why it is sound, every shared field says how it is synchronized.
pub mod foundation;
pub mod metadata;
pub mod pages;
pub mod objects;
pub mod tcache;
pub mod front;
pub mod ffi;
