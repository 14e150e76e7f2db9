//! Every public item of the Rust API (`src/rust/`: `OxMalloc`, `ctl`) has rustdoc with an
//! example; `cargo test --doc` compiles and runs the examples. Items are found by their
//! `pub` line (functions, types, constants, modules; fields and variants are covered by the
//! crate's `deny(missing_docs)`): the `///` block above it, or for a module in its own file
//! that file's `//!` block, must hold a code block. The layer's own `mod.rs` only declares
//! its modules (the crate root re-exports what is public) and is skipped.

use std::path::Path;

mod common;
use common::rs_files;

const ITEMS: &[&str] = &["pub fn ", "pub struct ", "pub enum ", "pub const ", "pub static ", "pub type ", "pub trait ", "pub mod "];

#[test]
fn every_public_item_has_an_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/rust");
    let mut files = Vec::new();
    rs_files(&root, &mut files);
    let mut missing = Vec::new();
    for file in &files {
        if file == &root.join("mod.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            let Some(kind) = ITEMS.iter().find(|k| t.starts_with(**k)) else { continue };
            let example = if *kind == "pub mod " && t.ends_with(';') {
                // A module in its own file: its `//!` block.
                let name = t["pub mod ".len()..].trim_end_matches(';');
                let dir = file.parent().unwrap();
                let sub = [dir.join(format!("{name}.rs")), dir.join(name).join("mod.rs")];
                let sub = sub.iter().find(|p| p.is_file()).expect("module file");
                std::fs::read_to_string(sub).unwrap().lines().take_while(|l| l.starts_with("//!")).any(|l| l.contains("```"))
            } else {
                // The `///` and attribute lines right above the item.
                lines[..n]
                    .iter()
                    .rev()
                    .map(|l| l.trim_start())
                    .take_while(|l| l.starts_with("///") || l.starts_with("#["))
                    .any(|l| l.starts_with("///") && l.contains("```"))
            };
            if !example {
                missing.push(format!("{}:{}: {}", file.strip_prefix(&root).unwrap().display(), n + 1, t));
            }
        }
    }
    assert!(missing.is_empty(), "public items without an example in their docs:\n{}", missing.join("\n"));
}
