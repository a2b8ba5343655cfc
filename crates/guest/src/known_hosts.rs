//! A lab-local known_hosts file, in OpenSSH's format so that `ssh -o UserKnownHostsFile=...`
//! (what `lab ssh-config` prints) reads the same file.
//!
//! lab writes it itself (plain host patterns, one key per line) rather than through libssh2's
//! known-hosts API, because a changed key must be reported with both fingerprints, which needs
//! the recorded key's bytes.

use std::fs;
use std::io::{self, Write as _};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest as _, Sha256};

/// The host pattern OpenSSH uses: `addr` on port 22, else `[addr]:port`.
pub fn pattern(address: &str, port: u16) -> String {
    if port == 22 {
        address.to_string()
    } else {
        format!("[{address}]:{port}")
    }
}

/// `SHA256:...` as `ssh-keygen -l` prints it.
pub fn fingerprint(key_blob: &[u8]) -> String {
    format!(
        "SHA256:{}",
        STANDARD_NO_PAD.encode(Sha256::digest(key_blob))
    )
}

/// The key recorded for `pattern`: (key type, key blob).
pub fn lookup(path: &Path, pattern: &str) -> io::Result<Option<(String, Vec<u8>)>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(parse(&text, pattern))
}

fn parse(text: &str, pattern: &str) -> Option<(String, Vec<u8>)> {
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(hosts), Some(kind), Some(key)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        if hosts.split(',').any(|h| h == pattern)
            && let Ok(blob) = STANDARD.decode(key)
        {
            return Some((kind.to_string(), blob));
        }
    }
    None
}

/// Record a key for `pattern` (trust on first use), replacing nothing: the caller has checked
/// that the pattern is not there.
pub fn record(path: &Path, pattern: &str, kind: &str, blob: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{pattern} {kind} {}", STANDARD.encode(blob))
}

/// Drop every line for `pattern` (a machine lab destroyed: the next one at that address and
/// port has a new key). Other lines stay as they are.
pub fn forget(path: &Path, pattern: &str) -> io::Result<()> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_none_or(|hosts| !hosts.split(',').any(|h| h == pattern))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    if kept != text {
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, kept)?;
        fs::rename(&tmp, path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_fingerprints_and_lookup() {
        assert_eq!(pattern("10.0.0.2", 22), "10.0.0.2");
        assert_eq!(pattern("127.0.0.1", 2222), "[127.0.0.1]:2222");
        // The fingerprint of the all-zero 32-byte string, as `ssh-keygen -l` would print it.
        assert_eq!(
            fingerprint(&[0u8; 32]),
            "SHA256:Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        assert_eq!(lookup(&path, "[h]:2").unwrap(), None);
        record(&path, "[h]:2", "ssh-ed25519", b"key-one").unwrap();
        record(&path, "other", "ssh-ed25519", b"key-two").unwrap();
        assert_eq!(
            lookup(&path, "[h]:2").unwrap(),
            Some(("ssh-ed25519".into(), b"key-one".to_vec()))
        );
        assert_eq!(lookup(&path, "[h]:3").unwrap(), None);
        assert!(parse("# comment\n\nbroken\na,b ssh-rsa AAAA\n", "b").is_some());
        forget(&path, "[h]:2").unwrap();
        assert_eq!(lookup(&path, "[h]:2").unwrap(), None);
        assert!(
            lookup(&path, "other").unwrap().is_some(),
            "other hosts stay"
        );
    }
}
