//! GRUB's menu, read from grub.cfg, and GRUB_DEFAULT, written into /etc/default/grub: pure
//! functions over text.
//!
//! The guide reads a positional path such as `1>0` off grub-menu.sh and pastes it into
//! /etc/default/grub. A positional path silently changes meaning when a newer stock kernel
//! installs (Ubuntu lists the newest first). lab selects an entry by kernel release or title and
//! writes the entry's *id* path (`gnulinux-advanced-UUID>gnulinux-6.4.0-mptcp-advanced-UUID`),
//! which no new kernel can shift.

use std::fmt;

use serde::Serialize;

/// A menu item: an entry that boots, or a submenu holding more items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub kind: Kind,
    pub title: String,
    /// `--id ID` or `$menuentry_id_option 'ID'`.
    pub id: Option<String>,
    /// The kernel of an entry (the first word after `linux`), e.g. `/vmlinuz-6.4.0-mptcp`.
    pub kernel: Option<String>,
    /// 1-based line of the `menuentry`/`submenu` line.
    pub line: usize,
    pub children: Vec<Item>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Entry,
    Submenu,
}

impl Item {
    /// The kernel release of an entry: what follows `vmlinuz-` in its kernel path.
    pub fn release(&self) -> Option<&str> {
        let k = self.kernel.as_deref()?;
        let name = k.rsplit('/').next()?;
        name.strip_prefix("vmlinuz-")
    }

    /// Whether this is a recovery (single-user) entry.
    pub fn is_recovery(&self) -> bool {
        let t = self.title.to_ascii_lowercase();
        t.contains("recovery mode") || t.contains("(recovery")
    }
}

/// A parse failure, with its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("grub.cfg line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Split a grub.cfg line into words as GRUB's shell does: `'...'` literal, `"..."` with
/// backslash escapes, `\x` outside quotes, adjacent parts joined (`'it'\''s'` is `it's`).
/// Returns the words and whether the line ends with an unquoted `{` word.
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => cur.push(ch),
                            Some('\n') => {}
                            Some(ch) => {
                                cur.push('\\');
                                cur.push(ch);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(ch) = chars.next() {
                    cur.push(ch);
                }
            }
            '#' if !in_word => break,
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            ';' if !in_word => {
                out.push(";".into());
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// Parse grub.cfg into its menu tree. Only a line whose first word is exactly `menuentry` or
/// `submenu` opens an item; `menuentry_id_option=...`, `export menuentry_id_option`, comments
/// and strings that mention `menuentry` do not (the off-by-one that ktest.pl fixed in 2024 came
/// from counting those). Other `{ ... }` blocks (functions) are tracked so braces stay balanced.
pub fn parse(cfg: &str) -> Result<Vec<Item>, ParseError> {
    // The stack holds open blocks: Some(item) for menu items, None for other blocks.
    let mut stack: Vec<Option<Item>> = Vec::new();
    let mut top: Vec<Item> = Vec::new();
    for (n, raw) in cfg.lines().enumerate() {
        let line = n + 1;
        let w = words(raw).map_err(|message| ParseError { line, message })?;
        let Some(first) = w.first() else { continue };
        let opens = w.last().is_some_and(|l| l == "{");
        match first.as_str() {
            "menuentry" | "submenu" => {
                if !opens {
                    return Err(ParseError {
                        line,
                        message: format!("`{first}` without `{{` on its line"),
                    });
                }
                let title = w.get(1).cloned().ok_or_else(|| ParseError {
                    line,
                    message: format!("`{first}` without a title"),
                })?;
                let mut id = None;
                let mut k = 2;
                while k + 1 < w.len() {
                    if w[k] == "--id" || w[k] == "$menuentry_id_option" {
                        id = Some(w[k + 1].clone());
                        k += 2;
                    } else {
                        k += 1;
                    }
                }
                stack.push(Some(Item {
                    kind: if first == "menuentry" {
                        Kind::Entry
                    } else {
                        Kind::Submenu
                    },
                    title,
                    id,
                    kernel: None,
                    line,
                    children: Vec::new(),
                }));
            }
            "}" => {
                let Some(block) = stack.pop() else {
                    return Err(ParseError {
                        line,
                        message: "`}` without an open block".into(),
                    });
                };
                if let Some(item) = block {
                    // Attach to the nearest enclosing menu item, or to the top level.
                    match stack.iter_mut().rev().find_map(|b| b.as_mut()) {
                        Some(parent) => parent.children.push(item),
                        None => top.push(item),
                    }
                }
            }
            "linux" | "linux16" | "linuxefi" => {
                if let Some(Some(item)) = stack.last_mut()
                    && item.kernel.is_none()
                {
                    item.kernel = w.get(1).cloned();
                }
            }
            _ if opens => stack.push(None), // `function name {`, or any other block
            _ => {}
        }
    }
    if let Some(open) = stack.iter().rev().find_map(|b| b.as_ref()) {
        return Err(ParseError {
            line: open.line,
            message: format!("`{}` is never closed", open.title),
        });
    }
    Ok(top)
}

/// One bootable entry with the paths GRUB_DEFAULT accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    /// Positional path, as grub-menu.sh prints it (`1>0`).
    pub path: String,
    /// The same by ids, when every item on the way has one.
    pub id_path: Option<String>,
    pub title: String,
    pub release: Option<String>,
    pub recovery: bool,
    pub depth: usize,
}

