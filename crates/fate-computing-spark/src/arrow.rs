//! Arrow IPC streams, both ways: `(key, value)` rows into a `LocalRelation`'s data, and the
//! batches of an `ExecutePlanResponse` back into rows or counts.

use std::io::Cursor;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BinaryArray, LargeBinaryArray, RecordBatch};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Schema};

use crate::Row;

/// The schema of a table: `key BINARY NOT NULL, value BINARY NOT NULL`.
pub(crate) const TABLE_DDL: &str = "key BINARY NOT NULL, value BINARY NOT NULL";

/// Encodes rows as one Arrow IPC stream (schema, one batch) with two binary columns.
pub(crate) fn encode_rows(rows: &[Row]) -> Result<Vec<u8>, String> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Binary, false),
        Field::new("value", DataType::Binary, false),
    ]));
    let keys = BinaryArray::from_iter_values(rows.iter().map(|(k, _)| k.as_slice()));
    let values = BinaryArray::from_iter_values(rows.iter().map(|(_, v)| v.as_slice()));
    let columns: Vec<ArrayRef> = vec![Arc::new(keys), Arc::new(values)];
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, &schema).map_err(|e| e.to_string())?;
    writer.write(&batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    drop(writer);
    Ok(out)
}

/// The schema of engine rows: the key's hash as a signed BIGINT, key and value.
pub(crate) const ENGINE_TABLE_DDL: &str =
    "h BIGINT NOT NULL, key BINARY NOT NULL, value BINARY NOT NULL";

/// Encodes engine rows as one Arrow IPC stream `(h, key, value)`.
pub(crate) fn encode_engine_rows(rows: &[&fate_computing::Row]) -> Result<Vec<u8>, String> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("h", DataType::Int64, false),
        Field::new("key", DataType::Binary, false),
        Field::new("value", DataType::Binary, false),
    ]));
    let hashes = arrow_array::Int64Array::from_iter_values(rows.iter().map(|r| r.hash as i64));
    let keys = BinaryArray::from_iter_values(rows.iter().map(|r| r.key.as_slice()));
    let values = BinaryArray::from_iter_values(rows.iter().map(|r| r.value.as_slice()));
    let columns: Vec<ArrayRef> = vec![Arc::new(hashes), Arc::new(keys), Arc::new(values)];
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, &schema).map_err(|e| e.to_string())?;
    writer.write(&batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    drop(writer);
    Ok(out)
}

/// Appends the engine rows of a batch `(h BIGINT, key BINARY, value BINARY)`.
pub(crate) fn append_engine_rows(
    batch: &RecordBatch,
    out: &mut Vec<fate_computing::Row>,
) -> Result<(), String> {
    if batch.num_columns() < 3 {
        return Err(format!(
            "expected columns (h, key, value), got {} column(s)",
            batch.num_columns()
        ));
    }
    let hashes = int_column(batch.column(0), "h")?;
    let keys = binary_column(batch.column(1), "key")?;
    let values = binary_column(batch.column(2), "value")?;
    for idx in 0..batch.num_rows() {
        out.push(fate_computing::Row {
            hash: hashes(idx)? as u64,
            key: keys(idx)?,
            value: values(idx)?,
        });
    }
    Ok(())
}

/// Appends `(int, binary)` pairs of a batch's first two columns.
pub(crate) fn append_int_binary(
    batch: &RecordBatch,
    out: &mut Vec<(i64, Vec<u8>)>,
) -> Result<(), String> {
    if batch.num_columns() < 2 {
        return Err("expected two columns".into());
    }
    let ints = int_column(batch.column(0), "p")?;
    let values = binary_column(batch.column(1), "value")?;
    for idx in 0..batch.num_rows() {
        out.push((ints(idx)?, values(idx)?));
    }
    Ok(())
}

/// Appends `(int, int)` pairs of a batch's first two columns.
pub(crate) fn append_int_pairs(
    batch: &RecordBatch,
    out: &mut Vec<(i64, i64)>,
) -> Result<(), String> {
    if batch.num_columns() < 2 {
        return Err("expected two columns".into());
    }
    let a = int_column(batch.column(0), "p")?;
    let b = int_column(batch.column(1), "count")?;
    for idx in 0..batch.num_rows() {
        out.push((a(idx)?, b(idx)?));
    }
    Ok(())
}

