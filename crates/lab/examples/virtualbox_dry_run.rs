//! The guide's two VirtualBox VMs as the VBoxManage commands `up` would run, in order, without
//! VirtualBox (nothing is created).
//!
//! `cargo run -p lab --example virtualbox_dry_run`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut session = lab::Session::new(lab::Preset::Builtin.load()?, dir.path())?;
    session.set_provider("virtualbox")?;
    let plan = session.plan_up()?;
    let mut calls = 0;
    for (provider, actions) in &plan {
        println!("# provider {provider}");
        for a in actions {
            println!("{}", a.what);
            calls += usize::from(a.what.starts_with("VBoxManage "));
        }
    }
    assert!(calls > 0, "the plan has VBoxManage commands");
    Ok(())
}
