//! Lab.toml's JSON Schema (`lab schema`) accepts every lab lab ships (the presets, the
//! scenario library, the fixtures) and rejects a misspelled key, as an editor checking the
//! file against it would.

use std::path::Path;

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&model::load::schema()).expect("a valid JSON Schema")
}

fn as_json(toml_text: &str) -> serde_json::Value {
    let v: toml::Value = toml::from_str(toml_text).unwrap();
    serde_json::to_value(v).unwrap()
}

fn tomls(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn presets_scenarios_and_fixtures_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut labs: Vec<(String, String)> = vec![
        (
            "builtin".into(),
            model::Preset::Builtin.source().to_string(),
        ),
        ("guide".into(), model::Preset::Guide.source().to_string()),
    ];
    labs.extend(tomls(&root.join("scenarios")));
    labs.extend(tomls(&root.join("../../fixtures/labs")));
    assert!(labs.len() > 25, "{}", labs.len());
    let v = validator();
    for (name, text) in &labs {
        let errors: Vec<String> = v
            .iter_errors(&as_json(text))
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        // ...and the loader agrees.
        model::parse(name, text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn a_misspelled_key_is_rejected_where_it_is() {
    let v = validator();
    let text = model::Preset::Builtin.source().replacen(
        "address = \"10.1.1.2/24\"",
        "adress = \"10.1.1.2/24\"",
        1,
    );
    let errors: Vec<String> = v
        .iter_errors(&as_json(&text))
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("adress") && errors[0].contains("/hosts/ue1/interfaces/"),
        "{errors:?}"
    );
    // A value of the wrong kind, and a missing required key.
    let wrong = model::Preset::Builtin
        .source()
        .replacen("memory_mib = 2048", "memory_mib = \"lots\"", 1)
        .replacen("role = \"server\"\n", "", 1);
    let errors: Vec<String> = v
        .iter_errors(&as_json(&wrong))
        .map(|e| format!("{e}"))
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
}
