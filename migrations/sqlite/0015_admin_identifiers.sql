-- A client the operator allowed national identifiers in the admin API's
-- export (scope `civitas:admin:identifiers`, only together with `admin`).
ALTER TABLE clients ADD COLUMN admin_identifiers BIGINT NOT NULL DEFAULT 0;
