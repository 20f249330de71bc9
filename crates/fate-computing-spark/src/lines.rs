//! The executor pipe's line format (version 1), shared by the SQL that feeds
//! `SELECT TRANSFORM` and the `spark-executor` loop that reads it.
//!
//! - One line holds one or more **records** separated by `,`; a line ends with `\n`.
//! - A record is two or three **fields** separated by `:`, each the standard (padded) base64
//!   of raw bytes, the alphabet of Spark SQL's `base64()`/`unbase64()`:
//!   `key:value` for a table row, `key:left:right` for a row of an inner join.
//! - The kernel sees a join record as the row `(key, join_value(left, right))`, the postcard
//!   encoding of the pair of byte strings ([`decode_join_value`] reverses it).
//! - The executor writes `key:value` records only, up to its batch size per line, and no
//!   empty lines; Spark splits them back into rows with `explode(split(line, ','))` and
//!   `unbase64(split_part(record, ':', n))`, so no UDF runs on the JVM side.
//!
//! Why text and not postcard batches: Spark must split the executor's output back into
//! `(key, value)` rows with its own SQL functions, and SQL cannot parse postcard. Base64 of
//! each field keeps lines free of the delimiters (`\t`, `\n`, `,`, `:`) whatever the bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::Row;

/// The longest line either side accepts (a batch of records).
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// Whether `name` is `[A-Za-z0-9._-]+` (kernel, artifact and file names that go into SQL
/// text and shell commands unquoted).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.starts_with('.')
}

/// Whether `name` is a plain SQL identifier `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_sql_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.len() <= 128
}

/// The kernel-side value of a join record: postcard of `(left, right)` as byte strings.
pub fn join_value(left: &[u8], right: &[u8]) -> Vec<u8> {
    postcard::to_allocvec(&(left, right)).expect("postcard encodes byte slices")
}

/// The `(left, right)` values of a joined row's value.
pub fn decode_join_value(value: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    postcard::from_bytes::<(Vec<u8>, Vec<u8>)>(value).map_err(|e| format!("join value: {e}"))
}

/// Appends the records of one line (without its `\n`) to `out` as kernel rows.
pub fn parse_line(line: &[u8], out: &mut Vec<Row>) -> Result<(), String> {
    if line.is_empty() {
        return Ok(());
    }
    for (idx, record) in line.split(|&b| b == b',').enumerate() {
        let mut fields = record.split(|&b| b == b':');
        let mut field = |what: &str| -> Result<Option<Vec<u8>>, String> {
            fields
                .next()
                .map(|text| {
                    STANDARD
                        .decode(text)
                        .map_err(|e| format!("record {idx}: {what}: {e}"))
                })
                .transpose()
        };
        let key = field("key")?.ok_or_else(|| format!("record {idx}: empty"))?;
        let first = field("value")?.ok_or_else(|| format!("record {idx}: no value"))?;
        let row = match field("right value")? {
            None => (key, first),
            Some(right) => (key, join_value(&first, &right)),
        };
        if field("fourth field")?.is_some() {
            return Err(format!("record {idx}: more than three fields"));
        }
        out.push(row);
    }
    Ok(())
}

/// Writes rows as lines of at most `batch_rows` records each.
pub fn write_lines(
    rows: &[Row],
    batch_rows: usize,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let mut text = String::new();
    for chunk in rows.chunks(batch_rows.max(1)) {
        text.clear();
        for (idx, (key, value)) in chunk.iter().enumerate() {
            if idx > 0 {
                text.push(',');
            }
            STANDARD.encode_string(key, &mut text);
            text.push(':');
            STANDARD.encode_string(value, &mut text);
        }
        text.push('\n');
        out.write_all(text.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_a_line_whatever_their_bytes() {
        let rows: Vec<Row> = vec![
            (b"a,b:c".to_vec(), b"\n\t\x01".to_vec()),
            (vec![], vec![]),
            ((0..=255).collect(), vec![0; 1000]),
        ];
        let mut text = Vec::new();
        write_lines(&rows, 2, &mut text).unwrap();
        assert_eq!(text.iter().filter(|&&b| b == b'\n').count(), 2);
        let mut back = Vec::new();
        for line in text.split(|&b| b == b'\n') {
            parse_line(line, &mut back).unwrap();
        }
        assert_eq!(back, rows);
    }

    #[test]
    fn a_join_record_becomes_a_pair_value() {
        let mut rows = Vec::new();
        parse_line(b"aw==:AQI=:Aw==", &mut rows).unwrap();
        assert_eq!(rows[0].0, b"k");
        assert_eq!(
            decode_join_value(&rows[0].1).unwrap(),
            (vec![1, 2], vec![3])
        );
    }

    #[test]
    fn malformed_records_are_errors_naming_the_record() {
        let mut rows = Vec::new();
        let error = parse_line(b"aw==:AQI=,a!!:AQI=", &mut rows).unwrap_err();
        assert!(error.starts_with("record 1: key"), "{error}");
        assert!(
            parse_line(b"aw==", &mut rows)
                .unwrap_err()
                .contains("no value")
        );
        assert!(parse_line(b"aw==:aw==:aw==:aw==", &mut rows).is_err());
    }

    #[test]
    fn names_going_into_sql_and_shell_are_plain() {
        assert!(is_plain_name("fate-exec_1.2"));
        for bad in ["", "a b", "a'b", "a/b", "$(x)", ".hidden", "a;b"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
        assert!(is_sql_identifier("fate_view_0"));
        assert!(!is_sql_identifier("0view") && !is_sql_identifier("a-b"));
    }
}
