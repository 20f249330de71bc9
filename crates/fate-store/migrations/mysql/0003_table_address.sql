-- Migration version 3 (`0003_table_address`), MariaDB/MySQL copy of
-- `sqlite/0003_table_address.sql` (a table's address beside its storage engine).

ALTER TABLE t_table_meta ADD COLUMN f_address VARCHAR(2048) NOT NULL DEFAULT '';
UPDATE t_table_meta SET f_address = f_path;
