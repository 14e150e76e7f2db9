//! include/oxmalloc.h must be what cbindgen generates from the current sources.
//! `OXMALLOC_BLESS=1 cargo test --test header` (or `make header`) rewrites it.

use std::path::PathBuf;

#[test]
fn header_is_current() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&root)
        .with_config(config)
        .generate()
        .expect("cbindgen failed")
        .write(&mut out);
    let path = root.join("include/oxmalloc.h");
    if std::env::var_os("OXMALLOC_BLESS").is_some() {
        std::fs::create_dir_all(root.join("include")).unwrap();
        std::fs::write(&path, &out).unwrap();
        return;
    }
    let have = std::fs::read(&path).unwrap_or_default();
    assert!(
        have == out,
        "include/oxmalloc.h is stale: run `make header` and commit the result"
    );
    let text = String::from_utf8(out).unwrap();
    for f in ["malloc", "free", "posix_memalign", "malloc_usable_size", "malloc_trim", "reallocarray"] {
        let declared = text.contains(&format!(" {f}(")) || text.contains(&format!("*{f}("));
        assert!(declared, "{f} missing from the header");
    }
}

/// The header compiles as C and as C++ with every warning an error, and its MALLOCX_* macros
/// have jemalloc's values.
#[test]
fn header_compiles_as_c_and_cxx() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("oxmalloc-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = r#"
#include "oxmalloc.h"
_Static_assert(MALLOCX_ZERO == 0x40, "ZERO");
_Static_assert(MALLOCX_TCACHE_NONE == 0x100, "TCACHE_NONE");
_Static_assert(MALLOCX_TCACHE(0) == 0x200, "TCACHE(0)");
_Static_assert(MALLOCX_ARENA(0) == 0x100000, "ARENA(0)");
_Static_assert(MALLOCX_ARENA(1) == 0x200000, "ARENA(1)");
_Static_assert(MALLOCX_LG_ALIGN(12) == 12, "LG_ALIGN");
_Static_assert(MALLCTL_ARENAS_ALL == 4096, "ARENAS_ALL");
const char *malloc_conf = "narenas:1";
int use(void);
int use(void) {
    void *p = mallocx(100, MALLOCX_ALIGN(64) | MALLOCX_ZERO);
    size_t n = nallocx(100, MALLOCX_ALIGN(64)) + sallocx(p, 0) + xallocx(p, 200, 0, 0);
    p = rallocx(p, 300, MALLOCX_TCACHE_NONE);
    sdallocx(p, 300, 0);
    dallocx(malloc(1), 0);
    size_t page = 0, len = sizeof page;
    n += (size_t)mallctl("arenas.page", &page, &len, NULL, 0);
    malloc_stats_print(NULL, NULL, "J");
    return (int)n + (MALLOCX_ALIGN(4096) == 12 ? 0 : 1);
}
"#;
    for (name, cxx) in [("use.c", false), ("use.cc", true)] {
        let file = dir.join(name);
        let text = if cxx { src.replace("_Static_assert", "static_assert") } else { src.to_string() };
        std::fs::write(&file, text).unwrap();
        let tool = cc::Build::new()
            .cpp(cxx)
            .target("x86_64-unknown-linux-gnu")
            .host("x86_64-unknown-linux-gnu")
            .opt_level(0)
            .cargo_metadata(false)
            .get_compiler();
        let mut cmd = tool.to_command();
        cmd.args(["-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-pedantic-errors"])
            .arg(if cxx { "-std=c++17" } else { "-std=c11" })
            .arg(format!("-I{}", root.join("include").display()))
            .arg(&file);
        let out = cmd.output().expect("C compiler");
        assert!(
            out.status.success(),
            "{name} does not compile cleanly:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
