//! The one quoting function every remote command is built with. Values from manifests
//! never reach a shell any other way.

/// Quotes `arg` as one POSIX shell word. Printable UTF-8 goes in single quotes (`'`
/// becomes `'\''`); a byte that is not valid UTF-8 is produced by `printf` with an octal
/// escape inside a command substitution, so the command line itself stays valid UTF-8.
/// The empty string becomes `''`.
///
/// A NUL byte cannot be part of a shell word (the shell ends the word there), so values
/// holding one must be refused before they get here; paths and names never do.
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
        if !chunk.invalid().is_empty() {
            // `$(...)` strips trailing newlines only; a byte of invalid UTF-8 is never a
            // newline, so this is exact. One `printf` per run of such bytes.
            out.push_str("\"$(printf '");
            for byte in chunk.invalid() {
                out.push_str(&format!("\\{byte:03o}"));
            }
            out.push_str("')\"");
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
        assert_eq!(quote(b"\xe9\x80"), "\"$(printf '\\351\\200')\"");
    }
}
