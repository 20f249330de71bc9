-- Migration version 2 (`0002_apps_permissions`), MariaDB/MySQL copy of
-- `sqlite/0002_apps_permissions.sql` (client apps, their roles, site permissions). Same rules as
-- this directory's 0001.

CREATE TABLE t_app_info (
    f_app_id      VARCHAR(64)  NOT NULL,
    f_app_name    VARCHAR(255) NOT NULL,
    f_app_token   VARCHAR(64)  NOT NULL,
    f_app_type    VARCHAR(16)  NOT NULL,
    f_create_time BIGINT       NOT NULL,
    PRIMARY KEY (f_app_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;
CREATE UNIQUE INDEX idx_app_info_name ON t_app_info (f_app_name);

CREATE TABLE t_app_role (
    f_app_id VARCHAR(64) NOT NULL,
    f_role   VARCHAR(32) NOT NULL,
    PRIMARY KEY (f_app_id, f_role)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;

CREATE TABLE t_site_permission (
    f_party_id VARCHAR(64)  NOT NULL,
    f_type     VARCHAR(16)  NOT NULL,
    f_value    VARCHAR(300) NOT NULL,
    PRIMARY KEY (f_party_id, f_type, f_value)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;
