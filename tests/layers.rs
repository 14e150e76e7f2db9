//! The source tree's layering, checked: `src/<folder>/` is one layer of the table in
//! `src/lib.rs`, and outside its tests a module may name only modules of its own layer or of
//! lower ones; within a layer the modules' references form no cycle (a module naming its own
//! folder's `mod.rs`, the folder's interface, does not count).
//!
//! A reference is any `crate::<path>` or `super::<path>` in the code (comments and the
//! trailing `#[cfg(test)] mod tests` are skipped), resolved to the longest path that is a
//! file of the tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer folders, lowest first (`src/lib.rs`'s table).
const LAYERS: &[&str] = &["foundation", "metadata", "pages", "objects", "tcache", "front", "ffi", "rust"];

mod common;
use common::rs_files;

/// Module path of a file under src: `front/ctl/mod.rs` → ["front", "ctl"].
fn module_of(rel: &Path) -> Vec<String> {
    let mut m: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    let last = m.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        m.push(stem.to_string());
    }
    m
}

/// The code of a file without comments and without its trailing test module.
fn code_of(text: &str) -> String {
    let mut code = String::new();
    let mut prev_cfg_test = false;
    for line in text.lines() {
        let t = line.trim_start();
        if prev_cfg_test && (t.starts_with("mod tests") || t.starts_with("pub(crate) mod tests")) {
            break;
        }
        prev_cfg_test = t.starts_with("#[cfg(test)]") || t.starts_with("#[cfg(all(test");
        let cut = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        code.push_str(cut);
        code.push('\n');
    }
    code
}

/// Every `crate::a::b...` / `super::a...` path in `code`, as components after the prefix
/// (`super` resolved against `module`). Grouped imports (`{...}`) contribute their prefix.
fn references(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent_of(module))] {
        let mut from = 0;
        while let Some(i) = code[from..].find(prefix) {
            let at = from + i;
            from = at + prefix.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_' || bytes[at - 1] == b':') {
                continue;
            }
            let mut path = base.clone();
            let mut j = from;
            loop {
                let start = j;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                if j == start {
                    break;
                }
                path.push(code[start..j].to_string());
                if code[j..].starts_with("::") {
                    j += 2;
                } else {
                    break;
                }
            }
            out.push(path);
        }
    }
    out
}

/// The module `super` names from `module` (a `mod.rs` is its folder's module).
fn parent_of(module: &[String]) -> Vec<String> {
    let mut p = module.to_vec();
    p.pop();
    p
}

#[test]
fn imports_follow_the_layers_and_make_no_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> =
        files.iter().map(|f| (module_of(f.strip_prefix(&src).unwrap()), f.clone())).collect();
    let layer_of = |m: &[String]| m.first().and_then(|top| LAYERS.iter().position(|l| l == top));
    let mut errors = Vec::new();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, file) in &modules {
        if module.is_empty() {
            continue; // lib.rs
        }
        let Some(layer) = layer_of(module) else {
            errors.push(format!("{}: not in a layer folder ({LAYERS:?})", file.display()));
            continue;
        };
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        for path in references(&code, module) {
            // The longest prefix of `path` that is a module of the tree.
            let Some(target) = (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| modules.contains_key(p)) else {
                continue; // a macro at the crate root (static_addr!) or an item of lib.rs
            };
            let Some(to_layer) = layer_of(&target) else { continue };
            if to_layer > layer {
                errors.push(format!("{}: layer {} `{}` names `{}` of layer {}", file.display(), LAYERS[layer], module.join("::"), target.join("::"), LAYERS[to_layer]));
            }
            let own_folder_interface = target.len() < module.len() && module.starts_with(&target);
            if to_layer == layer && &target != module && !own_folder_interface {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    // Cycles within a layer: depth-first search with colours.
    fn visit(
        m: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        colour: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
        errors: &mut Vec<String>,
    ) {
        colour.insert(m.clone(), 1);
        stack.push(m.clone());
        for n in edges.get(m).into_iter().flatten() {
            match colour.get(n).copied().unwrap_or(0) {
                0 => visit(n, edges, colour, stack, errors),
                1 => {
                    let from = stack.iter().position(|x| x == n).unwrap();
                    let cycle: Vec<String> = stack[from..].iter().chain([n]).map(|x| x.join("::")).collect();
                    errors.push(format!("cycle: {}", cycle.join(" -> ")));
                }
                _ => {}
            }
        }
        stack.pop();
        colour.insert(m.clone(), 2);
    }
    let mut colour = BTreeMap::new();
    for m in modules.keys() {
        if colour.get(m).copied().unwrap_or(0) == 0 {
            visit(m, &edges, &mut colour, &mut Vec::new(), &mut errors);
        }
    }
    assert!(errors.is_empty(), "layering broken:\n{}", errors.join("\n"));
}
