//! Layer 1, metadata: where the allocator's own bookkeeping lives and how it is looked up —
//! the metadata allocator, the page map, extent descriptors, size classes, bitmaps.
pub mod base;
pub mod bitmap;
pub mod extent;
pub mod rtree;
pub mod size_class;
