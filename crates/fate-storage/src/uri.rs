//! Storage URIs (`file:///abs/path`, `hdfs://host:port/path`, `s3://bucket/prefix`) and the S3
//! settings that go with them.

use std::fmt;

/// A storage configuration error; names the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid storage setting `{field}`: {reason}")]
pub struct ConfigError {
    /// The setting: `storage`, `s3.endpoint`, ...
    pub field: &'static str,
    /// What is wrong, quoting the value (never a secret).
    pub reason: String,
}

fn bad(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        reason: reason.into(),
    }
}

/// Where a node's tables live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUri {
    /// `file:///abs/path`: a directory of this machine.
    File {
        /// Absolute directory, without a trailing `/` (except the root itself).
        root: String,
    },
    /// `hdfs://host:port/path`: a directory of an HDFS cluster (through its NameNode).
    Hdfs {
        /// `host:port` of the NameNode.
        name_node: String,
        /// Absolute directory in HDFS.
        root: String,
    },
    /// `s3://bucket/prefix`: a prefix of an S3 bucket.
    S3 {
        /// The bucket.
        bucket: String,
        /// Key prefix without leading or trailing `/`; empty for the whole bucket.
        prefix: String,
    },
}

/// Longest accepted URI.
const MAX_URI_LEN: usize = 2048;

/// Checks the segments of a path: no empty, `.` or `..` segment, no control characters or
/// backslashes.
fn check_segments(field: &'static str, path: &str, what: &str) -> Result<(), ConfigError> {
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        if seg == "." || seg == ".." {
            return Err(bad(
                field,
                format!("{what} `{path}` must not contain `.` or `..` segments"),
            ));
        }
    }
    if path.contains("//") {
        return Err(bad(field, format!("{what} `{path}` has an empty segment")));
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err(bad(
            field,
            format!("{what} must not contain control characters or `\\`"),
        ));
    }
    Ok(())
}

impl StorageUri {
    /// Parses and validates `uri`; errors name the field `storage`.
    pub fn parse(uri: &str) -> Result<StorageUri, ConfigError> {
        const F: &str = "storage";
        if uri.len() > MAX_URI_LEN {
            return Err(bad(F, format!("longer than {MAX_URI_LEN} bytes")));
        }
        let Some((scheme, rest)) = uri.split_once("://") else {
            return Err(bad(
                F,
                format!(
                    "`{uri}` is not a URI (file:///path, hdfs://host:port/path or s3://bucket/prefix)"
                ),
            ));
        };
        if rest.contains(['?', '#']) {
            return Err(bad(F, format!("`{uri}` must not have a query or fragment")));
        }
        match scheme {
            "file" => {
                if !rest.starts_with('/') {
                    return Err(bad(
                        F,
                        format!("`{uri}`: a file URI needs an absolute path (file:///abs/path)"),
                    ));
                }
                check_segments(F, rest, "path")?;
                Ok(StorageUri::File {
                    root: trim_root(rest),
                })
            }
            "hdfs" => {
                let (authority, path) = match rest.find('/') {
                    Some(i) => rest.split_at(i),
                    None => (rest, "/"),
                };
                let Some((host, port)) = authority.rsplit_once(':') else {
                    return Err(bad(
                        F,
                        format!("`{uri}`: an HDFS URI needs the NameNode as host:port"),
                    ));
                };
                if host.is_empty()
                    || !host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
                {
                    return Err(bad(F, format!("`{uri}`: bad NameNode host `{host}`")));
                }
                if !port.parse::<u16>().is_ok_and(|p| p > 0) {
                    return Err(bad(F, format!("`{uri}`: bad NameNode port `{port}`")));
                }
                check_segments(F, path, "path")?;
                Ok(StorageUri::Hdfs {
                    name_node: authority.to_string(),
                    root: trim_root(path),
                })
            }
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                let ok = (3..=63).contains(&bucket.len())
                    && bucket.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b)
                    })
                    && bucket.as_bytes()[0].is_ascii_alphanumeric();
                if !ok {
                    return Err(bad(
                        F,
                        format!(
                            "`{uri}`: bad bucket `{bucket}` (3 to 63 lowercase letters, digits, `-`, `.`)"
                        ),
                    ));
                }
                let prefix = prefix.trim_end_matches('/');
                check_segments(F, prefix, "prefix")?;
                Ok(StorageUri::S3 {
                    bucket: bucket.to_string(),
                    prefix: prefix.to_string(),
                })
            }
            other => Err(bad(
                F,
                format!("`{uri}`: unsupported scheme `{other}` (file, hdfs or s3)"),
            )),
        }
    }

    /// The scheme, which is also FATE's storage engine name for the table meta
    /// (`file` is FATE's `path`/LocalFS; fate-spec §1.3 storage engines).
    pub fn scheme(&self) -> &'static str {
        match self {
            StorageUri::File { .. } => "file",
            StorageUri::Hdfs { .. } => "hdfs",
            StorageUri::S3 { .. } => "s3",
        }
    }

    /// The storage engine name in a table's metadata: FATE's `hdfs` and `file` (fate-spec
    /// §1.3 storage engines), and `s3`, which FATE does not have.
    pub fn engine(&self) -> &'static str {
        self.scheme()
    }

    /// The full URI of `path` (relative, `/`-separated) under this store.
    pub fn join(&self, path: &str) -> String {
        let base = self.to_string();
        if path.is_empty() {
            base
        } else if base.ends_with('/') {
            format!("{base}{path}")
        } else {
            format!("{base}/{path}")
        }
    }
}

