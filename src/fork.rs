//! Fork safety: every allocator lock is taken before fork, in the rank order of `sync`, and
//! released in the parent or reset in the child, so the child can allocate even when another
//! thread held a lock at the moment of fork. Forking from a signal handler that interrupted
//! our own malloc is unsupported (it would deadlock, as with jemalloc).

use crate::arena;
use crate::base::BASE;
use crate::rtree;

extern "C" fn prefork() {
    crate::tcache::prefork();
    arena::prefork();
    rtree::prefork();
    BASE.prefork();
}

extern "C" fn postfork_parent() {
    BASE.postfork_parent();
    rtree::postfork_parent();
    arena::postfork_parent();
    crate::tcache::postfork_parent();
}

extern "C" fn postfork_child() {
    BASE.postfork_child();
    rtree::postfork_child();
    arena::postfork_child();
    crate::tcache::postfork_child();
}

/// Registers the handlers (once, from `init`, after the allocator is ready).
pub fn register() {
    // SAFETY: the handlers are plain functions valid for the life of the process.
    unsafe {
        libc::pthread_atfork(Some(prefork), Some(postfork_parent), Some(postfork_child));
    }
}
