-- Latchkey schema, version 6: a signing key's phase (next, active, retired,
-- removed) is a function of the schedule and the clock
-- (latchkey_core::keyplan), never stored; the column was always written and
-- never read.
ALTER TABLE signing_keys DROP COLUMN status;
