-- Migration version 2 (`0002_apps_permissions`): FATE-Flow 2.x client authentication and site
-- permissions (fate-spec §3.4 `/app/*`, `/permission/*`).
--
-- * t_app_info: apps that may call the REST API, each with its secret token (FATE's
--   `t_app_info`: app id, name, token, type).
-- * t_app_role: the roles granted to an app (`client`, `super_client`; FATE keeps them in casbin).
-- * t_site_permission: which components and which datasets a partner party may use in the
--   jobs it creates at this node (FATE's resource permissions: type `component` or `dataset`).
-- Same portability rules as 0001.

CREATE TABLE t_app_info (
    f_app_id      VARCHAR(64)  NOT NULL,
    f_app_name    VARCHAR(255) NOT NULL,
    f_app_token   VARCHAR(64)  NOT NULL,
    f_app_type    VARCHAR(16)  NOT NULL,
    f_create_time BIGINT       NOT NULL,
    PRIMARY KEY (f_app_id)
);
CREATE UNIQUE INDEX idx_app_info_name ON t_app_info (f_app_name);

CREATE TABLE t_app_role (
    f_app_id VARCHAR(64) NOT NULL,
    f_role   VARCHAR(32) NOT NULL,
    PRIMARY KEY (f_app_id, f_role)
);

CREATE TABLE t_site_permission (
    f_party_id VARCHAR(64)  NOT NULL,
    f_type     VARCHAR(16)  NOT NULL,
    f_value    VARCHAR(300) NOT NULL,
    PRIMARY KEY (f_party_id, f_type, f_value)
);