fn trim_root(path: &str) -> String {
    let t = path.trim_end_matches('/');
    if t.is_empty() {
        "/".to_string()
    } else {
        t.to_string()
    }
}

impl fmt::Display for StorageUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageUri::File { root } => write!(f, "file://{root}"),
            StorageUri::Hdfs { name_node, root } => write!(f, "hdfs://{name_node}{root}"),
            StorageUri::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            StorageUri::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// How to reach an S3 service. FATE has no S3 settings of its own (its object-store settings
/// are Tencent COS's, for models), so the names follow the AWS SDKs: the node config's `s3`
/// section, else the environment (`AWS_ENDPOINT_URL`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`). Secrets never appear in
/// `Debug` output or logs.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    /// Endpoint URL (`http://127.0.0.1:9000`, `https://s3.eu-west-1.amazonaws.com`); unset
    /// means AWS's endpoint for the region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Region; default `us-east-1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Access key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Secret access key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    /// Address buckets as `bucket.host` (AWS's default) rather than `host/bucket` (path
    /// style, which S3-compatible servers such as MinIO, SeaweedFS or moto need).
    pub virtual_host_style: bool,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .field("virtual_host_style", &self.virtual_host_style)
            .finish()
    }
}

impl S3Settings {
    /// Whether nothing is set (the config file has no `s3` section).
    pub fn is_unset(&self) -> bool {
        *self == S3Settings::default()
    }

    /// These settings with every unset field taken from the environment (`var` reads one
    /// variable; pass `|k| std::env::var(k).ok()`).
    pub fn with_env(mut self, var: impl Fn(&str) -> Option<String>) -> S3Settings {
        let fill = |field: &mut Option<String>, names: &[&str]| {
            if field.is_none() {
                *field = names.iter().find_map(|n| var(n).filter(|v| !v.is_empty()));
            }
        };
        fill(
            &mut self.endpoint,
            &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"],
        );
        fill(&mut self.region, &["AWS_REGION", "AWS_DEFAULT_REGION"]);
        fill(&mut self.access_key_id, &["AWS_ACCESS_KEY_ID"]);
        fill(&mut self.secret_access_key, &["AWS_SECRET_ACCESS_KEY"]);
        fill(&mut self.session_token, &["AWS_SESSION_TOKEN"]);
        self
    }

