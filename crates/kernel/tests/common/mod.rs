//! Shared by the kernel tests.

use std::path::Path;

/// A file from fixtures/kernel (see its README).
pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/kernel")
            .join(name),
    )
    .unwrap()
}
