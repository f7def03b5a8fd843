//! Embeds the shipped phone templates (src/devices/templates/<vendor>/…) in the binary, so
//! a server needs no files beside itself; and rebuilds the crate when a migration is added.

use std::{fmt::Write, fs, path::Path};

fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, root, out);
        } else if p.extension().is_some_and(|e| e != "md") {
            let name = p
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.push((
                name,
                p.canonicalize().unwrap().to_string_lossy().into_owned(),
            ));
        }
    }
}

fn main() {
    let root = Path::new("src/devices/templates");
    println!("cargo:rerun-if-changed=src/devices/templates");
    // The migrations are embedded by sqlx::migrate!: a new one alone must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    let mut files = Vec::new();
    walk(root, root, &mut files);
    let mut src = String::from("pub static BUILTIN: &[(&str, &str)] = &[\n");
    for (name, path) in files {
        writeln!(src, "    ({name:?}, include_str!({path:?})),").unwrap();
    }
    src.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("templates.rs");
    fs::write(out, src).unwrap();
}
