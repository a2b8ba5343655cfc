//! POSIX shell quoting for rendered scripts and remote command lines.
//!
//! Deviation from the preferred-crate rule: the `shlex` crate quotes `=` and `%`, which are
//! ordinary characters in a POSIX shell word, so rendered scripts would read
//! `sysctl -w 'net.mptcp.enabled=1'`. This follows Python's `shlex.quote` instead: words made only
//! of `[A-Za-z0-9_@%+=:,./-]` stay bare, everything else is single-quoted with `'` written as
//! `'"'"'`.

/// Quote one word so that a POSIX shell reads it back unchanged.
pub fn quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r#"'"'"'"#))
    }
}

/// Join an argv into one shell command line, quoting every word.
pub fn join<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn bare_words_stay_bare() {
        assert_eq!(quote("10.1.1.0/24"), "10.1.1.0/24");
        assert_eq!(quote("net.mptcp.enabled=1"), "net.mptcp.enabled=1");
        assert_eq!(quote("1%"), "1%");
    }

    #[test]
    fn hostile_words_round_trip_through_a_real_shell() {
        let words = [
            "a b",
            "it's",
            "x;rm -rf /",
            "$(id)",
            "`id`",
            "line\nbreak",
            "",
            "\"dq\"",
            "*",
            "~",
        ];
        let script = format!("printf '%s\\0' {}", join(&words));
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert!(out.status.success());
        let got: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect();
        // printf leaves a trailing empty field after the last NUL.
        assert_eq!(&got[..words.len()], &words);
    }
}
