//! OpenPGP signatures on sums files, checked with `gpgv` against keys the caller pins.
//!
//! A sums file served beside a download says the download arrived intact, not who made it:
//! whoever can change the file can change its sum. Publishers sign their sums files
//! (kernel.org clearsigns `sha256sums.asc`, Ubuntu signs `SHA256SUMS` in `SHA256SUMS.gpg`), and
//! a signature is only worth something when checked against a key obtained another way. Here
//! that key is pinned: the caller names the signer, its primary key fingerprints, and where
//! its public key comes from (shipped with lab, or a file on this machine); nothing is fetched
//! from a keyserver and no user keyring is read or written.
//!
//! `gpgv` (GnuPG's verify-only tool, in Debian's and Ubuntu's base system as package `gpgv`)
//! does the cryptography; it runs with a fresh home directory of its own, the pinned keys as
//! its only keyring, and `--status-fd` output, which is what this module reads. A signature is
//! accepted when gpgv exits 0 and every signature it reports is `VALIDSIG` by a key whose
//! primary fingerprint is pinned. For a clearsigned file only the signed text is returned, so
//! lines added outside the signed part are never read.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;

/// Where a signer's public key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyring {
    /// An ASCII-armored public key shipped with lab (`include_str!`).
    Armored(String),
    /// A keyring file on this machine, binary or armored (Ubuntu's
    /// `/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg`).
    File(PathBuf),
}

/// Who must have signed a sums file: a name for messages, the primary key fingerprints lab
/// accepts, and the public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// As messages name it: `kernel.org's checksum autosigner`.
    pub name: String,
    /// Upper-case hex, 40 digits each.
    pub fingerprints: Vec<String>,
    pub keyring: Keyring,
    /// What to tell a user whose machine lacks [`Keyring::File`].
    pub missing_hint: String,
}

/// How a sums file is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// The sums file is itself a clearsigned message (kernel.org's `sha256sums.asc`).
    Inline,
    /// A detached signature at this URL (Ubuntu's `SHA256SUMS.gpg`).
    Detached(String),
}

/// What a download must satisfy beyond its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The sums file's signature is checked against the signer's pinned keys.
    Signed {
        signer: Signer,
        signature: Signature,
    },
    /// The user passed `--insecure-skip-signature`: only the hash is checked, and every report
    /// says so ([`crate::Fetched::signed_by`] is `None`).
    SkipSignature,
}

/// A good signature: who made it and the text it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `kernel.org's checksum autosigner (B8868C80BA62A1FFFAF5FDA9632D3A06589DA6B1)`.
    pub signer: String,
    /// The signed bytes: the clearsigned text, or the file a detached signature covers.
    pub text: String,
}

/// Why a signature was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SigError {
    #[error(
        "{what}: BAD signature from {key}: the file was changed after it was signed. Nothing was downloaded"
    )]
    Bad { what: String, key: String },
    #[error(
        "{what} is signed by key {key}, not by {want}, the key lab pins for it. Nothing was downloaded"
    )]
    WrongSigner {
        what: String,
        key: String,
        want: String,
    },
    #[error(
        "{what} carries no signature{why}; lab needs one by {want}. Nothing was downloaded; pass --insecure-skip-signature to check the hash only"
    )]
    Unsigned {
        what: String,
        why: String,
        want: String,
    },
    #[error("{what}: gpgv did not accept the signature ({status}): {detail}")]
    Rejected {
        what: String,
        status: String,
        detail: String,
    },
    #[error(
        "checking {what}'s signature needs gpgv (package gpgv on Debian and Ubuntu): {message}. Install it, or pass --insecure-skip-signature to check the hash only"
    )]
    NoGpgv { what: String, message: String },
    #[error(
        "{signer}'s public key is not on this machine: {path} {message}. {hint}, or pass --insecure-skip-signature to check the hash only"
    )]
    NoKeyring {
        signer: String,
        path: PathBuf,
        message: String,
        hint: String,
    },
    #[error("the public key of {signer} is not a valid armored OpenPGP key block")]
    BadArmor { signer: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SigError {
    let what = what.into();
    move |source| SigError::Io { what, source }
}

impl Signer {
    /// `NAME (FINGERPRINT)`, or with several fingerprints `NAME (A or B)`.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.name, self.fingerprints.join(" or "))
    }

    /// The binary keyring gpgv reads.
    fn keyring_bytes(&self) -> Result<Vec<u8>, SigError> {
        let raw = match &self.keyring {
            Keyring::Armored(text) => return self.dearmor(text),
            Keyring::File(path) => std::fs::read(path).map_err(|e| SigError::NoKeyring {
                signer: self.describe(),
                path: path.clone(),
                message: e.to_string().to_lowercase(),
                hint: self.missing_hint.clone(),
            })?,
        };
        match std::str::from_utf8(&raw) {
            Ok(text) if text.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----") => self.dearmor(text),
            _ => Ok(raw),
        }
    }

    /// The packets of every armored public key block in `text` (gpgv 2.2 reads binary
    /// keyrings only).
    fn dearmor(&self, text: &str) -> Result<Vec<u8>, SigError> {
        let bad = || SigError::BadArmor {
            signer: self.describe(),
        };
        let mut out = Vec::new();
        let mut lines = text.lines().map(str::trim_end);
        let mut blocks = 0;
        while lines.any(|l| l == "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
            // Armor headers (`Comment: ...`) end at the first empty line.
            for l in lines.by_ref() {
                if l.is_empty() {
                    break;
                }
            }
            let mut b64 = String::new();
            let mut ended = false;
            for l in lines.by_ref() {
                if l.starts_with("-----END PGP PUBLIC KEY BLOCK-----") {
                    ended = true;
                    break;
                }
                if l.starts_with('=') {
                    continue; // the CRC-24 checksum line
                }
                b64.push_str(l);
            }
            if !ended {
                return Err(bad());
            }
            out.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| bad())?,
            );
            blocks += 1;
        }
        if blocks == 0 || out.is_empty() {
            return Err(bad());
        }
        Ok(out)
    }
}

