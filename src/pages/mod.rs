//! Layer 2, pages: each arena's page allocator — free extents by state and size, split and
//! coalesce, growth from the OS, purging — and the page-map entries of slabs.
pub mod decay;
pub mod eset;
pub mod pac;
pub mod purge;
pub mod slab_map;
