//! A provider that is not part of lab, registered by a program: its hosts are this machine
//! itself, reached through a local command seam. Lab.toml names it like any other
//! (`provider = "here"`); the session asks it for status and for a way to reach each host, and
//! refuses, naming the provider, what it does not implement.
//!
//! `cargo run -p lab --example custom_provider`

use lab::provider::{self, Access, Ctx, HostState};

/// Hosts that are this very machine.
#[derive(Debug)]
struct Here;

impl provider::Provider for Here {
    fn name(&self) -> &str {
        "here"
    }

    fn describe(&self) -> &str {
        "this machine, as every host (an example of a provider from outside lab)"
    }

    fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, provider::Error> {
        Ok(ctx
            .hosts
            .iter()
            .map(|h| HostState::new(&h.name, "here", "running"))
            .collect())
    }

    fn access(&self, _ctx: &Ctx<'_>, host: &lab::Host) -> Result<Access, provider::Error> {
        Ok(Access::Exec(Box::new(guest::Local::new(host.name.clone()))))
    }
}

const LAB: &str = r#"
[lab]
name = "example"
provider = "here"

[networks.lan]
subnet = "10.99.0.0/24"

[hosts.a]
role = "client"
interfaces = [{ name = "eth0", network = "lan", address = "10.99.0.1/24" }]

[hosts.b]
role = "server"
interfaces = [{ name = "eth0", network = "lan", address = "10.99.0.2/24" }]
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut registry = lab::default_registry();
    registry.register(Box::new(Here));
    let model = lab::parse("Lab.toml", LAB)?;
    let dir = tempfile::tempdir()?;
    let session = lab::Session::with_registry(model, dir.path(), registry)?;

    for h in session.status()?.hosts {
        println!("{}: {} ({})", h.name, h.machine.state, h.machine.provider);
    }
    let out = session
        .exec("a")?
        .check(&guest::Command::new(["uname", "-s"]))?;
    println!("a runs {}", out.stdout_lossy().trim());
    // Not implemented by the provider: an error that names it, never a silent success.
    let e = session.destroy().unwrap_err();
    println!("destroy: {e}");
    assert!(e.to_string().contains("provider \"here\" cannot destroy"));
    Ok(())
}
