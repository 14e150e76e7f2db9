//! `mallctl`, `mallctlnametomib`, `mallctlbymib`: jemalloc's control namespace.
//!
//! Contract (reference/jemalloc-compat.md §2): names are dot-separated paths in a tree whose
//! child positions follow jemalloc 5.3's numbering for every name we serve, so MIBs a client
//! computed against jemalloc stay valid. Integer components index arenas and bins. The
//! read/write protocol is jemalloc's macros, exactly:
//! - read (`oldp` and `oldlenp` non-null): `*oldlenp` must equal the value's size; otherwise
//!   `min(size, *oldlenp)` bytes are copied, `*oldlenp` is set to that count, and EINVAL;
//! - write (`newp` non-null): `newlen` must equal the value's size, else EINVAL;
//! - read-only names refuse a write, write-only names a read, actions both: EPERM;
//! - ENOENT: unknown name, a path that stops at an inner node, an index out of range;
//!   EFAULT: an operation that cannot be done; EAGAIN: out of resources.
//!
//! Nothing here allocates; strings returned are static.

pub mod names;
pub mod print;
pub mod stats;
pub mod utilization;

use core::mem::size_of;

pub type R = Result<(), i32>;

/// One request's buffers (raw C pointers, checked for null before use).
pub struct Req {
    pub oldp: *mut u8,
    pub oldlenp: *mut usize,
    pub newp: *const u8,
    pub newlen: usize,
}

impl Req {
    pub fn wants_read(&self) -> bool {
        !self.oldp.is_null() && !self.oldlenp.is_null()
    }

    pub fn readonly(&self) -> R {
        if !self.newp.is_null() || self.newlen != 0 {
            return Err(libc::EPERM);
        }
        Ok(())
    }

    pub fn writeonly(&self) -> R {
        if !self.oldp.is_null() || !self.oldlenp.is_null() {
            return Err(libc::EPERM);
        }
        Ok(())
    }

    /// An action: no buffers at all.
    pub fn void(&self) -> R {
        self.readonly()?;
        self.writeonly()
    }

    /// jemalloc's READ(v, T).
    pub fn read<T: Copy>(&self, v: T) -> R {
        if !self.wants_read() {
            return Ok(());
        }
        // SAFETY: the caller of mallctl promises `oldlenp` points to a size_t and `oldp` to at
        // least `*oldlenp` writable bytes (jemalloc's contract); we write at most that many.
        unsafe {
            let n = *self.oldlenp;
            if n != size_of::<T>() {
                let c = n.min(size_of::<T>());
                core::ptr::copy_nonoverlapping(&v as *const T as *const u8, self.oldp, c);
                *self.oldlenp = c;
                return Err(libc::EINVAL);
            }
            core::ptr::write_unaligned(self.oldp as *mut T, v);
        }
        Ok(())
    }

    /// jemalloc's WRITE(v, T): the new value if one was given. A `bool` is a byte the caller
    /// may have set to anything: any non-zero byte is true (reading it as a Rust `bool` would
    /// be undefined behaviour for bytes other than 0 and 1).
    pub fn write<T: Copy + 'static>(&self) -> Result<Option<T>, i32> {
        if self.newp.is_null() {
            return Ok(None);
        }
        if self.newlen != size_of::<T>() {
            return Err(libc::EINVAL);
        }
        if core::any::TypeId::of::<T>() == core::any::TypeId::of::<bool>() {
            // SAFETY: `newp` points to `newlen` = 1 readable byte (the caller's promise).
            let b = unsafe { *self.newp } != 0;
            // SAFETY: T is bool.
            return Ok(Some(unsafe { core::mem::transmute_copy::<bool, T>(&b) }));
        }
        // SAFETY: the caller promises `newp` points to `newlen` readable bytes.
        Ok(Some(unsafe { core::ptr::read_unaligned(self.newp as *const T) }))
    }

    /// A read-only value.
    pub fn ro<T: Copy>(&self, v: T) -> R {
        self.readonly()?;
        self.read(v)
    }
}

/// Deepest name (components), e.g. `stats.arenas.<i>.bins.<j>.curregs` = 6.
pub const MAX_DEPTH: usize = 7;

/// A resolved path: child positions (or index values) per component.
pub struct Path {
    pub mib: [usize; MAX_DEPTH],
    pub len: usize,
}

/// Index components collected along a path (arena, bin).
#[derive(Default)]
pub struct Idx {
    v: [usize; 2],
    n: usize,
}

impl Idx {
    pub fn get(&self, k: usize) -> usize {
        self.v[k.min(1)]
    }
}

/// mallctl(name, ...).
pub fn ctl_by_name(name: &[u8], req: &Req) -> R {
    crate::front::init::ensure();
    let path = names::lookup(name)?;
    names::call(&path.mib[..path.len], req)
}

/// mallctlnametomib(name, mibp, miblenp): `*miblenp` in = capacity, out = components written.
///
/// # Safety
/// `mibp` has room for `*miblenp` entries (C contract).
pub unsafe fn name_to_mib(name: &[u8], mibp: *mut usize, miblenp: *mut usize) -> R {
    crate::front::init::ensure();
    if mibp.is_null() || miblenp.is_null() {
        return Err(libc::EINVAL);
    }
    let path = names::lookup_prefix(name)?;
    let n = path.len.min(*miblenp);
    core::ptr::copy_nonoverlapping(path.mib.as_ptr(), mibp, n);
    *miblenp = n;
    Ok(())
}

/// mallctlbymib(mib, miblen, ...).
pub fn ctl_by_mib(mib: &[usize], req: &Req) -> R {
    crate::front::init::ensure();
    if mib.is_empty() || mib.len() > MAX_DEPTH {
        return Err(libc::ENOENT);
    }
    names::call(mib, req)
}

/// malloc_stats_print(write_cb, cbopaque, opts) (`print`).
pub fn stats_print(cb: print::WriteCb, opaque: *mut core::ffi::c_void, opts: &[u8]) {
    crate::front::init::ensure();
    print::print(cb, opaque, opts)
}

/// Errors as C ints.
pub fn errno_of(r: R) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_byte(b: u8) -> Result<Option<bool>, i32> {
        let req = Req { oldp: core::ptr::null_mut(), oldlenp: core::ptr::null_mut(), newp: &b, newlen: 1 };
        req.write::<bool>()
    }

    #[test]
    fn a_bool_written_as_any_byte_is_defined() {
        assert_eq!(write_byte(0), Ok(Some(false)));
        assert_eq!(write_byte(1), Ok(Some(true)));
        let v = write_byte(0x5a).unwrap().unwrap();
        assert!(v && v as u8 == 1, "a non-zero byte must read as true, not as a bool holding {:#x}", v as u8);
    }
}
