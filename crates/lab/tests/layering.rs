//! The crate graph keeps its layers: reads every crate's Cargo.toml and fails when a crate
//! depends on one it may not (providers on each other or on the orchestration crate,
//! renderers on anything effectful, the model on providers), or on a workspace crate it does
//! not list here (a new crate must take its place in the layers first).

use std::collections::BTreeMap;
use std::path::Path;

/// What each workspace crate may depend on (normal dependencies; dev-dependencies may add
/// `testkit` and the crate's own layer).
fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        // Ground: pure renderers, the command seam, downloads.
        ("net", &[][..]),
        ("guest", &["net"][..]),
        ("fetch", &[][..]),
        ("boxes", &[][..]),
        ("decode", &[][..]),
        ("plot", &[][..]),
        ("probe", &[][..]),
        // The model: Lab.toml, nothing effectful.
        ("model", &["net", "boxes"][..]),
        // Tool crates: one tool each.
        ("netns", &["net", "guest"][..]),
        ("qemu", &["net", "guest", "fetch"][..]),
        ("vbox", &["net", "guest"][..]),
        ("libvirt", &[][..]),
        ("kernel", &["guest", "fetch"][..]),
        ("measure", &["guest", "netns"][..]),
        ("capture", &["netns", "guest"][..]),
        // The provider interface.
        ("provider", &["model", "net", "guest", "boxes", "fetch"][..]),
        (
            "images",
            &["provider", "model", "qemu", "fetch", "guest", "boxes"][..],
        ),
        // Plugins: the interface, the model, their own tool, the ground.
        (
            "provider-netns",
            &["provider", "model", "net", "netns", "guest"][..],
        ),
        (
            "provider-qemu",
            &[
                "provider", "model", "net", "guest", "fetch", "qemu", "boxes", "images",
            ][..],
        ),
        (
            "provider-virtualbox",
            &["provider", "model", "net", "guest", "vbox", "boxes"][..],
        ),
        ("provider-ssh", &["provider", "model", "guest"][..]),
        (
            "provider-libvirt",
            &[
                "provider", "model", "net", "guest", "libvirt", "qemu", "images",
            ][..],
        ),
        // Orchestration: the session and lab's own providers.
        (
            "lab",
            &[
                "model",
                "provider",
                "provider-netns",
                "provider-qemu",
                "provider-virtualbox",
                "provider-ssh",
                "provider-libvirt",
                "net",
                "netns",
                "guest",
                "measure",
                "qemu",
                "kernel",
                "capture",
                "decode",
                "plot",
            ][..],
        ),
        ("cli", &["lab", "kernel", "guest", "measure", "net"][..]),
        (
            "testkit",
            &["kernel", "guest", "decode", "qemu", "boxes", "fetch"][..],
        ),
    ])
}

fn deps(table: Option<&toml::Value>, workspace: &[String]) -> Vec<String> {
    table
        .and_then(|t| t.as_table())
        .map(|t| {
            t.keys()
                .filter(|k| workspace.contains(k))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn layers_point_down() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let crates: Vec<String> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let allowed = allowed();
    let mut problems = Vec::new();
    for c in &crates {
        let text = std::fs::read_to_string(root.join("crates").join(c).join("Cargo.toml")).unwrap();
        let doc: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(
            doc["package"]["name"].as_str(),
            Some(c.as_str()),
            "crates/{c} must hold the package {c}"
        );
        let Some(ok) = allowed.get(c.as_str()) else {
            problems.push(format!(
                "crates/{c} has no place in the layers (add it to this test)"
            ));
            continue;
        };
        for d in deps(doc.get("dependencies"), &crates) {
            if !ok.contains(&d.as_str()) {
                problems.push(format!("{c} depends on {d}, which its layer may not"));
            }
        }
        // Tests of a provider do not reach into another provider either.
        for d in deps(doc.get("dev-dependencies"), &crates) {
            if c.starts_with("provider-") && d.starts_with("provider-") {
                problems.push(format!("{c}'s tests depend on {d}, another provider"));
            }
        }
    }
    // Providers never depend on each other nor on the orchestration crate.
    for c in crates.iter().filter(|c| c.starts_with("provider-")) {
        for d in allowed[c.as_str()] {
            assert!(
                !d.starts_with("provider-") && *d != "lab" && *d != "cli",
                "the rule itself lets {c} depend on {d}"
            );
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_rule_catches_a_provider_on_another() {
    // The test above must be able to fail: a provider-qemu that reached into provider-netns.
    let ok = allowed();
    assert!(!ok["provider-qemu"].contains(&"provider-netns"));
    assert!(!ok["model"].iter().any(|d| d.starts_with("provider")));
    assert!(
        ok["net"].is_empty(),
        "renderers depend on nothing effectful"
    );
}
