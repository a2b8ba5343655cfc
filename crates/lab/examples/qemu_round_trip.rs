//! A QEMU round trip: the built-in lab's two hosts as QEMU VMs, up (with the network applied),
//! MPTCP traffic with a verdict, destroyed. Needs qemu-system-x86, vde2 and a few minutes.
//!
//! `cargo run -p lab --example qemu_round_trip`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join("lab-example-qemu");
    let mut session = lab::Session::new(lab::Preset::Builtin.load()?, &dir)?;
    session.set_provider("qemu")?;
    session.up(&lab::UpOptions::default())?;
    let result = session.test(&lab::TestOptions::default());
    session.destroy()?;
    let result = result?;
    println!(
        "verdict: {}",
        if result.verdict.pass { "PASS" } else { "FAIL" }
    );
    Ok(())
}
