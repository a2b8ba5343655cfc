//! Which system tests this machine can run (see the probe crate).
fn main() {
    probe::emit();
}
