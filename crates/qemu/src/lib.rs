//! QEMU virtual machines for labs, on machines without VirtualBox (and in CI).
//!
//! [`accel`] probes the accelerator instead of trusting /dev/kvm; [`vm`] builds the
//! `qemu-system-x86_64` argv of a lab host (user-mode NAT with an SSH forward on NIC 1, the
//! lab's segments through `vde_switch` on NICs 2-8, Intel e1000 NICs on the PCI slots that give
//! the guide's names enp0s3, enp0s8, ...); [`image`] builds the Debian base image that boots
//! through GRUB from its own disk, without loop devices; [`monitor`] talks to a running VM.
//! Pure argv builders; running them goes through `guest::Exec`.

pub mod accel;
pub mod cloud;
pub mod image;
pub mod monitor;
pub mod vm;
