//! Sending tables between parties: a header object and then one object per partition, named
//! as FATE names a table pushed inside an object (`{name}__table_persistent_{i}__`,
//! fate-spec §2.2). Memory stays bounded by one encoded partition at a time; the federation
//! layer slices each partition into bounded frames.

use crate::registry::ComponentError;
use fate_computing::{Computing, Key, Table, Value};
use fate_federation::Federation;
use fate_types::Party;
use serde::{Deserialize, Serialize};

/// Upper bound on the partitions a peer may announce, so a hostile header cannot make us wait
/// on millions of objects.
pub const MAX_REMOTE_PARTITIONS: usize = 4096;

#[derive(Debug, Serialize, Deserialize)]
struct TableHeader {
    partitions: usize,
    count: usize,
}

fn part_name(name: &str, i: usize) -> String {
    format!("{name}__table_persistent_{i}__")
}

pub fn remote_table<K: Key, V: Value>(
    fed: &Federation,
    name: &str,
    tag: &str,
    dst: &[Party],
    table: &Table<K, V>,
) -> Result<(), ComponentError> {
    let header = TableHeader {
        partitions: table.num_partitions(),
        count: table.count()?,
    };
    fed.remote(name, tag, dst, &header)?;
    // One partition in memory at a time (on an engine elsewhere, fetched one by one).
    table.for_each_partition(usize::MAX, |i, part| {
        fed.remote(&part_name(name, i), tag, dst, part)?;
        Ok::<(), ComponentError>(())
    })
}

pub fn get_table<K: Key, V: Value>(
    fed: &Federation,
    computing: &Computing,
    name: &str,
    tag: &str,
    src: &Party,
) -> Result<Table<K, V>, ComponentError> {
    let header: TableHeader = fed.get_one(name, tag, src)?;
    if header.partitions == 0 || header.partitions > MAX_REMOTE_PARTITIONS {
        return Err(ComponentError::Data(format!(
            "table `{name}` from {src} announces {} partitions (allowed 1..={MAX_REMOTE_PARTITIONS})",
            header.partitions
        )));
    }
    let mut parts = Vec::with_capacity(header.partitions);
    let mut count = 0;
    for i in 0..header.partitions {
        let part: Vec<(K, V)> = fed.get_one(&part_name(name, i), tag, src)?;
        count += part.len();
        parts.push(part);
    }
    if count != header.count {
        return Err(ComponentError::Data(format!(
            "table `{name}` from {src} announced {} rows but sent {count}",
            header.count
        )));
    }
    Ok(Table::from_partitions(computing, parts)?)
}
