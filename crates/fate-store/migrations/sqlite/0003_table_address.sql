-- Migration version 3 (`0003_table_address`): where a table's data lives, FATE's table meta
-- `address` beside its storage `engine` (fate-spec §1.3 storage engines): the table's URI in the
-- node's storage (`s3://bucket/prefix/ns/name`, `hdfs://host:port/path/ns/name`,
-- `file:///dir/ns/name`), or `ns/name` in the standalone (redb) store. Rows written before this
-- migration were all standalone tables, whose address was their path.
-- Same portability rules as 0001 (VARCHAR, not TEXT, so MySQL accepts the default).

ALTER TABLE t_table_meta ADD COLUMN f_address VARCHAR(2048) NOT NULL DEFAULT '';
UPDATE t_table_meta SET f_address = f_path;
