//! The lab as a picture, like containerlab's and netlab's `graph`: hosts with their NICs
//! (addresses, MPTCP endpoint flags, routing table, shaping), the segments and point-to-point
//! links they are on, and each host's role, provider and limits. Three renderings, all pure:
//! Graphviz `dot`, Mermaid (GitHub and GitLab render it in Markdown), and a self-contained SVG
//! that needs neither Graphviz nor a font on the machine that writes it.

use std::fmt::Write as _;

use crate::model::{Attach, Host, Interface, Lab};

/// One NIC as the picture shows it: its lines of text and where it is attached.
struct Nic {
    name: String,
    lines: Vec<String>,
    /// The segment node it joins (`None`: a NAT NIC, drawn dashed to the NAT cloud).
    segment: Option<String>,
}

/// A host's title lines: `ue1`, `server · netns`, `limits 5/3`.
fn host_lines(h: &Host) -> Vec<String> {
    let mut v = vec![
        h.name.clone(),
        format!("{} · {}", h.role.as_str(), h.provider.as_str()),
    ];
    if let Some(l) = h.limits {
        v.push(format!(
            "limits subflow {} add_addr_accepted {}",
            l.subflows, l.add_addr_accepted
        ));
    }
    v
}

fn shaping_text(s: &net::Shaping) -> String {
    let mut parts = Vec::new();
    if let Some(r) = s.rate_bps {
        parts.push(if r % 1_000_000 == 0 {
            format!("{} Mbit/s", r / 1_000_000)
        } else {
            format!("{} kbit/s", r / 1_000)
        });
    }
    if let Some(d) = s.delay_us {
        parts.push(if d % 1000 == 0 {
            format!("{} ms", d / 1000)
        } else {
            format!("{d} µs")
        });
    }
    if let Some(l) = s.loss_ppm {
        parts.push(format!("{}% loss", f64::from(l) / 10_000.0));
    }
    parts.join(", ")
}

fn nic(h: &Host, i: &Interface) -> Nic {
    let mut lines = vec![i.name.clone()];
    if i.is_nat() {
        lines.push("NAT (management, DHCP)".into());
    }
    lines.extend(i.addresses.iter().map(ToString::to_string));
    let roles: Vec<String> = h
        .endpoints
        .iter()
        .filter(|e| i.has_address(e.address) || e.dev.as_deref() == Some(i.name.as_str()))
        .map(|e| {
            let words = e.flags.words().join(",");
            match e.port {
                Some(p) => format!("endpoint {words} port {p}"),
                None => format!("endpoint {words}"),
            }
        })
        .collect();
    if !i.is_nat() && roles.is_empty() {
        lines.push("no endpoint".into());
    }
    lines.extend(roles);
    if let Some(t) = h.tables.iter().find(|t| t.dev == i.name) {
        lines.push(format!("table {} ({})", t.name, t.id));
    }
    if let Some(s) = &i.shaping {
        lines.push(shaping_text(s));
    }
    if let Some(m) = i.mtu {
        lines.push(format!("mtu {m}"));
    }
    Nic {
        name: i.name.clone(),
        lines,
        segment: segment_of(i),
    }
}

/// The segment node a NIC joins: `net:NAME`, `link:NAME`, or `None` for NAT.
fn segment_of(i: &Interface) -> Option<String> {
    match &i.attach {
        Attach::Network(n) => Some(format!("net:{n}")),
        Attach::Link(l) => Some(format!("link:{l}")),
        Attach::Nat => None,
    }
}

/// Every attachment, host by host: the NIC's node (`HOST:NIC`) and its segment (`None`: NAT).
fn attachments(lab: &Lab) -> impl Iterator<Item = (String, Option<String>)> + '_ {
    lab.hosts.iter().flat_map(|h| {
        h.interfaces
            .iter()
            .map(move |i| (format!("{}:{}", h.name, i.name), segment_of(i)))
    })
}

