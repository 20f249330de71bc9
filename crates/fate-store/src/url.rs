//! Where the metadata lives: a database URL (node.yaml `database: {url}`), checked before any
//! connection is made and never shown with its password.

use crate::error::{Result, StoreError};
use std::fmt;
use std::path::{Path, PathBuf};

/// The field a bad URL is reported under (node.yaml `database: {url}`).
const FIELD: &str = "database.url";

/// The database servers (and the embedded database) a store can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// MariaDB or MySQL.
    MySql,
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::MySql => "mysql",
            Backend::Postgres => "postgres",
        })
    }
}

/// A checked database URL: `sqlite://<path>` (relative or `sqlite:///abs/path`),
/// `sqlite::memory:`, `mysql://user:password@host:port/database` (also `mariadb://`), or
/// `postgres://user:password@host:port/database` (also `postgresql://`). `Display` and
/// `Debug` show it with the password replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    raw: String,
    backend: Backend,
}

impl DatabaseUrl {
    /// Checks `url`; errors are [`StoreError::Invalid`] naming `database.url` and never quote
    /// the password.
    pub fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(StoreError::invalid(
                FIELD,
                "expected sqlite://<path>, mysql://user:password@host:port/database or \
                 postgres://user:password@host:port/database",
            ));
        };
        let backend = match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Backend::Sqlite,
            "mysql" | "mariadb" => Backend::MySql,
            "postgres" | "postgresql" => Backend::Postgres,
            other => {
                return Err(StoreError::invalid(
                    FIELD,
                    format!(
                        "unknown scheme `{}` (sqlite, mysql, mariadb, postgres, postgresql)",
                        other.chars().take(32).collect::<String>()
                    ),
                ));
            }
        };
        let parsed = match backend {
            Backend::Sqlite => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                if path.is_empty() {
                    return Err(StoreError::invalid(
                        FIELD,
                        "a sqlite URL needs a file path (sqlite:///abs/path or sqlite://relative)",
                    ));
                }
                if path.contains('?') {
                    return Err(StoreError::invalid(
                        FIELD,
                        "sqlite URLs take no options (the store sets WAL and a busy timeout)",
                    ));
                }
                DatabaseUrl {
                    raw: format!("sqlite://{path}"),
                    backend,
                }
            }
            Backend::MySql | Backend::Postgres => {
                let server = DatabaseUrl {
                    raw: match backend {
                        Backend::MySql => format!("mysql:{rest}"),
                        _ => format!("postgres:{rest}"),
                    },
                    backend,
                };
                let Some(after) = rest.strip_prefix("//") else {
                    return Err(StoreError::invalid(
                        FIELD,
                        format!("`{server}` has no //host"),
                    ));
                };
                let (authority, path) = split_authority(after);
                let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                let host = match host.strip_prefix('[') {
                    Some(v6) => v6.split(']').next().unwrap_or(""),
                    None => host.split(':').next().unwrap_or(""),
                };
                if host.is_empty() {
                    return Err(StoreError::invalid(
                        FIELD,
                        format!("`{server}` names no host"),
                    ));
                }
                let database = path
                    .strip_prefix('/')
                    .unwrap_or("")
                    .split(['?', '#'])
                    .next()
                    .unwrap_or("");
                if database.is_empty() {
                    return Err(StoreError::invalid(
                        FIELD,
                        format!("`{server}` names no database (…/database)"),
                    ));
                }
                let check = match backend {
                    Backend::MySql => server
                        .raw
                        .parse::<sqlx::mysql::MySqlConnectOptions>()
                        .map(|_| ()),
                    _ => server
                        .raw
                        .parse::<sqlx::postgres::PgConnectOptions>()
                        .map(|_| ()),
                };
                if let Err(e) = check {
                    return Err(StoreError::invalid(FIELD, format!("`{server}`: {e}")));
                }
                server
            }
        };
        Ok(parsed)
    }

    /// The SQLite file `path` (the node's default, `<data_dir>/fate_flow.sqlite`).
    pub fn sqlite_file(path: &Path) -> Self {
        DatabaseUrl {
            raw: format!("sqlite://{}", path.display()),
            backend: Backend::Sqlite,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with its password, for the driver only.
    pub(crate) fn expose(&self) -> &str {
        &self.raw
    }

    /// The file of a SQLite URL; `None` for `sqlite::memory:` (and for servers).
    pub(crate) fn sqlite_path(&self) -> Option<PathBuf> {
        let path = self.raw.strip_prefix("sqlite://")?;
        (path != ":memory:").then(|| PathBuf::from(path))
    }
}

/// `host...` and the rest (`/database?options`) of what follows `scheme://`.
fn split_authority(after: &str) -> (&str, &str) {
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    after.split_at(end)
}

impl fmt::Display for DatabaseUrl {
    /// The URL with the password of its user info and any `password=` option replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.backend == Backend::Sqlite {
            return f.write_str(&self.raw);
        }
        let (scheme, after) = self.raw.split_once("://").unwrap_or(("", &self.raw));
        let (authority, rest) = split_authority(after);
        write!(f, "{scheme}://")?;
        match authority.rsplit_once('@') {
            Some((user_info, host)) => match user_info.split_once(':') {
                Some((user, _)) => write!(f, "{user}:***@{host}")?,
                None => write!(f, "{user_info}@{host}")?,
            },
            None => f.write_str(authority)?,
        }
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        f.write_str(path)?;
        if !query.is_empty() {
            f.write_str("?")?;
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    f.write_str("&")?;
                }
                match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        write!(f, "{key}=***")?
                    }
                    _ => f.write_str(pair)?,
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(url: &str) -> String {
        match DatabaseUrl::parse(url) {
            Err(StoreError::Invalid { field, reason }) => {
                assert_eq!(field, "database.url");
                reason
            }
            other => panic!("{url}: expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn passwords_are_never_shown() {
        for (url, shown) in [
            (
                "mysql://fate:s3cret@127.0.0.1:3306/fate",
                "mysql://fate:***@127.0.0.1:3306/fate",
            ),
            ("mariadb://fate:s3cret@db/fate", "mysql://fate:***@db/fate"),
            (
                "postgresql://fate:s3c@ret@db:5432/fate?sslmode=disable&password=s3cret",
                "postgres://fate:***@db:5432/fate?sslmode=disable&password=***",
            ),
            ("postgres://fate@db/fate", "postgres://fate@db/fate"),
        ] {
            let parsed = DatabaseUrl::parse(url).unwrap();
            assert_eq!(parsed.to_string(), shown);
            assert!(!format!("{parsed:?}").contains("s3c"), "{parsed:?}");
        }
        let reason = invalid("mysql://fate:s3cret@127.0.0.1:3306");
        assert!(
            reason.contains("no database") && !reason.contains("s3cret"),
            "{reason}"
        );
        let reason = invalid("postgres://fate:s3cret@:5432/fate");
        assert!(
            reason.contains("no host") && !reason.contains("s3cret"),
            "{reason}"
        );
    }

    #[test]
    fn bad_urls_name_the_field() {
        assert!(invalid("oracle://x/y").contains("unknown scheme"));
        assert!(invalid("no-scheme").contains("expected sqlite://"));
        assert!(invalid("sqlite://").contains("file path"));
        assert!(invalid("sqlite://x.db?mode=ro").contains("no options"));
        assert!(invalid("mysql:fate").contains("no //host"));
        assert!(invalid("postgres://db:notaport/fate").contains("postgres://db:notaport/fate"));
    }

    #[test]
    fn sqlite_urls_name_a_file_or_memory() {
        let url = DatabaseUrl::parse("sqlite:///var/lib/fate/meta.db").unwrap();
        assert_eq!(url.backend(), Backend::Sqlite);
        assert_eq!(
            url.sqlite_path(),
            Some(PathBuf::from("/var/lib/fate/meta.db"))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://rel/meta.db")
                .unwrap()
                .sqlite_path(),
            Some(PathBuf::from("rel/meta.db"))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite::memory:").unwrap().sqlite_path(),
            None
        );
    }
}