type IntAt<'a> = Box<dyn Fn(usize) -> Result<i64, String> + 'a>;

/// An INT or BIGINT column as `i64`s.
fn int_column<'a>(column: &'a ArrayRef, name: &'a str) -> Result<IntAt<'a>, String> {
    let null_error = move |idx: usize| format!("column {name} is null in row {idx}");
    if let Some(array) = column.as_any().downcast_ref::<arrow_array::Int64Array>() {
        return Ok(Box::new(move |idx| {
            if array.is_null(idx) {
                return Err(null_error(idx));
            }
            Ok(array.value(idx))
        }));
    }
    if let Some(array) = column.as_any().downcast_ref::<arrow_array::Int32Array>() {
        return Ok(Box::new(move |idx| {
            if array.is_null(idx) {
                return Err(null_error(idx));
            }
            Ok(i64::from(array.value(idx)))
        }));
    }
    Err(format!(
        "column {name} has type {}, expected an integer",
        column.data_type()
    ))
}

/// Decodes one Arrow IPC stream into its record batches.
pub(crate) fn decode_batches(data: &[u8]) -> Result<Vec<RecordBatch>, String> {
    let reader = StreamReader::try_new(Cursor::new(data), None).map_err(|e| e.to_string())?;
    reader
        .map(|batch| batch.map_err(|e| e.to_string()))
        .collect()
}

/// Appends the `(key, value)` rows of a batch whose first two columns are binary (Spark's
/// `BinaryType` arrives as `Binary`, or `LargeBinary` with large var types on).
pub(crate) fn append_rows(batch: &RecordBatch, out: &mut Vec<Row>) -> Result<(), String> {
    if batch.num_columns() < 2 {
        return Err(format!(
            "expected columns (key, value), got {} column(s)",
            batch.num_columns()
        ));
    }
    let keys = binary_column(batch.column(0), "key")?;
    let values = binary_column(batch.column(1), "value")?;
    for idx in 0..batch.num_rows() {
        out.push((keys(idx)?, values(idx)?));
    }
    Ok(())
}

type ValueAt<'a> = Box<dyn Fn(usize) -> Result<Vec<u8>, String> + 'a>;

fn binary_column<'a>(column: &'a ArrayRef, name: &'a str) -> Result<ValueAt<'a>, String> {
    let null_error = move |idx: usize| format!("column {name} is null in row {idx}");
    if let Some(array) = column.as_any().downcast_ref::<BinaryArray>() {
        return Ok(Box::new(move |idx| {
            if array.is_null(idx) {
                return Err(null_error(idx));
            }
            Ok(array.value(idx).to_vec())
        }));
    }
    if let Some(array) = column.as_any().downcast_ref::<LargeBinaryArray>() {
        return Ok(Box::new(move |idx| {
            if array.is_null(idx) {
                return Err(null_error(idx));
            }
            Ok(array.value(idx).to_vec())
        }));
    }
    Err(format!(
        "column {name} has type {}, expected binary",
        column.data_type()
    ))
}

/// The single integer of a one-row, one-column batch (a `count(*)` result).
pub(crate) fn single_i64(batches: &[RecordBatch]) -> Result<i64, String> {
    let batch = batches
        .iter()
        .find(|batch| batch.num_rows() > 0)
        .ok_or("expected one row, got none")?;
    let column = batch.column(0);
    column
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .map(|array| array.value(0))
        .ok_or_else(|| format!("expected a bigint, got {}", column.data_type()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_an_ipc_stream() {
        let rows: Vec<Row> = vec![(b"a".to_vec(), vec![0, 1, 2]), (vec![], vec![255; 300])];
        let data = encode_rows(&rows).unwrap();
        let batches = decode_batches(&data).unwrap();
        let mut back = Vec::new();
        for batch in &batches {
            append_rows(batch, &mut back).unwrap();
        }
        assert_eq!(back, rows);
    }

    #[test]
    fn a_truncated_stream_is_an_error() {
        let data = encode_rows(&[(b"k".to_vec(), b"v".to_vec())]).unwrap();
        assert!(decode_batches(&data[..data.len() / 2]).is_err());
    }
}
