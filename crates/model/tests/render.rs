//! Golden files (insta) for every renderer on both presets and a point-to-point lab.

use model::Preset;

const P2P: &str = include_str!("../../../fixtures/labs/p2p-shaped.toml");
const IPV6: &str = include_str!("../../../fixtures/labs/ipv6.toml");
const DUAL: &str = include_str!("../../../fixtures/labs/dual-stack.toml");

fn labs() -> Vec<(String, model::Lab)> {
    let mut out: Vec<(String, model::Lab)> = Preset::ALL
        .iter()
        .map(|p| (p.name().to_string(), p.load().unwrap()))
        .collect();
    out.push(("p2p".into(), model::parse("p2p-shaped.toml", P2P).unwrap()));
    out.push(("ipv6".into(), model::parse("ipv6.toml", IPV6).unwrap()));
    out.push((
        "dual".into(),
        model::parse("dual-stack.toml", DUAL).unwrap(),
    ));
    out
}

#[test]
fn scripts() {
    for (name, lab) in labs() {
        for h in &lab.hosts {
            let out =
                net::script::render(&h.net(), &format!("lab `{}`, host {}", lab.name, h.name));
            insta::assert_snapshot!(format!("script-{name}-{}", h.name), out);
        }
    }
}

#[test]
fn netplan() {
    for (name, lab) in labs() {
        for h in &lab.hosts {
            let out =
                net::netplan::render(&h.net(), &format!("lab `{}`, host {}", lab.name, h.name))
                    .unwrap();
            insta::assert_snapshot!(format!("netplan-{name}-{}", h.name), out);
        }
    }
}

#[test]
fn rt_tables() {
    for (name, lab) in labs() {
        for h in &lab.hosts {
            insta::assert_snapshot!(
                format!("rt_tables-{name}-{}", h.name),
                net::rt_tables::render(&h.net())
            );
        }
    }
}

#[test]
fn json_plans() {
    for (name, lab) in labs() {
        for h in &lab.hosts {
            let steps = net::plan(&h.net());
            insta::assert_json_snapshot!(
                format!("plan-{name}-{}", h.name),
                net::plan::rendered(&steps)
            );
        }
    }
}

#[test]
fn resolved_models() {
    for (name, lab) in labs() {
        insta::assert_json_snapshot!(format!("model-{name}"), lab);
    }
}
