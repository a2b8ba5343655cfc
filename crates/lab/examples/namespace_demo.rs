//! The demo as a program: the built-in lab on network namespaces, every link at 50 Mbit/s,
//! 3 s of MPTCP traffic, the verdict, and everything removed. Needs root and the kernel's MPTCP.
//!
//! `sudo cargo run -p lab --example namespace_demo`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let opts = lab::TestOptions {
        seconds: 3,
        ..Default::default()
    };
    let dir = std::env::temp_dir().join(format!("lab-example-{}", std::process::id()));
    let demo = lab::demo(lab::Preset::Builtin, "50mbit", &opts, &dir, |p| {
        eprintln!("{}: {:?}", p.source, p.event)
    })?;
    let v = &demo.test.verdict;
    for c in &v.checks {
        println!(
            "[{}] {}: {}",
            if c.pass { "ok" } else { "FAIL" },
            c.what,
            c.detail
        );
    }
    println!("verdict: {}", if v.pass { "PASS" } else { "FAIL" });
    std::process::exit(if v.pass { 0 } else { 1 });
}
