-- Migration version 3 (`0003_table_address`), PostgreSQL copy of
-- `sqlite/0003_table_address.sql` (a table's address beside its storage engine).

ALTER TABLE t_table_meta ADD COLUMN f_address VARCHAR(2048) COLLATE "C" NOT NULL DEFAULT '';
UPDATE t_table_meta SET f_address = f_path;
