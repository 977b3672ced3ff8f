//! Database URLs (libpq's two forms: `postgres://...` and `key=value ...`): the name they give,
//! the same URL for another database, and a description for messages that never shows the
//! user or the password.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// The database name when the URL names none (libpq would otherwise use the user's name).
const DEFAULT_DBNAME: &str = "reviews";

/// The database name of a libpq URL (or key=value string), `reviews` when it names none.
pub fn dbname_of(url: &str) -> anyhow::Result<String> {
    let config: tokio_postgres::Config = url.parse()?;
    Ok(config.get_dbname().unwrap_or(DEFAULT_DBNAME).to_string())
}

/// `url` naming `reviews` when it names no database; otherwise `url` untouched.
pub fn with_default_dbname(url: &str) -> anyhow::Result<String> {
    let config: tokio_postgres::Config = url.parse()?;
    Ok(match config.get_dbname() {
        Some(_) => url.to_string(),
        None => with_dbname(url, DEFAULT_DBNAME),
    })
}

/// What a database name keeps unencoded in a URL path: letters, digits, `_`, `-` and `.`.
const DBNAME_IN_PATH: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-').remove(b'.');

/// `url` with its database replaced by `db`. Both forms libpq accepts: a URL gets a new path
/// (query kept), a key=value string gets a trailing `dbname=` (the last one wins). The one place
/// that rewrites a database URL: the demo and the tests' throwaway databases both use it.
pub fn with_dbname(url: &str, db: &str) -> String {
    match url.find("://") {
        Some(scheme_end) => {
            let (scheme, rest) = url.split_at(scheme_end + 3);
            let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(authority_end);
            let query = tail.find('?').map_or("", |q| &tail[q..]);
            let db = utf8_percent_encode(db, DBNAME_IN_PATH);
            format!("{scheme}{authority}/{db}{query}")
        }
        None => format!(
            "{url} dbname='{}'",
            db.replace('\\', "\\\\").replace('\'', "\\'")
        ),
    }
}

/// Host, port and database of `url`, without the user or password, for messages.
pub fn describe(url: &str) -> String {
    let Ok(config) = url.parse::<tokio_postgres::Config>() else {
        return "an unparsable database URL".to_string();
    };
    let port = |i: usize| {
        config
            .get_ports()
            .get(i)
            .or(config.get_ports().first())
            .copied()
            .unwrap_or(5432)
    };
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| match host {
            tokio_postgres::config::Host::Tcp(name) => format!("{name}:{}", port(i)),
            tokio_postgres::config::Host::Unix(path) => format!("{}:{}", path.display(), port(i)),
        })
        .collect();
    let hosts = if hosts.is_empty() {
        format!("localhost:{}", port(0))
    } else {
        hosts.join(",")
    };
    format!("{hosts}/{}", config.get_dbname().unwrap_or(DEFAULT_DBNAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_dbname_replaces_the_path_and_keeps_the_query() {
        assert_eq!(
            with_dbname("postgres://u:p@h:5/reviews?sslmode=disable", "postgres"),
            "postgres://u:p@h:5/postgres?sslmode=disable"
        );
        assert_eq!(
            with_dbname("postgres://h", "reviews"),
            "postgres://h/reviews"
        );
        assert_eq!(
            with_dbname("postgresql://h?x=1", "a b"),
            "postgresql://h/a%20b?x=1"
        );
        assert_eq!(
            with_dbname("postgres://h/x", "é~_-.Z9"),
            "postgres://h/%C3%A9%7E_-.Z9"
        );
    }

    #[test]
    fn with_dbname_appends_to_key_value_strings() {
        let url = with_dbname("host=h user=u dbname=reviews", "postgres");
        assert_eq!(dbname_of(&url).unwrap(), "postgres");
    }

    #[test]
    fn a_url_without_a_database_gets_reviews() {
        assert_eq!(
            with_default_dbname("postgres://u@h:5").unwrap(),
            "postgres://u@h:5/reviews"
        );
        assert_eq!(
            with_default_dbname("postgres://u@h:5/x").unwrap(),
            "postgres://u@h:5/x"
        );
        assert_eq!(dbname_of("host=h").unwrap(), "reviews");
    }

    #[test]
    fn describe_hides_the_password() {
        let text = describe("postgres://u:secret@db.example:6543/shop");
        assert_eq!(text, "db.example:6543/shop");
    }
}
