-- Migration version 1 (`0001_initial_schema`): the initial fate-rs metadata schema.
--
-- FATE-Flow's database (fate-spec §3.1, §3.4) reduced to what a fate-rs node keeps: jobs and
-- tasks (one row per party), table metadata, and the outputs of tasks (metrics, models, data
-- table references). Columns carry FATE's `f_` prefix, which also keeps every name clear of the
-- reserved words of SQLite, PostgreSQL and MariaDB (`groups`, `schema`, `count`, ...).
--
-- Portability rules for this and later migrations (MariaDB/PostgreSQL get their own copy):
-- * key and indexed columns are VARCHAR(n) (MariaDB cannot index TEXT without a prefix length);
--   the store validates lengths before writing, so every backend accepts the same data;
-- * free text and JSON documents are TEXT (the MariaDB copy must use LONGTEXT for them);
-- * timestamps are epoch milliseconds in BIGINT; statuses and roles are lowercase names;
-- * no AUTOINCREMENT, no STRICT tables, no partial indexes.
-- Never edit this file after a release: sqlx checks its checksum. Add a new numbered file.

CREATE TABLE t_job (
    f_job_id             VARCHAR(64)  NOT NULL,
    f_role               VARCHAR(16)  NOT NULL,
    f_party_id           VARCHAR(64)  NOT NULL,
    f_status             VARCHAR(16)  NOT NULL,
    f_progress           INTEGER      NOT NULL,
    f_dag                TEXT         NOT NULL,
    f_model_id           VARCHAR(255) NOT NULL,
    f_model_version      VARCHAR(64)  NOT NULL,
    f_initiator_party_id VARCHAR(64)  NOT NULL,
    f_scheduler_party_id VARCHAR(64)  NOT NULL,
    f_parties            TEXT         NOT NULL,
    f_description        TEXT         NOT NULL,
    f_user_name          VARCHAR(255) NOT NULL,
    f_create_time        BIGINT       NOT NULL,
    f_start_time         BIGINT,
    f_end_time           BIGINT,
    f_elapsed            BIGINT,
    f_error              TEXT,
    f_cores              INTEGER      NOT NULL,
    PRIMARY KEY (f_job_id, f_role, f_party_id)
);
CREATE INDEX idx_job_create_time ON t_job (f_create_time);
CREATE INDEX idx_job_status ON t_job (f_status);

CREATE TABLE t_task (
    f_job_id       VARCHAR(64)  NOT NULL,
    f_task_id      VARCHAR(200) NOT NULL,
    f_task_name    VARCHAR(128) NOT NULL,
    f_task_version BIGINT       NOT NULL,
    f_component    VARCHAR(128) NOT NULL,
    f_role         VARCHAR(16)  NOT NULL,
    f_party_id     VARCHAR(64)  NOT NULL,
    f_status       VARCHAR(16)  NOT NULL,
    f_parameters   TEXT         NOT NULL,
    f_create_time  BIGINT       NOT NULL,
    f_start_time   BIGINT,
    f_end_time     BIGINT,
    f_elapsed      BIGINT,
    f_error        TEXT,
    PRIMARY KEY (f_job_id, f_task_name, f_task_version, f_role, f_party_id)
);
CREATE INDEX idx_task_status ON t_task (f_status);

CREATE TABLE t_table_meta (
    f_namespace   VARCHAR(128) NOT NULL,
    f_name        VARCHAR(128) NOT NULL,
    f_partitions  INTEGER      NOT NULL,
    f_count       BIGINT       NOT NULL,
    f_schema      TEXT         NOT NULL,
    f_engine      VARCHAR(32)  NOT NULL,
    f_path        TEXT         NOT NULL,
    f_source      TEXT         NOT NULL,
    f_create_time BIGINT       NOT NULL,
    PRIMARY KEY (f_namespace, f_name)
);

-- Metrics are appended, as FATE-Flow appends them (a component may report a metric in batches).
CREATE TABLE t_metric (
    f_job_id      VARCHAR(64)  NOT NULL,
    f_role        VARCHAR(16)  NOT NULL,
    f_party_id    VARCHAR(64)  NOT NULL,
    f_task_name   VARCHAR(128) NOT NULL,
    f_name        TEXT         NOT NULL,
    f_type        TEXT         NOT NULL,
    f_groups      TEXT         NOT NULL,
    f_step_axis   TEXT,
    f_data        TEXT         NOT NULL,
    f_create_time BIGINT       NOT NULL
);
CREATE INDEX idx_metric_task ON t_metric (f_job_id, f_role, f_party_id, f_task_name);

CREATE TABLE t_model (
    f_job_id        VARCHAR(64)  NOT NULL,
    f_role          VARCHAR(16)  NOT NULL,
    f_party_id      VARCHAR(64)  NOT NULL,
    f_task_name     VARCHAR(128) NOT NULL,
    f_output_key    VARCHAR(128) NOT NULL,
    f_model_id      VARCHAR(255) NOT NULL,
    f_model_version VARCHAR(64)  NOT NULL,
    f_component     VARCHAR(128) NOT NULL,
    f_data          TEXT         NOT NULL,
    f_create_time   BIGINT       NOT NULL,
    PRIMARY KEY (f_job_id, f_role, f_party_id, f_task_name, f_output_key)
);
CREATE INDEX idx_model_model_id ON t_model (f_model_id, f_model_version, f_role, f_party_id);

CREATE TABLE t_output_data (
    f_job_id      VARCHAR(64)  NOT NULL,
    f_role        VARCHAR(16)  NOT NULL,
    f_party_id    VARCHAR(64)  NOT NULL,
    f_task_name   VARCHAR(128) NOT NULL,
    f_output_key  VARCHAR(128) NOT NULL,
    f_namespace   VARCHAR(128) NOT NULL,
    f_name        VARCHAR(128) NOT NULL,
    f_create_time BIGINT       NOT NULL,
    PRIMARY KEY (f_job_id, f_role, f_party_id, f_task_name, f_output_key, f_namespace, f_name)
);
