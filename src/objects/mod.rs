//! Layer 3, objects: arenas, the bins of each size class and their slabs.
pub mod arena;
pub mod bin;
pub mod slab;
