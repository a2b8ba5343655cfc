//! The Debian base image every QEMU VM of a lab boots from (through a qcow2 overlay).
//!
//! Made without loop or nbd devices: debootstrap into a directory, lab's files written into
//! it, `mkfs.ext4 -d` turns the directory into a filesystem image, which goes into partition
//! 1 of a raw disk with an MBR (sfdisk and dd on plain files). The first boot loads the
//! kernel directly (`-kernel`/`-initrd`) and runs `grub-install /dev/vda` and `update-grub`
//! inside the guest, then powers off: from then on the VM boots through GRUB from its own
//! disk, and GRUB_DEFAULT decides which kernel runs. The result is converted to qcow2 and
//! cached; its grub.cfg is copied out (fixtures of the kernel crate come from it).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use guest::{Command, Exec, FileMode};

use crate::accel::Accel;
use crate::vm::{self, DirectBoot, VmSpec};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Host(#[from] Box<guest::Error>),
    #[error("no Debian mirror for {suite} in /etc/apt (sources.list or *.sources)")]
    NoMirror { suite: String },
    #[error(
        "the image's first boot did not install GRUB (serial console: {}); last lines:\n{tail}",
        log.display()
    )]
    FirstBoot { log: PathBuf, tail: String },
    #[error("{0}")]
    Other(String),
}

impl From<guest::Error> for Error {
    fn from(e: guest::Error) -> Self {
        Error::Host(Box::new(e))
    }
}

/// What goes into the base image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub suite: String,
    pub mirror: String,
    pub packages: Vec<String>,
    pub size_mib: u64,
    /// A cloud image: cloud-init installed and limited to NoCloud seeds, no key baked in (each
    /// VM's seed brings it), as Ubuntu's cloud images are. lab's own VMs use the plain image;
    /// this one stands in for a cloud image where none can be downloaded (the tests).
    pub cloud_init: bool,
    /// A Vagrant box's image: this user with passwordless sudo and these authorized keys
    /// (Vagrant's insecure keys), root with none, as `vagrant package` boxes are. The tests
    /// make a `.box` of it; lab's own VMs never use it.
    pub user: Option<ImageUser>,
}

/// The login account of a box image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUser {
    pub name: String,
    /// Lines of the user's `authorized_keys`.
    pub authorized_keys: Vec<String>,
}

