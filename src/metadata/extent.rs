//! Extent descriptors: one per contiguous page range, free or in use, plus their recycling pool
//! and the intrusive list every extent set and slab bucket is built from.
//!
//! Invariants (checked by `Pac::validate` in tests):
//! - `addr` and `size` are page multiples, `size ≥ PAGE`;
//! - a free extent (`State::is_free`) has its first and last page registered in the rtree and its
//!   interior pages unregistered; no two free extents of one arena and one state are adjacent
//!   (they are coalesced on insertion);
//! - an active or cached large extent has its first and last page registered; an active slab has its
//!   first and last page and every page holding a region start registered
//!   (`slab_map::register`, with tagged entries: frees must resolve);
//! - `is_slab ⇒ state == Active`, and `0 < nfree ≤ nregs ⇔` the slab may sit in a bin bucket.

use crate::metadata::base::BASE;
use crate::metadata::bitmap::Bitmap;
use crate::foundation::util::LG_PAGE;
use core::sync::atomic::{AtomicBool, AtomicU16, AtomicU8, Ordering};

/// Page state of an extent. In use: active, or cached (a large block the program freed that
/// sits in a thread cache: the page allocator treats it as in use, the program's calls as
/// freed). Free states, from cheapest to reuse to cheapest to keep: dirty (recently freed,
/// resident), muzzy (MADV_FREE'd: the kernel may take the pages back when it needs them),
/// retained (fresh from the OS or MADV_DONTNEED'd: no RSS, reads back zeros). Purging: a free
/// extent taken out of its set while a purge madvises it with no lock held (`pages::purge`);
/// neither in use nor free, so nothing merges with it or allocates it meanwhile.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum State {
    Active = 0,
    Dirty = 1,
    Muzzy = 2,
    Retained = 3,
    Cached = 4,
    Purging = 5,
}

impl State {
    fn from_u8(v: u8) -> State {
        match v {
            0 => State::Active,
            1 => State::Dirty,
            2 => State::Muzzy,
            3 => State::Retained,
            4 => State::Cached,
            _ => State::Purging,
        }
    }

    /// Dirty, muzzy or retained: in one of the page allocator's free sets.
    #[inline(always)]
    pub fn is_free(self) -> bool {
        matches!(self, State::Dirty | State::Muzzy | State::Retained)
    }
}

/// Marks a slab that sits in no bucket (current slab, or full).
pub const NO_BUCKET: u8 = u8::MAX;

/// One page range. 128 bytes, cache-line aligned.
#[repr(C, align(64))]
pub struct Extent {
    /// First byte. Sync: written under the arena's Pac lock; immutable while active.
    pub addr: usize,
    /// Length in bytes. Sync: Pac lock (an active large extent's owner resizes it under it).
    pub size: usize,
    /// List links (eset bin list while free, bin bucket list while a slab).
    /// Sync: the lock of the list's owner (Pac lock or Bin lock).
    pub prev: *mut Extent,
    pub next: *mut Extent,
    /// `State` as u8. Sync: atomic so that lock-free misuse classification in free may read it;
    /// written under the Pac lock, except Active ↔ Cached, which the thread cache holding the
    /// block writes without it (the page allocator reads states only to find free extents,
    /// and both values mean "in use" to it).
    state: AtomicU8,
    /// Owning arena. Sync: set under the Pac lock before publication, then immutable.
    pub arena: u8,
    /// Slab or large. Sync: as `arena`, for the extent's active life.
    pub is_slab: bool,
    /// Size class of a slab. Sync: as `is_slab`.
    pub bin: u8,
    /// All pages read as zero (fresh or purged). Sync: Pac lock.
    pub zeroed: bool,
    /// The bin bucket the slab is filed in (at most its fill level `bucket_of(nfree)`: frees
    /// leave a slab where it is, see `objects::bin`), or NO_BUCKET for the current slab and
    /// full slabs. Sync: written under the Bin lock; atomic so that the
    /// thread cache's free path can read it without the lock (sparse-slab bypass).
    bucket: AtomicU8,
    /// Free regions of a slab. Sync: as `bucket`.
    nfree: AtomicU16,
    /// The sparse mark the slab's page-map entries carry now (`bin` settles it to
    /// `bin::is_sparse` of its fill level at the end of each locked operation). Sync: Bin lock.
    pub tagged_sparse: bool,
    /// A large block `xallocx` left bigger than its `size` asked for: `sdallocx` then takes
    /// any size up to the usable one (the program may name any size it asked for since).
    /// Sync: set by the block's owner while the block is live; reset under the Pac lock when
    /// the extent becomes active. A block the thread cache hands out again may keep a stale
    /// `true`, which only relaxes that block's size check.
    pub loose_size: AtomicBool,
    /// Free-region bitmap of a slab (1 = free). Sync: as `bucket` (see `Bitmap`).
    pub bitmap: Bitmap,
    /// Links in its free set's age order while free (`Eset`: oldest first, so decay purges
    /// the pages freed longest ago first). Sync: the Pac lock.
    pub lru_prev: *mut Extent,
    pub lru_next: *mut Extent,
}

