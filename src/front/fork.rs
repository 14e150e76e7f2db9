//! Fork safety: every allocator lock is taken before fork, in the rank order of `sync`, and
//! released in the parent or reset in the child, so the child can allocate even when another
//! thread held a lock at the moment of fork. Forking from a signal handler that interrupted
//! our own malloc is unsupported (it would deadlock, as with jemalloc). A background purge
//! thread in the middle of a pass holds no lock while it madvises; the child puts back what
//! that pass had taken out (`Pac::postfork_child`) and has no purge thread until it needs
//! one (`background::postfork_child`).

use crate::objects::arena;
use crate::metadata::base::BASE;
use crate::metadata::rtree;

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
    crate::front::background::postfork_child();
}

/// Registers the handlers (once, from `init`, after the allocator is ready).
pub fn register() {
    // SAFETY: the handlers are plain functions valid for the life of the process.
    unsafe {
        libc::pthread_atfork(Some(prefork), Some(postfork_parent), Some(postfork_child));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The handlers take every lock in rank order with two arenas (debug builds check each
    /// acquisition against the locks held: arena by arena, the second arena's bin locks would
    /// come after the first arena's page-allocator lock, and the check would abort).
    #[test]
    fn handlers_take_every_lock_in_rank_order() {
        assert!(arena::get_or_create(1).is_some());
        prefork();
        postfork_parent();
        // Everything is free again.
        let p = crate::front::alloc::malloc(100);
        assert!(!p.is_null());
        crate::front::alloc::free(p, "free");
    }
}
