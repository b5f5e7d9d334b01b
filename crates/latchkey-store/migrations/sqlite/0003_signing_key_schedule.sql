-- Latchkey schema, version 3: signing keys get a schedule. A key signs from
-- not_before until the next key's not_before; private_pkcs8 now holds the
-- key sealed under the master key ("v1.…"), legacy plain values are sealed
-- at the next start.
ALTER TABLE signing_keys ADD COLUMN not_before BIGINT;
UPDATE signing_keys SET not_before = created_at WHERE not_before IS NULL;
