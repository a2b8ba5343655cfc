//! QEMU's human monitor over its unix socket.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Send one monitor command (`system_powerdown`, `quit`) and return what QEMU answered.
pub fn command(socket: &Path, cmd: &str) -> std::io::Result<String> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut buf = [0u8; 4096];
    let mut out = Vec::new();
    // The banner and the first prompt.
    let _ = read_until_prompt(&mut s, &mut buf, &mut out);
    out.clear();
    s.write_all(format!("{cmd}\n").as_bytes())?;
    let _ = read_until_prompt(&mut s, &mut buf, &mut out);
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn read_until_prompt(s: &mut UnixStream, buf: &mut [u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    loop {
        let n = s.read(buf)?;
        if n == 0 {
            return Ok(());
        }
        out.extend_from_slice(&buf[..n]);
        if out.ends_with(b"(qemu) ") {
            return Ok(());
        }
    }
}