/// Segment nodes: `(id, lines)` for every network and link, in Lab.toml order.
fn segments(lab: &Lab) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<(String, Vec<String>)> = lab
        .networks
        .iter()
        .map(|n| {
            let mut lines = vec![n.name.clone()];
            lines.extend(n.subnets.iter().map(ToString::to_string));
            (format!("net:{}", n.name), lines)
        })
        .collect();
    v.extend(lab.links.iter().map(|l| {
        (
            format!("link:{}", l.name),
            vec![l.name.clone(), "point-to-point".into()],
        )
    }));
    v
}

fn has_nat(lab: &Lab) -> bool {
    lab.hosts
        .iter()
        .any(|h| h.interfaces.iter().any(Interface::is_nat))
}

/// A dot identifier or label, quoted.
fn dq(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Graphviz: a cluster per host with a node per NIC, an ellipse per segment, an edge per
/// attachment (`dot -Tsvg lab.dot > lab.svg`).
pub fn dot(lab: &Lab) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "// lab `{}`: `lab graph --format dot | dot -Tsvg`",
        lab.name
    );
    let _ = writeln!(o, "graph {} {{", dq(&format!("lab {}", lab.name)));
    o.push_str("  rankdir=TB;\n  node [fontname=\"monospace\", fontsize=10];\n");
    for (hi, h) in lab.hosts.iter().enumerate() {
        let _ = writeln!(o, "  subgraph {} {{", dq(&format!("cluster_{hi}")));
        let _ = writeln!(o, "    label={};", dq(&host_lines(h).join("\n")));
        o.push_str("    style=rounded;\n");
        for i in &h.interfaces {
            let n = nic(h, i);
            let _ = writeln!(
                o,
                "    {} [shape=box, label={}];",
                dq(&format!("{}:{}", h.name, n.name)),
                dq(&n.lines.join("\n"))
            );
        }
        o.push_str("  }\n");
    }
    for (id, lines) in segments(lab) {
        let _ = writeln!(
            o,
            "  {} [shape=ellipse, label={}];",
            dq(&id),
            dq(&lines.join("\n"))
        );
    }
    if has_nat(lab) {
        o.push_str("  \"nat\" [shape=box, style=\"dashed,rounded\", label=\"NAT\"];\n");
    }
    for (from, seg) in attachments(lab) {
        let from = dq(&from);
        match seg {
            Some(seg) => {
                let _ = writeln!(o, "  {from} -- {};", dq(&seg));
            }
            None => {
                let _ = writeln!(o, "  {from} -- \"nat\" [style=dashed];");
            }
        }
    }
    o.push_str("}\n");
    o
}

/// A Mermaid id: letters, digits and `_` only, prefixed so that it never starts with a digit.
fn mid(s: &str) -> String {
    let body: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("n_{body}")
}

/// Mermaid text: `"` cannot appear inside a label, lines break with `<br/>`.
fn mtext(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| l.replace('"', "#quot;"))
        .collect::<Vec<_>>()
        .join("<br/>")
}

/// Mermaid `flowchart`: a subgraph per host with a node per NIC, a round node per segment.
pub fn mermaid(lab: &Lab) -> String {
    let mut o = String::from("flowchart TB\n");
    for h in &lab.hosts {
        let _ = writeln!(
            o,
            "  subgraph {}[\"{}\"]",
            mid(&format!("host:{}", h.name)),
            mtext(&host_lines(h))
        );
        for i in &h.interfaces {
            let n = nic(h, i);
            let _ = writeln!(
                o,
                "    {}[\"{}\"]",
                mid(&format!("{}:{}", h.name, n.name)),
                mtext(&n.lines)
            );
        }
        o.push_str("  end\n");
    }
    for (id, lines) in segments(lab) {
        let _ = writeln!(o, "  {}((\"{}\"))", mid(&id), mtext(&lines));
    }
    if has_nat(lab) {
        o.push_str("  n_nat>\"NAT\"]\n");
    }
    for (from, seg) in attachments(lab) {
        let from = mid(&from);
        match seg {
            Some(seg) => {
                let _ = writeln!(o, "  {from} --- {}", mid(&seg));
            }
            None => {
                let _ = writeln!(o, "  {from} -.- n_nat");
            }
        }
    }
    o
}