const _: () = assert!(core::mem::size_of::<Extent>() == 128);

/// Alignment of every descriptor: page-map entries keep a tag in the bits below it
/// (`rtree::slab_entry`).
pub const EXTENT_ALIGN: usize = 128;
const _: () = assert!(core::mem::size_of::<Extent>().is_multiple_of(EXTENT_ALIGN));

impl Extent {
    #[inline(always)]
    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Relaxed))
    }

    #[inline(always)]
    pub fn set_state(&self, s: State) {
        self.state.store(s as u8, Ordering::Relaxed)
    }

    #[inline(always)]
    pub fn nfree(&self) -> usize {
        self.nfree.load(Ordering::Relaxed) as usize
    }

    /// Sets the free-region count (Bin lock held).
    #[inline(always)]
    pub fn set_nfree(&self, n: usize) {
        self.nfree.store(n as u16, Ordering::Relaxed)
    }

    #[inline(always)]
    pub fn bucket(&self) -> u8 {
        self.bucket.load(Ordering::Relaxed)
    }

    /// Sets the bucket index (Bin lock held).
    #[inline(always)]
    pub fn set_bucket(&self, b: u8) {
        self.bucket.store(b, Ordering::Relaxed)
    }

    #[inline(always)]
    pub fn pages(&self) -> usize {
        self.size >> LG_PAGE
    }

    #[inline(always)]
    pub fn end(&self) -> usize {
        self.addr + self.size
    }

    /// Address of the last page.
    #[inline(always)]
    pub fn last_page(&self) -> usize {
        self.addr + self.size - (1 << LG_PAGE)
    }
}

/// Intrusive doubly linked list of extents (head only; LIFO).
#[derive(Clone, Copy)]
pub struct List {
    pub head: *mut Extent,
}

impl Default for List {
    fn default() -> Self {
        Self::new()
    }
}

impl List {
    pub const fn new() -> Self {
        List { head: core::ptr::null_mut() }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// # Safety
    /// `e` is a live descriptor in no list; the caller holds the list owner's lock.
    #[inline]
    pub unsafe fn push(&mut self, e: *mut Extent) {
        (*e).prev = core::ptr::null_mut();
        (*e).next = self.head;
        if !self.head.is_null() {
            (*self.head).prev = e;
        }
        self.head = e;
    }

    /// # Safety
    /// `e` is in this list; the caller holds the list owner's lock.
    #[inline]
    pub unsafe fn remove(&mut self, e: *mut Extent) {
        let (p, n) = ((*e).prev, (*e).next);
        if p.is_null() {
            self.head = n;
        } else {
            (*p).next = n;
        }
        if !n.is_null() {
            (*n).prev = p;
        }
        (*e).prev = core::ptr::null_mut();
        (*e).next = core::ptr::null_mut();
    }

    /// # Safety
    /// As `remove`.
    #[inline]
    pub unsafe fn pop(&mut self) -> *mut Extent {
        let e = self.head;
        if !e.is_null() {
            self.remove(e);
        }
        e
    }
}

/// Recycled descriptors of one arena. Sync: the arena's Pac lock.
pub struct ExtentPool {
    free: *mut Extent,
}

impl Default for ExtentPool {
    fn default() -> Self {
        Self::new()
    }
}

impl ExtentPool {
    pub const fn new() -> Self {
        ExtentPool { free: core::ptr::null_mut() }
    }

    /// A zero-initialized descriptor (state Active), or null when out of metadata memory.
    pub fn get(&mut self) -> *mut Extent {
        if self.free.is_null() {
            const BATCH: usize = 64;
            let p = BASE.alloc(BATCH * core::mem::size_of::<Extent>(), EXTENT_ALIGN) as *mut Extent;
            if p.is_null() {
                return p;
            }
            for i in 0..BATCH {
                // SAFETY: `p` points to BATCH zeroed, exclusively owned descriptors.
                unsafe { self.put(p.add(i)) };
            }
        }
        let e = self.free;
        // SAFETY: `e` is a pooled descriptor, owned by the pool (Pac lock held by caller).
        unsafe {
            self.free = (*e).next;
            core::ptr::write_bytes(e, 0, 1);
        }
        e
    }

    /// Returns a descriptor to the pool.
    ///
    /// # Safety
    /// `e` is no longer referenced by any list or rtree slot.
    pub unsafe fn put(&mut self, e: *mut Extent) {
        (*e).next = self.free;
        self.free = e;
    }
}
