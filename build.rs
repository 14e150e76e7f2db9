//! Compiles src/ffi/cxx_new.c, the throwing `operator new` forms (they must be C so that a C++
//! exception can leave them; see that file), and links the shared library with `-z nodelete`.
//! Only for the exporting build (feature `export`, which also brings in the optional `cc`): by
//! default the crate needs no C compiler.
//!
//! `-z nodelete`: dlclose() never unmaps liboxmalloc.so. A thread that allocated through it
//! holds a cache whose exit destructor (a pthread key's) and blocks live in the library; a
//! program that dlopen()s the library and dlclose()s it while such a thread lives would
//! otherwise crash when the thread exits (`ctests/dlopen/unload.c`).

fn main() {
    println!("cargo:rerun-if-changed=src/ffi/cxx_new.c");
    #[cfg(feature = "export")]
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    #[cfg(feature = "export")]
    cc::Build::new()
        .file("src/ffi/cxx_new.c")
        .flag("-fexceptions")
        .flag("-fvisibility=hidden")
        .opt_level(2)
        .warnings(true)
        .compile("oxmalloc_cxx_new");
}
