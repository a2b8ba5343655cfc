//! `lab graph`'s renderings, golden: the built-in lab, a point-to-point lab with shaping and a
//! dual-stack lab, as Graphviz dot, Mermaid and SVG.

fn fixture(name: &str) -> model::Lab {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/labs")
        .join(name);
    model::load_file(&path).unwrap()
}

#[test]
fn graphs_of_the_builtin_and_fixture_labs() {
    let labs = [
        ("builtin", model::Preset::Builtin.load().unwrap()),
        ("p2p-shaped", fixture("p2p-shaped.toml")),
        ("dual-stack", fixture("dual-stack.toml")),
    ];
    for (name, lab) in labs {
        insta::assert_snapshot!(format!("{name}.dot"), model::graph::dot(&lab));
        insta::assert_snapshot!(format!("{name}.mermaid"), model::graph::mermaid(&lab));
        insta::assert_snapshot!(format!("{name}.svg"), model::graph::svg(&lab));
    }
}
