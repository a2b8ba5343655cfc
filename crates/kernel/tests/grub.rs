//! GRUB menus from fixtures/kernel (see its README for what they are), listed, selected by
//! release, and the GRUB_DEFAULT edit.

mod common;

use common::fixture;

use kernel::grub::{self, Selector};

fn listing(name: &str) -> String {
    let items = grub::parse(&fixture(name)).unwrap();
    grub::list(&items)
        .iter()
        .map(|e| {
            format!(
                "{:<5} {:<70} {} [{}]",
                e.path,
                e.title,
                e.release.as_deref().unwrap_or("-"),
                e.id_path.as_deref().unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn menus_list_with_positional_and_id_paths() {
    insta::assert_snapshot!("ubuntu-22.04", listing("ubuntu-22.04.cfg"));
    insta::assert_snapshot!(
        "ubuntu-22.04-after-update",
        listing("ubuntu-22.04-after-update.cfg")
    );
    insta::assert_snapshot!("debian-12", listing("debian-12.cfg"));
}

#[test]
fn selection_by_release_survives_a_stock_kernel_update() {
    let sel = Selector::Release("6.4.0-mptcp".into());
    let before = grub::list(&grub::parse(&fixture("ubuntu-22.04.cfg")).unwrap());
    let after = grub::list(&grub::parse(&fixture("ubuntu-22.04-after-update.cfg")).unwrap());
    let b = grub::select(&before, &sel).unwrap();
    let a = grub::select(&after, &sel).unwrap();
    // The guide's positional path moves (1>2 becomes 1>4) ...
    assert_eq!((b.path.as_str(), a.path.as_str()), ("1>2", "1>4"));
    // ... and `1>2` now boots a stock kernel that has no lab configuration.
    let stale = after.iter().find(|e| e.path == "1>2").unwrap();
    assert_eq!(stale.release.as_deref(), Some("5.15.0-91-generic"));
    // The id path lab writes does not move.
    assert_eq!(grub::default_value(b), grub::default_value(a));
    assert_eq!(
        grub::default_value(a),
        "gnulinux-advanced-3f1c2a9e-6b1d-4c55-9a0e-2d7f8e41b6a0>gnulinux-6.4.0-mptcp-advanced-3f1c2a9e-6b1d-4c55-9a0e-2d7f8e41b6a0"
    );
    assert!(!a.recovery);
    // By title too; an unknown release names what there is.
    let t = grub::select(
        &after,
        &Selector::Title("Ubuntu, with Linux 6.4.0-mptcp".into()),
    )
    .unwrap();
    assert_eq!(t.path, "1>4");
    let e = grub::select(&after, &Selector::Release("9.9.9".into())).unwrap_err();
    assert!(
        e.to_string()
            .contains("Ubuntu, with Linux 6.4.0-mptcp (1>4)"),
        "{e}"
    );
}

#[test]
fn only_real_entries_count_at_any_depth() {
    let cfg = r#"
if [ x"${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi
export menuentry_id_option
function f {
  echo "menuentry 'not an entry' {"
}
# menuentry 'commented out' {
menuentry "First \"quoted\"" --id first {
	linux /boot/vmlinuz-1.0
}
submenu 'Level 1' --id l1 {
	menuentry 'A' --id a {
		linux /vmlinuz-2.0-a
	}
	submenu 'Level 2' {
		menuentry 'Deep' --id deep {
			linux /vmlinuz-3.0 ro
		}
	}
}
"#;
    let items = grub::parse(cfg).unwrap();
    let l = grub::list(&items);
    let paths: Vec<(&str, &str)> = l
        .iter()
        .map(|e| (e.path.as_str(), e.title.as_str()))
        .collect();
    assert_eq!(
        paths,
        [("0", "First \"quoted\""), ("1>0", "A"), ("1>1>0", "Deep")]
    );
    assert_eq!(l[1].id_path.as_deref(), Some("l1>a"));
    assert_eq!(
        l[2].id_path, None,
        "Level 2 has no id: only the positional path exists"
    );
    assert_eq!(l[2].release.as_deref(), Some("3.0"));
    assert_eq!(l[2].depth, 2);
    // Broken files are reported with their line.
    let e = grub::parse("menuentry 'x' {\n linux /vmlinuz-1\n").unwrap_err();
    assert_eq!(e.line, 1);
    assert!(grub::parse("}\n").is_err());
}

#[test]
fn the_default_edit_keeps_the_rest_of_the_file() {
    // Ubuntu 22.04's /etc/default/grub as installed, with a user's comment and a blank line.
    let file = "# If you change this file, run 'update-grub' afterwards to update\n# /boot/grub/grub.cfg.\n\nGRUB_DEFAULT=0\nGRUB_TIMEOUT_STYLE=hidden\nGRUB_TIMEOUT=0\nGRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet splash\"\nGRUB_CMDLINE_LINUX=\"\"\n\n# my note\n";
    let items = grub::parse(&fixture("ubuntu-22.04.cfg")).unwrap();
    let list = grub::list(&items);
    let e = grub::select(&list, &Selector::Release("6.4.0-mptcp".into())).unwrap();
    let out = grub::set_default(file, grub::default_value(e));
    let changed: Vec<(&str, &str)> = file
        .lines()
        .zip(out.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0].0, "GRUB_DEFAULT=0");
    assert_eq!(file.lines().count(), out.lines().count());
    assert_eq!(
        grub::current_default(&out).as_deref(),
        Some(grub::default_value(e))
    );
}

/// `lab kernel grub-default --root DIR --release R`: the edit on a stand-in root, through the
/// command seam (a local host here; a guest over SSH in a lab).
#[test]
fn set_default_on_a_root_directory() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("boot/grub")).unwrap();
    std::fs::create_dir_all(root.path().join("etc/default")).unwrap();
    std::fs::write(
        root.path().join("boot/grub/grub.cfg"),
        fixture("debian-12.cfg"),
    )
    .unwrap();
    let original = "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\n";
    std::fs::write(root.path().join("etc/default/grub"), original).unwrap();
    let host = guest::Local::new("test");
    let sel = Selector::Release("6.4.0-mptcp".into());
    let done = grub::set_default_on(&host, root.path(), &sel).unwrap();
    assert!(done.changed);
    assert_eq!(done.entry.path, "1>2");
    assert_eq!(done.previous.as_deref(), Some("0"));
    let now = std::fs::read_to_string(root.path().join("etc/default/grub")).unwrap();
    assert!(
        now.starts_with("GRUB_DEFAULT=\"gnulinux-advanced-") && now.ends_with("\nGRUB_TIMEOUT=5\n"),
        "{now}"
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("etc/default/grub.lab-backup")).unwrap(),
        original
    );
    // Again: nothing to change, and the first backup is kept.
    let again = grub::set_default_on(&host, root.path(), &sel).unwrap();
    assert!(!again.changed && again.backup.is_none());
    assert_eq!(
        std::fs::read_to_string(root.path().join("etc/default/grub.lab-backup")).unwrap(),
        original
    );
    // No temp file is left in /etc/default.
    assert_eq!(
        std::fs::read_dir(root.path().join("etc/default"))
            .unwrap()
            .count(),
        2
    );
}

/// Menus GRUB really wrote (Debian 12, grub-pc 2.06-13+deb12u2, in a QEMU VM of lab's image):
/// the stock kernel alone, then with lab's kernel installed by `lab kernel install`.
#[test]
fn recorded_debian_12_menus() {
    insta::assert_snapshot!("debian-12-recorded", listing("debian-12-recorded.cfg"));
    insta::assert_snapshot!(
        "debian-12-two-kernels-recorded",
        listing("debian-12-two-kernels-recorded.cfg")
    );
    // The top-level entry boots the newest kernel (here lab's, by version order): selection by
    // release takes the submenu entry whose own id names the release, which stays that kernel
    // whatever is installed later.
    let entries = grub::list(&grub::parse(&fixture("debian-12-two-kernels-recorded.cfg")).unwrap());
    let e = grub::select(&entries, &Selector::Release("6.1.192-mptcp".into())).unwrap();
    assert_eq!(e.path, "1>0");
    assert!(
        grub::default_value(e)
            .ends_with(">gnulinux-6.1.192-mptcp-advanced-ca970fed-1380-4ec3-968e-87325a38f632"),
        "{}",
        grub::default_value(e)
    );
}
