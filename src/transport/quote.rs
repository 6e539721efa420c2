//! The one quoting function every remote command is built with. Values from manifests
//! never reach a shell any other way.

/// Quotes `arg` as one POSIX shell word. Printable UTF-8 goes in single quotes (`'`
/// becomes `'\''`); a byte that is not valid UTF-8 is produced by `printf` with an octal
/// escape inside a command substitution, so the command line itself stays valid UTF-8.
/// The empty string becomes `''`.
pub fn quote(arg: &[u8]) -> String {
    let mut out = String::with_capacity(arg.len() + 2);
    let mut chunks = arg.utf8_chunks().peekable();
    if chunks.peek().is_none() {
        return "''".to_string();
    }
    for chunk in chunks {
        let valid = chunk.valid();
        if !valid.is_empty() {
            out.push('\'');
            out.push_str(&valid.replace('\'', r"'\''"));
            out.push('\'');
        }
        for byte in chunk.invalid() {
            // `$(...)` strips trailing newlines only; an octal byte of invalid UTF-8 is
            // never a newline, so this is exact.
            out.push_str(&format!("\"$(printf '\\{byte:03o}')\""));
        }
    }
    out
}

/// Quotes a string (the common case).
pub fn quote_str(arg: &str) -> String {
    quote(arg.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_hostile_strings() {
        assert_eq!(quote_str(""), "''");
        assert_eq!(quote_str("abc"), "'abc'");
        assert_eq!(quote_str("it's"), r"'it'\''s'");
        assert_eq!(quote_str("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(quote(b"a\xffb"), "'a'\"$(printf '\\377')\"'b'");
    }
}
