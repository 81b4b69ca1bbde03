-- The pairwise sector of each client (OIDC Core §8.1), fixed at
-- registration: subjects are computed from it, never from the current
-- metadata. Rows of before this migration are filled at start-up from
-- their metadata as the sector was computed until now (the host of the
-- sector_identifier_uri, else of the first redirect URI, else the
-- client_id; `clients::sector::legacy`), which SQL cannot reproduce
-- exactly (host normalisation); NULL means "not filled yet".
ALTER TABLE clients ADD COLUMN sector TEXT;