/// Every bootable entry, depth first, at any depth.
pub fn list(items: &[Item]) -> Vec<Listed> {
    fn walk(
        items: &[Item],
        pos: &mut Vec<usize>,
        ids: &mut Vec<Option<String>>,
        out: &mut Vec<Listed>,
    ) {
        for (i, item) in items.iter().enumerate() {
            pos.push(i);
            ids.push(item.id.clone());
            match item.kind {
                Kind::Entry => out.push(Listed {
                    path: pos
                        .iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join(">"),
                    id_path: ids
                        .iter()
                        .cloned()
                        .collect::<Option<Vec<_>>>()
                        .map(|v| v.join(">")),
                    title: item.title.clone(),
                    release: item.release().map(str::to_string),
                    recovery: item.is_recovery(),
                    depth: pos.len() - 1,
                }),
                Kind::Submenu => walk(&item.children, pos, ids, out),
            }
            pos.pop();
            ids.pop();
        }
    }
    let mut out = Vec::new();
    walk(items, &mut Vec::new(), &mut Vec::new(), &mut out);
    out
}

/// How to pick an entry: never by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// A kernel release (`6.4.0-mptcp`): its normal (not recovery) entry.
    Release(String),
    /// An exact title.
    Title(String),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Release(r) => write!(f, "kernel release {r}"),
            Selector::Title(t) => write!(f, "title `{t}`"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("no GRUB entry for {wanted}; entries: {available}")]
    NotFound { wanted: String, available: String },
}

/// The entry `sel` names. For a release, the first normal entry booting that kernel (the one
/// in "Advanced options" when the top-level entry boots the newest kernel by other means).
pub fn select<'a>(entries: &'a [Listed], sel: &Selector) -> Result<&'a Listed, SelectError> {
    let found = match sel {
        // The top-level entry boots the newest kernel, whichever that is at the next
        // update-grub: prefer the entry whose own id names the release (the per-kernel entry
        // of the "Advanced options" submenu), which no other kernel can take over.
        Selector::Release(r) => {
            let matching = || {
                entries
                    .iter()
                    .filter(|e| e.release.as_deref() == Some(r.as_str()) && !e.recovery)
            };
            matching()
                .find(|e| {
                    e.id_path
                        .as_deref()
                        .and_then(|p| p.rsplit('>').next())
                        .is_some_and(|id| id.contains(r.as_str()))
                })
                .or_else(|| matching().next())
        }
        Selector::Title(t) => entries.iter().find(|e| e.title == *t),
    };
    found.ok_or_else(|| SelectError::NotFound {
        wanted: sel.to_string(),
        available: entries
            .iter()
            .map(|e| format!("{} ({})", e.title, e.path))
            .collect::<Vec<_>>()
            .join("; "),
    })
}

/// The value to write: the id path when there is one, else the positional path.
pub fn default_value(e: &Listed) -> &str {
    e.id_path.as_deref().unwrap_or(&e.path)
}

/// `/etc/default/grub` with `GRUB_DEFAULT` set to `value`, every other byte kept. The last
/// assignment wins in a shell file, so it is the one replaced; without one, a line is appended.
pub fn set_default(file: &str, value: &str) -> String {
    let line = format!("GRUB_DEFAULT={}", shell_quote(value));
    let mut lines: Vec<&str> = file.split_inclusive('\n').collect();
    let last = lines.iter().rposition(|l| {
        let t = l.trim_start();
        t.starts_with("GRUB_DEFAULT=") || t.starts_with("export GRUB_DEFAULT=")
    });
    let replacement;
    match last {
        Some(k) => {
            let ending = if lines[k].ends_with('\n') { "\n" } else { "" };
            let indent_len = lines[k].len() - lines[k].trim_start().len();
            let export = if lines[k].trim_start().starts_with("export ") {
                "export "
            } else {
                ""
            };
            replacement = format!("{}{export}{line}{ending}", &lines[k][..indent_len]);
            lines[k] = &replacement;
            lines.concat()
        }
        None => {
            let mut out = file.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&line);
            out.push('\n');
            out
        }
    }
}

/// The current GRUB_DEFAULT (the last assignment), unquoted.
pub fn current_default(file: &str) -> Option<String> {
    file.lines()
        .rev()
        .find_map(|l| {
            let t = l.trim_start();
            let t = t.strip_prefix("export ").unwrap_or(t);
            t.strip_prefix("GRUB_DEFAULT=")
        })
        .and_then(|v| words(v).ok())
        .and_then(|w| w.into_iter().next())
}

