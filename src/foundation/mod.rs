//! Layer 0, foundations: the OS interface, the lock, fatal reports, bit tricks. Calls nothing
//! of the allocator above it.
pub mod report;
pub mod sync;
pub mod sys;
pub mod util;