    /// Checks the fields; errors name `s3.<field>`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(e) = &self.endpoint {
            let ok = (e.starts_with("http://") || e.starts_with("https://"))
                && e.len() <= MAX_URI_LEN
                && !e.chars().any(|c| c.is_control() || c.is_whitespace());
            if !ok {
                return Err(bad(
                    "s3.endpoint",
                    format!("`{e}` is not an http:// or https:// URL"),
                ));
            }
        }
        if let Some(r) = &self.region
            && (r.is_empty()
                || r.len() > 64
                || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(bad("s3.region", format!("`{r}` is not a region name")));
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(_), None) => Err(bad(
                "s3.secret_access_key",
                "must be set when s3.access_key_id is",
            )),
            (None, Some(_)) => Err(bad(
                "s3.access_key_id",
                "must be set when s3.secret_access_key is",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_and_print() {
        for (uri, shown) in [
            ("file:///data/tables/", "file:///data/tables"),
            ("file:///", "file:///"),
            (
                "hdfs://namenode:9000/fate/tables",
                "hdfs://namenode:9000/fate/tables",
            ),
            ("hdfs://127.0.0.1:8020", "hdfs://127.0.0.1:8020/"),
            ("s3://fate-tables", "s3://fate-tables"),
            (
                "s3://fate-tables/party/9999/",
                "s3://fate-tables/party/9999",
            ),
        ] {
            let parsed = StorageUri::parse(uri).unwrap();
            assert_eq!(parsed.to_string(), shown, "{uri}");
            assert_eq!(StorageUri::parse(shown).unwrap(), parsed, "{shown}");
        }
        assert_eq!(
            StorageUri::parse("s3://b-1/p")
                .unwrap()
                .join("ns/t/part-00003.parquet"),
            "s3://b-1/p/ns/t/part-00003.parquet"
        );
        assert_eq!(
            StorageUri::parse("file:///").unwrap().join("ns"),
            "file:///ns"
        );
    }

    #[test]
    fn bad_uris_name_the_field_and_the_problem() {
        for (uri, says) in [
            ("/data/tables", "is not a URI"),
            ("file://data/tables", "absolute path"),
            ("file:///data/../etc", "`..` segments"),
            ("file:///data//x", "empty segment"),
            ("hdfs://namenode/fate", "host:port"),
            ("hdfs://namenode:0/fate", "bad NameNode port"),
            ("hdfs://namenode:x/fate", "bad NameNode port"),
            ("hdfs://:9000/fate", "bad NameNode host"),
            ("hdfs://a b:9000/fate", "bad NameNode host"),
            ("s3://Upper/x", "bad bucket"),
            ("s3://ab", "bad bucket"),
            ("s3://bucket/../x", "`..` segments"),
            ("s3://bucket/x?versionId=1", "query"),
            ("gs://bucket/x", "unsupported scheme `gs`"),
        ] {
            let err = StorageUri::parse(uri).unwrap_err();
            assert_eq!(err.field, "storage");
            assert!(err.to_string().contains(says), "{uri}: {err}");
        }
        assert!(StorageUri::parse(&format!("file:///{}", "a".repeat(3000))).is_err());
    }

    #[test]
    fn s3_settings_come_from_config_then_env_and_hide_secrets() {
        let env = |k: &str| match k {
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:9000".to_string()),
            "AWS_DEFAULT_REGION" => Some("eu-west-1".to_string()),
            "AWS_ACCESS_KEY_ID" => Some("AKIDENV".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("env-secret".to_string()),
            _ => None,
        };
        let s = S3Settings {
            access_key_id: Some("AKIDCONF".into()),
            secret_access_key: Some("conf-secret".into()),
            ..S3Settings::default()
        }
        .with_env(env);
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        assert_eq!(s.access_key_id.as_deref(), Some("AKIDCONF"));
        assert_eq!(s.secret_access_key.as_deref(), Some("conf-secret"));
        s.validate().unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("conf-secret") && shown.contains("<redacted>"),
            "{shown}"
        );

        let err = S3Settings {
            endpoint: Some("127.0.0.1:9000".into()),
            ..S3Settings::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field, "s3.endpoint");
        let err = S3Settings {
            access_key_id: Some("AKID".into()),
            ..S3Settings::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field, "s3.secret_access_key");
        let err = S3Settings {
            region: Some("eu west".into()),
            ..S3Settings::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field, "s3.region");
    }
}
