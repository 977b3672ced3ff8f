//! A SQL file as its statements, for where they must be sent one at a time: Citus propagates a
//! DDL statement to the nodes as the text the client sent, so a query string of several
//! statements reaches the workers whole and is refused there ("cannot insert multiple commands
//! into a prepared statement").

/// The statements of `sql`, trimmed, without empty ones. A `;` ends a statement unless it is in a
/// comment (`--`, `/* */`), a string (`'...'`, `E'...'`), a quoted identifier or a dollar-quoted
/// body (`$$ ... $$`, `$tag$ ... $tag$`).
pub fn statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = find(bytes, i, b"\n").map_or(bytes.len(), |end| end + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = find(bytes, i + 2, b"*/").map_or(bytes.len(), |end| end + 2);
            }
            quote @ (b'\'' | b'"') => i = after_quoted(bytes, i, quote),
            b'$' => match dollar_tag(bytes, i) {
                Some(tag) => {
                    let body = i + tag.len();
                    i = find(bytes, body, tag).map_or(bytes.len(), |end| end + tag.len());
                }
                None => i += 1,
            },
            b';' => {
                push(&mut out, &sql[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    push(&mut out, &sql[start..]);
    out
}

/// Keeps `statement` without the comment lines before it (a piece of only comments is none).
fn push<'a>(out: &mut Vec<&'a str>, mut statement: &'a str) {
    loop {
        statement = statement.trim_start();
        match statement.strip_prefix("--") {
            Some(comment) => statement = comment.split_once('\n').map_or("", |(_, rest)| rest),
            None => break,
        }
    }
    let statement = statement.trim_end();
    if !statement.is_empty() {
        out.push(statement);
    }
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The index after a quoted string or identifier starting at `i` (a doubled quote is escaped;
/// in an `E'...'` string a backslash escapes too).
fn after_quoted(bytes: &[u8], mut i: usize, quote: u8) -> usize {
    let backslashes = quote == b'\'' && i > 0 && matches!(bytes[i - 1], b'E' | b'e');
    i += 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        if backslashes && bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        i += 1;
    }
    i
}

/// `$tag$` starting at `i`, if one does (a tag is letters, digits and `_`, not starting with a
/// digit; `$1` is a parameter).
fn dollar_tag(bytes: &[u8], i: usize) -> Option<&[u8]> {
    let rest = &bytes[i + 1..];
    let len = rest
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))?;
    if rest[len] != b'$' || rest.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some(&bytes[i..i + len + 2])
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn splits_at_semicolons_outside_quotes_comments_and_bodies() {
        let sql = "-- a comment; not a statement\n\
                   CREATE TABLE t (x text DEFAULT ';');\n\
                   CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;\n\
                   /* block; comment */ SELECT \"a;b\", E'\\';', '\\' FROM t WHERE x = $1;\n\
                   DO $body$ BEGIN PERFORM 1; END $body$;\n\
                   -- trailing comment\n";
        assert_eq!(
            statements(sql),
            vec![
                "CREATE TABLE t (x text DEFAULT ';')",
                "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$",
                "/* block; comment */ SELECT \"a;b\", E'\\';', '\\' FROM t WHERE x = $1",
                "DO $body$ BEGIN PERFORM 1; END $body$",
            ]
        );
    }

    #[test]
    fn every_file_of_sql_splits_into_whole_statements() {
        for file in [
            crate::db::sql::SCHEMA,
            crate::db::sql::INDEXES,
            crate::db::sql::CITUS_DISTRIBUTE,
            crate::db::sql::CITUS_WRITE_FUNCTIONS,
        ] {
            for statement in statements(file) {
                assert_eq!(
                    statement.matches("$$").count() % 2,
                    0,
                    "a body cut in two: {statement}"
                );
            }
        }
        assert_eq!(statements(crate::db::sql::INDEXES).len(), 9);
    }
}
