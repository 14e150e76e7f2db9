//! Compiles src/ffi/cxx_new.c, the throwing `operator new` forms (they must be C so that a C++
//! exception can leave them; see that file). Only for the exporting build (feature `export`,
//! which also brings in the optional `cc`): by default the crate needs no C compiler.

fn main() {
    println!("cargo:rerun-if-changed=src/ffi/cxx_new.c");
    #[cfg(feature = "export")]
    cc::Build::new()
        .file("src/ffi/cxx_new.c")
        .flag("-fexceptions")
        .flag("-fvisibility=hidden")
        .opt_level(2)
        .warnings(true)
        .compile("oxmalloc_cxx_new");
}
