//! `getsockopt(SOL_MPTCP, MPTCP_INFO)`: the connection-level view of an MPTCP socket.
//!
//! `struct mptcp_info` grew over kernel versions; the kernel copies
//! `min(optlen, sizeof(struct mptcp_info))` bytes and returns that length, so every field is read
//! only when the returned length covers it.

use std::io;
use std::os::fd::AsRawFd;

use serde::Serialize;

const SOL_MPTCP: libc::c_int = 284;
const MPTCP_INFO: libc::c_int = 1;
const MPTCP_INFO_FLAG_FALLBACK: u32 = 1;

/// Offsets in `struct mptcp_info` (include/uapi/linux/mptcp.h).
const OFF_SUBFLOWS: usize = 0;
const OFF_ADD_ADDR_SIGNAL: usize = 1;
const OFF_ADD_ADDR_ACCEPTED: usize = 2;
const OFF_SUBFLOWS_MAX: usize = 3;
const OFF_FLAGS: usize = 8;
const OFF_BYTES_RETRANS: usize = 48; // 6.5+
const OFF_BYTES_SENT: usize = 56;
const OFF_BYTES_RECEIVED: usize = 64;
const OFF_SUBFLOWS_TOTAL: usize = 80; // 6.10+

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MptcpInfo {
    /// Established subflows, the initial one included: `mptcpi_subflows_total` where the kernel
    /// has it, else `mptcpi_subflows` (extra subflows) + 1.
    pub subflows: u8,
    pub add_addr_signal: u8,
    pub add_addr_accepted: u8,
    pub subflows_max: u8,
    /// The connection fell back to plain TCP.
    pub fallback: bool,
    pub bytes_sent: Option<u64>,
    pub bytes_received: Option<u64>,
    pub bytes_retrans: Option<u64>,
    /// How many bytes the kernel returned.
    pub len: usize,
}

impl MptcpInfo {
    /// Decode the bytes the kernel returned.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < OFF_FLAGS + 4 {
            return None;
        }
        let u64_at = |o: usize| {
            b.get(o..o + 8)
                .map(|s| u64::from_ne_bytes(s.try_into().unwrap_or_default()))
        };
        let flags = u32::from_ne_bytes(b[OFF_FLAGS..OFF_FLAGS + 4].try_into().ok()?);
        let extra = b[OFF_SUBFLOWS];
        let subflows = match b.get(OFF_SUBFLOWS_TOTAL) {
            Some(total) => *total,
            None => extra.saturating_add(1),
        };
        Some(Self {
            subflows,
            add_addr_signal: b[OFF_ADD_ADDR_SIGNAL],
            add_addr_accepted: b[OFF_ADD_ADDR_ACCEPTED],
            subflows_max: b[OFF_SUBFLOWS_MAX],
            fallback: flags & MPTCP_INFO_FLAG_FALLBACK != 0,
            bytes_retrans: u64_at(OFF_BYTES_RETRANS),
            bytes_sent: u64_at(OFF_BYTES_SENT),
            bytes_received: u64_at(OFF_BYTES_RECEIVED),
            len: b.len(),
        })
    }
}

/// Read MPTCP_INFO of an MPTCP socket. `Ok(None)` when the socket is not (or no longer) MPTCP.
pub fn read(sock: &impl AsRawFd) -> io::Result<Option<MptcpInfo>> {
    let mut buf = [0u8; 256];
    let len = getsockopt_raw(sock.as_raw_fd(), SOL_MPTCP, MPTCP_INFO, &mut buf)?;
    Ok(MptcpInfo::decode(&buf[..len]))
}

/// `getsockopt` into a byte buffer; returns the length the kernel wrote. socket2 has no raw
/// getsockopt, hence the one `unsafe` call of the workspace's measurement code.
#[allow(unsafe_code)]
fn getsockopt_raw(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    buf: &mut [u8],
) -> io::Result<usize> {
    let mut len = libc::socklen_t::try_from(buf.len()).unwrap_or(libc::socklen_t::MAX);
    // SAFETY: `buf` is valid for writes of `len` bytes and `len` is a valid socklen_t the kernel
    // updates with the number of bytes written, which never exceeds the length passed in.
    let rc = unsafe { libc::getsockopt(fd, level, name, buf.as_mut_ptr().cast(), &mut len) };
    if rc == 0 {
        Ok(usize::try_from(len).unwrap_or(0).min(buf.len()))
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_old_and_new_layouts() {
        let mut b = vec![0u8; 96];
        b[OFF_SUBFLOWS] = 2;
        b[OFF_SUBFLOWS_TOTAL] = 3;
        b[OFF_BYTES_SENT..OFF_BYTES_SENT + 8].copy_from_slice(&1234u64.to_ne_bytes());
        let new = MptcpInfo::decode(&b).unwrap();
        assert_eq!((new.subflows, new.bytes_sent), (3, Some(1234)));
        // A 6.1 kernel returns 44 bytes: no total, no byte counters.
        let old = MptcpInfo::decode(&b[..44]).unwrap();
        assert_eq!((old.subflows, old.bytes_sent), (3, None));
        b[OFF_FLAGS] = 1;
        assert!(MptcpInfo::decode(&b).unwrap().fallback);
        assert_eq!(MptcpInfo::decode(&b[..8]), None);
    }
}