/// What gpgv's status lines say.
#[derive(Debug, Default, PartialEq, Eq)]
struct Status {
    /// Primary key fingerprints of good, valid signatures.
    valid: Vec<String>,
    /// `KEYID UID` of bad signatures.
    bad: Vec<String>,
    /// Key ids of signatures by keys not in the keyring.
    unknown: Vec<String>,
    /// Other reasons: expired or revoked keys, unreadable data.
    other: Vec<String>,
    /// gpgv saw no signature at all.
    none: bool,
}

fn parse_status(out: &str) -> Status {
    let mut s = Status::default();
    for line in out.lines() {
        let Some(rest) = line.strip_prefix("[GNUPG:] ") else {
            continue;
        };
        let w: Vec<&str> = rest.split_whitespace().collect();
        match w.as_slice() {
            // VALIDSIG fpr date ts expire version reserved pkalgo hashalgo class primary-fpr
            ["VALIDSIG", fpr, rest @ ..] => {
                let primary = rest.get(8).unwrap_or(fpr);
                s.valid.push(primary.to_ascii_uppercase());
            }
            ["BADSIG", keyid, uid @ ..] => s.bad.push(format!("{keyid} {}", uid.join(" "))),
            ["ERRSIG", keyid, rest @ ..] => {
                // The last field is the reason: 9 = no public key.
                if rest.get(4) == Some(&"9") {
                    s.unknown.push(keyid.to_string());
                } else {
                    s.other.push(format!("ERRSIG {}", rest.join(" ")));
                }
            }
            ["EXPKEYSIG", keyid, ..] => s.other.push(format!("key {keyid} has expired")),
            ["REVKEYSIG", keyid, ..] => s.other.push(format!("key {keyid} is revoked")),
            ["NODATA", ..] => s.none = true,
            _ => {}
        }
    }
    s
}

