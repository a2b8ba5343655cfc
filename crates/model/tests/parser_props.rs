//! No input makes the Lab.toml parser panic: arbitrary text, and the presets cut, spliced and
//! sprinkled with hostile bytes. Every result is either a lab or diagnostics whose spans lie
//! inside the source.

use model::{LoadError, Preset};
use proptest::prelude::*;

fn check(src: &str) {
    match model::parse("fuzz.toml", src) {
        Ok(lab) => {
            // A valid lab must render without panicking too.
            for h in &lab.hosts {
                let net = h.net();
                let _ = net::script::render(&net, "fuzz");
                let _ = net::netplan::render(&net, "fuzz");
                let _ = model::doctor::check(&lab);
            }
        }
        Err(LoadError::Invalid(inv)) => {
            assert!(!inv.diagnostics.is_empty());
            for d in &inv.diagnostics {
                assert!(
                    d.span.start <= d.span.end && d.span.end <= src.len(),
                    "{d:?}"
                );
            }
            let _ = inv.render_plain();
        }
        Err(e) => panic!("parse returned an IO error: {e}"),
    }
}

fn preset_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(Preset::Builtin.source().to_string()),
        Just(Preset::Guide.source().to_string()),
        Just(include_str!("../../../fixtures/labs/p2p-shaped.toml").to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text(src in ".{0,400}") {
        check(&src);
    }

    #[test]
    fn presets_with_a_range_deleted(text in preset_text(), a in 0usize..4000, len in 0usize..200) {
        let bytes = text.as_bytes();
        let a = a.min(bytes.len());
        let b = (a + len).min(bytes.len());
        let mut v = bytes[..a].to_vec();
        v.extend_from_slice(&bytes[b..]);
        check(&String::from_utf8_lossy(&v));
    }

    #[test]
    fn presets_with_junk_inserted(
        text in preset_text(),
        at in 0usize..4000,
        junk in prop::collection::vec(prop_oneof![
            Just("\"".to_string()), Just("[".to_string()), Just("]]".to_string()), Just("=".to_string()),
            Just("\n".to_string()), Just("é".to_string()), Just("999999999999999999999".to_string()),
            Just("-1".to_string()), Just("0/0".to_string()), Just("{".to_string()), Just(",".to_string()),
            "[a-z0-9._:/ -]{0,12}",
        ], 1..6),
    ) {
        let mut at = at.min(text.len());
        while !text.is_char_boundary(at) { at -= 1; }
        let src = format!("{}{}{}", &text[..at], junk.concat(), &text[at..]);
        check(&src);
    }

    #[test]
    fn presets_with_values_swapped(
        text in preset_text(),
        n in 0usize..40,
        value in prop_oneof![
            Just("\"\"".to_string()), Just("\"10.1.1.1/24\"".to_string()), Just("0".to_string()),
            Just("4294967296".to_string()), Just("true".to_string()), Just("[]".to_string()),
            Just("\"enp0s8\"".to_string()), Just("\"laminar\"".to_string()), Just("{}".to_string()),
        ],
    ) {
        // Replace the value of the n-th `key = value` line.
        let lines: Vec<&str> = text.lines().collect();
        let idx: Vec<usize> = lines.iter().enumerate().filter(|(_, l)| l.contains(" = ")).map(|(i, _)| i).collect();
        let i = idx[n % idx.len()];
        let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        let key = out[i].split(" = ").next().unwrap().to_string();
        out[i] = format!("{key} = {value}");
        check(&out.join("\n"));
    }
}
