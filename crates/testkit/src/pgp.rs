//! Throwaway OpenPGP signing keys for tests of signature checks, made with GnuPG in a home
//! directory of their own (never the user's keyring). gpg starts a gpg-agent for that home;
//! it is stopped when the key is dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A capability check: `gpg` (to make test keys and signatures) and `gpgv` (what lab runs).
pub fn available() -> Result<(), String> {
    crate::tool("gpg")?;
    crate::tool("gpgv")?;
    crate::tool("gpgconf")
}

/// An ed25519 signing key in a temporary GnuPG home.
#[derive(Debug)]
pub struct TestKey {
    home: PathBuf,
    /// Primary key fingerprint, upper-case hex.
    pub fingerprint: String,
    /// The public key, ASCII-armored.
    pub armored: String,
    /// The public key as a binary keyring file.
    pub keyring: PathBuf,
}

fn gpg(home: &Path, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write;
    let mut c = Command::new("gpg")
        .arg("--homedir")
        .arg(home)
        .args([
            "--batch",
            "--quiet",
            "--no-tty",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gpg");
    let mut input = c.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "gpg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl TestKey {
    /// A new key for `uid` (`Test Signer <test@example.invalid>`), in a fresh home under `dir`.
    pub fn new(dir: &Path, uid: &str) -> TestKey {
        let home = dir.join(format!("gnupg-{}", uid.len() ^ std::process::id() as usize));
        let home = unique(home);
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        gpg(
            &home,
            &["--quick-gen-key", uid, "ed25519", "sign", "never"],
            None,
        );
        let colons =
            String::from_utf8(gpg(&home, &["--with-colons", "--list-keys"], None)).unwrap();
        let fingerprint = colons
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.split(':').find(|f| f.len() == 40))
            .unwrap()
            .to_string();
        let armored = String::from_utf8(gpg(&home, &["--armor", "--export"], None)).unwrap();
        let keyring = home.join("public.gpg");
        std::fs::write(&keyring, gpg(&home, &["--export"], None)).unwrap();
        TestKey {
            home,
            fingerprint,
            armored,
            keyring,
        }
    }

    /// `text` as a clearsigned message (kernel.org's `sha256sums.asc` layout).
    pub fn clearsign(&self, text: &str) -> Vec<u8> {
        gpg(
            &self.home,
            &["--clearsign", "--digest-algo", "SHA256"],
            Some(text.as_bytes()),
        )
    }

    /// An armored detached signature over `data` (Ubuntu's `SHA256SUMS.gpg` layout).
    pub fn detach_sign(&self, data: &[u8]) -> Vec<u8> {
        gpg(&self.home, &["--armor", "--detach-sign"], Some(data))
    }
}

fn unique(mut p: PathBuf) -> PathBuf {
    let mut n = 0;
    while p.exists() {
        n += 1;
        p.set_extension(n.to_string());
    }
    p
}

impl Drop for TestKey {
    fn drop(&mut self) {
        // The agent gpg started for this home, and only that one.
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&self.home)
            .args(["--kill", "all"])
            .output();
    }
}
