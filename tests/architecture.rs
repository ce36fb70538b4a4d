//! The layering ARCHITECTURE.md promises, checked on the source: no module imports one of a
//! higher layer, and no two files under src/ import each other, directly or round a loop.
//!
//! Imports are read from the text (`use` trees and inline `crate::…`/`super::…` paths); unit
//! tests (`#[cfg(test)] mod tests`) are left out, and a `mod.rs` re-exporting its children is
//! a facade, not a dependency: an import of `module::Item` counts as one of the child file
//! that defines `Item`.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first; a module may import its own layer or lower ones.
const LAYERS: &[&[&str]] = &[
    &["atomic", "hash", "simd", "stamp"],
    &["model_path", "checkpoint", "text", "video", "dataset"],
    &["metrics", "encoder"],
    &["features"],
    &["decoder"],
    &["familiarity"],
    &["train", "synth"],
    &["pipeline"],
    &["output"],
    &["annotate"],
    &["cli"],
    &["lib", "main"],
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` is not in LAYERS (tests/architecture.rs)"))
}

/// Source files by module path (`["decoder", "model"]`); `mod.rs` and `lib.rs` stand for
/// their folder.
fn source_files() -> BTreeMap<Vec<String>, PathBuf> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                let mut p = prefix.to_vec();
                p.push(name);
                walk(&path, &p, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let mut p = prefix.to_vec();
                if name != "mod" {
                    p.push(name);
                }
                out.insert(p, path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &[],
        &mut out,
    );
    // lib.rs and main.rs are the crate root and the binary.
    let root = out.remove(&vec!["lib".to_string()]).unwrap();
    out.insert(vec![], root);
    out
}

/// The source without comments, string literals and unit-test modules.
fn code_of(text: &str) -> String {
    let cut = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    let mut out = String::new();
    for line in text[..cut].lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut in_str = false;
        let mut prev = ' ';
        for c in line.chars() {
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                out.push(c);
            }
            prev = c;
        }
        out.push('\n');
    }
    out
}

/// Every path a file names that starts with `crate`, `super` or `self`, with `use` trees
/// (`use a::{b, c::d}`) expanded.
fn paths_in(code: &str) -> Vec<Vec<String>> {
    fn expand(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
        let tree = tree.trim();
        if let Some(open) = tree.find('{') {
            let head: Vec<String> = split_path(&tree[..open]);
            let mut base = prefix.to_vec();
            base.extend(head);
            let inner = &tree[open + 1..tree.rfind('}').unwrap()];
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&base, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand(&base, &inner[start..], out);
        } else if !tree.is_empty() {
            let mut p = prefix.to_vec();
            p.extend(split_path(tree.split(" as ").next().unwrap()));
            out.push(p);
        }
    }
    fn split_path(s: &str) -> Vec<String> {
        s.split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
    let mut out = Vec::new();
    // `use` statements, possibly spanning lines.
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        rest = &rest[at + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest.find(';').unwrap_or(rest.len());
        expand(&[], &rest[..end], &mut out);
        rest = &rest[end..];
    }
    // Inline paths such as `crate::video::motion::MOTION_DIM`.
    for (at, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        if code[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        {
            continue;
        }
        let tail: String = code[at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        out.push(split_path(&tail));
    }
    out.retain(|p| {
        matches!(
            p.first().map(String::as_str),
            Some("crate" | "super" | "self")
        )
    });
    out
}

/// For a `mod.rs`, which child module defines each re-exported name (`pub use child::X`).
fn reexports(code: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for path in paths_in(&code.replace("pub use ", "use self::")) {
        if path.len() >= 3 && path[0] == "self" {
            out.insert(path.last().unwrap().clone(), path[1].clone());
        }
    }
    out
}

/// The file a path names, seen from module `from`.
fn resolve(
    path: &[String],
    from: &[String],
    files: &BTreeMap<Vec<String>, PathBuf>,
    reexported: &BTreeMap<Vec<String>, BTreeMap<String, String>>,
) -> Option<Vec<String>> {
    let mut module: Vec<String> = from.to_vec();
    let mut segs = path.iter().peekable();
    if segs.peek().is_some_and(|s| s.as_str() == "crate") {
        module.clear();
        segs.next();
    }
    while let Some(s) = segs.peek() {
        match s.as_str() {
            "super" => {
                module.pop()?;
                segs.next();
            }
            "self" => {
                segs.next();
            }
            _ => break,
        }
    }
    for seg in segs {
        let mut child = module.clone();
        child.push(seg.clone());
        if files.contains_key(&child) {
            module = child;
            continue;
        }
        if let Some(owner) = reexported.get(&module).and_then(|r| r.get(seg)) {
            module.push(owner.clone());
        }
        break;
    }
    files.contains_key(&module).then_some(module)
}

fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let files = source_files();
    let codes: BTreeMap<Vec<String>, String> = files
        .iter()
        .map(|(m, p)| (m.clone(), code_of(&std::fs::read_to_string(p).unwrap())))
        .collect();
    let is_dir = |m: &Vec<String>| {
        files[m]
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs")
    };
    let reexported: BTreeMap<Vec<String>, BTreeMap<String, String>> = codes
        .iter()
        .filter(|(m, _)| is_dir(m))
        .map(|(m, code)| (m.clone(), reexports(code)))
        .collect();
    let mut edges = BTreeMap::new();
    for (module, code) in &codes {
        let mut deps = BTreeSet::new();
        for path in paths_in(code) {
            if path[0] == "self" && !is_dir(module) {
                // `self::x` in a file names its own items.
                continue;
            }
            if let Some(target) = resolve(&path, module, &files, &reexported) {
                // A module's facade naming its own children is not a dependency.
                let own_child = is_dir(module) && target.starts_with(module);
                if target != *module && !own_child {
                    deps.insert(target);
                }
            }
        }
        edges.insert(module.clone(), deps);
    }
    edges
}

fn top(module: &[String]) -> &str {
    module.first().map_or("lib", String::as_str)
}

fn show(module: &[String]) -> String {
    if module.is_empty() {
        "lib".into()
    } else {
        module.join("::")
    }
}

#[test]
fn no_module_imports_a_higher_layer() {
    let mut wrong = Vec::new();
    for (module, deps) in graph() {
        for dep in deps {
            let (from, to) = (top(&module), top(&dep));
            if from != to && !dep.is_empty() && layer_of(to) > layer_of(from) {
                wrong.push(format!("{} imports {}", show(&module), show(&dep)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_import_cycle_between_files() {
    let edges = graph();
    // Depth-first search for a back edge; reports the first cycle found.
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in &edges[node] {
            match state.get(next).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|n| n == next).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if state.get(node).copied().unwrap_or(0) == 0
            && let Some(cycle) = visit(node, &edges, &mut state, &mut Vec::new())
        {
            let names: Vec<String> = cycle.iter().map(|m| show(m)).collect();
            panic!("import cycle: {}", names.join(" → "));
        }
    }
}

#[test]
fn the_checker_sees_imports() {
    // Guards the parser itself: facts about the code that must hold for the checks to mean
    // anything.
    let edges = graph();
    let m = |s: &str| -> Vec<String> { s.split("::").map(str::to_string).collect() };
    assert!(edges[&m("decoder::model")].contains(&m("features")));
    assert!(edges[&m("cli::train")].contains(&m("features::source")));
    assert!(edges[&m("features::extract")].contains(&m("features::assemble")));
}
