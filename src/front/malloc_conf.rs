//! The `malloc_conf` data symbol: a program may define `const char *malloc_conf = "...";`
//! (jemalloc's drop-in convention) and oxmalloc reads it at init.
//!
//! Contract: the library exports `malloc_conf` (NULL) and reads it through its GOT entry, so
//! when the executable defines and exports its own (any program linked against a library
//! that references it does), the dynamic linker binds that entry to the executable's copy and
//! we read the program's string. Reading through the GOT needs no `dlsym`, which could
//! allocate during init. Without the `export` feature (the default: a Rust program using the
//! crate, unit tests) there is no symbol.

#[cfg(feature = "export")]
mod symbol {
    /// jemalloc's option string symbol. Sync: never written by us; a program sets it
    /// statically before the allocator starts.
    #[no_mangle]
    #[used]
    pub static mut malloc_conf: *const core::ffi::c_char = core::ptr::null();

    pub fn read() -> *const core::ffi::c_char {
        let slot: *const *const core::ffi::c_char;
        // SAFETY: loads the address of `malloc_conf` (ours, or the executable's that
        // interposes it) from the GOT; reads nothing else.
        unsafe {
            core::arch::asm!(
                "mov {0}, qword ptr [rip + {1}@GOTPCREL]",
                out(reg) slot,
                sym malloc_conf,
                options(pure, readonly, nostack, preserves_flags),
            );
            *slot
        }
    }
}

/// The program's `malloc_conf` string, if it set one.
pub fn program_malloc_conf() -> Option<&'static [u8]> {
    #[cfg(feature = "export")]
    let p = symbol::read();
    #[cfg(not(feature = "export"))]
    let p: *const core::ffi::c_char = core::ptr::null();
    // SAFETY: `p` is NULL or a NUL-terminated string (the C convention for malloc_conf).
    (!p.is_null()).then(|| unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes())
}
