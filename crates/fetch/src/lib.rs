//! Verified, cached downloads: a file, checked against the SHA-256 that a sums file beside it
//! lists (kernel.org's `sha256sums.asc`, Ubuntu's `SHA256SUMS`), kept in a cache directory and
//! fetched again when the cached copy is corrupt, partial or no longer what the sums file lists.
//!
//! The download goes to a `.part` file, hashed while it streams, and is renamed only when the
//! hash matches, so the cache never holds a file that failed the check. Beside each verified
//! file lab writes `<file>.sha256`: the hash, the size and the modification time it had. A
//! cached copy whose size and time are still those is not hashed again (a 600 MB image would
//! cost seconds on every `up`); any other is. When the sums file cannot be reached (offline), a
//! cached copy that still matches its record is used, and the caller is told
//! ([`Fetched::offline`]).
//!
//! The sums file itself must be signed by a key the caller pins ([`pgp`]): a hash served by the
//! same host as the file says the bytes arrived intact, the signature says who published them.
//! Only the signed text is searched for the hash. `--insecure-skip-signature`
//! ([`Trust::SkipSignature`]) checks the hash alone, and every [`Fetched`] then says so.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub mod pgp;
pub use pgp::{Keyring, Signature, Signer, Trust};

#[derive(Debug, thiserror::Error)]
pub enum Error {
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
    #[error(transparent)]
    Signature(#[from] pgp::SigError),
    #[error(
        "{file}: the sums file is unreachable ({why}) and the cached copy was verified without a signature (--insecure-skip-signature); connect, or pass --insecure-skip-signature again"
    )]
    OfflineUnsigned { file: String, why: String },
    #[error("`{0}` has no file name to cache it under")]
    NoFileName(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// The hash `sums` lists for `file`: `HASH  NAME` (sha256sum's text mode), `HASH *NAME`
/// (binary mode, Ubuntu's SHA256SUMS) or `HASH  ./NAME`, also inside a PGP clearsigned
/// message. Lower case.
pub fn listed_hash(sums: &str, file: &str) -> Option<String> {
    sums.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        let (hash, name) = (w.next()?, w.next()?);
        let name = name.trim_start_matches('*').trim_start_matches("./");
        (name == file && hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| hash.to_ascii_lowercase())
    })
}

/// The SHA-256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String, Error> {
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

fn get(url: &str) -> Result<ureq::http::Response<ureq::Body>, Error> {
    ureq::get(url).call().map_err(|e| Error::Download {
        url: url.to_string(),
        message: e.to_string(),
    })
}

/// `<hash> <size> <mtime in ns> <signer or ->` of a verified file.
fn record_line(path: &Path, hash: &str, signed_by: Option<&str>) -> String {
    let (size, mtime) = stamp(path).unwrap_or((0, 0));
    format!("{hash} {size} {mtime} {}\n", signed_by.unwrap_or("-"))
}

/// Who signed the sums a cached copy was checked against, as its record says (`None`: not
/// checked, `--insecure-skip-signature`, or a record from before signatures were checked).
fn recorded_signer(record: &Path) -> Option<String> {
    let r = fs::read_to_string(record).ok()?;
    let signer = r.trim_end().splitn(4, ' ').nth(3)?;
    (signer != "-").then(|| signer.to_string())
}

fn stamp(path: &Path) -> Option<(u64, u128)> {
    let m = fs::metadata(path).ok()?;
    let t = m
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some((m.len(), t.as_nanos()))
}

/// The hash of `path` if its record says it was verified and it has not changed since (same
/// size and modification time), else its hash computed now.
fn current_hash(path: &Path, record: &Path) -> Result<(String, Option<String>), Error> {
    let recorded = fs::read_to_string(record).ok().and_then(|r| {
        let mut w = r.split_whitespace();
        let hash = w.next()?.to_string();
        let size: u64 = w.next()?.parse().ok()?;
        let mtime: u128 = w.next()?.parse().ok()?;
        Some((hash, size, mtime))
    });
    if let Some((hash, size, mtime)) = &recorded
        && stamp(path) == Some((*size, *mtime))
    {
        return Ok((hash.clone(), Some(hash.clone())));
    }
    Ok((sha256_file(path)?, recorded.map(|r| r.0)))
}