/// XML text.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Width of a line at the SVG's 12 px monospace font (0.6 em a character).
fn text_width(s: &str) -> f64 {
    s.chars().count() as f64 * 7.2
}

const LINE: f64 = 15.0;
const PAD: f64 = 8.0;
const GAP: f64 = 30.0;

/// A self-contained SVG: hosts side by side, their NICs stacked inside, the segments below,
/// a line from each NIC to its segment (dashed to NAT). No Graphviz, no font files: the viewer
/// draws the text in its own monospace font.
pub fn svg(lab: &Lab) -> String {
    struct Box_ {
        x: f64,
        y: f64,
        w: f64,
        h: f64,
    }
    let mut body = String::new();
    let mut x = GAP;
    let top = GAP;
    // Hosts: title, then one box per NIC.
    let mut anchors: Vec<(f64, f64, Option<String>)> = Vec::new();
    let mut bottom: f64 = 0.0;
    for h in &lab.hosts {
        let title = host_lines(h);
        let nics: Vec<Nic> = h.interfaces.iter().map(|i| nic(h, i)).collect();
        let inner_w = title
            .iter()
            .chain(nics.iter().flat_map(|n| n.lines.iter()))
            .map(|l| text_width(l))
            .fold(0.0, f64::max);
        let w = inner_w + 4.0 * PAD;
        let mut y = top + PAD + title.len() as f64 * LINE + PAD;
        let mut nic_boxes = Vec::new();
        for n in &nics {
            let hgt = n.lines.len() as f64 * LINE + PAD;
            nic_boxes.push((
                Box_ {
                    x: x + PAD,
                    y,
                    w: w - 2.0 * PAD,
                    h: hgt,
                },
                n,
            ));
            y += hgt + PAD;
        }
        let host = Box_ {
            x,
            y: top,
            w,
            h: y - top,
        };
        let _ = writeln!(
            body,
            r##"  <rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="8" fill="#eef3fb" stroke="#3d5a80"/>"##,
            host.x, host.y, host.w, host.h
        );
        for (k, line) in title.iter().enumerate() {
            let weight = if k == 0 { r#" font-weight="bold""# } else { "" };
            let _ = writeln!(
                body,
                r#"  <text x="{:.1}" y="{:.1}"{weight}>{}</text>"#,
                host.x + 2.0 * PAD,
                host.y + PAD + (k as f64 + 0.8) * LINE,
                xml(line)
            );
        }
        for (b, n) in &nic_boxes {
            let _ = writeln!(
                body,
                r##"  <rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="4" fill="#ffffff" stroke="#98c1d9"/>"##,
                b.x, b.y, b.w, b.h
            );
            for (k, line) in n.lines.iter().enumerate() {
                let _ = writeln!(
                    body,
                    r#"  <text x="{:.1}" y="{:.1}">{}</text>"#,
                    b.x + PAD,
                    b.y + (k as f64 + 0.9) * LINE,
                    xml(line)
                );
            }
        }
        // Each NIC leaves the host at its bottom edge, named there.
        for (k, (_, n)) in nic_boxes.iter().enumerate() {
            let ax = host.x + (k as f64 + 1.0) * host.w / (nic_boxes.len() as f64 + 1.0);
            let ay = host.y + host.h;
            let _ = writeln!(
                body,
                r##"  <text x="{ax:.1}" y="{:.1}" text-anchor="middle" font-size="10" fill="#3d5a80">{}</text>"##,
                ay + 12.0,
                xml(&n.name)
            );
            anchors.push((ax, ay + 16.0, n.segment.clone()));
        }
        bottom = bottom.max(host.y + host.h);
        x += w + GAP;
    }
    let hosts_right = x;
    // Segments: a row below the hosts, spread over the hosts' width.
    let mut segs = segments(lab);
    if has_nat(lab) {
        segs.push(("nat".into(), vec!["NAT".into()]));
    }
    let seg_y = bottom + 4.0 * GAP;
    let total_w: f64 = segs
        .iter()
        .map(|(_, l)| l.iter().map(|s| text_width(s)).fold(0.0, f64::max) + 4.0 * PAD)
        .sum::<f64>()
        + GAP * (segs.len().max(1) - 1) as f64;
    let mut sx = GAP.max((hosts_right - total_w) / 2.0);
    let mut centers: Vec<(String, f64, f64)> = Vec::new();
    let mut seg_bottom = seg_y;
    for (id, lines) in &segs {
        let w = lines.iter().map(|s| text_width(s)).fold(0.0, f64::max) + 4.0 * PAD;
        let h = lines.len() as f64 * LINE + 2.0 * PAD;
        let (cx, cy) = (sx + w / 2.0, seg_y + h / 2.0);
        let dash = if id == "nat" {
            r#" stroke-dasharray="4 3""#
        } else {
            ""
        };
        let _ = writeln!(
            body,
            r##"  <ellipse cx="{cx:.1}" cy="{cy:.1}" rx="{:.1}" ry="{:.1}" fill="#fdf6e3" stroke="#ee6c4d"{dash}/>"##,
            w / 2.0,
            h / 2.0
        );
        for (k, line) in lines.iter().enumerate() {
            let _ = writeln!(
                body,
                r#"  <text x="{cx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                seg_y + PAD + (k as f64 + 0.8) * LINE,
                xml(line)
            );
        }
        centers.push((id.clone(), cx, seg_y));
        seg_bottom = seg_bottom.max(seg_y + h);
        sx += w + GAP;
    }
    // Attachments: from the NIC's right edge down to the segment's top.
    let mut lines = String::new();
    for (ax, ay, seg) in &anchors {
        let id = seg.clone().unwrap_or_else(|| "nat".into());
        if let Some((_, cx, cy)) = centers.iter().find(|(s, _, _)| *s == id) {
            let dash = if seg.is_none() {
                r#" stroke-dasharray="4 3""#
            } else {
                ""
            };
            let _ = writeln!(
                lines,
                r##"  <path d="M {ax:.1} {ay:.1} C {ax:.1} {:.1}, {cx:.1} {:.1}, {cx:.1} {cy:.1}" fill="none" stroke="#5c677d"{dash}/>"##,
                ay + GAP,
                cy - GAP
            );
        }
    }
    let width = hosts_right.max(sx);
    let height = seg_bottom + GAP;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"monospace\" font-size=\"12\">\n  <title>lab {}</title>\n  <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n{body}{lines}</svg>\n",
        xml(&lab.name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nic_and_segment_is_drawn_once() {
        let lab = crate::Preset::Builtin.load().unwrap();
        let d = dot(&lab);
        let m = mermaid(&lab);
        let s = svg(&lab);
        let nics: usize = lab.hosts.iter().map(|h| h.interfaces.len()).sum();
        assert_eq!(d.matches(" -- ").count(), nics, "{d}");
        assert_eq!(
            m.matches(" --- ").count() + m.matches(" -.- ").count(),
            nics
        );
        assert_eq!(s.matches("<path ").count(), nics);
        for h in &lab.hosts {
            for i in h.path_interfaces() {
                let a = i.address().unwrap().to_string();
                assert!(d.contains(&a) && m.contains(&a) && s.contains(&a), "{a}");
            }
        }
        assert!(
            d.contains("endpoint signal") && d.contains("endpoint laminar"),
            "{d}"
        );
        assert!(s.starts_with("<svg ") && s.ends_with("</svg>\n"));
    }
}
