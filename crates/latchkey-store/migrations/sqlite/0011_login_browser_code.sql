-- The digest of the one-time code an SSO return hands the browser at the
-- login's redirectUri: the session of that login goes only to a poll
-- that presents it, so a login started by someone else and completed by a
-- victim's browser gives its starter nothing.
ALTER TABLE logins ADD COLUMN browser_code_digest TEXT;
