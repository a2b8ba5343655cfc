//! Kernel sources from kernel.org: the tarball for a version, checked against the SHA-256 that
//! the directory's `sha256sums.asc` lists for it, cached, and fetched again when the cached copy
//! is corrupt or partial. `sha256sums.asc` is clearsigned by kernel.org's checksum autosigner;
//! its public key ships with lab (`crates/kernel/keys/kernel.org-autosigner.asc`, fingerprint
//! [`AUTOSIGNER_FINGERPRINT`]), and the signature is checked before anything is downloaded
//! ([`kernel_org`]).
//!
//! The download, the checks and the cache are the `fetch` crate's.

use std::path::Path;

/// The guide's kernel.
pub const DEFAULT_VERSION: &str = "6.4";
/// Where kernel.org serves releases.
pub const KERNEL_ORG: &str = "https://cdn.kernel.org/pub/linux/kernel";

/// The primary key fingerprint of "Kernel.org checksum autosigner <autosigner@kernel.org>"
/// (RSA 4096, 2013-01-24), as <https://www.kernel.org/signature.html> lists it.
pub const AUTOSIGNER_FINGERPRINT: &str = "B8868C80BA62A1FFFAF5FDA9632D3A06589DA6B1";

/// The autosigner's public key, from kernel.org's pgpkeys repository
/// (<https://git.kernel.org/pub/scm/docs/kernel/pgpkeys.git>, `keys/632D3A06589DA6B1.asc`).
pub const AUTOSIGNER_KEY: &str = include_str!("../keys/kernel.org-autosigner.asc");

/// What a kernel.org download must satisfy: `sha256sums.asc` clearsigned by the pinned
/// autosigner key, or, with `skip_signature` (`--insecure-skip-signature`), only the hash.
///
/// ```
/// let trust = kernel::source::kernel_org(false);
/// let fetch::Trust::Signed { signer, .. } = trust else { unreachable!() };
/// assert_eq!(signer.fingerprints, [kernel::source::AUTOSIGNER_FINGERPRINT]);
/// ```
pub fn kernel_org(skip_signature: bool) -> fetch::Trust {
    if skip_signature {
        return fetch::Trust::SkipSignature;
    }
    fetch::Trust::Signed {
        signer: fetch::Signer {
            name: "kernel.org's checksum autosigner".into(),
            fingerprints: vec![AUTOSIGNER_FINGERPRINT.into()],
            keyring: fetch::Keyring::Armored(AUTOSIGNER_KEY.into()),
            missing_hint: String::new(),
        },
        signature: fetch::Signature::Inline,
    }
}

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
/// `base` and checked against the directory's `sha256sums.asc` ([`fetch::fetch`]), whose
/// signature `trust` says how to check ([`kernel_org`]). `progress(done, total)` reports bytes.
pub fn fetch(
    base: &str,
    version: &str,
    trust: &fetch::Trust,
    cache: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Fetched, SourceError> {
    let (file, dir) = locate(base, version)?;
    Ok(fetch::fetch(
        &format!("{dir}/{file}"),
        &format!("{dir}/sha256sums.asc"),
        trust,
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
