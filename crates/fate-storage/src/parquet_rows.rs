//! One partition as one Parquet file of `key BINARY, value BINARY` (both required), written
//! and read with the `parquet` crate's column API (no arrow), so Spark reads a partition as a
//! DataFrame of `(key: binary, value: binary)`.

use bytes::Bytes;
use fate_computing::StoredRow as Row;
use parquet::basic::{Repetition, Type as PhysicalType};
use parquet::column::reader::ColumnReader;
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use std::sync::Arc;

/// Rows per row group: bounds the writer's buffers and lets readers split a file.
const ROW_GROUP_ROWS: usize = 64 * 1024;

fn schema() -> Arc<Type> {
    let column = |name: &str| {
        Arc::new(
            Type::primitive_type_builder(name, PhysicalType::BYTE_ARRAY)
                .with_repetition(Repetition::REQUIRED)
                .build()
                .expect("static parquet column schema is valid"),
        )
    };
    Arc::new(
        Type::group_type_builder("fate_table")
            .with_fields(vec![column("key"), column("value")])
            .build()
            .expect("static parquet schema is valid"),
    )
}

/// The Parquet file of one partition's rows.
pub(crate) fn encode(rows: &[Row]) -> Result<Vec<u8>, String> {
    let props = Arc::new(
        WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_1_0)
            // Keys are distinct and values are opaque: dictionaries and statistics cost
            // time and space for nothing.
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::None)
            .set_created_by("fate-rs".to_string())
            .build(),
    );
    let size: usize = rows.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
    let mut out = Vec::with_capacity(size + 1024);
    let mut writer =
        SerializedFileWriter::new(&mut out, schema(), props).map_err(|e| e.to_string())?;
    for chunk in rows.chunks(ROW_GROUP_ROWS) {
        let mut group = writer.next_row_group().map_err(|e| e.to_string())?;
        for column in 0..2 {
            let values: Vec<ByteArray> = chunk
                .iter()
                .map(|(k, v)| ByteArray::from(if column == 0 { k.clone() } else { v.clone() }))
                .collect();
            let mut col = group
                .next_column()
                .map_err(|e| e.to_string())?
                .ok_or("parquet writer has fewer columns than the schema")?;
            col.typed::<ByteArrayType>()
                .write_batch(&values, None, None)
                .map_err(|e| e.to_string())?;
            col.close().map_err(|e| e.to_string())?;
        }
        group.close().map_err(|e| e.to_string())?;
    }
    writer.close().map_err(|e| e.to_string())?;
    Ok(out)
}

/// Reads a file [`encode`] wrote (or any Parquet file of two required binary columns `key`
/// and `value`, such as Spark writes). `expected_rows` is what the manifest says; a file that
/// claims other counts is refused before its rows are read.
pub(crate) fn decode(file: Bytes, expected_rows: u64) -> Result<Vec<Row>, String> {
    let file_len = file.len();
    let reader = SerializedFileReader::new(file).map_err(|e| e.to_string())?;
    let meta = reader.metadata();
    let fields = meta.file_metadata().schema().get_fields();
    let names: Vec<&str> = fields.iter().map(|f| f.name()).collect();
    let binary = fields.iter().all(|f| {
        f.is_primitive()
            && f.get_physical_type() == PhysicalType::BYTE_ARRAY
            && f.get_basic_info().repetition() == Repetition::REQUIRED
    });
    if names != ["key", "value"] || !binary {
        return Err(format!(
            "expected the columns `key BINARY NOT NULL, value BINARY NOT NULL`, found {names:?}"
        ));
    }
    let total: i64 = meta.row_groups().iter().map(|g| g.num_rows()).sum();
    if total < 0 || total as u64 != expected_rows {
        return Err(format!(
            "the file holds {total} rows, the manifest says {expected_rows}"
        ));
    }
    // Every row takes at least 8 bytes (two length prefixes), which bounds the allocation
    // by the file's size whatever the metadata claims.
    let mut rows = Vec::with_capacity((total as usize).min(file_len / 8));
    for g in 0..meta.num_row_groups() {
        let group = reader.get_row_group(g).map_err(|e| e.to_string())?;
        let n = usize::try_from(group.metadata().num_rows()).map_err(|e| e.to_string())?;
        let mut columns: Vec<Vec<ByteArray>> = Vec::with_capacity(2);
        for c in 0..2 {
            let mut values = Vec::with_capacity(n.min(file_len / 4));
            match group.get_column_reader(c).map_err(|e| e.to_string())? {
                ColumnReader::ByteArrayColumnReader(mut r) => {
                    while values.len() < n {
                        let (records, _, _) = r
                            .read_records(n - values.len(), None, None, &mut values)
                            .map_err(|e| e.to_string())?;
                        if records == 0 {
                            break;
                        }
                    }
                }
                _ => return Err("a column is not binary".into()),
            }
            if values.len() != n {
                return Err(format!(
                    "row group {g} column {c} holds {} values, its metadata says {n}",
                    values.len()
                ));
            }
            columns.push(values);
        }
        let values = columns.pop().unwrap_or_default();
        let keys = columns.pop().unwrap_or_default();
        rows.extend(
            keys.into_iter()
                .zip(values)
                .map(|(k, v)| (k.data().to_vec(), v.data().to_vec())),
        );
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_parquet() {
        let rows: Vec<Row> = (0..(ROW_GROUP_ROWS as u32 + 10))
            .map(|i| (i.to_be_bytes().to_vec(), vec![i as u8; (i % 5) as usize]))
            .chain([(Vec::new(), Vec::new())])
            .collect();
        let file = encode(&rows).unwrap();
        assert_eq!(&file[..4], b"PAR1");
        let back = decode(Bytes::from(file.clone()), rows.len() as u64).unwrap();
        assert_eq!(back, rows);
        assert_eq!(
            decode(Bytes::from(encode(&[]).unwrap()), 0).unwrap(),
            vec![]
        );
        let err = decode(Bytes::from(file.clone()), 3).unwrap_err();
        assert!(err.contains("the manifest says 3"), "{err}");
        let err = decode(
            Bytes::from(file[..file.len() - 9].to_vec()),
            rows.len() as u64,
        )
        .unwrap_err();
        assert!(!err.is_empty());
        assert!(decode(Bytes::from_static(b"not parquet at all"), 0).is_err());
    }
}
