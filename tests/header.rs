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