/// Who logs in to an image, and how.
enum Login<'a> {
    /// root, with lab's key (lab's own image).
    Root(&'a str),
    /// Whoever a NoCloud seed says (a cloud image).
    CloudInit,
    /// A user with sudo and the given keys (a box's image).
    User(&'a ImageUser),
}

/// The version of what `configure` writes: a change makes a new image.
pub const LAYOUT: u32 = 4;

/// The guide's tools and what a lab needs to boot, be reached and measure.
pub const PACKAGES: &[&str] = &[
    "systemd-sysv",
    "udev",
    "dbus",
    "openssh-server",
    "iproute2",
    "procps",
    "kmod",
    "linux-image-amd64",
    "initramfs-tools",
    "grub-pc",
    "mptcpd",
    "mptcpize",
    "iperf3",
    "ifstat",
    "tshark",
    "tcpdump",
];

impl ImageSpec {
    /// Debian bookworm from the machine's own Debian source.
    pub fn bookworm(apt_root: &Path) -> Result<ImageSpec, Error> {
        let suite = "bookworm".to_string();
        let mirror = debian_mirror(apt_root, &suite).ok_or_else(|| Error::NoMirror {
            suite: suite.clone(),
        })?;
        Ok(ImageSpec {
            suite,
            mirror,
            packages: PACKAGES.iter().map(|s| (*s).to_string()).collect(),
            size_mib: 3072,
            cloud_init: false,
            user: None,
        })
    }

    /// Debian bookworm as a Vagrant box's disk: [`ImageSpec::bookworm`] with sudo and `user`,
    /// who accepts `authorized_keys` (Vagrant's insecure keys), and no key for root.
    pub fn bookworm_box(apt_root: &Path, user: ImageUser) -> Result<ImageSpec, Error> {
        let mut s = ImageSpec::bookworm(apt_root)?;
        s.packages.push("sudo".into());
        s.user = Some(user);
        Ok(s)
    }

    /// Debian bookworm as a cloud image: [`ImageSpec::bookworm`] with cloud-init.
    pub fn bookworm_cloud(apt_root: &Path) -> Result<ImageSpec, Error> {
        let mut s = ImageSpec::bookworm(apt_root)?;
        // debootstrap does not resolve virtual packages: python3-cryptography needs
        // python3-cffi-backend-api-*, which python3-cffi-backend provides.
        // locales: cloud-init's locale step runs locale-gen, as on Ubuntu's images.
        s.packages.extend([
            "cloud-init".into(),
            "python3-cffi-backend".into(),
            "locales".into(),
        ]);
        s.cloud_init = true;
        Ok(s)
    }

    /// The cache key: suite, package list, size and the layout of lab's files in the image
    /// ([`LAYOUT`]), not the mirror.
    pub fn id(&self) -> String {
        let mut h: u32 = 0x811c_9dc5;
        for b in self
            .packages
            .join(",")
            .bytes()
            .chain(self.size_mib.to_le_bytes())
            .chain(LAYOUT.to_le_bytes())
            .chain([u8::from(self.cloud_init)])
            .chain(
                self.user
                    .iter()
                    .flat_map(|u| {
                        std::iter::once(u.name.as_str())
                            .chain(u.authorized_keys.iter().map(String::as_str))
                    })
                    .flat_map(str::bytes),
            )
        {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        let kind = match (&self.user, self.cloud_init) {
            (Some(_), _) => "-box",
            (None, true) => "-cloud",
            (None, false) => "",
        };
        format!("debian-{}{kind}-{h:08x}", self.suite)
    }
}

/// The first `URIs:`/`deb` source that serves `suite` with `main`, from `root`/etc/apt.
pub fn debian_mirror(root: &Path, suite: &str) -> Option<String> {
    let apt = root.join("etc/apt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(apt.join("sources.list.d"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files.insert(0, apt.join("sources.list"));
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        if f.extension().is_some_and(|e| e == "sources") {
            for stanza in text.split("\n\n") {
                let field = |name: &str| {
                    stanza.lines().find_map(|l| {
                        l.strip_prefix(name)
                            .and_then(|r| r.strip_prefix(':'))
                            .map(str::trim)
                    })
                };
                if field("Types").is_some_and(|t| t.split_whitespace().any(|x| x == "deb"))
                    && field("Suites").is_some_and(|s| s.split_whitespace().any(|x| x == suite))
                    && field("Components")
                        .is_some_and(|c| c.split_whitespace().any(|x| x == "main"))
                    && let Some(uri) = field("URIs").and_then(|u| u.split_whitespace().next())
                {
                    return Some(uri.to_string());
                }
            }
        } else {
            for l in text.lines() {
                let w: Vec<&str> = l.split_whitespace().collect();
                // deb [opts] URI SUITE COMPONENTS...
                let w: Vec<&str> = w.into_iter().filter(|x| !x.starts_with('[')).collect();
                if w.first() == Some(&"deb") && w.get(2) == Some(&suite) && w[3..].contains(&"main")
                {
                    return Some(w[1].to_string());
                }
            }
        }
    }
    None
}

/// A built image.
#[derive(Debug, Clone)]
pub struct Image {
    pub qcow2: PathBuf,
    /// The key root accepts (`.pub` beside it).
    pub key: PathBuf,
    /// The grub.cfg GRUB wrote on the first boot.
    pub grub_cfg: PathBuf,
    pub cached: bool,
    pub seconds: f64,
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn put(host: &dyn Exec, root: &Path, rel: &str, text: &str, mode: u32) -> Result<(), Error> {
    let p = root.join(rel.trim_start_matches('/'));
    if let Some(dir) = p.parent() {
        host.check(&Command::new(["mkdir", "-p", &path(dir)]))?;
    }
    host.put_file(&p, text.as_bytes(), FileMode::mode(mode))?;
    Ok(())
}

/// lab's files in the image, and its login: root's key, cloud-init, or a box's user.
fn configure(host: &dyn Exec, root: &Path, login: &Login<'_>) -> Result<(), Error> {
    put(host, root, "etc/hostname", "lab\n", 0o644)?;
    put(
        host,
        root,
        "etc/hosts",
        "127.0.0.1 localhost\n127.0.1.1 lab\n",
        0o644,
    )?;
    put(
        host,
        root,
        "etc/fstab",
        "/dev/vda1 / ext4 errors=remount-ro 0 1\n",
        0o644,
    )?;
    // GRUB on the serial console, no menu wait (lab picks kernels with GRUB_DEFAULT and
    // grub-reboot), the root device by name: a kernel without an initramfs (lab's tiny
    // kernels) cannot resolve root=UUID=.
    put(
        host,
        root,
        "etc/default/grub",
        "GRUB_DEFAULT=0\nGRUB_TIMEOUT=0\nGRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n\
         GRUB_CMDLINE_LINUX_DEFAULT=\"\"\nGRUB_CMDLINE_LINUX=\"console=ttyS0,115200n8\"\n\
         GRUB_TERMINAL=serial\nGRUB_SERIAL_COMMAND=\"serial --unit=0 --speed=115200\"\n\
         GRUB_DISABLE_LINUX_UUID=true\nGRUB_DISABLE_OS_PROBER=true\n",
        0o644,
    )?;
    // NIC 1 (slot 3) gets its address from QEMU's user-mode DHCP; the lab's NICs are lab's.
    put(
        host,
        root,
        "etc/systemd/network/10-lab-nat.network",
        "[Match]\nName=enp0s3 ens3 eth0\n\n[Network]\nDHCP=ipv4\n",
        0o644,
    )?;
    match login {
        Login::Root(k) => put(
            host,
            root,
            "root/.ssh/authorized_keys",
            &format!("{}\n", k.trim()),
            0o600,
        )?,
        // As `vagrant package` boxes: the user with passwordless sudo, the keys in its home,
        // its password unusable (`*`: not locked, so sshd lets the key in).
        Login::User(u) => {
            host.check(&Command::new([
                "chroot",
                &path(root),
                "useradd",
                "--create-home",
                "--shell",
                "/bin/bash",
                "--password",
                "*",
                &u.name,
            ]))?;
            put(
                host,
                root,
                &format!("etc/sudoers.d/{}", u.name),
                &format!("{} ALL=(ALL) NOPASSWD: ALL\n", u.name),
                0o440,
            )?;
            let keys: String = u
                .authorized_keys
                .iter()
                .map(|k| format!("{}\n", k.trim()))
                .collect();
            put(
                host,
                root,
                &format!("home/{}/.ssh/authorized_keys", u.name),
                &keys,
                0o600,
            )?;
            host.check(&Command::new([
                "chroot".to_string(),
                path(root),
                "chown".into(),
                "-R".into(),
                format!("{0}:{0}", u.name),
                format!("/home/{}/.ssh", u.name),
            ]))?;
            host.check(&Command::new([
                "chmod".to_string(),
                "700".into(),
                path(&root.join(format!("home/{}/.ssh", u.name))),
            ]))?;
        }
        // A cloud image reads its seed and nothing else (no network metadata service to wait
        // for); without a seed (the first boot) cloud-init stays off.
        Login::CloudInit => {
            put(
                host,
                root,
                "etc/cloud/cloud.cfg.d/90-lab-datasource.cfg",
                "datasource_list: [ NoCloud ]\n",
                0o644,
            )?;
            // Off for the image's own first boot (GRUB's install), on from the first VM's:
            // the image leaves no cloud-init state behind, as a published cloud image.
            put(host, root, "etc/cloud/cloud-init.disabled", "", 0o644)?;
        }
    }
    // Every VM gets host keys of its own on its first boot, not the image's.
    put(
        host,
        root,
        "etc/systemd/system/ssh.service.d/lab-host-keys.conf",
        "[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\n",
        0o644,
    )?;
    let enable_cloud_init = if matches!(login, Login::CloudInit) {
        " && rm -f /etc/cloud/cloud-init.disabled"
    } else {
        ""
    };
    put(
        host,
        root,
        "etc/systemd/system/lab-grub-install.service",
        &format!(
            "[Unit]\nDescription=lab: install GRUB on the image's first boot\nConditionPathExists=/etc/lab-grub-pending\n\
         After=local-fs.target\n\n[Service]\nType=oneshot\nStandardOutput=journal+console\n\
         ExecStart=/bin/sh -c 'grub-install /dev/vda && update-grub && rm /etc/lab-grub-pending{enable_cloud_init} && echo lab-grub-installed > /dev/ttyS0'\n\
         ExecStartPost=/bin/systemctl --no-block poweroff\n\n[Install]\nWantedBy=multi-user.target\n"
        ),
        0o644,
    )?;
    put(host, root, "etc/lab-grub-pending", "", 0o644)?;
    for (link, target) in [
        (
            "etc/systemd/system/multi-user.target.wants/lab-grub-install.service",
            "/etc/systemd/system/lab-grub-install.service",
        ),
        (
            "etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
            "/lib/systemd/system/systemd-networkd.service",
        ),
    ] {
        host.check(&Command::new([
            "ln",
            "-sf",
            target,
            &path(&root.join(link)),
        ]))?;
    }
    // Off the boot path of a lab VM: e2scrub (LVM snapshots: none here), apt's and dpkg's
    // daily timers, and mptcpd's service. mptcpd stays installed (mptcpize is the guide's
    // tool) but lab owns the MPTCP endpoints, and Debian's package ships no path-manager
    // plugin, so the service only fails at every boot.
    for unit in [
        "e2scrub_reap.service",
        "e2scrub_all.timer",
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "dpkg-db-backup.timer",
    ] {
        host.check(&Command::new([
            "ln",
            "-sf",
            "/dev/null",
            &path(&root.join("etc/systemd/system").join(unit)),
        ]))?;
    }
    host.check(&Command::new([
        "rm",
        "-f",
        &path(&root.join("etc/systemd/system/multi-user.target.wants/mptcp.service")),
    ]))?;
    // The image's own host keys are not shipped.
    host.check(&Command::new([
        "sh",
        "-c",
        "rm -f \"$1\"/etc/ssh/ssh_host_*",
        "sh",
        &path(root),
    ]))?;
    Ok(())
}

/// Build the image into `cache` (or return the cached one). `progress` gets one line per step.
pub fn build(
    host: &dyn Exec,
    spec: &ImageSpec,
    cache: &Path,
    accel: &Accel,
    progress: &mut dyn FnMut(&str),
) -> Result<Image, Error> {
    let start = Instant::now();
    let id = spec.id();
    let dir = cache.join(&id);
    let qcow2 = dir.join("base.qcow2");
    let key = cache.join("id_ed25519");
    let grub_cfg = dir.join("grub.cfg");
    if host
        .run(&Command::new(["test", "-f", &path(&qcow2)]))?
        .success()
    {
        return Ok(Image {
            qcow2,
            key,
            grub_cfg,
            cached: true,
            seconds: start.elapsed().as_secs_f64(),
        });
    }
    let work = dir.join("work");
    host.check(&Command::new(["rm", "-rf", &path(&work)]))?;
    host.check(&Command::new(["mkdir", "-p", &path(&work)]))?;
    let public_key = ensure_key(host, cache)?;
    let rootfs = work.join("rootfs");
    progress(&format!(
        "debootstrap {} from {} ({} packages)",
        spec.suite,
        spec.mirror,
        spec.packages.len()
    ));
    let argv = vec![
        "debootstrap".to_string(),
        "--variant=minbase".into(),
        format!("--include={}", spec.packages.join(",")),
        spec.suite.clone(),
        path(&rootfs),
        spec.mirror.clone(),
    ];
    let st = host.run(&Command::new(argv.clone()).timeout(Duration::from_secs(1800)))?;
    if !st.success() {
        // debootstrap says little on stderr; its log says which package failed and why.
        let log = rootfs.join("debootstrap/debootstrap.log");
        let text = String::from_utf8_lossy(&host.get_file(&log).unwrap_or_default()).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        return Err(Error::Other(format!(
            "{} failed ({}): {}; the end of {}:\n{}",
            argv.join(" "),
            st.status,
            st.stderr_lossy().trim(),
            log.display(),
            lines[lines.len().saturating_sub(20)..].join("\n")
        )));
    }
    progress("configuring the image");
    let login = match (&spec.user, spec.cloud_init) {
        (Some(u), _) => Login::User(u),
        (None, true) => Login::CloudInit,
        (None, false) => Login::Root(&public_key),
    };
    configure(host, &rootfs, &login)?;

    progress("making the disk (mkfs.ext4 -d, sfdisk, no loop device)");
    let part = work.join("part.raw");
    let disk = work.join("disk.raw");
    let part_mib = spec.size_mib - 1;
    host.check(
        &Command::new([
            "mkfs.ext4".to_string(),
            "-q".into(),
            "-F".into(),
            "-L".into(),
            "labroot".into(),
            "-d".into(),
            path(&rootfs),
            path(&part),
            format!("{part_mib}M"),
        ])
        .timeout(Duration::from_secs(600)),
    )?;
    host.check(&Command::new([
        "truncate".to_string(),
        "-s".into(),
        format!("{}M", spec.size_mib),
        path(&disk),
    ]))?;
    host.check(
        &Command::new(["sfdisk", "-q", &path(&disk)])
            .stdin("label: dos\nstart=2048, type=83, bootable\n"),
    )?;
    host.check(
        &Command::new([
            "dd".to_string(),
            format!("if={}", path(&part)),
            format!("of={}", path(&disk)),
            "bs=1M".into(),
            "seek=1".into(),
            "conv=notrunc,sparse".into(),
            "status=none".into(),
        ])
        .timeout(Duration::from_secs(600)),
    )?;

    progress(&format!(
        "first boot: grub-install and update-grub inside the guest ({})",
        accel.name()
    ));
    let kernel = newest(host, &rootfs.join("boot"), "vmlinuz-")?;
    let initrd = newest(host, &rootfs.join("boot"), "initrd.img-")?;
    let log = work.join("first-boot.log");
    let spec_vm = VmSpec {
        name: "lab-image-build".into(),
        memory_mib: 1024,
        cpus: 2,
        accel: accel.clone(),
        disk: disk.clone(),
        disk_format: "raw",
        ssh_port: None,
        nat_mac: None,
        nics: Vec::new(),
        serial_log: log.clone(),
        monitor: None,
        pidfile: None,
        direct_boot: Some(DirectBoot {
            kernel,
            initrd: Some(initrd),
            append: "root=/dev/vda1 rw console=ttyS0,115200n8".into(),
        }),
        seed: None,
    };
    let st = host.run(&Command::new(vm::argv(&spec_vm)).timeout(Duration::from_secs(900)))?;
    let console = String::from_utf8_lossy(&host.get_file(&log).unwrap_or_default()).into_owned();
    if !st.success() || !console.contains("lab-grub-installed") {
        let lines: Vec<&str> = console.lines().collect();
        return Err(Error::FirstBoot {
            log,
            tail: lines[lines.len().saturating_sub(30)..].join("\n"),
        });
    }

    progress("converting to qcow2");
    let part_q = dir.join("base.qcow2.part");
    host.check(
        &Command::new([
            "qemu-img",
            "convert",
            "-q",
            "-O",
            "qcow2",
            &path(&disk),
            &path(&part_q),
        ])
        .timeout(Duration::from_secs(600)),
    )?;
    // grub.cfg as GRUB wrote it: read back from the disk with debugfs (no mount).
    let cfg = host.check(&Command::new([
        "sh",
        "-c",
        "dd if=\"$1\" bs=1M skip=1 status=none of=\"$2\" && debugfs -R 'cat /boot/grub/grub.cfg' \"$2\" 2>/dev/null",
        "sh",
        &path(&disk),
        &path(&part),
    ]))?;
    host.put_file(&grub_cfg, &cfg.stdout, FileMode::mode(0o644))?;
    host.check(&Command::new(["mv", "-f", &path(&part_q), &path(&qcow2)]))?;
    host.check(&Command::new(["rm", "-rf", &path(&work)]))?;
    Ok(Image {
        qcow2,
        key,
        grub_cfg,
        cached: false,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The key of lab's VMs, `cache`/id_ed25519 (made on first use); returns the public key.
pub fn ensure_key(host: &dyn Exec, cache: &Path) -> Result<String, Error> {
    let key = cache.join("id_ed25519");
    host.check(&Command::new(["mkdir", "-p", &path(cache)]))?;
    if !host
        .run(&Command::new(["test", "-f", &path(&key)]))?
        .success()
    {
        host.check(&guest::keygen(&key, "lab-qemu-images"))?;
    }
    Ok(String::from_utf8_lossy(&host.get_file(&key.with_extension("pub"))?).into_owned())
}

/// The newest `prefix*` file in `dir` (version sort).
fn newest(host: &dyn Exec, dir: &Path, prefix: &str) -> Result<PathBuf, Error> {
    let out = host.check(&Command::new([
        "sh",
        "-c",
        "ls -1 \"$1\" | grep \"^$2\" | sort -V | tail -n 1",
        "sh",
        &path(dir),
        prefix,
    ]))?;
    let name = out.stdout_lossy().trim().to_string();
    if name.is_empty() {
        return Err(Error::Other(format!(
            "no {prefix}* in {} (is linux-image-amd64 in the image?)",
            dir.display()
        )));
    }
    Ok(dir.join(name))
}
