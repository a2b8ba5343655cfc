//! Kernel sources from kernel.org: the tarball for a version, checked against the SHA-256 that
//! the directory's `sha256sums.asc` lists for it, cached, and fetched again when the cached copy
//! is corrupt or partial.
//!
//! The download, the check and the cache are the `fetch` crate's.

use std::path::Path;

/// The guide's kernel.
pub const DEFAULT_VERSION: &str = "6.4";
/// Where kernel.org serves releases.
pub const KERNEL_ORG: &str = "https://cdn.kernel.org/pub/linux/kernel";

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("`{0}` is not a kernel version (e.g. 6.4, 6.1.90)")]
    BadVersion(String),
    #[error(transparent)]
    Fetch(#[from] fetch::Error),
}

/// The tarball's file name and its directory's URL under `base` (kernel.org's layout:
/// `v6.x/linux-6.4.tar.xz`).
pub fn locate(base: &str, version: &str) -> Result<(String, String), SourceError> {
    let ok = !version.is_empty()
        && version
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && version.split('.').count() >= 2;
    if !ok {
        return Err(SourceError::BadVersion(version.to_string()));
    }
    let major = version.split('.').next().unwrap_or("6");
    Ok((
        format!("linux-{version}.tar.xz"),
        format!("{}/v{major}.x", base.trim_end_matches('/')),
    ))
}

pub use fetch::Fetched;

/// The tarball of `version`, from `cache` when a verified copy is there, else downloaded from
/// `base` and checked against the directory's `sha256sums.asc` ([`fetch::fetch`]).
/// `progress(done, total)` reports bytes.
pub fn fetch(
    base: &str,
    version: &str,
    cache: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Fetched, SourceError> {
    let (file, dir) = locate(base, version)?;
    Ok(fetch::fetch(
        &format!("{dir}/{file}"),
        &format!("{dir}/sha256sums.asc"),
        cache,
        progress,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_org_layout() {
        assert_eq!(
            locate(KERNEL_ORG, "6.4").unwrap(),
            (
                "linux-6.4.tar.xz".to_string(),
                "https://cdn.kernel.org/pub/linux/kernel/v6.x".to_string()
            )
        );
        assert_eq!(locate("http://x/", "5.15.148").unwrap().1, "http://x/v5.x");
        for bad in ["", "6", "6.x", "../6.4", "6.4-rc1"] {
            assert!(locate(KERNEL_ORG, bad).is_err(), "{bad}");
        }
    }
}