/// The last path segment of a URL (without query or fragment).
pub fn file_name(url: &str) -> Result<String, Error> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    match path.rsplit('/').next() {
        Some(n) if !n.is_empty() && n != ".." && n != "." && !path.ends_with("://") => {
            Ok(n.to_string())
        }
        _ => Err(Error::NoFileName(url.to_string())),
    }
}

/// The sums file of the same directory: `url`'s last segment replaced by `sums`.
pub fn beside(url: &str, sums: &str) -> String {
    match url.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{sums}"),
        None => sums.to_string(),
    }
}

/// What [`fetch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub path: PathBuf,
    pub sha256: String,
    /// Taken from the cache without downloading.
    pub cached: bool,
    /// A cached copy failed the check (or the sums file lists a newer file) and was replaced.
    pub replaced: bool,
    /// The sums file could not be reached; the cached copy was used because it still has the
    /// hash lab recorded when it verified it. The message says why the sums were unreachable.
    pub offline: Option<String>,
    /// Whose signature on the sums file was checked: `NAME (FINGERPRINT)`. `None` only with
    /// [`Trust::SkipSignature`]: every report of the download must then say it is unsigned.
    pub signed_by: Option<String>,
}

fn get_text(url: &str) -> Result<Vec<u8>, Error> {
    let mut r = get(url)?;
    r.body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .map_err(|e| Error::Download {
            url: url.to_string(),
            message: e.to_string(),
        })
}

/// The file name of `url`, and in `cache` (made if missing) its copy and the copy's record.
fn cache_paths(url: &str, cache: &Path) -> Result<(String, PathBuf, PathBuf), Error> {
    let file = file_name(url)?;
    fs::create_dir_all(cache).map_err(io(format!("creating {}", cache.display())))?;
    let path = cache.join(&file);
    let record = cache.join(format!("{file}.sha256"));
    Ok((file, path, record))
}

