//! Table metadata; `(namespace, name)` is unique (fate-spec §3.4 `/table/*`).

use crate::error::{Result, StoreError};
use crate::records::TableRecord;
use crate::rows::{
    MAX_NAME_CHARS, TABLE_COLUMNS, TableRow, check_key, check_len, convert, to_json,
};
use crate::{Dialect, MetaStore, conflict_on_unique, with_pool};

/// Longest engine name (VARCHAR(32)).
const MAX_ENGINE_CHARS: usize = 32;
/// Longest address (VARCHAR(2048)).
const MAX_ADDRESS_CHARS: usize = 2048;

fn table_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

const INSERT_TABLE: &str = "INSERT INTO t_table_meta (f_namespace, f_name, f_partitions, f_count, \
    f_schema, f_engine, f_path, f_address, f_source, f_create_time) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

impl MetaStore {
    /// Stores table metadata. Without `overwrite`, an existing `(namespace, name)` is a
    /// [`StoreError::Conflict`] and the stored row stays as it was; with it, the row is replaced.
    pub async fn put_table(&self, t: &TableRecord, overwrite: bool) -> Result<()> {
        with_pool!(self, pool, DB => {
            check_key("namespace", &t.namespace, MAX_NAME_CHARS)?;
            check_key("name", &t.name, MAX_NAME_CHARS)?;
            check_len("engine", &t.engine, MAX_ENGINE_CHARS)?;
            check_len("address", &t.address, MAX_ADDRESS_CHARS)?;
            if t.partitions < 1 {
                return Err(StoreError::invalid(
                    "partitions",
                    format!("{} is below 1", t.partitions),
                ));
            }
            if t.count < 0 {
                return Err(StoreError::invalid(
                    "count",
                    format!("{} is negative", t.count),
                ));
            }
            let schema = to_json("schema", &t.schema)?;
            let source = to_json("source", &t.source)?;
            let insert_sql = DB::sql(INSERT_TABLE);
            let insert = sqlx::query(&insert_sql)
                .bind(&t.namespace)
                .bind(&t.name)
                .bind(t.partitions)
                .bind(t.count)
                .bind(schema)
                .bind(&t.engine)
                .bind(&t.path)
                .bind(&t.address)
                .bind(source)
                .bind(t.create_time);
            if overwrite {
                // Delete and insert in one transaction: portable, unlike each backend's upsert.
                let mut tx = pool.begin().await?;
                sqlx::query(&DB::sql("DELETE FROM t_table_meta WHERE f_namespace = ? AND f_name = ?"))
                    .bind(&t.namespace)
                    .bind(&t.name)
                    .execute(&mut *tx)
                    .await?;
                insert.execute(&mut *tx).await?;
                tx.commit().await?;
            } else {
                insert
                    .execute(pool)
                    .await
                    .map_err(|e| conflict_on_unique(e, "table", || table_key(&t.namespace, &t.name)))?;
            }
            Ok(())
        })
    }

    /// The metadata of one table, if stored.
    pub async fn table(&self, namespace: &str, name: &str) -> Result<Option<TableRecord>> {
        with_pool!(self, pool, DB => {
            let row: Option<TableRow> = sqlx::query_as(&DB::sql(&format!(
                "SELECT {TABLE_COLUMNS} FROM t_table_meta WHERE f_namespace = ? AND f_name = ?"
            )))
            .bind(namespace)
            .bind(name)
            .fetch_optional(pool)
            .await?;
            row.map(TableRecord::try_from).transpose()
        })
    }

    /// Deletes the metadata of one table; `false` if there was none.
    pub async fn delete_table(&self, namespace: &str, name: &str) -> Result<bool> {
        with_pool!(self, pool, DB => {
            let done = sqlx::query(&DB::sql("DELETE FROM t_table_meta WHERE f_namespace = ? AND f_name = ?"))
                .bind(namespace)
                .bind(name)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Every stored table, ordered by namespace and name.
    pub async fn tables(&self) -> Result<Vec<TableRecord>> {
        with_pool!(self, pool, DB => {
            let rows: Vec<TableRow> = sqlx::query_as(&DB::sql(&format!(
                "SELECT {TABLE_COLUMNS} FROM t_table_meta ORDER BY f_namespace, f_name"
            )))
            .fetch_all(pool)
            .await?;
            convert(rows)
        })
    }
}
