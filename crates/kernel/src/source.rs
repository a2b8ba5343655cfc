//! Kernel sources from kernel.org: the tarball for a version, checked against the SHA-256 that
//! the directory's `sha256sums.asc` lists for it, cached, and fetched again when the cached copy
//! is corrupt or partial.
//!
//! The sums file is PGP-clearsigned. lab reads the hash from it but does not check the
//! signature (that needs gpg and kernel.org's keys). What it does check is that the bytes match
//! the sums served over HTTPS by the same host.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The guide's kernel.
pub const DEFAULT_VERSION: &str = "6.4";
/// Where kernel.org serves releases.
pub const KERNEL_ORG: &str = "https://cdn.kernel.org/pub/linux/kernel";

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("`{0}` is not a kernel version (e.g. 6.4, 6.1.90)")]
    BadVersion(String),
    #[error("downloading {url}: {message}")]
    Download { url: String, message: String },
    #[error("{sums} does not list {file}")]
    NotListed { sums: String, file: String },
    #[error(
        "{file}: SHA-256 {got}, but the sums file says {want} (the download was corrupt or cut short)"
    )]
    Mismatch {
        file: String,
        want: String,
        got: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SourceError {
    let what = what.into();
    move |source| SourceError::Io { what, source }
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

/// The hash `sums` (sha256sums.asc, clearsigned or not) lists for `file`.
pub fn listed_hash(sums: &str, file: &str) -> Option<String> {
    sums.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        let (hash, name) = (w.next()?, w.next()?);
        (name == file && hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| hash.to_ascii_lowercase())
    })
}

fn sha256_file(path: &Path) -> Result<String, SourceError> {
    let mut f = fs::File::open(path).map_err(io(format!("reading {}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(io(format!("reading {}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn get(url: &str) -> Result<ureq::http::Response<ureq::Body>, SourceError> {
    ureq::get(url).call().map_err(|e| SourceError::Download {
        url: url.to_string(),
        message: e.to_string(),
    })
}

/// What [`fetch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub path: PathBuf,
    pub sha256: String,
    /// Taken from the cache without downloading.
    pub cached: bool,
    /// A cached copy failed the check and was replaced.
    pub replaced_corrupt: bool,
}

/// The tarball of `version`, from `cache` when a verified copy is there, else downloaded from
/// `base` (to a `.part` file, hashed while it streams, renamed only when the hash matches).
/// `progress(done, total)` reports bytes.
pub fn fetch(
    base: &str,
    version: &str,
    cache: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Fetched, SourceError> {
    let (file, dir) = locate(base, version)?;
    let sums_url = format!("{dir}/sha256sums.asc");
    let sums = get(&sums_url)?
        .body_mut()
        .read_to_string()
        .map_err(|e| SourceError::Download {
            url: sums_url.clone(),
            message: e.to_string(),
        })?;
    let want = listed_hash(&sums, &file).ok_or_else(|| SourceError::NotListed {
        sums: sums_url.clone(),
        file: file.clone(),
    })?;
    fs::create_dir_all(cache).map_err(io(format!("creating {}", cache.display())))?;
    let path = cache.join(&file);
    let mut replaced_corrupt = false;
    if path.exists() {
        if sha256_file(&path)? == want {
            return Ok(Fetched {
                path,
                sha256: want,
                cached: true,
                replaced_corrupt: false,
            });
        }
        fs::remove_file(&path).map_err(io(format!("removing {}", path.display())))?;
        replaced_corrupt = true;
    }
    let url = format!("{dir}/{file}");
    let mut resp = get(&url)?;
    let total = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let part = cache.join(format!("{file}.part"));
    let mut out = fs::File::create(&part).map_err(io(format!("writing {}", part.display())))?;
    let mut reader = resp.body_mut().as_reader();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| {
            let _ = fs::remove_file(&part);
            SourceError::Download {
                url: url.clone(),
                message: format!("{e} after {done} bytes"),
            }
        })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(io(format!("writing {}", part.display())))?;
        done += n as u64;
        progress(done, total);
    }
    out.sync_all()
        .map_err(io(format!("writing {}", part.display())))?;
    let got = hex(&h.finalize());
    if got != want {
        let _ = fs::remove_file(&part);
        return Err(SourceError::Mismatch { file, want, got });
    }
    fs::rename(&part, &path).map_err(io(format!("renaming {}", part.display())))?;
    Ok(Fetched {
        path,
        sha256: want,
        cached: false,
        replaced_corrupt,
    })
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

    #[test]
    fn hash_from_a_clearsigned_sums_file() {
        let h = "a".repeat(64);
        let sums = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{}  linux-6.3.tar.xz\n{h}  linux-6.4.tar.xz\n-----BEGIN PGP SIGNATURE-----\nxyz\n",
            "b".repeat(64)
        );
        assert_eq!(listed_hash(&sums, "linux-6.4.tar.xz"), Some(h));
        assert_eq!(listed_hash(&sums, "linux-6.4.tar.gz"), None);
    }
}
