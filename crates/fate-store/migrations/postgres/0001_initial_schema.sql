-- Migration version 1 (`0001_initial_schema`), PostgreSQL copy of `sqlite/0001_initial_schema.sql`:
-- the same tables, columns, keys and indexes (the store's SQL is the same on every backend).
-- PostgreSQL differences: every text column uses the "C" collation, so keys sort byte for byte
-- as in SQLite whatever locale the database was created with.
-- Never edit this file after a release: sqlx checks its checksum. Add a new numbered file to
-- every dialect's directory.

CREATE TABLE t_job (
    f_job_id             VARCHAR(64) COLLATE "C"  NOT NULL,
    f_role               VARCHAR(16) COLLATE "C"  NOT NULL,
    f_party_id           VARCHAR(64) COLLATE "C"  NOT NULL,
    f_status             VARCHAR(16) COLLATE "C"  NOT NULL,
    f_progress           INTEGER      NOT NULL,
    f_dag                TEXT COLLATE "C"         NOT NULL,
    f_model_id           VARCHAR(255) COLLATE "C" NOT NULL,
    f_model_version      VARCHAR(64) COLLATE "C"  NOT NULL,
    f_initiator_party_id VARCHAR(64) COLLATE "C"  NOT NULL,
    f_scheduler_party_id VARCHAR(64) COLLATE "C"  NOT NULL,
    f_parties            TEXT COLLATE "C"         NOT NULL,
    f_description        TEXT COLLATE "C"         NOT NULL,
    f_user_name          VARCHAR(255) COLLATE "C" NOT NULL,
    f_create_time        BIGINT       NOT NULL,
    f_start_time         BIGINT,
    f_end_time           BIGINT,
    f_elapsed            BIGINT,
    f_error              TEXT COLLATE "C",
    f_cores              INTEGER      NOT NULL,
    PRIMARY KEY (f_job_id, f_role, f_party_id)
);
CREATE INDEX idx_job_create_time ON t_job (f_create_time);
CREATE INDEX idx_job_status ON t_job (f_status);

CREATE TABLE t_task (
    f_job_id       VARCHAR(64) COLLATE "C"  NOT NULL,
    f_task_id      VARCHAR(200) COLLATE "C" NOT NULL,
    f_task_name    VARCHAR(128) COLLATE "C" NOT NULL,
    f_task_version BIGINT       NOT NULL,
    f_component    VARCHAR(128) COLLATE "C" NOT NULL,
    f_role         VARCHAR(16) COLLATE "C"  NOT NULL,
    f_party_id     VARCHAR(64) COLLATE "C"  NOT NULL,
    f_status       VARCHAR(16) COLLATE "C"  NOT NULL,
    f_parameters   TEXT COLLATE "C"         NOT NULL,
    f_create_time  BIGINT       NOT NULL,
    f_start_time   BIGINT,
    f_end_time     BIGINT,
    f_elapsed      BIGINT,
    f_error        TEXT COLLATE "C",
    PRIMARY KEY (f_job_id, f_task_name, f_task_version, f_role, f_party_id)
);
CREATE INDEX idx_task_status ON t_task (f_status);

CREATE TABLE t_table_meta (
    f_namespace   VARCHAR(128) COLLATE "C" NOT NULL,
    f_name        VARCHAR(128) COLLATE "C" NOT NULL,
    f_partitions  INTEGER      NOT NULL,
    f_count       BIGINT       NOT NULL,
    f_schema      TEXT COLLATE "C"         NOT NULL,
    f_engine      VARCHAR(32) COLLATE "C"  NOT NULL,
    f_path        TEXT COLLATE "C"         NOT NULL,
    f_source      TEXT COLLATE "C"         NOT NULL,
    f_create_time BIGINT       NOT NULL,
    PRIMARY KEY (f_namespace, f_name)
);

CREATE TABLE t_metric (
    f_job_id      VARCHAR(64) COLLATE "C"  NOT NULL,
    f_role        VARCHAR(16) COLLATE "C"  NOT NULL,
    f_party_id    VARCHAR(64) COLLATE "C"  NOT NULL,
    f_task_name   VARCHAR(128) COLLATE "C" NOT NULL,
    f_name        TEXT COLLATE "C"         NOT NULL,
    f_type        TEXT COLLATE "C"         NOT NULL,
    f_groups      TEXT COLLATE "C"         NOT NULL,
    f_step_axis   TEXT COLLATE "C",
    f_data        TEXT COLLATE "C"         NOT NULL,
    f_create_time BIGINT       NOT NULL
);
CREATE INDEX idx_metric_task ON t_metric (f_job_id, f_role, f_party_id, f_task_name);

CREATE TABLE t_model (
    f_job_id        VARCHAR(64) COLLATE "C"  NOT NULL,
    f_role          VARCHAR(16) COLLATE "C"  NOT NULL,
    f_party_id      VARCHAR(64) COLLATE "C"  NOT NULL,
    f_task_name     VARCHAR(128) COLLATE "C" NOT NULL,
    f_output_key    VARCHAR(128) COLLATE "C" NOT NULL,
    f_model_id      VARCHAR(255) COLLATE "C" NOT NULL,
    f_model_version VARCHAR(64) COLLATE "C"  NOT NULL,
    f_component     VARCHAR(128) COLLATE "C" NOT NULL,
    f_data          TEXT COLLATE "C"         NOT NULL,
    f_create_time   BIGINT       NOT NULL,
    PRIMARY KEY (f_job_id, f_role, f_party_id, f_task_name, f_output_key)
);
CREATE INDEX idx_model_model_id ON t_model (f_model_id, f_model_version, f_role, f_party_id);

CREATE TABLE t_output_data (
    f_job_id      VARCHAR(64) COLLATE "C"  NOT NULL,
    f_role        VARCHAR(16) COLLATE "C"  NOT NULL,
    f_party_id    VARCHAR(64) COLLATE "C"  NOT NULL,
    f_task_name   VARCHAR(128) COLLATE "C" NOT NULL,
    f_output_key  VARCHAR(128) COLLATE "C" NOT NULL,
    f_namespace   VARCHAR(128) COLLATE "C" NOT NULL,
    f_name        VARCHAR(128) COLLATE "C" NOT NULL,
    f_create_time BIGINT       NOT NULL,
    PRIMARY KEY (f_job_id, f_role, f_party_id, f_task_name, f_output_key, f_namespace, f_name)
);
