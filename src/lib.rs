//! oxmalloc: a malloc replacement on jemalloc's anti-fragmentation design.
//!
//! Layers (a module calls only its own layer or lower ones; `report`, `util` from anywhere):
//!
//! | layer | modules | role |
//! |---|---|---|
//! | 5 C ABI | `ffi::{libc, cxx, glibc}` | `#[no_mangle]` shims, nothing else |
//! | 4 front end | `alloc`, `xalloc`, `ctl`, `init`, `conf`, `fork` | C and jemalloc APIs, mallctl, bootstrap, options, fork |
//! | 3 caches | `tcache` → `cache_bin`, `tsd` | per-thread caches, initial-exec TLS slot |
//! | 3 objects | `arena` → `bin` → `slab` | arenas, size-class slabs, fullest-first placement |
//! | 2 pages | `pac` → `eset` → `extent`, `slab_map` | best-fit extents, split/coalesce, purge; slab page-map entries |
//! | 1 metadata | `rtree`, `base`, `size_class`, `bitmap` | page map, metadata memory, classes |
//! | 0 foundations | `sys`, `sync`, `report`, `util` | OS calls, futex lock, fatal lines |
//!
//! Rules every module keeps: nothing on an allocation path allocates (metadata comes from
//! `base`), panics never happen on hot paths (`panic = "abort"` anyway), every `unsafe` block
//! says why it is sound, every shared field says how it is synchronized.
pub mod alloc;
pub mod arena;
pub mod base;
pub mod bin;
pub mod bitmap;
pub mod cache_bin;
pub mod conf;
pub mod ctl;
pub mod eset;
pub mod extent;
pub mod ffi;
pub mod ffi_conf;
pub mod fork;
pub mod init;
pub mod pac;
pub mod report;
pub mod rtree;
pub mod size_class;
pub mod slab;
pub mod slab_map;
pub mod sync;
pub mod sys;
pub mod tcache;
pub mod tsd;
pub mod util;
pub mod xalloc;
