//! Every test that can skip for want of root, MPTCP or a tool is also marked, at build time,
//! ignored with the reason where this machine lacks it (the probe crate's cfgs): a skip must
//! not look like a pass in `cargo test --workspace`'s summary. This test reads the workspace's
//! tests and finds any that calls `testkit::require` (directly or through a helper of its
//! file) without a `#[cfg_attr(not(...), ignore = "...")]` under its `#[test]`.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name()
                .is_some_and(|n| n != "target" && n != "snapshots")
            {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The body of the function that starts at `at` (the text after its signature's `{`).
fn body(s: &str, at: usize) -> &str {
    let open = s[at..].find('{').map_or(s.len(), |i| at + i);
    let mut depth = 0usize;
    for (i, c) in s[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &s[open..open + i];
                }
            }
            _ => {}
        }
    }
    &s[open..]
}

#[test]
fn tests_that_can_skip_are_marked_ignored_where_they_cannot_run() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_files(&crates, &mut files);
    let mut unmarked = Vec::new();
    let mut marked = 0;
    for f in files
        .iter()
        .filter(|f| !f.starts_with(crates.join("testkit")))
    {
        let s = std::fs::read_to_string(f).unwrap();
        // Helpers of this file that can skip: functions (not tests) that call require.
        let mut skippers = vec!["testkit::require(".to_string()];
        for (at, _) in s.match_indices("\nfn ") {
            let name: String = s[at + 4..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if body(&s, at).contains("testkit::require(") {
                skippers.push(format!("{name}("));
            }
        }
        for (at, _) in s.match_indices("#[test]\n") {
            let after = &s[at + "#[test]\n".len()..];
            let attr = after.trim_start();
            let annotated = attr.starts_with("#[cfg_attr(")
                && attr
                    .split(")]")
                    .next()
                    .is_some_and(|a| a.contains("ignore ="));
            let b = body(&s, at);
            let skips = skippers.iter().any(|k| b.contains(k.as_str()));
            if skips && !annotated {
                let name: String = after
                    .split("fn ")
                    .nth(1)
                    .unwrap_or("")
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                unmarked.push(format!("{}: {name}", f.display()));
            }
            marked += usize::from(annotated);
        }
    }
    assert!(marked > 50, "only {marked} marked tests found");
    assert!(
        unmarked.is_empty(),
        "tests that skip without being marked ignored where they cannot run:\n{}",
        unmarked.join("\n")
    );
}