/// Checks `signed` (the sums file as downloaded) against `signer`'s pinned keys: a clearsigned
/// message when `detached` is `None`, else `detached` (armored or binary) over `signed`.
/// `what` names the file in messages (its URL).
pub fn verify(
    what: &str,
    signed: &[u8],
    detached: Option<&[u8]>,
    signer: &Signer,
) -> Result<Verified, SigError> {
    let want = signer.describe();
    if detached.is_none() && !signed.starts_with(b"-----BEGIN PGP SIGNED MESSAGE-----") {
        return Err(SigError::Unsigned {
            what: what.to_string(),
            why: " (it is not a clearsigned message)".into(),
            want,
        });
    }
    let keyring = signer.keyring_bytes()?;
    let home = tempfile::Builder::new()
        .prefix("lab-gpgv-")
        .tempdir()
        .map_err(io("creating a directory for gpgv"))?;
    let file = |name: &str, bytes: &[u8]| -> Result<PathBuf, SigError> {
        let p = home.path().join(name);
        std::fs::write(&p, bytes).map_err(io(format!("writing {}", p.display())))?;
        Ok(p)
    };
    let ring = file("pinned.gpg", &keyring)?;
    let out = home.path().join("signed.txt");
    let mut argv: Vec<String> = vec![
        "gpgv".into(),
        "--homedir".into(),
        path_arg(home.path()),
        "--status-fd".into(),
        "1".into(),
        "--keyring".into(),
        path_arg(&ring),
    ];
    match detached {
        None => {
            let sums = file("sums.asc", signed)?;
            argv.extend(["--output".into(), path_arg(&out), path_arg(&sums)]);
        }
        Some(sig) => {
            let sig = file("sums.sig", sig)?;
            let data = file("sums", signed)?;
            argv.extend([path_arg(&sig), path_arg(&data)]);
        }
    }
    let run = Command::new(&argv[0])
        .args(&argv[1..])
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| SigError::NoGpgv {
            what: what.to_string(),
            message: e.to_string().to_lowercase(),
        })?;
    let status = parse_status(&String::from_utf8_lossy(&run.stdout));
    let stderr = String::from_utf8_lossy(&run.stderr).trim().to_string();
    if let Some(key) = status.bad.first() {
        return Err(SigError::Bad {
            what: what.to_string(),
            key: key.clone(),
        });
    }
    if let Some(key) = status.unknown.first() {
        return Err(SigError::WrongSigner {
            what: what.to_string(),
            key: key.clone(),
            want,
        });
    }
    if status.valid.is_empty() && status.other.is_empty() {
        return Err(SigError::Unsigned {
            what: what.to_string(),
            why: if status.none {
                " gpgv can read".into()
            } else {
                String::new()
            },
            want,
        });
    }
    let stray = status.valid.iter().find(|f| {
        !signer
            .fingerprints
            .iter()
            .any(|p| p.eq_ignore_ascii_case(f))
    });
    if let Some(f) = stray {
        // Only pinned keys are in the keyring; a subkey of another key would land here.
        return Err(SigError::WrongSigner {
            what: what.to_string(),
            key: f.clone(),
            want,
        });
    }
    if !run.status.success() || !status.other.is_empty() || status.valid.is_empty() {
        return Err(SigError::Rejected {
            what: what.to_string(),
            status: format!("{} exited {}", argv.join(" "), run.status),
            detail: if status.other.is_empty() {
                stderr
            } else {
                status.other.join("; ")
            },
        });
    }
    let text = match detached {
        None => std::fs::read_to_string(&out).map_err(io(format!("reading {}", out.display())))?,
        Some(_) => String::from_utf8_lossy(signed).into_owned(),
    };
    let fpr = &status.valid[0];
    Ok(Verified {
        signer: format!("{} ({fpr})", signer.name),
        text,
    })
}

fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_of_each_outcome() {
        // Recorded from gpgv 2.2.40 (Debian 12).
        let good = "[GNUPG:] NEWSIG\n[GNUPG:] KEY_CONSIDERED C99129E47344264E9993E5ED74D8036AA996067B 0\n[GNUPG:] GOODSIG 74D8036AA996067B Test <t@example.invalid>\n[GNUPG:] VALIDSIG C99129E47344264E9993E5ED74D8036AA996067B 2026-11-30 1796078118 0 4 0 22 8 01 C99129E47344264E9993E5ED74D8036AA996067B\n";
        assert_eq!(
            parse_status(good).valid,
            ["C99129E47344264E9993E5ED74D8036AA996067B"]
        );
        let unknown = "[GNUPG:] ERRSIG 74D8036AA996067B 22 8 01 1796078118 9 C99129E47344264E9993E5ED74D8036AA996067B\n[GNUPG:] NO_PUBKEY 74D8036AA996067B\n";
        assert_eq!(parse_status(unknown).unknown, ["74D8036AA996067B"]);
        let bad = "[GNUPG:] BADSIG 74D8036AA996067B Test <t@example.invalid>\n";
        assert_eq!(
            parse_status(bad).bad,
            ["74D8036AA996067B Test <t@example.invalid>"]
        );
        assert!(parse_status("[GNUPG:] NODATA 1\n").none);
    }

    #[test]
    fn armor_is_decoded_and_garbage_refused() {
        let signer = |k: &str| Signer {
            name: "t".into(),
            fingerprints: vec![],
            keyring: Keyring::Armored(k.into()),
            missing_hint: String::new(),
        };
        let ok = "-----BEGIN PGP PUBLIC KEY BLOCK-----\nComment: x\n\naGVs\nbG8=\n=abcd\n-----END PGP PUBLIC KEY BLOCK-----\n";
        assert_eq!(signer(ok).keyring_bytes().unwrap(), b"hello");
        for bad in [
            "",
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\naGVs\n",
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!\n-----END PGP PUBLIC KEY BLOCK-----\n",
        ] {
            assert!(
                matches!(signer(bad).keyring_bytes(), Err(SigError::BadArmor { .. })),
                "{bad:?}"
            );
        }
    }
}