/// `url` into `cache` (as its file name), checked against the hash `sums_url` lists for that
/// name, in the part of the sums file `trust`'s signer signed. The signature is checked before
/// anything else is downloaded. A cached copy with the listed hash is used as is.
/// `progress(done, total)` reports bytes while downloading.
pub fn fetch(
    url: &str,
    sums_url: &str,
    trust: &Trust,
    cache: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Fetched, Error> {
    let (file, path, record) = cache_paths(url, cache)?;
    let sums = match get_text(sums_url) {
        Ok(s) => s,
        Err(e) => {
            // Offline: a copy verified earlier still counts if its bytes did not change, and
            // if it was verified as this call would (a signature, unless skipped now).
            if path.exists()
                && let (now, Some(recorded)) = current_hash(&path, &record)?
                && now == recorded
            {
                let signed_by = recorded_signer(&record);
                if signed_by.is_none() && matches!(trust, Trust::Signed { .. }) {
                    return Err(Error::OfflineUnsigned {
                        file,
                        why: e.to_string(),
                    });
                }
                return Ok(Fetched {
                    path,
                    sha256: recorded,
                    cached: true,
                    replaced: false,
                    offline: Some(e.to_string()),
                    signed_by,
                });
            }
            return Err(e);
        }
    };
    let (text, signed_by) = match trust {
        Trust::SkipSignature => (String::from_utf8_lossy(&sums).into_owned(), None),
        Trust::Signed { signer, signature } => {
            let detached = match signature {
                Signature::Inline => None,
                Signature::Detached(sig_url) => {
                    Some(get_text(sig_url).map_err(|e| pgp::SigError::Unsigned {
                        what: sums_url.to_string(),
                        why: format!(" ({e})"),
                        want: signer.describe(),
                    })?)
                }
            };
            let v = pgp::verify(sums_url, &sums, detached.as_deref(), signer)?;
            (v.text, Some(v.signer))
        }
    };
    let want = listed_hash(&text, &file).ok_or_else(|| Error::NotListed {
        sums: sums_url.to_string(),
        file: file.clone(),
    })?;
    download(url, &want, &path, &record, signed_by, progress)
}

/// A verified copy of `url` at `path`: kept when it already has the hash `want`, else
/// downloaded again (to a `.part` file, renamed once its hash is `want`). `record` notes the
/// hash, size and modification time, so later calls need not read the file again.
fn download(
    url: &str,
    want: &str,
    path: &Path,
    record: &Path,
    signed_by: Option<String>,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Fetched, Error> {
    let file = file_name(url)?;
    let cache = path.parent().unwrap_or(Path::new("."));
    let mut replaced = false;
    if path.exists() {
        if current_hash(path, record)?.0 == want {
            fs::write(record, record_line(path, want, signed_by.as_deref()))
                .map_err(io(format!("writing {}", record.display())))?;
            return Ok(Fetched {
                path: path.to_path_buf(),
                sha256: want.to_string(),
                cached: true,
                replaced: false,
                offline: None,
                signed_by,
            });
        }
        fs::remove_file(path).map_err(io(format!("removing {}", path.display())))?;
        let _ = fs::remove_file(record);
        replaced = true;
    }
    let mut resp = get(url)?;
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
            Error::Download {
                url: url.to_string(),
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
        return Err(Error::Mismatch {
            file,
            want: want.to_string(),
            got,
        });
    }
    fs::rename(&part, path).map_err(io(format!("renaming {}", part.display())))?;
    fs::write(record, record_line(path, want, signed_by.as_deref()))
        .map_err(io(format!("writing {}", record.display())))?;
    Ok(Fetched {
        path: path.to_path_buf(),
        sha256: want.to_string(),
        cached: false,
        replaced,
        offline: None,
        signed_by,
    })
}

/// `url` into `cache` (as its file name), checked against `sha256`, a hash the user pinned
/// (Lab.toml's `checksum`, as Vagrant's `box_download_checksum`): no sums file, no signature;
/// the pin is the trust. A cached copy with that hash is used as is, without the network.
///
/// ```no_run
/// let dir = std::path::Path::new("/tmp/boxes");
/// let hash = "0".repeat(64);
/// let got = fetch::fetch_pinned("https://example.org/deb.box", &hash, dir, &mut |_, _| {})?;
/// assert_eq!(got.sha256, hash);
/// # Ok::<(), fetch::Error>(())
/// ```
pub fn fetch_pinned(
    url: &str,
    sha256: &str,
    cache: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Fetched, Error> {
    let (_, path, record) = cache_paths(url, cache)?;
    let want = sha256.to_ascii_lowercase();
    download(url, &want, &path, &record, None, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_from_sums_files_of_every_kind() {
        let h = "a".repeat(64);
        let other = "b".repeat(64);
        let clearsigned = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{other}  linux-6.3.tar.xz\n{h}  linux-6.4.tar.xz\n-----BEGIN PGP SIGNATURE-----\nxyz\n",
        );
        assert_eq!(
            listed_hash(&clearsigned, "linux-6.4.tar.xz"),
            Some(h.clone())
        );
        assert_eq!(listed_hash(&clearsigned, "linux-6.4.tar.gz"), None);
        // Ubuntu's SHA256SUMS: binary mode, a `*` before the name.
        let ubuntu = format!(
            "{other} *ubuntu-22.04-server-cloudimg-amd64-disk-kvm.img\n{} *ubuntu-22.04-server-cloudimg-amd64.img\n",
            h.to_uppercase()
        );
        assert_eq!(
            listed_hash(&ubuntu, "ubuntu-22.04-server-cloudimg-amd64.img"),
            Some(h.clone())
        );
        assert_eq!(listed_hash(&format!("{h}  ./x.img\n"), "x.img"), Some(h));
        assert_eq!(
            listed_hash(&format!("{}  x.img\n", "z".repeat(64)), "x.img"),
            None
        );
    }

    #[test]
    fn names_and_neighbours() {
        let u = "https://cloud-images.ubuntu.com/releases/22.04/release/ubuntu-22.04-server-cloudimg-amd64.img";
        assert_eq!(
            file_name(u).unwrap(),
            "ubuntu-22.04-server-cloudimg-amd64.img"
        );
        assert_eq!(
            beside(u, "SHA256SUMS"),
            "https://cloud-images.ubuntu.com/releases/22.04/release/SHA256SUMS"
        );
        assert_eq!(file_name("http://h/a/b.img?x=1#y").unwrap(), "b.img");
        for bad in ["http://h/a/", "http://", "http://h/.."] {
            assert!(file_name(bad).is_err(), "{bad}");
        }
    }
}