/// A value in double quotes, as /etc/default/grub (a shell file) reads it.
fn shell_quote(v: &str) -> String {
    let mut out = String::from("\"");
    for c in v.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Where GRUB keeps its menu and its settings, under a root directory (`/` on a guest, a temp
/// dir in tests).
pub const GRUB_CFG: &str = "boot/grub/grub.cfg";
pub const DEFAULT_GRUB: &str = "etc/default/grub";
/// The copy of /etc/default/grub taken before lab's first edit.
pub const BACKUP_SUFFIX: &str = ".lab-backup";

/// What [`set_default_on`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefaultSet {
    pub entry: Listed,
    pub value: String,
    pub previous: Option<String>,
    pub backup: Option<String>,
    pub changed: bool,
}

/// Errors of the GRUB edit on a host.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error(transparent)]
    Host(#[from] Box<guest::Error>),
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Select(#[from] SelectError),
}

/// Make the entry `sel` names the default on a host: read `ROOT/boot/grub/grub.cfg`, select,
/// and write GRUB_DEFAULT (the entry's id path) into `ROOT/etc/default/grub` atomically (temp
/// file and rename in the same directory), keeping every other byte, after saving a backup
/// once. Run `update-grub` afterwards for the change to reach grub.cfg.
pub fn set_default_on(
    host: &dyn guest::Exec,
    root: &std::path::Path,
    sel: &Selector,
) -> Result<DefaultSet, EditError> {
    let entry = find_on(host, root, sel)?;
    let value = default_value(&entry).to_string();
    write_default_on(host, root, entry, &value)
}

/// The entry `sel` names in a host's `ROOT/boot/grub/grub.cfg`.
pub fn find_on(
    host: &dyn guest::Exec,
    root: &std::path::Path,
    sel: &Selector,
) -> Result<Listed, EditError> {
    let cfg = host.get_file(&root.join(GRUB_CFG)).map_err(Box::new)?;
    let items = parse(&String::from_utf8_lossy(&cfg))?;
    Ok(select(&list(&items), sel)?.clone())
}

/// Write `GRUB_DEFAULT=value` into `ROOT/etc/default/grub` (atomically, every other byte kept,
/// a backup taken before lab's first edit). `value` is the entry's id path, or `saved` for the
/// trial flow (`grub-reboot` once, `grub-set-default` after a good boot).
pub fn write_default_on(
    host: &dyn guest::Exec,
    root: &std::path::Path,
    entry: Listed,
    value: &str,
) -> Result<DefaultSet, EditError> {
    let path = root.join(DEFAULT_GRUB);
    let file = String::from_utf8_lossy(&host.get_file(&path).map_err(Box::new)?).into_owned();
    let previous = current_default(&file);
    let updated = set_default(&file, value);
    let mut backup = None;
    let changed = updated != file;
    if changed {
        let b = std::path::PathBuf::from(format!("{}{BACKUP_SUFFIX}", path.display()));
        if host.get_file(&b).is_err() {
            host.put_file(&b, file.as_bytes(), guest::FileMode::mode(0o644))
                .map_err(Box::new)?;
            backup = Some(b.display().to_string());
        }
        host.put_file(&path, updated.as_bytes(), guest::FileMode::mode(0o644))
            .map_err(Box::new)?;
    }
    Ok(DefaultSet {
        entry,
        value: value.to_string(),
        previous,
        backup,
        changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_grub_quoting() {
        assert_eq!(
            words(r#"menuentry 'it'\''s' "a \"b\" \$c" --id x {"#).unwrap(),
            ["menuentry", "it's", "a \"b\" $c", "--id", "x", "{"]
        );
        assert_eq!(
            words("  linux /vmlinuz-6.4.0 root=UUID=1 ro # comment")
                .unwrap()
                .len(),
            4
        );
        assert!(words("menuentry 'open {").is_err());
    }

    #[test]
    fn set_default_keeps_every_other_byte() {
        let file = "# comment\nGRUB_DEFAULT=0\nGRUB_TIMEOUT=5\n#GRUB_DEFAULT=saved\nGRUB_CMDLINE_LINUX=\"\"\n";
        let out = set_default(file, "gnulinux-advanced-1>gnulinux-6.4.0-mptcp-advanced-1");
        assert_eq!(
            out,
            "# comment\nGRUB_DEFAULT=\"gnulinux-advanced-1>gnulinux-6.4.0-mptcp-advanced-1\"\nGRUB_TIMEOUT=5\n#GRUB_DEFAULT=saved\nGRUB_CMDLINE_LINUX=\"\"\n"
        );
        assert_eq!(
            current_default(&out).as_deref(),
            Some("gnulinux-advanced-1>gnulinux-6.4.0-mptcp-advanced-1")
        );
        // No assignment: one is appended; no trailing newline: one is added first.
        assert_eq!(set_default("A=1", "saved"), "A=1\nGRUB_DEFAULT=\"saved\"\n");
        // The last of several assignments is the one that counts and the one replaced.
        assert_eq!(
            set_default("GRUB_DEFAULT=0\nGRUB_DEFAULT=2", "x$y"),
            "GRUB_DEFAULT=0\nGRUB_DEFAULT=\"x\\$y\""
        );
    }
}
